//! The verdict mirror: the digests that trusted results deny, kept in the apiserver as the
//! parameters of a ValidatingAdmissionPolicy, so the apiserver itself denies known-bad content
//! when scangate's webhook cannot answer (a supported `failurePolicy: Ignore` on the workload
//! webhook) and as a second check when it can.
//!
//! What it holds, and why:
//! - **Which digests**: those [`ScanIndex::denied_digests`] gives (the webhook's own rule: a
//!   standing Failed result, or Error where `onError` is `deny`, denies its digest under every
//!   name, its index, and an index's platforms), from trusted namespaces only.
//! - **Exceptions**: an approver's exception that admits the scanned image (all its CVEs) lifts
//!   the denial in its namespace (an exception in scangate's namespace: everywhere, so the
//!   digest is left out). The mirror knows digests, not the name a pod uses, so an exception
//!   for the scanned name counts for that digest under every name: a little looser than the
//!   webhook, which is the check that stays in front while it runs.
//! - **Availability**: requests of the built-in controllers that create pods from admitted
//!   templates are not matched (the webhook admits those with a warning), unless the admin set
//!   `recheckControllerPods`.
//! - **Modes and namespaces**: one binding per enforcement mode (`Deny`, `Warn`, `Audit`) by
//!   the namespace label `scangate.dev/enforcement` and the config's default; the namespaces
//!   the webhook never covers (kube-system, scangate's own) are not matched.
//! - **Parameters**: [`DeniedDigests`] objects in scangate's namespace, labelled [`LABEL`], each
//!   under [`SHARD_BYTES`] (a quarter of the 1 MiB object limit; the bound keeps each write
//!   small), with the deciding scan of each digest and, in the same shard, the namespaces
//!   where an exception lifts its denial (each shard is checked on its own). A shard is
//!   written only when its content changed.
//!
//! [`desired`], [`shards`], [`policy`] and [`bindings`] are pure; [`Mirror::run`] watches,
//! plans and applies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::admin::AbortOnDrop;
use crate::admission::config::{Action, AdmissionConfig, Enforcement};
use crate::api::{DeniedDigests, DeniedDigestsSpec, ImageScan, Phase, ScanException};
use crate::index::{Exception, IndexedScan, ScanIndex};

/// What the verdict mirror (`--mirror`) last did, for the results page.
#[derive(Clone, Debug, PartialEq)]
pub enum MirrorView {
    /// The controller runs without `--mirror`.
    Off,
    /// Not written yet in this leader term.
    Starting,
    /// The apiserver holds every digest the trusted results deny, in `shards` objects.
    InSync {
        digests: usize,
        shards: usize,
        at: jiff::Timestamp,
    },
    /// The last write failed (retried): the apiserver may hold an older set.
    Behind {
        digests: usize,
        error: String,
        since: jiff::Timestamp,
    },
}

/// The mirror's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Digests the verdict mirror denies.
    pub denied_digests: Gauge,
    /// 1 while the verdict mirror's parameters hold what the trusted results deny.
    pub in_sync: Gauge,
}

impl Metrics {
    /// Adds these metrics to the controller's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mirror_denied_digests",
            "Digests the verdict mirror (a ValidatingAdmissionPolicy) denies",
            self.denied_digests.clone(),
        );
        registry.register(
            "mirror_in_sync",
            "1 while the verdict mirror holds what the trusted results deny",
            self.in_sync.clone(),
        );
    }
}

/// The label on the parameter objects; its value is the mirror's name.
pub const LABEL: &str = "scangate.dev/mirror";
/// The most bytes of keys and values one parameter object holds.
pub const SHARD_BYTES: usize = 256 * 1024;
/// How long changes are gathered before the mirror is computed again.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// How long to wait before trying a failed write again.
const RETRY: Duration = Duration::from_secs(5);
/// The field manager of everything the mirror writes.
const MANAGER: &str = "scangate-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot write the verdict mirror's {what} (the controller needs rights on it: see deploy/rbac): {source}"
    )]
    Write {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the verdict mirror's {what} is not a valid object: {source}")]
    Render {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The flags of the mirror (`scangate controller`).
#[derive(Clone, Debug, clap::Args)]
pub struct MirrorArgs {
    /// Keep a ValidatingAdmissionPolicy that denies the digests trusted results deny, so the
    /// apiserver enforces them when the webhook cannot answer.
    #[arg(
        long = "mirror",
        env = "SCANGATE_MIRROR",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub enabled: bool,
    /// The name of the policy; its bindings are `<name>-deny`, `-warn` and `-audit`, its
    /// parameters `<name>-<n>` in scangate's namespace.
    #[arg(
        long = "mirror-name",
        env = "SCANGATE_MIRROR_NAME",
        default_value = "scangate-verdicts"
    )]
    pub name: String,
    /// Namespaces the mirror never applies to (as the webhook's `--exclude-namespaces`;
    /// scangate's own namespace is always excluded).
    #[arg(
        long = "mirror-exclude-namespaces",
        env = "SCANGATE_MIRROR_EXCLUDE_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    pub exclude_namespaces: Vec<String>,
    /// Apply only to namespaces with this label (`key=value`), instead of every namespace but
    /// the excluded ones (for clusters that select namespaces by label, and tests).
    #[arg(
        long = "mirror-namespace-label",
        env = "SCANGATE_MIRROR_NAMESPACE_LABEL"
    )]
    pub namespace_label: Option<String>,
}

/// The key that lifts the denial of `digest` in `namespace`.
pub fn exempt_key(namespace: &str, digest: &str) -> String {
    format!("{namespace}/{digest}")
}

/// One denied digest: the scan that denies it, and the namespaces where an exception admits it
/// (with the exception, `namespace/name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub scan: String,
    pub exempt: BTreeMap<String, String>,
}

/// What the mirror should hold at `now`: every denied digest, and when that changes next by
/// itself (an exception that lifts a denial ends).
pub fn desired(
    index: &ScanIndex,
    config: &AdmissionConfig,
    exceptions: &[Exception],
    now: Timestamp,
) -> (BTreeMap<String, Denied>, Option<Timestamp>) {
    let max_duration = config.exception_max_duration().unwrap_or_default();
    let denies = |phase: Phase| match phase {
        Phase::Failed => true,
        Phase::Error => config.on_error == Action::Deny,
        _ => false,
    };
    let mut next_change: Option<Timestamp> = None;
    let mut denied = BTreeMap::new();
    for (digest, scan) in index.denied_digests(|ns| config.is_trusted_namespace(ns), denies) {
        let image = config.registry_aliases.canonicalize(&scan.image);
        let matching: Vec<&Exception> = exceptions
            .iter()
            .filter(|e| e.is_active(now, max_duration) && e.matches(&image))
            .collect();
        // The exceptions that count in `namespace` (its own and scangate's) and admit the
        // image there, together, as the webhook decides it.
        let admitting_in = |namespace: &str| {
            let counting: Vec<&Exception> = matching
                .iter()
                .copied()
                .filter(|e| e.namespace == namespace || e.namespace == config.scangate_namespace)
                .collect();
            admitting(&counting, scan)
        };
        if let Some(by) = admitting_in(&config.scangate_namespace) {
            next_change = by
                .iter()
                .filter_map(|e| e.ends(max_duration))
                .chain(next_change)
                .min();
            continue;
        }
        let namespaces: BTreeSet<&str> = matching.iter().map(|e| e.namespace.as_str()).collect();
        let mut exempt = BTreeMap::new();
        for namespace in namespaces {
            if let Some(by) = admitting_in(namespace) {
                next_change = by
                    .iter()
                    .filter_map(|e| e.ends(max_duration))
                    .chain(next_change)
                    .min();
                let names: Vec<String> = by
                    .iter()
                    .map(|e| format!("{}/{}", e.namespace, e.name))
                    .collect();
                exempt.insert(namespace.to_string(), names.join(", "));
            }
        }
        denied.insert(
            digest.to_string(),
            Denied {
                scan: format!("{}/{}", scan.namespace, scan.name),
                exempt,
            },
        );
    }
    (denied, next_change)
}

/// The exceptions among `counting` that admit the image of a denying result, together, as the
/// webhook decides it; `None` when they do not.
fn admitting<'e>(counting: &[&'e Exception], scan: &IndexedScan) -> Option<Vec<&'e Exception>> {
    match scan.phase {
        Phase::Failed => crate::admission::workload::covering(scan, counting),
        _ => counting
            .iter()
            .find(|e| e.covers_whole_image())
            .map(|e| vec![*e]),
    }
}

/// The most parameter objects the mirror writes (a bound on the doubling in [`shards`]).
const MAX_SHARDS: usize = 4096;

/// The shard of `digest` among `count`: a stable hash (FNV-1a), so a digest stays in its shard
/// while the count stays.
fn bucket(digest: &str, count: usize) -> usize {
    let hash = digest.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(hash % u64::try_from(count).unwrap_or(1)).unwrap_or(0)
}

/// The denied digests as parameter specs, each of at most `max_bytes` (unless one digest's
/// exemptions alone exceed it); a digest and its exemptions share a shard (each shard is
/// checked on its own). A digest's shard is chosen by its hash among a power-of-two count, so
/// a new or lifted verdict rewrites one shard, not every shard after it. The count is
/// `previous` (the last call's; 0 at first), doubled while a shard would overflow and halved
/// while the whole would fill less than an eighth of it, so it changes (and every shard is
/// rewritten) only when the total has doubled or shrunk by half since.
pub fn shards(
    denied: &BTreeMap<String, Denied>,
    max_bytes: usize,
    previous: usize,
) -> Vec<DeniedDigestsSpec> {
    if denied.is_empty() {
        return vec![];
    }
    let entries: Vec<(&String, &Denied, usize)> = denied
        .iter()
        .map(|(digest, entry)| {
            let exempt: usize = entry
                .exempt
                .iter()
                .map(|(ns, exception)| exempt_key(ns, digest).len() + exception.len())
                .sum();
            (digest, entry, digest.len() + entry.scan.len() + exempt)
        })
        .collect();
    let total: usize = entries.iter().map(|(_, _, bytes)| bytes).sum();
    let mut count = previous.max(1).next_power_of_two().min(MAX_SHARDS);
    while count > 1 && total.saturating_mul(8) < count.saturating_mul(max_bytes) {
        count /= 2;
    }
    loop {
        let mut specs = vec![DeniedDigestsSpec::default(); count];
        let mut sizes = vec![0; count];
        for (digest, entry, bytes) in &entries {
            let n = bucket(digest, count);
            sizes[n] += bytes;
            specs[n]
                .digests
                .insert((*digest).clone(), entry.scan.clone());
            specs[n].exempt.extend(
                entry
                    .exempt
                    .iter()
                    .map(|(ns, exception)| (exempt_key(ns, digest), exception.clone())),
            );
        }
        if count >= MAX_SHARDS || sizes.iter().all(|size| *size <= max_bytes) {
            return specs;
        }
        count *= 2;
    }
}

/// The workload kinds the webhook decides, as admission rules (CREATE and UPDATE).
fn resource_rules() -> Value {
    let ops = json!(["CREATE", "UPDATE"]);
    json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ops,
         "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers"]},
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ops,
         "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"]},
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ops,
         "resources": ["jobs", "cronjobs"]},
    ])
}

/// The CEL of the policy: every image a pod would pull (containers of the three kinds, image
/// volumes) in a Pod or any workload's pod template; on an UPDATE only what the webhook's
/// rollout bound decides (`admission::rollout`): a workload's whole template when it changed or
/// the update starts more of it (woken from zero replicas, a ReplicaSet or ReplicationController
/// scaled up, resumed from suspended or paused), else a Pod's images it did not run before, so a
/// label, an orphaning or a scale-down of what runs is never denied; the digest each names;
/// those denied in this shard and not lifted in the request's namespace. (Scales through the
/// `scale` subresource carry no template: they are the webhook's alone.)
const SPEC: &str = "request.kind.kind == 'Pod' ? object.spec : \
    (request.kind.kind == 'CronJob' ? object.spec.jobTemplate.spec.template.spec : object.spec.template.spec)";
/// Read only on an UPDATE (variables are evaluated when first used).
const OLD_SPEC: &str = "request.kind.kind == 'Pod' ? oldObject.spec : \
    (request.kind.kind == 'CronJob' ? oldObject.spec.jobTemplate.spec.template.spec : oldObject.spec.template.spec)";
/// Whether an UPDATE is decided like a new workload: a changed template, a wake, a revision
/// scaled up, a resume.
const WHOLE: &str = "oldObject == null || (request.kind.kind != 'Pod' && (\
    (request.kind.kind == 'CronJob' ? object.spec.jobTemplate != oldObject.spec.jobTemplate : object.spec.template != oldObject.spec.template) || \
    (has(object.spec.replicas) && has(oldObject.spec.replicas) && object.spec.replicas > oldObject.spec.replicas && \
      (oldObject.spec.replicas == 0 || request.kind.kind == 'ReplicaSet' || request.kind.kind == 'ReplicationController')) || \
    (has(oldObject.spec.suspend) && oldObject.spec.suspend && !(has(object.spec.suspend) && object.spec.suspend)) || \
    (has(oldObject.spec.paused) && oldObject.spec.paused && !(has(object.spec.paused) && object.spec.paused))))";
const DENIED: &str = "(variables.whole ? variables.images : variables.images.filter(i, !(i in variables.oldImages)))\
    .filter(i, i.contains('@')).map(i, i.substring(i.lastIndexOf('@') + 1))\
    .filter(d, d in params.spec.digests && !((request.namespace + '/' + d) in params.spec.exempt))";
const MESSAGE: &str = "'scangate verdict mirror: ' + variables.denied.map(d, d + \
    ' failed trusted scan ' + params.spec.digests[d]).join(', ') + \
    '. Fix the image (rebuild with the fixed versions and scan it again) or ask an admin for a ScanException.'";

/// The CEL list of every image the pod spec in `spec` (a variable's path) would pull.
fn images_of(spec: &str) -> String {
    format!(
        "(has({spec}.containers) ? {spec}.containers.map(c, c.image) : []) + \
         (has({spec}.initContainers) ? {spec}.initContainers.map(c, c.image) : []) + \
         (has({spec}.ephemeralContainers) ? {spec}.ephemeralContainers.map(c, c.image) : []) + \
         (has({spec}.volumes) ? {spec}.volumes.filter(v, has(v.image) && has(v.image.reference)).map(v, v.image.reference) : [])"
    )
}

/// The ValidatingAdmissionPolicy named `name`.
pub fn policy(name: &str, config: &AdmissionConfig) -> Result<ValidatingAdmissionPolicy> {
    let mut match_conditions = vec![];
    if !config.recheck_controller_pods {
        // What the built-in controllers create from an admitted template stays available.
        match_conditions.push(json!({
            "name": "not-created-by-a-built-in-controller",
            "expression": format!(
                "!(request.userInfo.username in {}) || !has(object.metadata.ownerReferences)",
                json!(crate::admission::review::template_controller_users())
            ),
        }));
    }
    let mut value = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "scangate"}},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {
                "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
                "kind": "DeniedDigests",
            },
            "matchConstraints": {"resourceRules": resource_rules()},
            "variables": [
                {"name": "spec", "expression": SPEC},
                {"name": "images", "expression": images_of("variables.spec")},
                {"name": "oldSpec", "expression": OLD_SPEC},
                {"name": "oldImages", "expression": format!(
                    "oldObject == null ? [] : {}", images_of("variables.oldSpec")
                )},
                {"name": "whole", "expression": WHOLE},
                {"name": "denied", "expression": DENIED},
            ],
            "validations": [{
                "expression": "size(variables.denied) == 0",
                "messageExpression": MESSAGE,
                "reason": "Forbidden",
            }],
        },
    });
    if !match_conditions.is_empty() {
        value["spec"]["matchConditions"] = json!(match_conditions);
    }
    serde_json::from_value(value).map_err(|source| Error::Render {
        what: "policy",
        source,
    })
}

/// The three bindings of policy `name`: one per enforcement mode, each selecting the
/// namespaces in that mode (by label, else the config's default), never the excluded ones.
pub fn bindings(
    name: &str,
    config: &AdmissionConfig,
    args: &MirrorArgs,
) -> Result<Vec<ValidatingAdmissionPolicyBinding>> {
    let modes = [
        (Enforcement::Enforce, "Deny"),
        (Enforcement::Warn, "Warn"),
        (Enforcement::Audit, "Audit"),
    ];
    modes
        .iter()
        .map(|(mode, action)| {
            let others: Vec<&str> = modes
                .iter()
                .filter(|(m, _)| m != mode)
                .map(|(m, _)| m.as_str())
                .collect();
            let by_mode = if config.default_enforcement == *mode {
                json!({"key": Enforcement::LABEL, "operator": "NotIn", "values": others})
            } else {
                json!({"key": Enforcement::LABEL, "operator": "In", "values": [mode.as_str()]})
            };
            let mut excluded = args.exclude_namespaces.clone();
            excluded.push(config.scangate_namespace.clone());
            let mut expressions = vec![
                json!({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded}),
                by_mode,
            ];
            if let Some((key, value)) = args.namespace_label.as_deref().and_then(|l| l.split_once('=')) {
                expressions.push(json!({"key": key, "operator": "In", "values": [value]}));
            }
            let value = json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {
                    "name": format!("{name}-{}", mode.as_str()),
                    "labels": {"app.kubernetes.io/name": "scangate"},
                },
                "spec": {
                    "policyName": name,
                    "validationActions": [action],
                    "paramRef": {
                        "namespace": config.scangate_namespace,
                        "selector": {"matchLabels": {LABEL: name}},
                        "parameterNotFoundAction": "Allow",
                    },
                    "matchResources": {
                        "namespaceSelector": {"matchExpressions": expressions},
                    },
                },
            });
            serde_json::from_value(value).map_err(|source| Error::Render {
                what: "binding",
                source,
            })
        })
        .collect()
}

/// The name of shard `n` of mirror `name`.
pub fn shard_name(name: &str, n: usize) -> String {
    format!("{name}-{n}")
}

/// Keeps the mirror for a term as leader.
pub struct Mirror {
    pub client: Client,
    pub config: Arc<AdmissionConfig>,
    pub args: MirrorArgs,
    pub metrics: Arc<Metrics>,
    /// What the mirror last did, for the results page.
    pub view: Arc<tokio::sync::watch::Sender<MirrorView>>,
}

/// Logs a failed watch event (the watch starts again); every event says something changed.
fn log_failure<T>(event: std::result::Result<T, watcher::Error>) {
    if let Err(error) = event {
        tracing::warn!(%error, "verdict mirror: a watch failed; it starts again");
    }
}

impl Mirror {
    /// Applies the policy and its bindings, then keeps the parameters in step with the trusted
    /// results and exceptions until the task is dropped.
    pub async fn run(self) {
        self.view.send_replace(MirrorView::Starting);
        while let Err(error) = self.apply_policy().await {
            tracing::warn!(%error, "verdict mirror: retrying");
            tokio::time::sleep(RETRY).await;
        }
        let config = &self.config;
        let mut streams: Vec<std::pin::Pin<Box<dyn Stream<Item = ()> + Send>>> = vec![];
        let mut scan_stores: Vec<Store<ImageScan>> = vec![];
        let trusted =
            std::iter::once(&config.scangate_namespace).chain(&config.trusted_scan_namespaces);
        for ns in trusted {
            let (store, writer) = reflector::store::<ImageScan>();
            let stream = watcher(
                Api::<ImageScan>::namespaced(self.client.clone(), ns),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(crate::scan::cache::strip_scan::<ImageScan>)
            .reflect(writer)
            .map(log_failure);
            streams.push(stream.boxed());
            scan_stores.push(store);
        }
        let (exception_store, writer) = reflector::store::<ScanException>();
        let stream = watcher(
            Api::<ScanException>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|e| crate::scan::cache::strip_meta(kube::Resource::meta_mut(e)))
        .reflect(writer)
        .map(log_failure);
        streams.push(stream.boxed());
        // The watches run on a task of their own (stopped with this one) and say when
        // something changed.
        let changed = Arc::new(tokio::sync::Notify::new());
        let notify = changed.clone();
        let _watches = AbortOnDrop(tokio::spawn(async move {
            let mut changes = futures::stream::select_all(streams);
            while changes.next().await.is_some() {
                notify.notify_one();
            }
        }));
        for store in &scan_stores {
            let _ = store.wait_until_ready().await;
        }
        let _ = exception_store.wait_until_ready().await;
        let mut written: Option<Vec<DeniedDigestsSpec>> = None;
        loop {
            let scans: Vec<_> = scan_stores.iter().flat_map(Store::state).collect();
            let index = ScanIndex::with_aliases(
                config.registry_aliases.clone(),
                scans.iter().map(|s| &**s),
            );
            let exceptions: Vec<Exception> = exception_store
                .state()
                .iter()
                .map(|e| Exception::from_exception(e))
                .collect();
            let (denied, mut wake) = desired(&index, config, &exceptions, Timestamp::now());
            let wanted = shards(
                &denied,
                SHARD_BYTES,
                written.as_ref().map_or(0, |w| w.len()),
            );
            self.metrics
                .denied_digests
                .set(i64::try_from(denied.len()).unwrap_or(i64::MAX));
            if written.as_ref() != Some(&wanted) {
                self.metrics.in_sync.set(0);
                match self.apply_shards(&wanted, written.as_deref()).await {
                    Ok(()) => {
                        tracing::info!(
                            digests = denied.len(),
                            shards = wanted.len(),
                            "verdict mirror updated"
                        );
                        self.view.send_replace(MirrorView::InSync {
                            digests: denied.len(),
                            shards: wanted.len(),
                            at: Timestamp::now(),
                        });
                        written = Some(wanted);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "verdict mirror: retrying");
                        let since = match &*self.view.borrow() {
                            MirrorView::Behind { since, .. } => *since,
                            _ => Timestamp::now(),
                        };
                        self.view.send_replace(MirrorView::Behind {
                            digests: denied.len(),
                            error: error.to_string(),
                            since,
                        });
                        written = None;
                        wake = Some(Timestamp::now() + RETRY);
                    }
                }
            }
            self.metrics.in_sync.set(i64::from(written.is_some()));
            // Wait for a change (then gather for DEBOUNCE), or until an exception ends.
            match wake {
                Some(at) => {
                    let after =
                        Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default();
                    let _ = tokio::time::timeout(after, changed.notified()).await;
                }
                None => changed.notified().await,
            }
            tokio::time::sleep(DEBOUNCE).await;
        }
    }

    async fn apply_policy(&self) -> Result<()> {
        let params = PatchParams::apply(MANAGER).force();
        let name = &self.args.name;
        let policy = policy(name, &self.config)?;
        Api::<ValidatingAdmissionPolicy>::all(self.client.clone())
            .patch(name, &params, &Patch::Apply(&policy))
            .await
            .map_err(|source| Error::Write {
                what: format!("ValidatingAdmissionPolicy {name}"),
                source,
            })?;
        let api = Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone());
        for binding in bindings(name, &self.config, &self.args)? {
            let binding_name = binding.metadata.name.clone().unwrap_or_default();
            api.patch(&binding_name, &params, &Patch::Apply(&binding))
                .await
                .map_err(|source| Error::Write {
                    what: format!("ValidatingAdmissionPolicyBinding {binding_name}"),
                    source,
                })?;
        }
        Ok(())
    }

    /// Writes the shards that differ from `written` (all of them when unknown), then deletes
    /// shards past the last.
    async fn apply_shards(
        &self,
        wanted: &[DeniedDigestsSpec],
        written: Option<&[DeniedDigestsSpec]>,
    ) -> Result<()> {
        let api =
            Api::<DeniedDigests>::namespaced(self.client.clone(), &self.config.scangate_namespace);
        let params = PatchParams::apply(MANAGER).force();
        let name = &self.args.name;
        for (n, spec) in wanted.iter().enumerate() {
            if written.and_then(|w| w.get(n)) == Some(spec) {
                continue;
            }
            let shard = shard_name(name, n);
            let object = json!({
                "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
                "kind": "DeniedDigests",
                "metadata": {"name": shard, "labels": {LABEL: name}},
                "spec": spec,
            });
            api.patch(&shard, &params, &Patch::Apply(&object))
                .await
                .map_err(|source| Error::Write {
                    what: format!("DeniedDigests {shard}"),
                    source,
                })?;
        }
        let existing = api
            .list_metadata(&ListParams::default().labels(&format!("{LABEL}={name}")))
            .await
            .map_err(|source| Error::Write {
                what: "DeniedDigests list".into(),
                source,
            })?;
        let keep: BTreeSet<String> = (0..wanted.len()).map(|n| shard_name(name, n)).collect();
        for cm in existing.items {
            let shard = cm.metadata.name.unwrap_or_default();
            if keep.contains(&shard) {
                continue;
            }
            api.delete(&shard, &DeleteParams::default())
                .await
                .map_err(|source| Error::Write {
                    what: format!("DeniedDigests {shard}"),
                    source,
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ImageScanSpec, RegistrySpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn scan(ns: &str, name: &str, image: &str, digest: &str, phase: &str) -> ImageScan {
        let mut s = ImageScan::new(
            name,
            ImageScanSpec {
                results_from: None,
                registry: RegistrySpec {
                    image: image.into(),
                    image_pull_secret: None,
                },
                scan: Default::default(),
            },
        );
        s.metadata.namespace = Some(ns.into());
        s.metadata.creation_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        s.status = serde_json::from_value(json!({
            "phase": phase,
            "artifact": {"registry": {"image": format!("{}@{digest}", image.split(':').next().unwrap_or_default())}},
            "violations": [{"id": "CVE-1", "severity": "critical", "package": "p", "version": "1"}],
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        s
    }

    fn exception(ns: &str, image: &str, cves: &[&str]) -> Exception {
        Exception::from_exception(
            &serde_json::from_value(json!({
                "apiVersion": "scanning.scangate.dev/v1beta1",
                "kind": "ScanException",
                "metadata": {"name": "ex", "namespace": ns, "annotations": {
                    crate::index::APPROVED_BY: "approver",
                    crate::index::APPROVED_AT: "2026-01-01T00:00:00Z"}},
                "spec": {"images": [image], "cves": cves, "reason": "accepted", "expires": "2026-02-01T00:00:00Z"},
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn trusted_denials_are_mirrored_with_their_scan_and_exempt_namespaces() {
        let config = AdmissionConfig::default();
        let scans = [
            scan("scangate-system", "busybox", "busybox:1", D1, "Failed"),
            scan("scangate-system", "alpine", "alpine:3", D2, "Completed"),
            // A tenant's own Failed scan denies only in its namespace: not the mirror's.
            scan("shop", "mine", "redis:7", D2, "Failed"),
        ];
        let index = ScanIndex::new(&scans);
        let now: Timestamp = "2026-01-10T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let (denied, next) = desired(&index, &config, &[], now);
        assert_eq!(denied.keys().collect::<Vec<_>>(), [D1]);
        assert_eq!(denied[D1].scan, "scangate-system/busybox");
        assert_eq!(next, None);
        // An approver's exception in shop lifts it there, until it ends; one naming another
        // CVE does not; one in scangate's namespace lifts it everywhere.
        let exceptions = [
            exception("shop", "busybox", &[]),
            exception("other", "busybox", &["CVE-9"]),
        ];
        let (denied, next) = desired(&index, &config, &exceptions, now);
        assert_eq!(
            denied[D1].exempt,
            BTreeMap::from([("shop".to_string(), "shop/ex".to_string())])
        );
        assert_eq!(
            next,
            Some(
                "2026-02-01T00:00:00Z"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"))
            )
        );
        let later = "2026-02-01T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            desired(&index, &config, &exceptions, later).0[D1]
                .exempt
                .is_empty()
        );
        let global = [exception("scangate-system", "busybox", &["CVE-1"])];
        assert!(desired(&index, &config, &global, now).0.is_empty());
        // Error denies only where onError does.
        let errored = ScanIndex::new(&[scan("scangate-system", "e", "e:1", D2, "Error")]);
        assert_eq!(desired(&errored, &config, &[], now).0.len(), 1);
        let lenient = AdmissionConfig {
            on_error: Action::Warn,
            ..AdmissionConfig::default()
        };
        assert!(desired(&errored, &lenient, &[], now).0.is_empty());
    }

    #[test]
    fn vex_statements_exempt_as_the_webhook_decides() {
        let config = AdmissionConfig::default();
        let mut failed = scan("scangate-system", "busybox", "busybox:1", D1, "Failed");
        if let Some(status) = failed.status.as_mut() {
            let mut violations = status.violations.to_vec();
            violations.push(crate::api::Violation {
                id: "CVE-2".into(),
                ..violations[0].clone()
            });
            status.violations = violations.into();
        }
        let index = ScanIndex::new(&[failed]);
        let now: Timestamp = "2026-01-10T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let statement = |name: &str, cve: &str, vex: Value| {
            let mut e = exception("shop", "busybox", &[cve]);
            e.name = name.into();
            e.vex = serde_json::from_value::<crate::api::VexStatement>(vex)
                .ok()
                .map(|v| v.status);
            e
        };
        let investigating = statement("a", "CVE-1", json!({"status": "under_investigation"}));
        let not_affected = |name: &str, cve: &str| {
            statement(
                name,
                cve,
                json!({"status": "not_affected", "justification": "component_not_present"}),
            )
        };
        let exempt = |exceptions: &[Exception]| {
            desired(&index, &config, exceptions, now).0[D1]
                .exempt
                .clone()
        };
        assert!(exempt(&[investigating.clone(), not_affected("b", "CVE-2")]).is_empty());
        assert_eq!(
            exempt(&[
                investigating,
                not_affected("b", "CVE-2"),
                not_affected("c", "CVE-1")
            ]),
            BTreeMap::from([("shop".to_string(), "shop/c, shop/b".to_string())])
        );
    }

    fn denied(n: usize, exempt: &[&str]) -> BTreeMap<String, Denied> {
        (0..n)
            .map(|i| {
                (
                    format!("sha256:{i:064x}"),
                    Denied {
                        scan: "scangate-system/s".into(),
                        exempt: exempt
                            .iter()
                            .map(|ns| (ns.to_string(), format!("{ns}/ex")))
                            .collect(),
                    },
                )
            })
            .collect()
    }

    fn bytes(shard: &DeniedDigestsSpec) -> usize {
        shard
            .digests
            .iter()
            .chain(&shard.exempt)
            .map(|(k, v)| k.len() + v.len())
            .sum()
    }

    #[test]
    fn shards_keep_a_digest_with_its_exemptions_and_stay_under_the_bound() {
        let split = shards(&denied(100, &["a", "b"]), 1_000, 0);
        assert!(split.len() > 1);
        for shard in &split {
            assert!(bytes(shard) <= 1_000, "{}", bytes(shard));
            for digest in shard.digests.keys() {
                assert_eq!(shard.exempt[&format!("a/{digest}")], "a/ex");
                assert_eq!(shard.exempt[&format!("b/{digest}")], "b/ex");
            }
        }
        let total: usize = split.iter().map(|s| s.digests.len()).sum();
        assert_eq!(total, 100);
        assert!(shards(&BTreeMap::new(), 1_000, 4).is_empty());
    }

    #[test]
    fn a_new_verdict_rewrites_one_shard() {
        let mut verdicts = denied(1_000, &[]);
        let before = shards(&verdicts, 16 * 1024, 0);
        assert!(before.len() > 2, "{}", before.len());
        verdicts.insert(
            format!("sha256:{:064x}", 1_000_000),
            Denied {
                scan: "scangate-system/new".into(),
                exempt: BTreeMap::new(),
            },
        );
        let after = shards(&verdicts, 16 * 1024, before.len());
        assert_eq!(after.len(), before.len());
        let changed = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert_eq!(changed, 1);
        // The same verdicts give the same shards, whatever the count was.
        assert_eq!(shards(&verdicts, 16 * 1024, 0), after);
    }

    #[test]
    fn the_shard_count_doubles_and_halves_with_the_total() {
        let count = shards(&denied(1_000, &[]), 16 * 1024, 0).len();
        // Kept while it fits, even when a smaller count would do.
        let fewer = shards(&denied(600, &[]), 16 * 1024, count);
        assert_eq!(fewer.len(), count);
        // Halved once the whole would fill less than an eighth.
        assert!(shards(&denied(100, &[]), 16 * 1024, count).len() < count);
        // Doubled when a shard would overflow.
        assert!(shards(&denied(4_000, &[]), 16 * 1024, count).len() > count);
    }

    #[test]
    fn bindings_follow_the_modes_and_never_select_excluded_namespaces() {
        let args = MirrorArgs {
            enabled: true,
            name: "v".into(),
            exclude_namespaces: vec!["kube-system".into()],
            namespace_label: Some("e2e=1".into()),
        };
        let config = AdmissionConfig::default();
        let bindings = bindings("v", &config, &args).unwrap_or_else(|e| panic!("{e}"));
        let json: Vec<Value> = bindings
            .iter()
            .map(|b| serde_json::to_value(b).unwrap_or_default())
            .collect();
        assert_eq!(json[0]["metadata"]["name"], "v-enforce");
        assert_eq!(json[0]["spec"]["validationActions"], json!(["Deny"]));
        let deny = &json[0]["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"];
        assert_eq!(deny[0]["values"], json!(["kube-system", "scangate-system"]));
        // Enforce is the default: every namespace not labelled warn or audit.
        assert_eq!(
            deny[1],
            json!({"key": "scangate.dev/enforcement", "operator": "NotIn", "values": ["warn", "audit"]})
        );
        assert_eq!(
            deny[2],
            json!({"key": "e2e", "operator": "In", "values": ["1"]})
        );
        assert_eq!(json[1]["spec"]["validationActions"], json!(["Warn"]));
        assert_eq!(
            json[1]["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][1],
            json!({"key": "scangate.dev/enforcement", "operator": "In", "values": ["warn"]})
        );
        assert_eq!(json[2]["spec"]["validationActions"], json!(["Audit"]));
        assert_eq!(
            json[0]["spec"]["paramRef"]["selector"],
            json!({"matchLabels": {LABEL: "v"}})
        );
        let policy = serde_json::to_value(policy("v", &config).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_default();
        assert_eq!(
            policy["spec"]["matchConditions"].as_array().map(Vec::len),
            Some(1)
        );
        let recheck = AdmissionConfig {
            recheck_controller_pods: true,
            ..AdmissionConfig::default()
        };
        let policy = serde_json::to_value(policy_of(&recheck)).unwrap_or_default();
        assert_eq!(policy["spec"]["matchConditions"], Value::Null);
    }

    fn policy_of(config: &AdmissionConfig) -> ValidatingAdmissionPolicy {
        policy("v", config).unwrap_or_else(|e| panic!("{e}"))
    }
}
