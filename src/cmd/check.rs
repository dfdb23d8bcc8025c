//! `scangate check`: the webhook's workload decision, offline. Manifests and scan objects come
//! from files; the decision is the same pure function the webhook calls, and a pod a built-in
//! controller creates passes as it does at the webhook when `--user` names that controller.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use jiff::Timestamp;
use kube::core::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use crate::admission::config::{Action, AdmissionConfig, Enforcement};
use crate::admission::pod::{self, WorkloadKind};
use crate::admission::review::controller_pass;
use crate::admission::workload::{self, Context, Decision, Ignored};
use crate::api::{ImageScan, ScanException};
use crate::index::{Exception, Inactive, ScanIndex};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Workload manifests (YAML or JSON, multi-document, Lists): files, or directories of
    /// `.yaml`, `.yml` and `.json` files; `-` for standard input.
    #[arg(
        short = 'f',
        long = "filename",
        env = "SCANGATE_CHECK_MANIFESTS",
        required = true
    )]
    pub manifests: Vec<PathBuf>,
    /// Read the directories of --filename recursively, like kubectl; without it, only each
    /// directory's own files.
    #[arg(short = 'R', long, env = "SCANGATE_CHECK_RECURSIVE")]
    pub recursive: bool,
    /// Scan objects (ImageScans, ScanExceptions, Namespaces) as YAML or JSON: a file, or a
    /// directory's own files. Without it, no image is scanned.
    #[arg(long, env = "SCANGATE_CHECK_SCANS")]
    pub scans: Option<PathBuf>,
    /// Admission rules (YAML), as the webhook reads them.
    #[arg(long, env = "SCANGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The user the workloads are created by. It matters for pods a built-in controller
    /// creates from a template (e.g. system:serviceaccount:kube-system:replicaset-controller
    /// for a ReplicaSet's pods): those pass with a warning, as at the webhook, unless the
    /// config sets recheckControllerPods. Without it, a user who is no controller.
    #[arg(long, env = "SCANGATE_CHECK_USER", value_name = "NAME")]
    pub user: Option<String>,
}

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
    Workload { path: PathBuf, cause: pod::Error },
    #[error(transparent)]
    Config(#[from] crate::admission::config::Error),
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

    /// Its kind, when it is a workload.
    pub fn workload_kind(&self) -> Option<WorkloadKind> {
        WorkloadKind::from_kind(self.kind())
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

/// Reads every object of a YAML or JSON file (`-`: standard input), or of the files of a
/// directory (its own files, not its subdirectories'): multi-document streams and `List`s are
/// expanded. The first file that cannot be read or parsed is the error.
pub fn read_manifests(path: &Path) -> Result<Vec<Manifest>> {
    let mut manifests = vec![];
    for source in sources(path, false) {
        manifests.extend(source.objects?);
    }
    Ok(manifests)
}

/// Reads the objects of one file; `-` is standard input.
fn read_file(path: &Path) -> Result<Vec<Manifest>> {
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

/// One input of `check`: a file and its objects, or why they could not be read. A directory
/// with no manifest files is a source with no objects.
#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub objects: Result<Vec<Manifest>>,
}

/// The sources a `-f` argument names, like kubectl: a file (or `-`) is one; a directory gives
/// its `.yaml`, `.yml` and `.json` files in name order and, with `recursive`, those of its
/// subdirectories (symbolic links to directories are not followed).
pub fn sources(path: &Path, recursive: bool) -> Vec<Source> {
    if path == Path::new("-") || !path.is_dir() {
        return vec![Source {
            path: path.to_path_buf(),
            objects: read_file(path),
        }];
    }
    let mut found = vec![];
    walk(path, recursive, &mut found);
    if found.is_empty() {
        found.push(Source {
            path: path.to_path_buf(),
            objects: Ok(vec![]),
        });
    }
    found
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<Source>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(cause) => {
            out.push(Source {
                path: dir.to_path_buf(),
                objects: Err(Error::Read {
                    path: dir.to_path_buf(),
                    cause,
                }),
            });
            return;
        }
    };
    let mut entries: Vec<(PathBuf, bool)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let is_dir = entry.file_type().ok()?.is_dir();
            Some((entry.path(), is_dir))
        })
        .collect();
    entries.sort();
    for (path, is_dir) in entries {
        if is_dir {
            if recursive {
                walk(&path, recursive, out);
            }
        } else if is_manifest_file(&path) {
            let objects = read_file(&path);
            out.push(Source { path, objects });
        }
    }
}

fn is_manifest_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
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

    /// The answer the webhook would give to the creation of one workload by `user` (`None`:
    /// a user who is no built-in controller).
    pub fn decide(&self, m: &Manifest, kind: WorkloadKind, user: Option<&str>) -> Result<Checked> {
        let containers = pod::containers(kind, &m.object).map_err(|cause| Error::Workload {
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
            // As the webhook would: it pins where the namespace's mode and the config say.
            pins_tags: self.config.pins_tags(self.enforcement(namespace), None),
        };
        let decision = workload::decide(&ctx, &containers);
        let ignored = containers
            .iter()
            .flat_map(|container| {
                workload::ignored_exceptions(&ctx, container)
                    .into_iter()
                    .map(|(e, why)| IgnoredException {
                        container: container.describe(),
                        exception: format!("{}/{}", e.namespace, e.name),
                        why: self.explain(namespace, &e.namespace, &why),
                    })
            })
            .collect();
        let pass = match user {
            Some(user) if !decision.allowed => {
                let metadata: ObjectMeta = match m.object.get("metadata") {
                    Some(metadata) => {
                        serde_json::from_value(metadata.clone()).map_err(|cause| Error::Object {
                            path: m.path.clone(),
                            kind: m.kind().to_string(),
                            name: m.name().to_string(),
                            cause,
                        })?
                    }
                    None => ObjectMeta::default(),
                };
                controller_pass(&self.config, &decision, kind, &metadata, Some(user))
            }
            _ => None,
        };
        Ok(match pass {
            Some(warnings) => Checked {
                allowed: true,
                warnings,
                decision,
                ignored,
            },
            None => Checked {
                allowed: decision.allowed,
                warnings: decision.warnings.clone(),
                decision,
                ignored,
            },
        })
    }

    /// Why an exception in namespace `exception` does not count for a workload in `workload`.
    fn explain(&self, workload: &str, exception: &str, why: &Ignored) -> String {
        match why {
            Ignored::Inactive(inactive) => inactive.to_string(),
            Ignored::OtherNamespace if exception.is_empty() => format!(
                "it names no namespace (metadata.namespace), so it counts nowhere; put it in \
                 {workload}, or in {} to count everywhere",
                self.config.scangate_namespace
            ),
            Ignored::OtherNamespace => format!(
                "it is in namespace {exception}, and an exception counts only in its own \
                 namespace (those in {} count everywhere)",
                self.config.scangate_namespace
            ),
        }
    }

    /// The exceptions that apply nowhere now, each with why, in the order they were read.
    pub fn inactive_exceptions(&self) -> Vec<(String, Inactive)> {
        // An invalid bound cannot be loaded (the config is checked), as in the decision.
        let max_duration = self.config.exception_max_duration().unwrap_or_default();
        self.exceptions
            .iter()
            .filter_map(|e| {
                let why = e.inactive(self.now, max_duration)?;
                Some((format!("{}/{}", e.namespace, e.name), why))
            })
            .collect()
    }
}

/// An exception that names an image of a workload but does not count for it.
pub struct IgnoredException {
    /// The container, as verdicts name it (`container "app"`).
    pub container: String,
    /// `namespace/name`.
    pub exception: String,
    pub why: String,
}

/// The webhook's answer for one workload.
pub struct Checked {
    pub allowed: bool,
    /// The admission warnings: the decision's, or those of a pod its controller created.
    pub warnings: Vec<String>,
    pub decision: Decision,
    /// The exceptions that name its images but do not count for it.
    pub ignored: Vec<IgnoredException>,
}

/// What `check` exits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every workload admitted, or nothing to check.
    Admitted = 0,
    /// At least one workload denied.
    Denied = 1,
    /// An input could not be read, or a workload could not be decided (whatever else was
    /// denied).
    Undecided = 2,
}

/// The outcome of checking a set of sources.
pub struct Outcome {
    /// The verdicts, notes and a summary, for standard output.
    pub report: String,
    /// What could not be read or decided, for standard error.
    pub errors: Vec<Error>,
    pub files: usize,
    pub workloads: usize,
    pub denied: usize,
    /// Files (or directories) with nothing to check.
    pub without_workloads: usize,
}

impl Outcome {
    pub fn exit(&self) -> Exit {
        if !self.errors.is_empty() {
            Exit::Undecided
        } else if self.denied > 0 {
            Exit::Denied
        } else {
            Exit::Admitted
        }
    }
}

/// Checks every workload of `sources` as if `user` created it; other kinds are skipped, and a
/// source with no workload passes with a note.
pub fn check(world: &World, sources: Vec<Source>, user: Option<&str>) -> Outcome {
    let mut outcome = Outcome {
        report: String::new(),
        errors: vec![],
        files: 0,
        workloads: 0,
        denied: 0,
        without_workloads: 0,
    };
    let kinds: Vec<&str> = WorkloadKind::ALL.iter().map(|k| k.as_str()).collect();
    for (exception, why) in world.inactive_exceptions() {
        let _ = writeln!(
            outcome.report,
            "note: ScanException {exception} does not count: {why}"
        );
    }
    for source in sources {
        outcome.files += 1;
        let manifests = match source.objects {
            Ok(manifests) => manifests,
            Err(e) => {
                outcome.errors.push(e);
                continue;
            }
        };
        let workloads: Vec<(&Manifest, WorkloadKind)> = manifests
            .iter()
            .filter_map(|m| Some((m, m.workload_kind()?)))
            .collect();
        if workloads.is_empty() {
            outcome.without_workloads += 1;
            let _ = writeln!(
                outcome.report,
                "note: {} holds no workload ({}); nothing to check",
                source.path.display(),
                kinds.join(", ")
            );
            continue;
        }
        for (m, kind) in workloads {
            let checked = match world.decide(m, kind, user) {
                Ok(checked) => checked,
                Err(e) => {
                    outcome.errors.push(e);
                    continue;
                }
            };
            outcome.workloads += 1;
            if !checked.allowed {
                outcome.denied += 1;
            }
            write_checked(&mut outcome.report, m, &checked);
        }
    }
    let _ = writeln!(
        outcome.report,
        "checked {} workloads in {} files: {} admitted, {} denied; {} with no workload; {} errors",
        outcome.workloads,
        outcome.files,
        outcome.workloads - outcome.denied,
        outcome.denied,
        outcome.without_workloads,
        outcome.errors.len()
    );
    outcome
}

fn write_checked(report: &mut String, m: &Manifest, checked: &Checked) {
    let decision = &checked.decision;
    let verdict = if checked.allowed {
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
    for w in &checked.warnings {
        let _ = writeln!(report, "  Warning: {w}");
    }
    for i in &checked.ignored {
        let _ = writeln!(
            report,
            "  ignored ScanException {} for {}: {}",
            i.exception, i.container, i.why
        );
    }
    if let Some(message) = decision.message.as_ref().filter(|_| !checked.allowed) {
        let _ = writeln!(report, "  Error: {message}");
    }
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

    fn source(text: &str) -> Source {
        Source {
            path: "t.yaml".into(),
            objects: parse_manifests(Path::new("t.yaml"), text),
        }
    }

    fn empty_world(config: AdmissionConfig) -> World {
        World::from_objects(config, &[], Timestamp::UNIX_EPOCH).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn no_workloads_is_a_pass_with_a_note() {
        let world = empty_world(AdmissionConfig::default());
        let outcome = check(
            &world,
            vec![source("kind: Service\nmetadata: {name: s}\n")],
            None,
        );
        assert_eq!(outcome.exit(), Exit::Admitted);
        assert_eq!(outcome.without_workloads, 1);
        assert!(
            outcome
                .report
                .starts_with("note: t.yaml holds no workload (Pod, Deployment,"),
            "{}",
            outcome.report
        );
    }

    #[test]
    fn errors_do_not_stop_the_other_sources() {
        let world = empty_world(AdmissionConfig {
            on_unscanned: Action::Deny,
            ..AdmissionConfig::default()
        });
        let outcome = check(
            &world,
            vec![
                source("kind: Deployment\nmetadata: {name: broken}\nspec: {}\n"),
                source("kind: [unclosed\n"),
                source(
                    "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: a:1}]}\n",
                ),
            ],
            None,
        );
        assert_eq!(outcome.errors.len(), 2);
        assert_eq!((outcome.workloads, outcome.denied), (1, 1));
        assert!(
            outcome.report.contains("DENIED Pod default/p"),
            "{}",
            outcome.report
        );
        assert_eq!(outcome.exit(), Exit::Undecided);
    }

    #[test]
    fn a_pod_its_controller_creates_passes_with_the_warning() {
        let world = empty_world(AdmissionConfig {
            on_unscanned: Action::Deny,
            ..AdmissionConfig::default()
        });
        let pod = "kind: Pod\nmetadata: {name: web-1-x, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-1, uid: u, controller: true}]}\nspec: {containers: [{name: c, image: a:1}]}\n";
        let rs = "system:serviceaccount:kube-system:replicaset-controller";
        let passed = check(&world, vec![source(pod)], Some(rs));
        assert_eq!(passed.exit(), Exit::Admitted, "{}", passed.report);
        assert!(
            passed.report.contains(
                "Warning: admitted: replicaset-controller for ReplicaSet web-1 created it"
            ),
            "{}",
            passed.report
        );
        for user in [None, Some("alice")] {
            assert_eq!(check(&world, vec![source(pod)], user).exit(), Exit::Denied);
        }
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
