//! The images a workload's pods would pull, read from its object: the workload kinds and where
//! each keeps its pod template, and every image of a PodSpec (init, regular and ephemeral
//! containers, image volumes). The decision on them is `workload`'s.

use std::fmt;

use serde_json::Value;

use super::request::{Object, Shape, Unreadable};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{kind} {name:?} has no pod template at {path}")]
    NoPodSpec {
        kind: WorkloadKind,
        name: String,
        path: &'static str,
    },
    #[error("{kind} {name:?}: {section}[{index}] is not a container with a name and an image")]
    BadContainer {
        kind: WorkloadKind,
        name: String,
        section: &'static str,
        index: usize,
    },
    #[error(
        "{kind} {name:?}: volumes[{index}] is not a volume with a name, or its image.reference \
         is not a string"
    )]
    BadVolume {
        kind: WorkloadKind,
        name: String,
        index: usize,
    },
    #[error("{kind} {name:?}: {source}")]
    Unreadable {
        kind: WorkloadKind,
        name: String,
        #[source]
        source: Unreadable,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds whose pods scangate checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 8] = [
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::ReplicationController,
    ];

    /// The workload kind an object's `kind` names, if it is one.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The `kind` of its objects.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
        }
    }

    /// Where it keeps its PodSpec, as a JSON pointer.
    pub fn pod_spec_path(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "/spec",
            WorkloadKind::Deployment
            | WorkloadKind::ReplicaSet
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::Job
            | WorkloadKind::ReplicationController => "/spec/template/spec",
            WorkloadKind::CronJob => "/spec/jobTemplate/spec/template/spec",
        }
    }

    /// What [`containers_named`] reads of its objects.
    fn images_shape(self) -> &'static Shape {
        match self {
            WorkloadKind::Pod => &POD_IMAGES,
            WorkloadKind::Deployment
            | WorkloadKind::ReplicaSet
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::Job
            | WorkloadKind::ReplicationController => &TEMPLATE_IMAGES,
            WorkloadKind::CronJob => &JOB_TEMPLATE_IMAGES,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`containers_named`] reads of a pod spec: each container's and image volume's name and image.
const POD_SPEC_IMAGES: Shape = Shape::Fields(&[
    ("initContainers", Shape::Items(&CONTAINER)),
    ("containers", Shape::Items(&CONTAINER)),
    ("ephemeralContainers", Shape::Items(&CONTAINER)),
    ("volumes", Shape::Items(&VOLUME)),
]);
const CONTAINER: Shape = Shape::Fields(&[("name", Shape::All), ("image", Shape::All)]);
const VOLUME: Shape = Shape::Fields(&[
    ("name", Shape::All),
    ("image", Shape::Fields(&[("reference", Shape::All)])),
]);

/// What [`containers_named`] reads of a workload object, kind by kind: its pod spec's images,
/// at [`WorkloadKind::pod_spec_path`].
const POD_IMAGES: Shape = Shape::Fields(&[("spec", POD_SPEC_IMAGES)]);
const TEMPLATE_IMAGES: Shape = Shape::Fields(&[(
    "spec",
    Shape::Fields(&[("template", Shape::Fields(&[("spec", POD_SPEC_IMAGES)]))]),
)]);
const JOB_TEMPLATE_IMAGES: Shape =
    Shape::Fields(&[("spec", Shape::Fields(&[("jobTemplate", TEMPLATE_IMAGES)]))]);

/// Where in a pod spec an image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    InitContainer,
    Container,
    EphemeralContainer,
    /// A volume with an `image` source (`volumes[].image.reference`).
    ImageVolume,
}

impl Place {
    /// The container lists of a PodSpec, in pod order.
    const CONTAINERS: [Place; 3] = [
        Place::InitContainer,
        Place::Container,
        Place::EphemeralContainer,
    ];

    /// The PodSpec field that lists it.
    pub fn field(self) -> &'static str {
        match self {
            Place::InitContainer => "initContainers",
            Place::Container => "containers",
            Place::EphemeralContainer => "ephemeralContainers",
            Place::ImageVolume => "volumes",
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::InitContainer => "init container",
            Place::Container => "container",
            Place::EphemeralContainer => "ephemeral container",
            Place::ImageVolume => "image volume",
        })
    }
}

/// An image a pod would pull: a container's, or an image volume's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub place: Place,
    /// The container's or the volume's name.
    pub name: String,
    pub image: String,
}

impl Container {
    /// `container "app"`, `image volume "v"`: how messages name it.
    pub fn describe(&self) -> String {
        format!("{} {:?}", self.place, self.name)
    }
}

/// The images of a workload object, in pod order (init, regular and ephemeral containers, then
/// image volumes).
pub fn containers(kind: WorkloadKind, object: &Value) -> Result<Vec<Container>> {
    let name = object
        .pointer("/metadata/name")
        .or_else(|| object.pointer("/metadata/generateName"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    containers_named(kind, name, object)
}

/// The images of a request's workload object, as [`containers_named`] finds them, read from the
/// object's text without building the rest of it.
pub fn object_images(kind: WorkloadKind, object: &Object) -> Result<Vec<Container>> {
    let name = object.display_name();
    let images = object
        .project(kind.images_shape())
        .map_err(|source| Error::Unreadable {
            kind,
            name: name.to_owned(),
            source,
        })?;
    containers_named(kind, name, &images)
}

/// Like [`containers`], for an object whose name is known and whose `spec` is at the root of
/// `object` (a whole manifest, or the `data` of a decoded DynamicObject).
pub fn containers_named(kind: WorkloadKind, name: &str, object: &Value) -> Result<Vec<Container>> {
    let path = kind.pod_spec_path();
    let name = name.to_string();
    let spec = object
        .pointer(path)
        .filter(|s| s.is_object())
        .ok_or_else(|| Error::NoPodSpec {
            kind,
            name: name.clone(),
            path,
        })?;
    let mut found = vec![];
    for place in Place::CONTAINERS {
        let section = place.field();
        let Some(list) = spec.get(section).filter(|l| !l.is_null()) else {
            continue;
        };
        let bad = |index| Error::BadContainer {
            kind,
            name: name.clone(),
            section,
            index,
        };
        let list = list.as_array().ok_or_else(|| bad(0))?;
        for (index, c) in list.iter().enumerate() {
            let container_name = c.get("name").and_then(Value::as_str);
            let image = c.get("image").and_then(Value::as_str);
            match (container_name, image) {
                (Some(n), Some(i)) => found.push(Container {
                    place,
                    name: n.to_string(),
                    image: i.to_string(),
                }),
                _ => return Err(bad(index)),
            }
        }
    }
    let Some(volumes) = spec.get("volumes").filter(|l| !l.is_null()) else {
        return Ok(found);
    };
    let bad = |index| Error::BadVolume {
        kind,
        name: name.clone(),
        index,
    };
    for (index, volume) in volumes.as_array().ok_or_else(|| bad(0))?.iter().enumerate() {
        let Some(source) = volume.get("image").filter(|i| !i.is_null()) else {
            continue;
        };
        let volume_name = volume.get("name").and_then(Value::as_str);
        match (volume_name, source.get("reference")) {
            // A template may leave the reference to be filled in later; a Pod must name one
            // (the apiserver checks), so the image is decided when the Pod is created.
            (Some(_), None | Some(Value::Null)) => {}
            (Some(_), Some(Value::String(reference))) if reference.is_empty() => {}
            (Some(n), Some(Value::String(reference))) => found.push(Container {
                place: Place::ImageVolume,
                name: n.to_string(),
                image: reference.clone(),
            }),
            _ => return Err(bad(index)),
        }
    }
    Ok(found)
}

/// A `kind` object whose pod template is `spec`, for tests of every workload kind.
#[cfg(test)]
pub(crate) fn template_of(kind: WorkloadKind, spec: &Value) -> Value {
    let mut object = serde_json::json!({"metadata": {"name": "w"}});
    let mut slot = &mut object;
    for part in kind.pod_spec_path().split('/').skip(1) {
        slot = &mut slot[part];
    }
    *slot = spec.clone();
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_round_trip_and_others_are_not_workloads() {
        for kind in WorkloadKind::ALL {
            assert_eq!(WorkloadKind::from_kind(kind.as_str()), Some(kind));
        }
        assert_eq!(WorkloadKind::from_kind("Service"), None);
        assert_eq!(WorkloadKind::from_kind("pod"), None);
    }

    #[test]
    fn images_of_every_workload_kind() {
        let spec = json!({"initContainers": [{"name": "i", "image": "init:1"}],
                          "containers": [{"name": "c", "image": "app:1"}],
                          "ephemeralContainers": [{"name": "e", "image": "debug:1"}],
                          "volumes": [{"name": "data", "emptyDir": {}},
                                      {"name": "v", "image": {"reference": "models:1", "pullPolicy": "IfNotPresent"}},
                                      {"name": "later", "image": {"pullPolicy": "Always"}},
                                      {"name": "unset", "image": {"reference": ""}}]});
        for kind in WorkloadKind::ALL {
            let object = template_of(kind, &spec);
            let found: Vec<(String, String)> = containers(kind, &object)
                .unwrap_or_else(|e| panic!("{kind}: {e}"))
                .iter()
                .map(|c| (c.describe(), c.image.clone()))
                .collect();
            let expected = [
                ("init container \"i\"", "init:1"),
                ("container \"c\"", "app:1"),
                ("ephemeral container \"e\"", "debug:1"),
                ("image volume \"v\"", "models:1"),
            ]
            .map(|(w, i)| (w.to_string(), i.to_string()));
            assert_eq!(found, expected, "{kind}");
        }
    }

    #[test]
    fn images_read_from_a_requests_text_are_those_of_the_whole_object() {
        let specs = [
            json!({"initContainers": [{"name": "i", "image": "init:1", "args": ["x"]}],
                   "containers": [{"name": "c", "image": "app:1", "ports": [{"containerPort": 1}]}],
                   "ephemeralContainers": null,
                   "volumes": [{"name": "data", "emptyDir": {}},
                               {"name": "v", "image": {"reference": "models:1"}},
                               {"name": "s", "image": "not an object"}]}),
            json!({"containers": "not a list"}),
            json!({"containers": [{"name": "x"}]}),
            json!({"containers": [{"name": "x", "image": 7}]}),
            json!({"containers": [5]}),
            json!({"containers": [{"name": "c", "image": "a:1"}], "volumes": {"name": "v"}}),
            json!({"containers": [{"name": "c", "image": "a:1"}],
                   "volumes": [{"name": "v", "image": {"reference": 7}}]}),
            json!("not a spec"),
            json!(null),
        ];
        for kind in WorkloadKind::ALL {
            for spec in &specs {
                let whole = template_of(kind, spec);
                let object: Object = serde_json::from_str(&whole.to_string())
                    .unwrap_or_else(|e| panic!("{kind} {spec}: {e}"));
                assert_eq!(
                    object_images(kind, &object),
                    containers(kind, &whole),
                    "{kind}: {spec}"
                );
            }
        }
    }

    /// An object of `kind` whose pods have `spec`.
    #[test]
    fn malformed_workloads_are_errors() {
        let no_template = containers(
            WorkloadKind::Deployment,
            &json!({"metadata": {"name": "d"}, "spec": {}}),
        );
        assert_eq!(
            no_template.err().map(|e| e.to_string()),
            Some("Deployment \"d\" has no pod template at /spec/template/spec".into())
        );
        let no_image = containers(
            WorkloadKind::Pod,
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "x"}]}}),
        );
        assert_eq!(
            no_image.err().map(|e| e.to_string()),
            Some("Pod \"p\": containers[0] is not a container with a name and an image".into())
        );
        let pod = |volumes: Value| json!({"metadata": {"name": "p"}, "spec": {"containers": [], "volumes": volumes}});
        for bad in [
            json!({"name": "v"}),
            json!([{"image": {"reference": "a:1"}}]),
            json!([{"name": "v", "image": {"reference": 7}}]),
        ] {
            let error = containers(WorkloadKind::Pod, &pod(bad.clone()));
            assert!(
                matches!(error, Err(Error::BadVolume { .. })),
                "{bad}: {error:?}"
            );
        }
        assert_eq!(
            containers(
                WorkloadKind::Pod,
                &pod(json!([{"name": "v", "image": {"reference": 7}}]))
            )
            .err()
            .map(|e| e.to_string()),
            Some(
                "Pod \"p\": volumes[0] is not a volume with a name, or its image.reference is \
                 not a string"
                    .into()
            )
        );
    }
}
