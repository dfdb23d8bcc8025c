//! `scangate why POD|WORKLOAD` (also `kubectl scangate why` with the binary installed as the
//! kubectl plugin): the verdict the webhook would give now to each image of a pod or workload in
//! the cluster, the result that decided it and the exception that applied. The cluster is read
//! at the edge ([`Reader`]) with the caller's own credentials; the verdicts come from the
//! webhook's pure decision (`check`'s [`World`]); what could not be read is said, never guessed:
//! a trusted result in a namespace the caller cannot list is "a trusted result you cannot read".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ReplicationController};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::admission::config::{Action, AdmissionConfig, Enforcement, Origin};
use crate::admission::pod::WorkloadKind;
use crate::admission::workload::ContainerVerdict;
use crate::api::{ImageScan, ScanException};
use crate::cmd::check::{Manifest, World};
use crate::index::{Exception, ScanIndex};

#[derive(Debug, Args)]
pub struct WhyArgs {
    /// What to explain: `pod/NAME`, a workload as `KIND/NAME` (deployment, replicaset,
    /// statefulset, daemonset, job, cronjob, replicationcontroller; kubectl's short names work),
    /// or a bare pod name.
    #[arg(env = "SCANGATE_WHY_OBJECT", value_name = "POD|KIND/NAME")]
    pub object: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How `why` and `status` reach the cluster and find the admission rules.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The namespace, like kubectl's -n (`why`: default the kubeconfig context's namespace;
    /// `status`: default every namespace).
    #[arg(short = 'n', long, env = "SCANGATE_NAMESPACE")]
    pub namespace: Option<String>,
    /// The ConfigMap (NAMESPACE/NAME, key config.yaml) holding the webhook's admission rules;
    /// read first.
    #[arg(
        long,
        env = "SCANGATE_CONFIG_MAP",
        default_value = "scangate-system/scangate-config"
    )]
    pub config_map: String,
    /// Admission rules (YAML) used when the ConfigMap cannot be read; without either, the
    /// defaults.
    #[arg(long, env = "SCANGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] super::ClusterError),
    #[error(
        "{target:?} names no pod or workload: give pod/NAME, KIND/NAME with KIND one of pod, \
         deployment, replicaset, statefulset, daemonset, job, cronjob, replicationcontroller, \
         or a bare pod name"
    )]
    Target { target: String },
    #[error("--config-map {value:?} is not NAMESPACE/NAME")]
    ConfigMapName { value: String },
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("you may not read {what} ({reason}); {remedy}")]
    Refused {
        what: String,
        reason: String,
        remedy: &'static str,
    },
    #[error("{kind} {name:?} not found in namespace {namespace}; check the name and -n")]
    NotFound {
        kind: WorkloadKind,
        name: String,
        namespace: String,
    },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the admission rules in ConfigMap {name} are invalid: {source}")]
    ConfigMap {
        name: String,
        #[source]
        source: crate::admission::config::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::admission::config::Error),
    #[error(transparent)]
    Workload(#[from] crate::cmd::check::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The object `why` explains, parsed from `pod/NAME`, `KIND/NAME` or a bare pod name.
pub fn parse_target(target: &str) -> Result<(WorkloadKind, String)> {
    let bad = || Error::Target {
        target: target.to_string(),
    };
    let (kind, name) = match target.split_once('/') {
        Some((kind, name)) => (kind, name),
        None => ("pod", target),
    };
    if name.is_empty() || name.contains('/') {
        return Err(bad());
    }
    // `deployment.apps/web`, `deployments/web`, `deploy/web`.
    let kind = kind
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let kind = match kind.as_str() {
        "pod" | "pods" | "po" => WorkloadKind::Pod,
        "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
        "replicaset" | "replicasets" | "rs" => WorkloadKind::ReplicaSet,
        "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
        "daemonset" | "daemonsets" | "ds" => WorkloadKind::DaemonSet,
        "job" | "jobs" => WorkloadKind::Job,
        "cronjob" | "cronjobs" | "cj" => WorkloadKind::CronJob,
        "replicationcontroller" | "replicationcontrollers" | "rc" => {
            WorkloadKind::ReplicationController
        }
        _ => return Err(bad()),
    };
    Ok((kind, name.to_string()))
}

/// Where the admission rules came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// The webhook's ConfigMap (`namespace/name`).
    ConfigMap(String),
    /// A `--config` file, because the ConfigMap could not be read (why).
    File { path: PathBuf, because: String },
    /// The defaults: no ConfigMap could be read (why) and no `--config` was given.
    Defaults { because: String },
}

impl ConfigSource {
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::ConfigMap(name) => format!("ConfigMap {name}"),
            ConfigSource::File { path, because } => {
                format!("file {} ({because})", path.display())
            }
            ConfigSource::Defaults { because } => {
                format!("the defaults ({because}; pass --config with the webhook's rules)")
            }
        }
    }
}

/// What the caller could not read, each with the reason the API gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unreadable {
    /// Namespaces whose ImageScans could not be listed.
    pub scans: BTreeMap<String, String>,
    /// Namespaces whose ScanExceptions could not be listed.
    pub exceptions: BTreeMap<String, String>,
    /// Namespaces whose enforcement label could not be read.
    pub modes: BTreeMap<String, String>,
}

/// The cluster state the verdicts are decided from, as far as the caller can read it.
pub struct Seen {
    pub world: World,
    /// The ImageScans read (the world's index holds them too, by image).
    pub scans: Vec<ImageScan>,
    pub config_source: ConfigSource,
    pub unreadable: Unreadable,
}

/// What the webhook would do with one image now, as far as the caller can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Admitted,
    /// Admitted with a warning (or denied in a namespace in warn mode).
    Warned,
    Denied,
    /// It depends on something the caller cannot read.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Admitted => "admitted",
            Outcome::Warned => "warned",
            Outcome::Denied => "denied",
            Outcome::Unknown => "unknown",
        }
    }

    /// The rules' action, unless a hidden source could change it.
    fn of(action: Action, hidden: &[Hidden]) -> Self {
        let changes = |h: &Hidden| match h {
            // A trusted result decides either way.
            Hidden::Trusted { .. } => true,
            // Exceptions only admit: an admitted image stays admitted.
            Hidden::Exceptions { .. } => action != Action::Allow,
            // A namespace's own scans only deny more: a denied image stays denied.
            Hidden::NamespaceScans { .. } => action != Action::Deny,
        };
        if hidden.iter().any(changes) {
            return Outcome::Unknown;
        }
        match action {
            Action::Allow => Outcome::Admitted,
            Action::Warn => Outcome::Warned,
            Action::Deny => Outcome::Denied,
        }
    }

    /// What the namespace's mode makes of it.
    pub fn in_mode(self, mode: Enforcement) -> Self {
        match (self, mode) {
            (Outcome::Denied, Enforcement::Warn) => Outcome::Warned,
            (Outcome::Denied | Outcome::Warned, Enforcement::Audit) => Outcome::Admitted,
            (outcome, _) => outcome,
        }
    }
}

/// A source that could decide an image's verdict and that the caller cannot read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hidden {
    /// A trusted result: the ImageScans of this namespace.
    Trusted { namespace: String, reason: String },
    /// Exceptions that count for the workload: the ScanExceptions of this namespace.
    Exceptions { namespace: String, reason: String },
    /// The workload namespace's own scans (they can only deny more).
    NamespaceScans { namespace: String, reason: String },
}

impl Hidden {
    pub fn describe(&self) -> String {
        match self {
            Hidden::Trusted { namespace, reason } => format!(
                "a trusted result you cannot read may decide (imagescans in {namespace}: {reason})"
            ),
            Hidden::Exceptions { namespace, reason } => format!(
                "an exception you cannot read may admit it (scanexceptions in {namespace}: {reason})"
            ),
            Hidden::NamespaceScans { namespace, reason } => format!(
                "a namespace scan you cannot read may deny it (imagescans in {namespace}: {reason})"
            ),
        }
    }
}

/// One image's explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    pub verdict: ContainerVerdict,
    /// `container "app"`, `init container "setup"`, `image volume "data"`.
    pub who: String,
    /// The deciding result: `trusted scan ns/name, phase Failed, report: …`.
    pub decided_by: Option<String>,
    /// The image the pod status reports running (`imageID`), when it does.
    pub running: Option<String>,
    pub hidden: Vec<Hidden>,
    pub outcome: Outcome,
}

/// The explanation of one pod or workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub kind: WorkloadKind,
    pub name: String,
    pub namespace: String,
    /// The namespace's mode: its label's, else the config's default.
    pub mode: Enforcement,
    /// Why the mode is the config's default by assumption: the Namespace could not be read
    /// (tenants usually may not read it).
    pub mode_assumed: Option<String>,
    pub config_source: ConfigSource,
    pub images: Vec<Explained>,
    pub outcome: Outcome,
}

impl Explanation {
    /// `check`'s exit codes: 0 admitted (warnings included), 1 denied, 2 undecided.
    pub fn exit(&self) -> crate::cmd::check::Exit {
        use crate::cmd::check::Exit;
        match self.outcome {
            Outcome::Admitted | Outcome::Warned => Exit::Admitted,
            Outcome::Denied => Exit::Denied,
            Outcome::Unknown => Exit::Undecided,
        }
    }
}

/// The sources the verdict of an image in `namespace` depends on that the caller cannot read.
fn hidden_sources(
    config: &AdmissionConfig,
    namespace: &str,
    unreadable: &Unreadable,
) -> Vec<Hidden> {
    let mut hidden = vec![];
    for (ns, reason) in &unreadable.scans {
        let origin = config.origin(namespace, ns);
        let (namespace, reason) = (ns.clone(), reason.clone());
        match origin {
            Some(Origin::Trusted) => hidden.push(Hidden::Trusted { namespace, reason }),
            Some(Origin::Namespace) => hidden.push(Hidden::NamespaceScans { namespace, reason }),
            None => {}
        }
    }
    for (ns, reason) in &unreadable.exceptions {
        if config.exception_counts(namespace, ns) {
            hidden.push(Hidden::Exceptions {
                namespace: ns.clone(),
                reason: reason.clone(),
            });
        }
    }
    hidden
}

/// The deciding result of a verdict, in words: which scan, its origin, phase and provenance.
fn decided_by(index: &ScanIndex, verdict: &ContainerVerdict) -> Option<String> {
    let decider = verdict.decided_by.as_ref()?;
    let origin = match decider.origin {
        Origin::Trusted => "trusted scan",
        Origin::Namespace => "namespace scan",
    };
    let mut text = format!("{origin} {}/{}", decider.namespace, decider.name);
    if let Some(scan) = index.get(&decider.namespace, &decider.name) {
        let _ = write!(text, ", phase {}", scan.phase);
        if scan.rescanning {
            text.push_str(" (a rescan is running)");
        }
        match &scan.source {
            Some(source) => {
                let _ = write!(text, ", report: {source}");
            }
            None => text.push_str(", no report recorded"),
        }
    }
    Some(text)
}

/// Decides one pod or workload object (JSON) as the webhook would for a user's create now.
/// `running` maps container names to the image the pod status reports (`imageID`).
pub fn explain(
    seen: &Seen,
    kind: WorkloadKind,
    object: &Value,
    running: &HashMap<String, String>,
) -> Result<Explanation> {
    let world = &seen.world;
    let manifest = Manifest {
        path: PathBuf::from(format!(
            "{}/{}",
            kind.as_str().to_ascii_lowercase(),
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )),
        object: object.clone(),
    };
    let namespace = manifest.namespace().to_string();
    let containers = crate::admission::pod::containers(kind, object).map_err(|cause| {
        crate::cmd::check::Error::Workload {
            path: manifest.path.clone(),
            cause,
        }
    })?;
    let checked = world.decide(&manifest, kind, None)?;
    let hidden = hidden_sources(&world.config, &namespace, &seen.unreadable);
    let mode_assumed = seen.unreadable.modes.get(&namespace).cloned();
    let mode = world.enforcement(&namespace);
    let images: Vec<Explained> = checked
        .decision
        .verdicts
        .into_iter()
        .zip(&containers)
        .map(|(verdict, container)| {
            let outcome = Outcome::of(verdict.action, &hidden);
            Explained {
                who: container.describe(),
                decided_by: decided_by(&world.index, &verdict),
                running: running.get(&container.name).cloned(),
                hidden: hidden.clone(),
                outcome,
                verdict,
            }
        })
        .collect();
    let outcome = overall(images.iter().map(|i| i.outcome), mode);
    Ok(Explanation {
        kind,
        name: manifest.name().to_string(),
        namespace,
        mode,
        mode_assumed,
        config_source: seen.config_source.clone(),
        images,
        outcome,
    })
}

/// The workload's outcome from its images' (before the mode) and the namespace's mode: one
/// image surely denied in enforce mode denies it; anything unknown otherwise leaves it unknown.
pub fn overall(images: impl IntoIterator<Item = Outcome>, mode: Enforcement) -> Outcome {
    let images: BTreeSet<Outcome> = images.into_iter().collect();
    if images.contains(&Outcome::Denied) && mode == Enforcement::Enforce {
        return Outcome::Denied;
    }
    images
        .into_iter()
        .map(|o| o.in_mode(mode))
        .max()
        .unwrap_or(Outcome::Admitted)
}

/// `why`'s report.
pub fn format_explanation(e: &Explanation) -> String {
    let mut out = String::new();
    let mode = match &e.mode_assumed {
        None => format!("namespace mode {}", e.mode.as_str()),
        Some(reason) => format!(
            "namespace mode {}: the config's default, assumed: cannot read the label ({reason})",
            e.mode.as_str()
        ),
    };
    let _ = writeln!(
        out,
        "{} {}/{} in namespace {}: {} ({mode})",
        e.outcome.as_str().to_ascii_uppercase(),
        e.kind.as_str().to_ascii_lowercase(),
        e.name,
        e.namespace,
        match e.outcome {
            Outcome::Admitted => "the webhook would admit it now",
            Outcome::Warned => "the webhook would admit it now, with warnings",
            Outcome::Denied => "the webhook would deny it now",
            Outcome::Unknown => "depends on what you cannot read",
        }
    );
    let _ = writeln!(out, "admission rules: {}", e.config_source.describe());
    if e.images.is_empty() {
        out.push_str("no images\n");
    }
    for image in &e.images {
        let v = &image.verdict;
        let _ = writeln!(out, "{} {}", image.who, v.image);
        let action = match v.action {
            Action::Allow => "allow",
            Action::Warn => "warn",
            Action::Deny => "deny",
        };
        let _ = writeln!(
            out,
            "  verdict:    {} (rules say {action})",
            image.outcome.as_str()
        );
        let decided = match (
            &image.decided_by,
            image
                .hidden
                .iter()
                .any(|h| matches!(h, Hidden::Trusted { .. })),
        ) {
            (Some(by), _) => by.clone(),
            (None, true) => "a trusted result you cannot read, if there is one".to_string(),
            (None, false) => "no scan: the image has no trusted result".to_string(),
        };
        let _ = writeln!(out, "  decided by: {decided}");
        let _ = writeln!(
            out,
            "  exception:  {}",
            v.exception.as_deref().unwrap_or("none")
        );
        if let Some(running) = &image.running {
            let _ = writeln!(out, "  running:    {running}");
        }
        let _ = writeln!(out, "  why:        {}", v.reason);
        for hidden in &image.hidden {
            let _ = writeln!(out, "  unread:     {}", hidden.describe());
        }
    }
    out
}

/// Reads the cluster with the caller's credentials.
pub struct Reader {
    pub client: Client,
    /// The kubeconfig context's namespace.
    pub default_namespace: String,
}

/// Whether the API refused the read (the caller lacks the right), rather than failed.
fn refusal(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(status) if status.code == 403 => Some("forbidden".to_string()),
        kube::Error::Api(status) if status.code == 404 => Some("not found".to_string()),
        _ => None,
    }
}

impl Reader {
    /// A client for the kubeconfig's current context (or the pod's in-cluster config).
    pub async fn new() -> Result<Self> {
        let (client, default_namespace) = super::cluster_client().await?;
        Ok(Reader {
            client,
            default_namespace,
        })
    }

    /// The admission rules: the ConfigMap, else `--config`, else the defaults.
    pub async fn config(&self, args: &ClusterArgs) -> Result<(AdmissionConfig, ConfigSource)> {
        let (namespace, name) =
            args.config_map
                .split_once('/')
                .ok_or_else(|| Error::ConfigMapName {
                    value: args.config_map.clone(),
                })?;
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let because = match api.get(name).await {
            Ok(map) => match map.data.as_ref().and_then(|d| d.get("config.yaml")) {
                Some(text) => {
                    let config =
                        AdmissionConfig::from_yaml(text).map_err(|source| Error::ConfigMap {
                            name: args.config_map.clone(),
                            source,
                        })?;
                    return Ok((config, ConfigSource::ConfigMap(args.config_map.clone())));
                }
                None => format!("ConfigMap {} has no config.yaml", args.config_map),
            },
            Err(e) => match refusal(&e) {
                Some(reason) => format!("ConfigMap {}: {reason}", args.config_map),
                None => {
                    return Err(Error::Read {
                        what: format!("ConfigMap {}", args.config_map),
                        source: e,
                    });
                }
            },
        };
        Ok(match &args.config {
            Some(path) => (
                AdmissionConfig::load(Some(path))?,
                ConfigSource::File {
                    path: path.clone(),
                    because,
                },
            ),
            None => (
                AdmissionConfig::default(),
                ConfigSource::Defaults { because },
            ),
        })
    }

    /// Lists `K` in `namespace` (`None`: every namespace); a refusal is `Ok(Err(reason))`.
    async fn list<K>(&self, namespace: Option<&str>, what: &str) -> Result<Result<Vec<K>, String>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        self.list_with(namespace, what, &ListParams::default())
            .await
    }

    async fn list_with<K>(
        &self,
        namespace: Option<&str>,
        what: &str,
        params: &ListParams,
    ) -> Result<Result<Vec<K>, String>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        match api.list(params).await {
            Ok(list) => Ok(Ok(list.items)),
            Err(e) => match refusal(&e) {
                Some(reason) => Ok(Err(reason)),
                None => Err(Error::Read {
                    what: format!(
                        "{what} in {}",
                        namespace.map_or("every namespace".to_string(), |ns| format!(
                            "namespace {ns}"
                        ))
                    ),
                    source: e,
                }),
            },
        }
    }

    /// The digests the verdict mirror `name`'s parameters in `namespace` hold: `Ok(None)` when it
    /// has none, `Err` with the reason when the caller may not read them.
    pub async fn mirror_digests(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<std::result::Result<Option<BTreeSet<String>>, String>> {
        let params = ListParams::default().labels(&format!("{}={name}", crate::mirror::LABEL));
        let api: Api<crate::api::DeniedDigests> = Api::namespaced(self.client.clone(), namespace);
        match api.list(&params).await {
            Ok(list) if list.items.is_empty() => Ok(Ok(None)),
            Ok(list) => Ok(Ok(Some(
                list.items
                    .into_iter()
                    .flat_map(|d| d.spec.digests.into_keys())
                    .collect(),
            ))),
            Err(e) => match refusal(&e) {
                Some(reason) => Ok(Err(reason)),
                None => Err(Error::Read {
                    what: format!("denieddigests in namespace {namespace}"),
                    source: e,
                }),
            },
        }
    }

    /// The scans, exceptions and namespace modes a workload in `namespace` is decided from
    /// (`None`: every namespace's), as far as the caller can read them.
    pub async fn seen(&self, args: &ClusterArgs, namespace: Option<&str>) -> Result<Seen> {
        let (config, config_source) = self.config(args).await?;
        let mut unreadable = Unreadable::default();
        let mut scans: Vec<ImageScan> = vec![];
        let mut exceptions: Vec<Exception> = vec![];
        let mut namespace_modes = HashMap::new();
        match namespace {
            None => {
                scans = self.list_all("imagescans").await?;
                let all: Vec<ScanException> = self.list_all("scanexceptions").await?;
                exceptions = all.iter().map(Exception::from_exception).collect();
                let api: Api<Namespace> = Api::all(self.client.clone());
                let list =
                    api.list(&ListParams::default())
                        .await
                        .map_err(|e| match refusal(&e) {
                            Some(reason) => Error::Refused {
                                what: "namespaces".into(),
                                reason,
                                remedy: "name one with -n NAMESPACE",
                            },
                            None => Error::Read {
                                what: "namespaces".into(),
                                source: e,
                            },
                        })?;
                for ns in list.items {
                    if let Some(mode) = mode_of(&ns) {
                        namespace_modes.insert(ns.metadata.name.clone().unwrap_or_default(), mode);
                    }
                }
            }
            Some(namespace) => {
                let mut scan_namespaces: BTreeSet<&str> = config
                    .trusted_scan_namespaces
                    .iter()
                    .map(String::as_str)
                    .collect();
                scan_namespaces.insert(&config.scangate_namespace);
                scan_namespaces.insert(namespace);
                for ns in scan_namespaces {
                    match self.list::<ImageScan>(Some(ns), "imagescans").await? {
                        Ok(found) => scans.extend(found),
                        Err(reason) => {
                            unreadable.scans.insert(ns.to_string(), reason);
                        }
                    }
                }
                let exception_namespaces: BTreeSet<&str> =
                    [namespace, config.scangate_namespace.as_str()].into();
                for ns in exception_namespaces {
                    match self
                        .list::<ScanException>(Some(ns), "scanexceptions")
                        .await?
                    {
                        Ok(found) => exceptions.extend(found.iter().map(Exception::from_exception)),
                        Err(reason) => {
                            unreadable.exceptions.insert(ns.to_string(), reason);
                        }
                    }
                }
                let api: Api<Namespace> = Api::all(self.client.clone());
                match api.get(namespace).await {
                    Ok(ns) => {
                        if let Some(mode) = mode_of(&ns) {
                            namespace_modes.insert(namespace.to_string(), mode);
                        }
                    }
                    Err(e) => match refusal(&e) {
                        Some(reason) => {
                            unreadable.modes.insert(
                                namespace.to_string(),
                                format!("namespace {namespace}: {reason}"),
                            );
                        }
                        None => {
                            return Err(Error::Read {
                                what: format!("namespace {namespace}"),
                                source: e,
                            });
                        }
                    },
                }
            }
        }
        let index = ScanIndex::with_aliases(config.registry_aliases.clone(), &scans);
        Ok(Seen {
            world: World {
                config,
                index,
                exceptions,
                now: Timestamp::now(),
                namespace_modes,
            },
            scans,
            config_source,
            unreadable,
        })
    }

    /// Lists `K` in every namespace; a refusal is an error that says to use -n.
    async fn list_all<K>(&self, what: &str) -> Result<Vec<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        self.list::<K>(None, what)
            .await?
            .map_err(|reason| Error::Refused {
                what: format!("{what} in every namespace"),
                reason,
                remedy: "name one with -n NAMESPACE",
            })
    }

    /// The running pods in `namespace` (`None`: every namespace).
    pub async fn running_pods(&self, namespace: Option<&str>) -> Result<Vec<Pod>> {
        let params = ListParams::default().fields("status.phase=Running");
        self.list_with::<Pod>(namespace, "pods", &params)
            .await?
            .map_err(|reason| Error::Refused {
                what: format!(
                    "pods in {}",
                    namespace.map_or("every namespace".to_string(), |ns| format!(
                        "namespace {ns}"
                    ))
                ),
                reason,
                remedy: "ask for the view role there, or name a namespace you may read with -n",
            })
    }

    /// The object `why` explains, as JSON, and its pod status's image IDs by container name.
    pub async fn target(
        &self,
        kind: WorkloadKind,
        name: &str,
        namespace: &str,
    ) -> Result<(Value, HashMap<String, String>)> {
        let object = match kind {
            WorkloadKind::Pod => self.get::<Pod>(kind, name, namespace).await?,
            WorkloadKind::Deployment => self.get::<Deployment>(kind, name, namespace).await?,
            WorkloadKind::ReplicaSet => self.get::<ReplicaSet>(kind, name, namespace).await?,
            WorkloadKind::StatefulSet => self.get::<StatefulSet>(kind, name, namespace).await?,
            WorkloadKind::DaemonSet => self.get::<DaemonSet>(kind, name, namespace).await?,
            WorkloadKind::Job => self.get::<Job>(kind, name, namespace).await?,
            WorkloadKind::CronJob => self.get::<CronJob>(kind, name, namespace).await?,
            WorkloadKind::ReplicationController => {
                self.get::<ReplicationController>(kind, name, namespace)
                    .await?
            }
        };
        let running = running_images(&object);
        Ok((object, running))
    }

    async fn get<K>(&self, kind: WorkloadKind, name: &str, namespace: &str) -> Result<Value>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let object = api
            .get_opt(name)
            .await
            .map_err(|source| Error::Read {
                what: format!("{kind} {name} in namespace {namespace}"),
                source,
            })?
            .ok_or_else(|| Error::NotFound {
                kind,
                name: name.to_string(),
                namespace: namespace.to_string(),
            })?;
        serde_json::to_value(&object).map_err(|source| Error::Encode {
            what: format!("{kind} {name}"),
            source,
        })
    }
}

fn mode_of(ns: &Namespace) -> Option<Enforcement> {
    ns.metadata
        .labels
        .as_ref()?
        .get(Enforcement::LABEL)
        .and_then(|v| Enforcement::from_label(v))
}

/// The image each container of a pod object runs, by container name, from its status
/// (`imageID`; empty when the runtime has not reported one).
pub fn running_images(object: &Value) -> HashMap<String, String> {
    let mut running = HashMap::new();
    for field in [
        "initContainerStatuses",
        "containerStatuses",
        "ephemeralContainerStatuses",
    ] {
        let statuses = object
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for status in statuses {
            let name = status.get("name").and_then(Value::as_str);
            let id = status
                .get("imageID")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty());
            if let (Some(name), Some(id)) = (name, id) {
                running.insert(name.to_string(), id.to_string());
            }
        }
    }
    running
}

/// `scangate why`: reads the cluster, explains, prints; returns the exit code.
pub async fn run(args: &WhyArgs) -> Result<(String, crate::cmd::check::Exit)> {
    let (kind, name) = parse_target(&args.object)?;
    let reader = Reader::new().await?;
    let namespace = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| reader.default_namespace.clone());
    let (object, running) = reader.target(kind, &name, &namespace).await?;
    let seen = reader.seen(&args.cluster, Some(&namespace)).await?;
    let explanation = explain(&seen, kind, &object, &running)?;
    Ok((format_explanation(&explanation), explanation.exit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::check::{Exit, parse_manifests};
    use serde_json::json;

    const DIGEST: &str = "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";

    fn scan(ns: &str, name: &str, phase: &str, source: &str) -> String {
        format!(
            "kind: ImageScan\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{registry: {{image: \"busybox:1.32.1\"}}}}\n\
             status:\n  phase: {phase}\n  artifact: {{registry: {{image: \"docker.io/library/busybox@{DIGEST}\"}}}}\n  \
             violations: [{{id: CVE-2022-48174, severity: critical, package: busybox, version: 1.32.1}}]\n  \
             lastResult: {{phase: {phase}, scannedAt: \"2026-01-01T00:00:00Z\", source: \"{source}\"}}\n---\n"
        )
    }

    fn exception(ns: &str) -> String {
        format!(
            "kind: ScanException\nmetadata:\n  name: legacy\n  namespace: {ns}\n  annotations: {{scangate.dev/approved-by: alice, scangate.dev/approved-at: \"2026-01-01T00:00:00Z\"}}\n\
             spec: {{images: [busybox], cves: [CVE-2022-48174], reason: ticket, expires: \"2026-01-20T00:00:00Z\"}}\n---\n"
        )
    }

    fn seen(objects: &str, unreadable: Unreadable) -> Seen {
        let objects = parse_manifests(std::path::Path::new("t.yaml"), objects)
            .unwrap_or_else(|e| panic!("{e}"));
        let now: Timestamp = "2026-01-02T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let world = World::from_objects(AdmissionConfig::default(), &objects, now)
            .unwrap_or_else(|e| panic!("{e}"));
        let scans = objects
            .iter()
            .filter(|m| m.kind() == "ImageScan")
            .filter_map(|m| serde_json::from_value(m.object.clone()).ok())
            .collect();
        Seen {
            world,
            scans,
            config_source: ConfigSource::ConfigMap("scangate-system/scangate-config".into()),
            unreadable,
        }
    }

    fn pod(ns: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": ns},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.32.1"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "app", "image": "busybox:1.32.1", "imageID": format!("docker.io/library/busybox@{DIGEST}")}]}
        })
    }

    fn why(seen: &Seen, object: &Value) -> (String, Exit) {
        let e = explain(seen, WorkloadKind::Pod, object, &running_images(object))
            .unwrap_or_else(|e| panic!("{e}"));
        (format_explanation(&e), e.exit())
    }

    #[test]
    fn targets_are_parsed_like_kubectl() {
        let ok = |t: &str| parse_target(t).map_err(|e| e.to_string());
        assert_eq!(ok("web-1"), Ok((WorkloadKind::Pod, "web-1".into())));
        assert_eq!(ok("pod/web-1"), Ok((WorkloadKind::Pod, "web-1".into())));
        assert_eq!(
            ok("deploy/web"),
            Ok((WorkloadKind::Deployment, "web".into()))
        );
        assert_eq!(
            ok("deployment.apps/web"),
            Ok((WorkloadKind::Deployment, "web".into()))
        );
        assert_eq!(
            ok("cj/nightly"),
            Ok((WorkloadKind::CronJob, "nightly".into()))
        );
        for bad in ["service/web", "pod/", "a/b/c"] {
            assert!(
                ok(bad).is_err_and(|e| e.contains("names no pod or workload")),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_failed_trusted_result_denies_and_is_named() {
        let seen = seen(
            &scan("scangate-system", "busybox", "Failed", "pushed by ci"),
            Unreadable::default(),
        );
        let (text, exit) = why(&seen, &pod("shop"));
        assert_eq!(exit, Exit::Denied, "{text}");
        assert!(text.starts_with("DENIED pod/web-1 in namespace shop: the webhook would deny it now (namespace mode enforce)"), "{text}");
        assert!(
            text.contains("admission rules: ConfigMap scangate-system/scangate-config"),
            "{text}"
        );
        assert!(
            text.contains("container \"app\" docker.io/library/busybox:1.32.1@sha256:"),
            "{text}"
        );
        assert!(
            text.contains("verdict:    denied (rules say deny)"),
            "{text}"
        );
        assert!(text.contains("decided by: trusted scan scangate-system/busybox, phase Failed, report: pushed by ci"), "{text}");
        assert!(text.contains("exception:  none"), "{text}");
        assert!(
            text.contains(&format!("running:    docker.io/library/busybox@{DIGEST}")),
            "{text}"
        );
    }

    #[test]
    fn an_exception_that_admits_is_named() {
        let objects =
            scan("scangate-system", "busybox", "Failed", "pushed by ci") + &exception("shop");
        let (text, exit) = why(&seen(&objects, Unreadable::default()), &pod("shop"));
        assert_eq!(exit, Exit::Admitted, "{text}");
        assert!(text.starts_with("ADMITTED pod/web-1"), "{text}");
        assert!(text.contains("exception:  shop/legacy"), "{text}");
        assert!(
            text.contains("decided by: trusted scan scangate-system/busybox"),
            "{text}"
        );
        assert!(text.contains("approved by alice"), "{text}");
    }

    #[test]
    fn what_cannot_be_read_is_said_not_guessed() {
        let hidden = Unreadable {
            scans: [("scangate-system".to_string(), "forbidden".to_string())].into(),
            exceptions: [("scangate-system".to_string(), "forbidden".to_string())].into(),
            modes: [("shop".to_string(), "namespace shop: forbidden".to_string())].into(),
        };
        // The tenant sees its own exception but not the trusted result.
        let (text, exit) = why(&seen(&exception("shop"), hidden), &pod("shop"));
        assert_eq!(exit, Exit::Undecided, "{text}");
        assert!(text.starts_with("UNKNOWN pod/web-1 in namespace shop: depends on what you cannot read (namespace mode enforce: the config's default, assumed: cannot read the label (namespace shop: forbidden))"), "{text}");
        assert!(
            text.contains("decided by: a trusted result you cannot read, if there is one"),
            "{text}"
        );
        assert!(text.contains("unread:     a trusted result you cannot read may decide (imagescans in scangate-system: forbidden)"), "{text}");
        assert!(text.contains("unread:     an exception you cannot read may admit it (scanexceptions in scangate-system: forbidden)"), "{text}");
    }

    #[test]
    fn outcomes_combine_with_the_mode() {
        use Outcome::*;
        let hidden_exceptions = [Hidden::Exceptions {
            namespace: "s".into(),
            reason: "forbidden".into(),
        }];
        // Exceptions only admit: an admitted image stays admitted, a denied one is unknown.
        assert_eq!(Outcome::of(Action::Allow, &hidden_exceptions), Admitted);
        assert_eq!(Outcome::of(Action::Deny, &hidden_exceptions), Unknown);
        let hidden_own = [Hidden::NamespaceScans {
            namespace: "shop".into(),
            reason: "forbidden".into(),
        }];
        assert_eq!(Outcome::of(Action::Deny, &hidden_own), Denied);
        assert_eq!(Outcome::of(Action::Allow, &hidden_own), Unknown);
        // One sure denial in enforce mode denies, whatever else is unknown.
        assert_eq!(overall([Unknown, Denied], Enforcement::Enforce), Denied);
        assert_eq!(overall([Unknown, Denied], Enforcement::Warn), Unknown);
        assert_eq!(overall([Admitted, Denied], Enforcement::Warn), Warned);
        assert_eq!(overall([Warned, Denied], Enforcement::Audit), Admitted);
        assert_eq!(overall([Admitted, Warned], Enforcement::Enforce), Warned);
        assert_eq!(overall([], Enforcement::Enforce), Admitted);
    }
}
