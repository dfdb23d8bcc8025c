//! Feeds the webhook's state: watches on the cluster, or files for running without one.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::state::WebhookState;
use crate::api::{ImageScan, ScanException, ScanPolicy, ScanTemplate};
use crate::cmd::check::{Manifest, read_manifests};

/// One change reported by a watch.
enum Change<K> {
    /// The full list: the initial list, or a relist after the watch was lost.
    Replace(Vec<K>),
    Apply(K),
    Delete(K),
}

/// Follows a watch forever, handing each change to `on`. Errors are logged; the stream's
/// backoff retries.
async fn follow<K: Debug>(
    what: &'static str,
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    mut on: impl FnMut(Change<K>),
) {
    let mut initial = vec![];
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(object)) => initial.push(object),
            Ok(Event::InitDone) => {
                tracing::info!(what, count = initial.len(), "watch synced");
                on(Change::Replace(std::mem::take(&mut initial)));
            }
            Ok(Event::Apply(object)) => on(Change::Apply(object)),
            Ok(Event::Delete(object)) => on(Change::Delete(object)),
            Err(e) => tracing::warn!(what, error = %e, "watch failed; retrying"),
        }
    }
}

fn objects<K>(client: &Client) -> Api<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    Api::all(client.clone())
}

/// Starts the watches that keep `state` current.
pub fn watch_cluster(client: Client, state: Arc<WebhookState>) {
    let config = watcher::Config::default();
    let s = state.clone();
    // managedFields are dropped: the index keeps only what admission reads.
    let scans = watcher::watcher(objects::<ImageScan>(&client), config.clone())
        .modify(|scan| scan.metadata.managed_fields = None)
        .default_backoff();
    tokio::spawn(async move {
        follow("imagescans", scans, |change| match change {
            Change::Replace(all) => s.replace_scans(&all),
            Change::Apply(scan) => s.apply_scan(&scan),
            Change::Delete(scan) => s.delete_scan(&scan),
        })
        .await
    });
    let s = state.clone();
    let exceptions =
        watcher::watcher(objects::<ScanException>(&client), config.clone()).default_backoff();
    tokio::spawn(async move {
        follow("scanexceptions", exceptions, |change| match change {
            Change::Replace(all) => s.replace_exceptions(&all),
            Change::Apply(e) => s.apply_exception(&e),
            Change::Delete(e) => s.delete_exception(&e),
        })
        .await
    });
    let s = state.clone();
    let namespaces = watcher::watcher(
        objects::<PartialObjectMeta<Namespace>>(&client),
        config.clone(),
    )
    .default_backoff();
    tokio::spawn(async move {
        follow(
            "namespaces",
            namespaces,
            |change: Change<PartialObjectMeta<Namespace>>| match change {
                Change::Replace(all) => s.replace_namespaces(all.iter().map(|n| &n.metadata)),
                Change::Apply(n) => s.apply_namespace(&n.metadata),
                Change::Delete(n) => s.delete_namespace(&n.metadata),
            },
        )
        .await
    });
    let s = state.clone();
    let templates = watcher::watcher(
        objects::<PartialObjectMeta<ScanTemplate>>(&client),
        config.clone(),
    )
    .default_backoff();
    tokio::spawn(async move {
        follow(
            "scantemplates",
            templates,
            |change: Change<PartialObjectMeta<ScanTemplate>>| match change {
                Change::Replace(all) => s.replace_templates(all.iter().map(|t| &t.metadata)),
                Change::Apply(t) => s.apply_template(&t.metadata),
                Change::Delete(t) => s.delete_template(&t.metadata),
            },
        )
        .await
    });
    let s = state;
    let policies = watcher::watcher(objects::<PartialObjectMeta<ScanPolicy>>(&client), config)
        .default_backoff();
    tokio::spawn(async move {
        follow(
            "scanpolicies",
            policies,
            |change: Change<PartialObjectMeta<ScanPolicy>>| match change {
                Change::Replace(all) => s.replace_policies(all.iter().map(|p| &p.metadata)),
                Change::Apply(p) => s.apply_policy(&p.metadata),
                Change::Delete(p) => s.delete_policy(&p.metadata),
            },
        )
        .await
    });
}

/// Loads the state once from a directory of YAML/JSON objects (no cluster needed).
pub fn load_files(dir: &Path, state: &WebhookState) -> Result<usize, crate::cmd::check::Error> {
    let objects = read_manifests(dir)?;
    fn of_kind<K: DeserializeOwned>(objects: &[Manifest], kind: &str) -> Vec<K> {
        objects
            .iter()
            .filter(|m| m.kind() == kind)
            .filter_map(|m| serde_json::from_value(m.object.clone()).ok())
            .collect()
    }
    let scans: Vec<ImageScan> = of_kind(&objects, "ImageScan");
    let exceptions: Vec<ScanException> = of_kind(&objects, "ScanException");
    let namespaces: Vec<Namespace> = of_kind(&objects, "Namespace");
    let templates: Vec<ScanTemplate> = of_kind(&objects, "ScanTemplate");
    let policies: Vec<ScanPolicy> = of_kind(&objects, "ScanPolicy");
    state.replace_scans(&scans);
    state.replace_exceptions(&exceptions);
    state.replace_namespaces(namespaces.iter().map(|n| &n.metadata));
    state.replace_templates(templates.iter().map(|t| &t.metadata));
    state.replace_policies(policies.iter().map(|p| &p.metadata));
    Ok(objects.len())
}
