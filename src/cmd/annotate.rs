//! The request annotations of `scangate rescan` (`scangate.dev/rescan`) and `scangate
//! reevaluate` (`scangate.dev/reevaluate`): the selected scans (one, a namespace's, every
//! namespace's) are annotated with the current time, with the caller's credentials, so RBAC
//! decides: a tenant may annotate the scans of its namespaces (`scangate-edit`, aggregated into
//! `edit`, allows patching scans), only an admin those of scangate's namespace. The controller
//! handles each new value once.

use jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::api::{ImageScan, SourceScan};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] super::ClusterError),
    #[error(
        "{target:?} names no scan: give NAME or imagescan/NAME for an ImageScan, sourcescan/NAME \
         for a SourceScan"
    )]
    Target { target: String },
    #[error("give a scan NAME or --all-namespaces, not both (a NAME is in one namespace, -n)")]
    NameAndAll,
    #[error("{kind} {name:?} not found in namespace {namespace}; check the name and -n")]
    NotFound {
        kind: Kind,
        name: String,
        namespace: String,
    },
    #[error(
        "you may not {verb} {kind}s in {scope} ({reason}); a tenant annotates the scans of its \
         namespaces (role scangate-edit, part of edit), an admin those of scangate's namespace"
    )]
    Refused {
        verb: &'static str,
        kind: Kind,
        scope: String,
        reason: String,
    },
    #[error("cannot list the {kind}s in {scope}: {source}")]
    List {
        kind: Kind,
        scope: String,
        #[source]
        source: kube::Error,
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

/// The kind of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// One scan.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScanRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// Which scans a command acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    One(ScanRef),
    /// Every ImageScan and SourceScan of a namespace.
    Namespace(String),
    /// Every ImageScan and SourceScan of every namespace.
    All,
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selection::One(s) => write!(f, "{} {}/{}", s.kind, s.namespace, s.name),
            Selection::Namespace(ns) => write!(f, "namespace {ns}"),
            Selection::All => f.write_str("all namespaces"),
        }
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

/// The selection of `[NAME] [-n NS] [-A]`: the scan NAME in the namespace; without a NAME,
/// every scan of the namespace, or of all namespaces with `-A`. `namespace` is `-n`, or else
/// the kubeconfig context's.
pub fn selection(target: Option<&str>, namespace: &str, all: bool) -> Result<Selection> {
    match (target, all) {
        (Some(_), true) => Err(Error::NameAndAll),
        (Some(target), false) => {
            let (kind, name) = parse_target(target)?;
            Ok(Selection::One(ScanRef {
                kind,
                namespace: namespace.to_string(),
                name,
            }))
        }
        (None, false) => Ok(Selection::Namespace(namespace.to_string())),
        (None, true) => Ok(Selection::All),
    }
}

/// The merge patch that sets `annotation` to `now`.
pub fn request_patch(annotation: &str, now: Timestamp) -> Value {
    json!({"metadata": {"annotations": {annotation: now.to_string()}}})
}

/// The scans selected, sorted (listed from the apiserver unless one is named).
pub async fn select(client: &Client, selection: &Selection) -> Result<Vec<ScanRef>> {
    let namespace = match selection {
        Selection::One(scan) => return Ok(vec![scan.clone()]),
        Selection::Namespace(ns) => Some(ns.as_str()),
        Selection::All => None,
    };
    let scope = selection.to_string();
    let mut scans = list::<ImageScan>(client, namespace, Kind::ImageScan, &scope).await?;
    scans.extend(list::<SourceScan>(client, namespace, Kind::SourceScan, &scope).await?);
    scans.sort();
    Ok(scans)
}

async fn list<K>(
    client: &Client,
    namespace: Option<&str>,
    kind: Kind,
    scope: &str,
) -> Result<Vec<ScanRef>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .into_iter()
            .map(|m| ScanRef {
                kind,
                namespace: m.namespace().unwrap_or_default(),
                name: m.name_any(),
            })
            .collect()),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(Error::Refused {
            verb: "list",
            kind,
            scope: scope.to_string(),
            reason: status.message,
        }),
        Err(source) => Err(Error::List {
            kind,
            scope: scope.to_string(),
            source,
        }),
    }
}

/// Sets `annotation` to `now` on each scan, in order; stops at the first refusal.
pub async fn annotate(
    client: &Client,
    scans: &[ScanRef],
    annotation: &str,
    now: Timestamp,
) -> Result<()> {
    patch_scans(client, scans, &request_patch(annotation, now)).await
}

/// Applies the merge `patch` to each scan, in order, with the caller's credentials; stops at
/// the first refusal.
pub async fn patch_scans(client: &Client, scans: &[ScanRef], patch: &Value) -> Result<()> {
    let params = PatchParams::default();
    for scan in scans {
        let ScanRef {
            kind,
            namespace,
            name,
        } = scan;
        let patched = match kind {
            Kind::ImageScan => Api::<ImageScan>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Merge(patch))
                .await
                .map(|_| ()),
            Kind::SourceScan => Api::<SourceScan>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Merge(patch))
                .await
                .map(|_| ()),
        };
        match patched {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(Error::NotFound {
                    kind: *kind,
                    name: name.clone(),
                    namespace: namespace.clone(),
                });
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                return Err(Error::Refused {
                    verb: "patch",
                    kind: *kind,
                    scope: format!("namespace {namespace}"),
                    reason: status.message,
                });
            }
            Err(source) => {
                return Err(Error::Patch {
                    kind: *kind,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                });
            }
        }
    }
    Ok(())
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
    fn a_name_selects_one_scan_none_the_namespace_and_all_every_namespace() {
        let ok = |t: Option<&str>, all: bool| {
            selection(t, "shop", all).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            ok(Some("sourcescan/repo"), false),
            Selection::One(ScanRef {
                kind: Kind::SourceScan,
                namespace: "shop".into(),
                name: "repo".into()
            })
        );
        assert_eq!(ok(None, false), Selection::Namespace("shop".into()));
        assert_eq!(ok(None, true), Selection::All);
        assert!(matches!(
            selection(Some("web"), "shop", true),
            Err(Error::NameAndAll)
        ));
    }

    #[test]
    fn the_patch_sets_the_annotation_to_now() {
        let now: Timestamp = "2026-01-02T03:04:05Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            request_patch("scangate.dev/rescan", now),
            json!({"metadata": {"annotations": {"scangate.dev/rescan": "2026-01-02T03:04:05Z"}}})
        );
    }
}
