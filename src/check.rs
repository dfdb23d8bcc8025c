//! `scangate check`: the webhook's workload decision, offline. Manifests and scan objects come
//! from files; the decision is the same pure function the webhook calls.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::admission::config::{Action, AdmissionConfig, Enforcement};
use crate::admission::workload::{self, Context, Decision, WORKLOAD_KINDS};
use crate::api::{ImageScan, ScanException};
use crate::index::{Exception, ScanIndex};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: document {document} is not valid YAML or JSON: {cause}")]
    Parse {
        path: PathBuf,
        document: usize,
        cause: serde_yaml::Error,
    },
    #[error("{path}: {kind} {name:?} is not a valid {kind}: {cause}")]
    Object {
        path: PathBuf,
        kind: String,
        name: String,
        cause: serde_json::Error,
    },
    #[error("{path}: {cause}")]
    Workload {
        path: PathBuf,
        cause: workload::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::admission::config::Error),
    #[error("{0} holds no workload ({kinds}); nothing to check", kinds = WORKLOAD_KINDS.join(", "))]
    NoWorkloads(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kubernetes object read from a file, with where it came from.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub path: PathBuf,
    pub object: Value,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
    }
}

/// Reads every object of a YAML or JSON file, or of the files of a directory (like
/// `kubectl -f`): multi-document streams and `List`s are expanded.
pub fn read_manifests(path: &Path) -> Result<Vec<Manifest>> {
    if path.is_dir() {
        return read_dir(path);
    }
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|cause| Error::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_manifests(path, &text)
}

/// Parses the objects of a YAML or JSON text.
pub fn parse_manifests(path: &Path, text: &str) -> Result<Vec<Manifest>> {
    let mut objects = vec![];
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|cause| Error::Parse {
            path: path.to_path_buf(),
            document: i + 1,
            cause,
        })?;
        expand(value, &mut objects);
    }
    Ok(objects
        .into_iter()
        .map(|object| Manifest {
            path: path.to_path_buf(),
            object,
        })
        .collect())
}

fn expand(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Object(mut map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = map.remove("items") {
                for item in items {
                    expand(item, out);
                }
            }
        }
        other => out.push(other),
    }
}

/// Reads every `.yaml`, `.yml` and `.json` file of a directory (not recursing).
pub fn read_dir(dir: &Path) -> Result<Vec<Manifest>> {
    let read_error = |cause| Error::Read {
        path: dir.to_path_buf(),
        cause,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    paths.sort();
    let mut manifests = vec![];
    for path in paths {
        manifests.extend(read_manifests(&path)?);
    }
    Ok(manifests)
}

fn typed<T: serde::de::DeserializeOwned>(m: &Manifest) -> Result<T> {
    serde_json::from_value(m.object.clone()).map_err(|cause| Error::Object {
        path: m.path.clone(),
        kind: m.kind().to_string(),
        name: m.name().to_string(),
        cause,
    })
}

/// The cluster state `check` decides against.
pub struct World {
    pub config: AdmissionConfig,
    pub index: ScanIndex,
    pub exceptions: Vec<Exception>,
    /// The time exceptions are checked against.
    pub now: Timestamp,
    /// Enforcement labels of Namespace objects found among the inputs.
    pub namespace_modes: HashMap<String, Enforcement>,
}

impl World {
    /// Builds it from objects: ImageScans, ScanExceptions and Namespaces; others are ignored.
    pub fn from_objects(
        config: AdmissionConfig,
        objects: &[Manifest],
        now: Timestamp,
    ) -> Result<Self> {
        let mut scans: Vec<ImageScan> = vec![];
        let mut exceptions = vec![];
        let mut namespace_modes = HashMap::new();
        for m in objects {
            match m.kind() {
                "ImageScan" => scans.push(typed(m)?),
                "ScanException" => {
                    let e: ScanException = typed(m)?;
                    exceptions.push(Exception::from_exception(&e));
                }
                "Namespace" => {
                    let label = m
                        .object
                        .pointer("/metadata/labels")
                        .and_then(|l| l.get(Enforcement::LABEL))
                        .and_then(Value::as_str)
                        .and_then(Enforcement::from_label);
                    if let Some(mode) = label {
                        namespace_modes.insert(m.name().to_string(), mode);
                    }
                }
                _ => {}
            }
        }
        let index = ScanIndex::with_aliases(config.registry_aliases.clone(), &scans);
        Ok(World {
            config,
            index,
            exceptions,
            now,
            namespace_modes,
        })
    }

    pub fn enforcement(&self, namespace: &str) -> Enforcement {
        self.namespace_modes
            .get(namespace)
            .copied()
            .unwrap_or(self.config.default_enforcement)
    }

    /// The decision for one workload manifest.
    pub fn decide(&self, m: &Manifest) -> Result<Decision> {
        let containers =
            workload::containers(m.kind(), &m.object).map_err(|cause| Error::Workload {
                path: m.path.clone(),
                cause,
            })?;
        let namespace = m.namespace();
        let ctx = Context {
            config: &self.config,
            index: &self.index,
            exceptions: &self.exceptions,
            namespace,
            enforcement: self.enforcement(namespace),
            now: self.now,
        };
        Ok(workload::decide(&ctx, &containers))
    }
}

/// The outcome of checking a set of manifests.
pub struct Outcome {
    pub report: String,
    pub denied: bool,
}

/// Checks every workload among `manifests`; other kinds are skipped.
pub fn check(world: &World, manifests: &[Manifest]) -> Result<Outcome> {
    let workloads: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| WORKLOAD_KINDS.contains(&m.kind()))
        .collect();
    if workloads.is_empty() {
        let sources: Vec<String> = manifests
            .iter()
            .map(|m| m.path.display().to_string())
            .collect();
        return Err(Error::NoWorkloads(if sources.is_empty() {
            "the input".into()
        } else {
            sources.join(", ")
        }));
    }
    let mut report = String::new();
    let mut denied = false;
    for m in workloads {
        let decision = world.decide(m)?;
        denied |= !decision.allowed;
        let verdict = if decision.allowed {
            "ADMITTED"
        } else {
            "DENIED"
        };
        let _ = writeln!(
            report,
            "{verdict} {} {}/{} (namespace mode {})",
            m.kind(),
            m.namespace(),
            m.name(),
            decision.enforcement.as_str()
        );
        for v in &decision.verdicts {
            let action = match v.action {
                Action::Allow => "allow",
                Action::Warn => "warn ",
                Action::Deny => "deny ",
            };
            let _ = writeln!(report, "  {action} {}", v.reason);
        }
        for w in &decision.warnings {
            let _ = writeln!(report, "  Warning: {w}");
        }
        if let Some(message) = &decision.message {
            let _ = writeln!(report, "  Error: {message}");
        }
    }
    Ok(Outcome { report, denied })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Manifest> {
        parse_manifests(Path::new("t.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn multi_document_yaml_and_lists_are_expanded() {
        let objects = parse(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {kind: Pod, metadata: {name: b}}\n- {kind: DeploymentList, items: [{kind: Deployment, metadata: {name: c}}]}\n",
        );
        let names: Vec<&str> = objects.iter().map(Manifest::name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let json = parse(r#"{"kind": "Pod", "metadata": {"name": "j", "namespace": "x"}}"#);
        assert_eq!(json[0].namespace(), "x");
    }

    #[test]
    fn broken_yaml_names_the_file_and_document() {
        let err = parse_manifests(Path::new("bad.yaml"), "kind: Pod\n---\nkind: [unclosed\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("bad.yaml: document 2 is not valid YAML or JSON"),
            "{err}"
        );
    }

    #[test]
    fn no_workloads_is_an_error() {
        let world = World::from_objects(AdmissionConfig::default(), &[], Timestamp::UNIX_EPOCH)
            .unwrap_or_else(|e| panic!("{e}"));
        let manifests = parse("kind: Service\nmetadata: {name: s}\n");
        let err = check(&world, &manifests)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("holds no workload"), "{err}");
    }

    #[test]
    fn namespace_labels_set_the_mode() {
        let objects = parse(
            "kind: Namespace\nmetadata: {name: soft, labels: {scangate.dev/enforcement: warn}}\n---\nkind: Namespace\nmetadata: {name: plain}\n",
        );
        let world =
            World::from_objects(AdmissionConfig::default(), &objects, Timestamp::UNIX_EPOCH)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(world.enforcement("soft"), Enforcement::Warn);
        assert_eq!(world.enforcement("plain"), Enforcement::Enforce);
    }

    #[test]
    fn a_malformed_scan_object_is_an_error() {
        let objects = parse("kind: ImageScan\nmetadata: {name: s}\nspec: {registry: 5}\n");
        let err = World::from_objects(AdmissionConfig::default(), &objects, Timestamp::UNIX_EPOCH)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("ImageScan \"s\" is not a valid ImageScan"),
            "{err}"
        );
    }
}
