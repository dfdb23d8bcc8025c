//! What wakes a reconcile besides a change of the scan itself: the channels into the two scan
//! controllers (the caches' index and the queue send on them), and the scans a Job or report
//! belongs to.

use futures::channel::mpsc;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;

use crate::api::{ImageScan, SourceScan};

/// How many scans to reconcile may wait for their controller, per kind, before the watches
/// wait for it.
const QUEUE: usize = 1024;

/// Where the index sends the scans to reconcile.
#[derive(Clone)]
pub struct Triggers {
    pub images: mpsc::Sender<ObjectRef<ImageScan>>,
    pub sources: mpsc::Sender<ObjectRef<SourceScan>>,
}

/// The trigger channels, with their receivers for the controllers.
pub fn triggers() -> (
    Triggers,
    mpsc::Receiver<ObjectRef<ImageScan>>,
    mpsc::Receiver<ObjectRef<SourceScan>>,
) {
    let (images, images_rx) = mpsc::channel(QUEUE);
    let (sources, sources_rx) = mpsc::channel(QUEUE);
    (Triggers { images, sources }, images_rx, sources_rx)
}

/// The scans a Job or report names as its owner, by kind.
pub fn owners(meta: &ObjectMeta) -> (Vec<ObjectRef<ImageScan>>, Vec<ObjectRef<SourceScan>>) {
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let mut images = vec![];
    let mut sources = vec![];
    let group = format!("{}/", ImageScan::group(&()));
    for owner in meta.owner_references.iter().flatten() {
        if !owner.api_version.starts_with(&group) {
            continue;
        }
        if owner.kind == ImageScan::kind(&()) {
            images.push(ObjectRef::new(&owner.name).within(namespace));
        } else if owner.kind == SourceScan::kind(&()) {
            sources.push(ObjectRef::new(&owner.name).within(namespace));
        }
    }
    (images, sources)
}
