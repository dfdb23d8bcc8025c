//! Digest pinning: rewrites each new `image: repo:tag` of a workload that admission lets
//! through without a warning to `repo:tag@sha256:…`, the digest that was judged, so the node
//! pulls exactly those bytes whatever the tag names later. On by default in namespaces in
//! `enforce` mode (config `pinDigests`, namespace label [`LABEL`]). Pure: the webhook
//! (`/mutate/pin`) gives the decision ([`super::workload::pin_target`]) and sends the patch.

use serde_json::{Value, json};

use super::pod::{self, Container, Place, WorkloadKind};

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

/// Where a tag is pinned to: the judged digest, and the trusted scan that judged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub digest: String,
    /// `namespace/name`.
    pub scan: String,
}

/// The pins of a workload: each image that is new in this request (`old_images` are the
/// previous object's) and names a tag and no digest, where `target` gives the digest to pin
/// (the content was judged and is admitted without a warning). Images are kept as written,
/// with `@digest` added.
pub fn pins(
    kind: WorkloadKind,
    object: &Value,
    old_images: &[String],
    target: impl Fn(&Container) -> Option<Target>,
) -> Result<Vec<Pinned>, pod::Error> {
    let containers = pod::containers(kind, object)?;
    let mut indexes = PlaceIndexes::default();
    let mut pinned = Vec::new();
    for container in containers {
        let path = indexes.path_of(kind, object, &container);
        if old_images.contains(&container.image) {
            continue;
        }
        let Some(target) = target(&container) else {
            continue;
        };
        pinned.push(Pinned {
            path,
            to: format!("{}@{}", container.image, target.digest),
            container: container.describe(),
            from: container.image,
            scan: target.scan,
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

/// The JSONPatch of some pins; `None` when nothing is pinned. A pin is no problem, so it is no
/// warning: the stored object shows it, and the webhook logs it with the scan.
pub fn patch(pinned: &[Pinned]) -> Option<json_patch::Patch> {
    if pinned.is_empty() {
        return None;
    }
    let operations: Vec<Value> = pinned
        .iter()
        .map(|p| json!({"op": "replace", "path": p.path, "value": p.to}))
        .collect();
    serde_json::from_value(Value::Array(operations)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn labels_say_true_or_false() {
        assert_eq!(from_label("true"), Some(true));
        assert_eq!(from_label("false"), Some(false));
        assert_eq!(from_label("yes"), None);
    }

    #[test]
    fn new_images_with_a_target_are_pinned_where_they_are() {
        // The decision (judged, admitted without a warning) is `workload::pin_target`'s.
        let target = |c: &Container| {
            (c.image == "nginx:1.27").then(|| Target {
                digest: DIGEST.into(),
                scan: "scangate-system/nginx".into(),
            })
        };
        let spec = json!({
            "initContainers": [{"name": "init", "image": "nginx:1.27"}],
            "containers": [
                {"name": "other", "image": "redis:7"},
                {"name": "app", "image": "nginx:1.27"},
            ],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "data", "image": {"reference": "nginx:1.27"}},
            ],
        });
        let object = pod::template_of(WorkloadKind::Deployment, &spec);
        let pinned =
            pins(WorkloadKind::Deployment, &object, &[], target).unwrap_or_else(|e| panic!("{e}"));
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
            pinned.iter().all(
                |p| p.to == format!("nginx:1.27@{DIGEST}") && p.scan == "scangate-system/nginx"
            )
        );
        let Some(patch) = patch(&pinned) else {
            panic!("a patch")
        };
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &patch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            patched.pointer("/spec/template/spec/containers/1/image"),
            Some(&json!(format!("nginx:1.27@{DIGEST}")))
        );
        assert_eq!(
            patched.pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("redis:7"))
        );
        // An image the previous object had is left as it is.
        let kept = pins(
            WorkloadKind::Deployment,
            &object,
            &["nginx:1.27".into()],
            target,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(kept.is_empty());
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
