//! `scangate rescan NAME` (also `kubectl scangate rescan`): sets the `scangate.dev/rescan`
//! annotation of an ImageScan (or `sourcescan/NAME`) to the current time, with the caller's
//! credentials ([`super::annotate`]); the controller starts a new scan for each new value,
//! once (through the queue of scan Jobs). A tenant may do it in its namespaces
//! (`scangate-edit` allows patching scans); scans in scangate's namespace, only admins.

use clap::Args;
use jiff::Timestamp;

use super::annotate::{self, Selection};
use crate::api::annotation;

#[derive(Debug, Args)]
pub struct RescanArgs {
    /// The scan: NAME or imagescan/NAME (an ImageScan), or sourcescan/NAME.
    #[arg(env = "SCANGATE_RESCAN_SCAN", value_name = "NAME|KIND/NAME")]
    pub scan: String,
    /// The namespace, like kubectl's -n (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "SCANGATE_NAMESPACE")]
    pub namespace: Option<String>,
}

pub use annotate::{Error, Result};

/// Annotates the scan; returns what to print.
pub async fn run(args: &RescanArgs) -> Result<String> {
    let (client, default_namespace) = super::cluster_client().await?;
    let namespace = args.namespace.clone().unwrap_or(default_namespace);
    let Selection::One(scan) = annotate::selection(Some(&args.scan), &namespace, false)? else {
        return Err(Error::Target {
            target: args.scan.clone(),
        });
    };
    let now = Timestamp::now();
    annotate::annotate(
        &client,
        std::slice::from_ref(&scan),
        annotation::RESCAN,
        now,
    )
    .await?;
    Ok(format!(
        "{} {}/{}: rescan requested ({}={now}); the controller starts it \
         when a scan slot is free\n",
        scan.kind,
        scan.namespace,
        scan.name,
        annotation::RESCAN
    ))
}
