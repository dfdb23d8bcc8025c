//! Digest pinning (opt-in): rewrites each new `image: repo:tag` of a workload to
//! `repo:tag@sha256:…`, the digest its trusted result resolved, so the node pulls exactly what
//! was scanned. Pure: the webhook (`/mutate/pin`) gives the index lookup and sends the patch.

use serde_json::{Value, json};

use super::pod::{self, Container, Place, WorkloadKind};
use crate::image::ImageRef;
use crate::index::IndexedScan;

/// The namespace label that turns pinning on or off there, over the config's `pinDigests`.
/// Namespaces are labelled by admins: the built-in `edit` and `admin` roles grant no write on
/// namespaces, so a tenant cannot turn pinning off for its own namespace.
pub const LABEL: &str = "scangate.dev/pin-digests";

/// What a label value says: `true` or `false`; anything else is no choice (the config's).
pub fn from_label(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Whether a namespace pins: its label, else the config's default.
pub fn enabled(config_default: bool, label: Option<bool>) -> bool {
    label.unwrap_or(config_default)
}

/// One image pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    /// The JSON pointer of the image field.
    pub path: String,
    pub container: String,
    pub from: String,
    pub to: String,
    /// The trusted scan whose digest it is (`namespace/name`).
    pub scan: String,
}

/// The pins of a workload: each image that is new in this request (`old_images` are the
/// previous object's), names a tag and no digest, and has a trusted result with a resolved
/// digest (`lookup`). Images are kept as written, with `@digest` added.
pub fn pins<'a>(
    kind: WorkloadKind,
    object: &Value,
    old_images: &[String],
    lookup: impl Fn(&ImageRef) -> Option<&'a IndexedScan>,
) -> Result<Vec<Pinned>, pod::Error> {
    let containers = pod::containers(kind, object)?;
    let mut indexes = PlaceIndexes::default();
    let mut pinned = Vec::new();
    for container in containers {
        let path = indexes.path_of(kind, object, &container);
        if old_images.contains(&container.image) {
            continue;
        }
        let Ok(image) = ImageRef::parse(&container.image) else {
            continue;
        };
        if image.digest().is_some() {
            continue;
        }
        let Some(scan) = lookup(&image) else {
            continue;
        };
        let Some(digest) = scan.image.digest() else {
            continue;
        };
        pinned.push(Pinned {
            path,
            to: format!("{}@{digest}", container.image),
            container: container.describe(),
            from: container.image,
            scan: format!("{}/{}", scan.namespace, scan.name),
        });
    }
    Ok(pinned)
}

/// Where each image of [`pod::containers`] is: containers counted per list as they come (each
/// has an image), image volumes found by name among all volumes.
#[derive(Default)]
struct PlaceIndexes {
    init: usize,
    regular: usize,
    ephemeral: usize,
}

impl PlaceIndexes {
    fn path_of(&mut self, kind: WorkloadKind, object: &Value, container: &Container) -> String {
        let spec = kind.pod_spec_path();
        let field = container.place.field();
        let counter = match container.place {
            Place::InitContainer => &mut self.init,
            Place::Container => &mut self.regular,
            Place::EphemeralContainer => &mut self.ephemeral,
            Place::ImageVolume => {
                let index = object
                    .pointer(&format!("{spec}/volumes"))
                    .and_then(Value::as_array)
                    .and_then(|volumes| {
                        volumes.iter().position(|v| {
                            v.get("name").and_then(Value::as_str) == Some(&container.name)
                        })
                    })
                    .unwrap_or_default();
                return format!("{spec}/{field}/{index}/image/reference");
            }
        };
        let path = format!("{spec}/{field}/{counter}/image");
        *counter += 1;
        path
    }
}

/// The JSONPatch and the admission warnings of some pins; `None` when nothing is pinned.
pub fn patch(pinned: &[Pinned]) -> Option<(json_patch::Patch, Vec<String>)> {
    if pinned.is_empty() {
        return None;
    }
    let operations: Vec<Value> = pinned
        .iter()
        .map(|p| json!({"op": "replace", "path": p.path, "value": p.to}))
        .collect();
    let patch = serde_json::from_value(Value::Array(operations)).ok()?;
    let warnings = pinned
        .iter()
        .map(|p| {
            format!(
                "{}: pinned image {} to {} (the digest trusted scan {} resolved)",
                p.container, p.from, p.to, p.scan
            )
        })
        .collect();
    Some((patch, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn scan(image: &str) -> IndexedScan {
        IndexedScan {
            namespace: "scangate-system".into(),
            name: "nginx".into(),
            phase: Phase::Completed,
            rescanning: false,
            image: ImageRef::parse(image).unwrap_or_else(|e| panic!("{e}")),
            speaks_for_tag: true,
            policy: None,
            violations: vec![],
            as_of: jiff::Timestamp::UNIX_EPOCH,
            source: None,
        }
    }

    #[test]
    fn labels_override_the_config() {
        assert_eq!(from_label("true"), Some(true));
        assert_eq!(from_label("false"), Some(false));
        assert_eq!(from_label("yes"), None);
        assert!(enabled(false, Some(true)));
        assert!(!enabled(true, Some(false)));
        assert!(enabled(true, None));
        assert!(!enabled(false, None));
    }

    #[test]
    fn tags_with_a_resolved_trusted_result_are_pinned() {
        let resolved = scan(&format!("docker.io/library/nginx:1.27@{DIGEST}"));
        let unresolved = scan("docker.io/library/redis:7");
        let lookup = |image: &ImageRef| match image.repository() {
            "library/nginx" => Some(&resolved),
            "library/redis" => Some(&unresolved),
            _ => None,
        };
        let spec = json!({
            "initContainers": [{"name": "init", "image": "nginx:1.27"}],
            "containers": [
                {"name": "pinned-already", "image": format!("nginx:1.27@{DIGEST}")},
                {"name": "app", "image": "nginx:1.27"},
                {"name": "cache", "image": "redis:7"},
                {"name": "unknown", "image": "busybox:1"},
                {"name": "old", "image": "nginx:1.26"},
            ],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "data", "image": {"reference": "nginx:1.27"}},
            ],
        });
        let object = pod::template_of(WorkloadKind::Deployment, &spec);
        let pinned = pins(
            WorkloadKind::Deployment,
            &object,
            &["nginx:1.26".to_string()],
            lookup,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let paths: Vec<&str> = pinned.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/spec/template/spec/initContainers/0/image",
                "/spec/template/spec/containers/1/image",
                "/spec/template/spec/volumes/1/image/reference",
            ]
        );
        assert!(
            pinned
                .iter()
                .all(|p| p.to == format!("nginx:1.27@{DIGEST}"))
        );
        let Some((patch, warnings)) = patch(&pinned) else {
            panic!("a patch")
        };
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &patch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            patched.pointer("/spec/template/spec/containers/1/image"),
            Some(&json!(format!("nginx:1.27@{DIGEST}")))
        );
        assert_eq!(
            patched.pointer("/spec/template/spec/containers/2/image"),
            Some(&json!("redis:7"))
        );
        assert_eq!(
            warnings[1],
            format!(
                "container \"app\": pinned image nginx:1.27 to nginx:1.27@{DIGEST} (the digest \
                 trusted scan scangate-system/nginx resolved)"
            )
        );
    }

    #[test]
    fn nothing_to_pin_is_no_patch() {
        let object = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "app", "image": "busybox:1"}]}});
        let pinned =
            pins(WorkloadKind::Pod, &object, &[], |_| None).unwrap_or_else(|e| panic!("{e}"));
        assert!(pinned.is_empty());
        assert!(patch(&pinned).is_none());
        let no_spec = pins(WorkloadKind::Pod, &json!({"metadata": {}}), &[], |_| None);
        assert!(no_spec.is_err());
    }
}
