//! `scangate rescan NAME` (also `kubectl scangate rescan`): sets the `scangate.dev/rescan`
//! annotation of an ImageScan (or `sourcescan/NAME`) to the current time, with the caller's
//! credentials; the controller starts a new scan for each new value, once (through the queue
//! of scan Jobs). A tenant may do it in its namespaces (`scangate-edit` allows patching scans);
//! scans in scangate's namespace, only admins.

use clap::Args;
use jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::api::{ImageScan, SourceScan};
use crate::controller::reconcile::RESCAN_ANNOTATION;

#[derive(Debug, Args)]
pub struct RescanArgs {
    /// The scan: NAME or imagescan/NAME (an ImageScan), or sourcescan/NAME.
    #[arg(env = "SCANGATE_RESCAN_SCAN", value_name = "NAME|KIND/NAME")]
    pub scan: String,
    /// The namespace, like kubectl's -n (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "SCANGATE_NAMESPACE")]
    pub namespace: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] super::ClusterError),
    #[error(
        "{target:?} names no scan: give NAME or imagescan/NAME for an ImageScan, sourcescan/NAME \
         for a SourceScan"
    )]
    Target { target: String },
    #[error("{kind} {name:?} not found in namespace {namespace}; check the name and -n")]
    NotFound {
        kind: Kind,
        name: String,
        namespace: String,
    },
    #[error(
        "you may not patch {kind}s in namespace {namespace} ({reason}); a tenant rescans the \
         scans of its namespaces (role scangate-edit), an admin those of scangate's namespace"
    )]
    Refused {
        kind: Kind,
        namespace: String,
        reason: String,
    },
    #[error("cannot annotate {kind} {namespace}/{name}: {source}")]
    Patch {
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of scan to rescan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ImageScan,
    SourceScan,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::ImageScan => "ImageScan",
            Kind::SourceScan => "SourceScan",
        })
    }
}

/// The scan `NAME`, `imagescan/NAME` (also `imagescans`, `imgscan`, with a group suffix) or
/// `sourcescan/NAME` (`sourcescans`, `srcscan`) names.
pub fn parse_target(target: &str) -> Result<(Kind, String)> {
    let bad = || Error::Target {
        target: target.to_string(),
    };
    let (kind, name) = target.split_once('/').unwrap_or(("imagescan", target));
    if name.is_empty() || name.contains('/') {
        return Err(bad());
    }
    let kind = kind
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let kind = match kind.as_str() {
        "imagescan" | "imagescans" | "imgscan" => Kind::ImageScan,
        "sourcescan" | "sourcescans" | "srcscan" => Kind::SourceScan,
        _ => return Err(bad()),
    };
    Ok((kind, name.to_string()))
}

/// The merge patch that asks for a rescan: the annotation set to `now`.
pub fn rescan_patch(now: Timestamp) -> Value {
    json!({"metadata": {"annotations": {RESCAN_ANNOTATION: now.to_string()}}})
}

/// Annotates the scan; returns what to print.
pub async fn run(args: &RescanArgs) -> Result<String> {
    let (kind, name) = parse_target(&args.scan)?;
    let (client, default_namespace) = super::cluster_client().await?;
    let namespace = args.namespace.clone().unwrap_or(default_namespace);
    let now = Timestamp::now();
    let patch = rescan_patch(now);
    let params = PatchParams::default();
    let patched = match kind {
        Kind::ImageScan => Api::<ImageScan>::namespaced(client, &namespace)
            .patch(&name, &params, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
        Kind::SourceScan => Api::<SourceScan>::namespaced(client, &namespace)
            .patch(&name, &params, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
    };
    match patched {
        Ok(()) => Ok(format!(
            "{kind} {namespace}/{name}: rescan requested ({RESCAN_ANNOTATION}={now}); \
             the controller starts it when a scan slot is free\n"
        )),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::NotFound {
            kind,
            name,
            namespace,
        }),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(Error::Refused {
            kind,
            namespace,
            reason: status.message,
        }),
        Err(source) => Err(Error::Patch {
            kind,
            namespace,
            name,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_an_image_scan_by_default_or_a_source_scan() {
        let ok = |t: &str| parse_target(t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok("web"), (Kind::ImageScan, "web".into()));
        assert_eq!(ok("imagescan/web"), (Kind::ImageScan, "web".into()));
        assert_eq!(
            ok("imagescans.scanning.scangate.dev/web"),
            (Kind::ImageScan, "web".into())
        );
        assert_eq!(ok("srcscan/repo"), (Kind::SourceScan, "repo".into()));
        assert_eq!(ok("SourceScan/repo"), (Kind::SourceScan, "repo".into()));
        for bad in ["", "pod/web", "imagescan/", "imagescan/a/b"] {
            let error = parse_target(bad).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.contains("names no scan")),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn the_patch_sets_the_annotation_to_now() {
        let now: Timestamp = "2026-01-02T03:04:05Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rescan_patch(now),
            json!({"metadata": {"annotations": {"scangate.dev/rescan": "2026-01-02T03:04:05Z"}}})
        );
    }
}
