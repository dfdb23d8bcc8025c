//! PolicyReports of the runtime inventory: one report per namespace, named `scangate`, with a
//! result per workload and image ([`super::inventory`]), kept current from watches of Pods,
//! ImageScans and ScanExceptions (no polling of the API), and the `scangate_running_images`
//! and `scangate_oldest_result_age_seconds` metrics.
//!
//! The shape (`--policy-reports`): `wgpolicyk8s.io/v1alpha2` PolicyReport, or
//! `openreports.io/v1alpha1` Report (same content; its CRD is not installed by scangate), or
//! none. A namespace's report is recomputed at most once per [`DEBOUNCE`] after a change that
//! may concern it, written with server-side apply (field manager `scangate-controller`) only
//! when its content changed, and deleted when the namespace runs nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::inventory::{self, Entry, RuntimeVerdict};
use super::metrics::Metrics;
use crate::admission::config::{AdmissionConfig, Origin};
use crate::admission::workload::Context;
use crate::api::{ImageScan, ScanException};
use crate::index::{Exception, ScanIndex};
use crate::scan::CONTROLLER_NAME;

/// How many results a report holds at most; the most severe are kept (fail, warn, skip, pass),
/// the summary counts them all, and the annotation [`RESULTS_ANNOTATION`] says how many were
/// left out. 1000 results stay far below the apiserver's object size limit.
pub const MAX_RESULTS: usize = 1000;

/// Says how many of the namespace's results the report holds: `1000 of 1234`.
pub const RESULTS_ANNOTATION: &str = "scangate.dev/results";

/// The name of every report scangate writes.
pub const REPORT_NAME: &str = "scangate";

/// The label of the reports scangate writes (a restarted controller finds them by it).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "scangate");

/// How long changes are gathered before the namespaces they concern are recomputed.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// How often the inventory comes back, with no change, to create the first-sight scans that
/// waited for a token or a budget and to delete unused ones.
pub const FIRST_SIGHT_RECHECK: Duration = Duration::from_secs(60);

/// The longest a result's message is, in characters.
const MESSAGE_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot write {kind} {namespace}/{REPORT_NAME}: {source}; is its CRD installed (deploy/crds) and may the controller write it (deploy/rbac)? Or run with --policy-reports=off"
    )]
    Write {
        kind: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {kind} {namespace}/{REPORT_NAME}: {source}")]
    Delete {
        kind: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which reports the controller writes (`--policy-reports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport (Policy Reporter, Kyverno's CRD).
    Wgpolicyk8s,
    /// `openreports.io/v1alpha1` Report.
    Openreports,
    /// No reports; the runtime metrics only.
    Off,
}

impl ReportFormat {
    /// The API resource of its reports, when it writes any.
    pub fn resource(self) -> Option<ApiResource> {
        let (group, version, kind, plural) = match self {
            ReportFormat::Wgpolicyk8s => (
                "wgpolicyk8s.io",
                "v1alpha2",
                "PolicyReport",
                "policyreports",
            ),
            ReportFormat::Openreports => ("openreports.io", "v1alpha1", "Report", "reports"),
            ReportFormat::Off => return None,
        };
        Some(ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            plural,
        ))
    }
}

/// The report of a namespace's entries (sorted most severe first, as
/// [`inventory::entries`] returns them), or `None` when it has none.
pub fn report(resource: &ApiResource, namespace: &str, entries: &[Entry]) -> Option<Value> {
    if entries.is_empty() {
        return None;
    }
    let counts = inventory::counts(entries);
    let count = |v: RuntimeVerdict| counts.get(&v).copied().unwrap_or_default();
    let kept = entries.len().min(MAX_RESULTS);
    let results: Vec<Value> = entries[..kept].iter().map(result).collect();
    Some(json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {
            "name": REPORT_NAME,
            "namespace": namespace,
            "labels": {MANAGED_BY.0: MANAGED_BY.1},
            "annotations": {RESULTS_ANNOTATION: if kept < entries.len() {
                format!("{kept} of {} (the most severe; the summary counts all)", entries.len())
            } else {
                format!("{kept} of {kept}")
            }},
        },
        "summary": {
            "pass": count(RuntimeVerdict::pass),
            "fail": count(RuntimeVerdict::fail),
            "warn": count(RuntimeVerdict::warn),
            "error": 0,
            "skip": count(RuntimeVerdict::skip),
        },
        "results": results,
    }))
}

/// One result: `properties` holds the image, the deciding scan, its origin and phase, the
/// exception and the top CVE ids, when there are.
fn result(e: &Entry) -> Value {
    let mut properties = BTreeMap::from([("image", e.image.clone())]);
    if let Some(scan) = &e.scan {
        properties.insert("scan", format!("{}/{}", scan.namespace, scan.name));
        properties.insert(
            "scanOrigin",
            match scan.origin {
                Origin::Trusted => "trusted",
                Origin::Namespace => "namespace",
            }
            .into(),
        );
        properties.insert("scanPhase", scan.phase.as_str().into());
        properties.insert("resultRecordedAt", scan.as_of.to_string());
    }
    if let Some(exception) = &e.exception {
        properties.insert("exception", exception.clone());
    }
    if !e.cves.is_empty() {
        properties.insert("topCVEs", e.cves.join(","));
    }
    let mut result = json!({
        "policy": "scangate",
        "rule": "image-verdict",
        "result": e.verdict.as_str(),
        "source": "scangate",
        "scored": true,
        "message": e.message.chars().take(MESSAGE_CHARS).collect::<String>(),
        "resources": [{
            "apiVersion": e.workload.api_version,
            "kind": e.workload.kind,
            "name": e.workload.name,
        }],
        "properties": properties,
    });
    if let Some(severity) = e.severity {
        // PolicyReport severities: critical, high, medium, low, info.
        result["severity"] = match severity {
            crate::api::Severity::Unknown => "info",
            known => known.as_str(),
        }
        .into();
    }
    result
}

/// What the inventory task is given.
pub struct Inventory {
    pub client: Client,
    /// `--namespace`: the pods of this namespace only.
    pub namespace: Option<String>,
    pub config: Arc<AdmissionConfig>,
    pub format: ReportFormat,
    pub metrics: Arc<Metrics>,
    /// Called after each recompute with the entries per namespace (running, and ended within
    /// [`inventory::ENDED_KEPT`]) and the ImageScans it read (the controller publishes them to
    /// the results page).
    pub publish: Publish,
    /// The scan controller's store of the ImageScans it watches, read instead of watching them
    /// a second time.
    pub shared_scans: SharedScans,
}

/// A store of ImageScans another watch keeps: the scans of `namespace` (every namespace when
/// `None`), stripped as [`crate::scan::cache::strip_scan`] strips them, and a signal sent each
/// time that watch applies an event.
pub struct SharedScans {
    pub namespace: Option<String>,
    pub store: Store<ImageScan>,
    pub changed: tokio::sync::watch::Receiver<()>,
}

/// What the inventory hands on after each recompute: the entries per namespace of what runs
/// and of what ended (each with its end), and the ImageScans they were decided from.
pub type Publish = Box<
    dyn Fn(&BTreeMap<String, Vec<Entry>>, &BTreeMap<String, Vec<Entry>>, &[Arc<ImageScan>])
        + Send
        + Sync,
>;

/// A change the watches saw.
enum Change {
    /// A pod of this namespace.
    Pod(Option<String>),
    /// A pod was deleted (remembered if it ran, for the results page's window).
    PodGone(Box<Pod>),
    /// An ImageScan.
    Scan,
    /// A ScanException of this namespace.
    Exception(Option<String>),
    /// A watch failed (it retries with backoff).
    Failed(watcher::Error),
}

/// The namespaces whose scans may decide for the watched pods: every one, or with
/// `--namespace`, that one, scangate's and the trusted ones.
fn scan_namespaces(config: &AdmissionConfig, namespace: Option<&str>) -> Vec<Option<String>> {
    let Some(ns) = namespace else {
        return vec![None];
    };
    let mut all: BTreeSet<String> =
        BTreeSet::from([ns.to_string(), config.scangate_namespace.clone()]);
    all.extend(config.trusted_scan_namespaces.iter().cloned());
    all.into_iter().map(Some).collect()
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

impl Inventory {
    /// Runs until the term ends: keeps the reports and the runtime metrics current.
    pub async fn run(self) {
        let config = self.config.clone();
        let namespace = self.namespace.as_deref();
        let (pods, pod_writer) = reflector::store::<Pod>();
        let pod_changes = watcher(
            api::<Pod>(&self.client, namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(inventory::strip_pod)
        .reflect(pod_writer)
        .map(|event| match event {
            Ok(watcher::Event::Delete(pod)) => Change::PodGone(Box::new(pod)),
            Ok(e) => Change::Pod(event_namespace(&e)),
            Err(e) => Change::Failed(e),
        });
        let mut streams: Vec<std::pin::Pin<Box<dyn Stream<Item = Change> + Send>>> =
            vec![pod_changes.boxed()];
        let mut exception_stores = vec![];
        let mut scan_stores = vec![];
        for ns in scan_namespaces(&config, namespace) {
            if ns == self.shared_scans.namespace {
                let changes = futures::stream::unfold(
                    self.shared_scans.changed.clone(),
                    |mut changed| async move {
                        changed.changed().await.ok()?;
                        Some((Change::Scan, changed))
                    },
                );
                streams.push(changes.boxed());
                scan_stores.push(self.shared_scans.store.clone());
            } else {
                let (store, writer) = reflector::store::<ImageScan>();
                let scans = watcher(
                    api::<ImageScan>(&self.client, ns.as_deref()),
                    watcher::Config::default(),
                )
                .default_backoff()
                .modify(crate::scan::cache::strip_scan::<ImageScan>)
                .reflect(writer)
                .map(|event| match event {
                    Ok(_) => Change::Scan,
                    Err(e) => Change::Failed(e),
                });
                streams.push(scans.boxed());
                scan_stores.push(store);
            }
            let (store, writer) = reflector::store::<ScanException>();
            let exceptions = watcher(
                api::<ScanException>(&self.client, ns.as_deref()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(|e| crate::scan::cache::strip_meta(kube::Resource::meta_mut(e)))
            .reflect(writer)
            .map(|event| match event {
                Ok(e) => Change::Exception(event_namespace(&e)),
                Err(e) => Change::Failed(e),
            });
            streams.push(exceptions.boxed());
            exception_stores.push(store);
        }
        let mut changes = futures::stream::select_all(streams);
        let mut state = State {
            inventory: &self,
            pods,
            exceptions: exception_stores,
            scans: scan_stores,
            index: ScanIndex::with_aliases(config.registry_aliases.clone(), []),
            scans_changed: true,
            written: HashMap::new(),
            oldest: HashMap::new(),
            latest: BTreeMap::new(),
            gone: inventory::Ended::default(),
            latest_ended: BTreeMap::new(),
            effects: super::first_sight::Effects::new(self.client.clone(), self.metrics.clone()),
        };
        state.find_reports().await;
        let mut dirty = Dirty::default();
        let mut wake_at: Option<Timestamp> = None;
        loop {
            // Gather changes; recompute DEBOUNCE after the first, or when an exception ends.
            let until_expiry = wake_at.map(|at| {
                let left = at.duration_since(Timestamp::now());
                Duration::try_from(left).unwrap_or_default()
            });
            let deadline = if dirty.any() {
                Some(DEBOUNCE)
            } else {
                until_expiry
            };
            let next = match deadline {
                Some(after) => tokio::time::timeout(after, changes.next()).await.ok(),
                None => Some(changes.next().await),
            };
            match next {
                Some(Some(change)) => {
                    state.apply(change, &mut dirty);
                    if dirty.any() {
                        // Keep gathering until the debounce elapses.
                        let started = tokio::time::Instant::now();
                        while let Ok(Some(change)) = tokio::time::timeout(
                            DEBOUNCE.saturating_sub(started.elapsed()),
                            changes.next(),
                        )
                        .await
                        {
                            state.apply(change, &mut dirty);
                        }
                    }
                }
                Some(None) => return,
                None => {
                    if !dirty.any() {
                        // An exception ended.
                        dirty.all = true;
                        wake_at = None;
                    }
                }
            }
            if !state.synced() || !dirty.any() {
                continue;
            }
            wake_at = state.flush(std::mem::take(&mut dirty)).await;
        }
    }
}

/// The namespaces to recompute.
#[derive(Default)]
struct Dirty {
    all: bool,
    namespaces: BTreeSet<String>,
}

impl Dirty {
    fn any(&self) -> bool {
        self.all || !self.namespaces.is_empty()
    }
}

fn event_namespace<K: kube::Resource>(event: &watcher::Event<K>) -> Option<String> {
    match event {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
            o.meta().namespace.clone()
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// Marks the namespaces a change may concern: a pod's, an exception's (every namespace for
/// those of scangate's namespace, which count everywhere), every namespace for a scan (it may
/// be trusted everywhere).
fn mark(change: &Change, scangate_namespace: &str, dirty: &mut Dirty) {
    match change {
        Change::Pod(Some(ns)) => {
            dirty.namespaces.insert(ns.clone());
        }
        Change::Exception(Some(ns)) if ns != scangate_namespace => {
            dirty.namespaces.insert(ns.clone());
        }
        Change::Exception(_) | Change::Scan => dirty.all = true,
        Change::PodGone(pod) => {
            if let Some(ns) = &pod.metadata.namespace {
                dirty.namespaces.insert(ns.clone());
            }
        }
        Change::Pod(None) | Change::Failed(_) => {}
    }
}

/// What the inventory task holds between changes.
struct State<'a> {
    inventory: &'a Inventory,
    pods: Store<Pod>,
    exceptions: Vec<Store<ScanException>>,
    scans: Vec<Store<ImageScan>>,
    /// The index of `scans`, built again when they changed.
    index: ScanIndex,
    scans_changed: bool,
    /// A hash of the report last written per namespace.
    written: HashMap<String, u64>,
    /// The oldest decided result per namespace.
    oldest: HashMap<String, Timestamp>,
    /// The entries of each namespace that runs something, as last computed.
    latest: BTreeMap<String, Vec<Entry>>,
    /// The deleted pods that ran in the last [`inventory::ENDED_KEPT`].
    gone: inventory::Ended,
    /// The entries of each namespace's pods that ended in the last [`inventory::ENDED_KEPT`]
    /// and run no more, as last computed (for the results page).
    latest_ended: BTreeMap<String, Vec<Entry>>,
    /// First-sight scans and VerdictTurned Events, from these entries.
    effects: super::first_sight::Effects,
}

impl State<'_> {
    /// Whether every watch holds its first full list.
    fn synced(&self) -> bool {
        fn ready<K: kube::Resource + Clone>(store: &Store<K>) -> bool
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            futures::FutureExt::now_or_never(store.wait_until_ready()).is_some()
        }
        ready(&self.pods) && self.exceptions.iter().all(ready) && self.scans.iter().all(ready)
    }

    fn apply(&mut self, change: Change, dirty: &mut Dirty) {
        match change {
            Change::Failed(error) => {
                tracing::warn!(%error, "an inventory watch failed; retrying with backoff");
            }
            change @ Change::PodGone(_) => {
                mark(&change, &self.inventory.config.scangate_namespace, dirty);
                if let Change::PodGone(pod) = change {
                    self.gone.remember(*pod, Timestamp::now());
                }
            }
            Change::Scan => {
                self.scans_changed = true;
                mark(
                    &Change::Scan,
                    &self.inventory.config.scangate_namespace,
                    dirty,
                );
            }
            change => mark(&change, &self.inventory.config.scangate_namespace, dirty),
        }
    }

    /// Finds the reports a previous leader wrote, so that they are deleted when their
    /// namespace runs nothing now.
    async fn find_reports(&mut self) {
        let Some(resource) = self.inventory.format.resource() else {
            return;
        };
        let api: Api<DynamicObject> = match self.inventory.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(self.inventory.client.clone(), ns, &resource),
            None => Api::all_with(self.inventory.client.clone(), &resource),
        };
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        match api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => {
                for report in list.items {
                    if let Some(ns) = report.namespace() {
                        // Unknown content: written again, or deleted.
                        self.written.insert(ns, 0);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, kind = %resource.kind, "cannot list the reports written before; those of namespaces that run nothing now stay until the next change there");
            }
        }
    }

    /// Recomputes the namespaces, writes what changed; returns when the next exception in use
    /// ends.
    async fn flush(&mut self, dirty: Dirty) -> Option<Timestamp> {
        let config = &self.inventory.config;
        if std::mem::take(&mut self.scans_changed) {
            let scans: Vec<Arc<ImageScan>> = self.scans.iter().flat_map(|s| s.state()).collect();
            self.index = ScanIndex::with_aliases(
                config.registry_aliases.clone(),
                scans.iter().map(|s| &**s),
            );
        }
        let pods = self.pods.state();
        let mut by_namespace: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        for pod in &pods {
            if let Some(ns) = pod.metadata.namespace.as_ref() {
                by_namespace.entry(ns.clone()).or_default().push(pod);
            }
        }
        let now = Timestamp::now();
        self.gone.prune(now);
        let namespaces: BTreeSet<String> = if dirty.all {
            by_namespace
                .keys()
                .chain(self.written.keys())
                .chain(self.oldest.keys())
                .chain(self.latest_ended.keys())
                .cloned()
                .chain(self.gone.namespaces().map(str::to_string))
                .collect()
        } else {
            dirty.namespaces
        };
        let exceptions: Vec<Exception> = self
            .exceptions
            .iter()
            .flat_map(|s| s.state())
            .map(|e| Exception::from_exception(&e))
            .collect();
        let ended_since = now.checked_sub(inventory::ENDED_KEPT).unwrap_or(now);
        let metrics = &self.inventory.metrics;
        for ns in namespaces {
            let ctx = Context {
                config,
                index: &self.index,
                exceptions: &exceptions,
                namespace: &ns,
                enforcement: config.default_enforcement,
                now,
                pins_tags: config.pins_tags(config.default_enforcement, None),
            };
            let entries =
                inventory::entries(&ctx, by_namespace.get(&ns).into_iter().flatten().copied());
            let in_store = by_namespace
                .get(&ns)
                .into_iter()
                .flatten()
                .filter_map(|p| Some((inventory::ended_at(p)?, *p)));
            let ended = inventory::ended_entries(
                &ctx,
                in_store.chain(self.gone.of(&ns)),
                &entries,
                ended_since,
            );
            metrics.set_running_images(&ns, &inventory::counts(&entries), entries.is_empty());
            match inventory::oldest_result(&entries) {
                Some(at) => self.oldest.insert(ns.clone(), at),
                None => self.oldest.remove(&ns),
            };
            if let Err(error) = self.write(&ns, &entries).await {
                tracing::warn!(namespace = %ns, error = %error, "report not written; retried at the next change");
            }
            self.effects.verdicts_turned(&ns, &entries).await;
            if ended.is_empty() {
                self.latest_ended.remove(&ns);
            } else {
                self.latest_ended.insert(ns.clone(), ended);
            }
            if entries.is_empty() {
                self.latest.remove(&ns);
            } else {
                self.latest.insert(ns, entries);
            }
        }
        metrics.set_oldest_result(self.oldest.values().min().copied());
        let scans: Vec<Arc<ImageScan>> = self.scans.iter().flat_map(|s| s.state()).collect();
        let first_sight_waits = self
            .effects
            .first_sight(
                config,
                self.inventory.namespace.as_deref(),
                &self.latest,
                &scans,
            )
            .await;
        (self.inventory.publish)(&self.latest, &self.latest_ended, &scans);
        let max_duration = config.exception_max_duration().unwrap_or_default();
        // First-sight scans wait for a token or a budget, or age towards unusedAfter: back
        // after FIRST_SIGHT_RECHECK.
        let first_sight_recheck = (first_sight_waits
            || scans.iter().any(|s| {
                super::first_sight::Existing::of(s, &config.scangate_namespace).is_some()
            }))
        .then(|| now.checked_add(FIRST_SIGHT_RECHECK).ok())
        .flatten();
        exceptions
            .iter()
            .filter(|e| e.is_active(now, max_duration))
            .filter_map(|e| e.ends(max_duration))
            .filter(|at| *at > now)
            .chain(first_sight_recheck)
            .min()
    }

    /// Writes (or deletes) the namespace's report when it changed.
    async fn write(&mut self, namespace: &str, entries: &[Entry]) -> Result<()> {
        let Some(resource) = self.inventory.format.resource() else {
            return Ok(());
        };
        let kind: &'static str = match self.inventory.format {
            ReportFormat::Openreports => "Report",
            _ => "PolicyReport",
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.inventory.client.clone(), namespace, &resource);
        match report(&resource, namespace, entries) {
            Some(report) => {
                let hash = hash_of(&report);
                if self.written.get(namespace) == Some(&hash) {
                    return Ok(());
                }
                api.patch(
                    REPORT_NAME,
                    &PatchParams::apply(CONTROLLER_NAME).force(),
                    &Patch::Apply(&report),
                )
                .await
                .map_err(|source| Error::Write {
                    kind,
                    namespace: namespace.into(),
                    source,
                })?;
                self.written.insert(namespace.into(), hash);
            }
            None => {
                if self.written.contains_key(namespace) {
                    match api.delete(REPORT_NAME, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(source) => {
                            return Err(Error::Delete {
                                kind,
                                namespace: namespace.into(),
                                source,
                            });
                        }
                    }
                    self.written.remove(namespace);
                }
            }
        }
        Ok(())
    }
}

fn hash_of(report: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    report.to_string().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::Origin;
    use crate::api::{Phase, Severity};
    use inventory::{DecidingScan, Workload};

    fn entry(name: &str, verdict: RuntimeVerdict) -> Entry {
        Entry {
            workload: Workload {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: name.into(),
            },
            pod: format!("{name}-1"),
            container: "app".into(),
            image: format!("docker.io/library/{name}:1"),
            verdict,
            message: "x".repeat(1000),
            scan: Some(DecidingScan {
                namespace: "scangate-system".into(),
                name: name.into(),
                origin: Origin::Trusted,
                phase: Phase::Failed,
                as_of: "2026-01-02T00:00:00Z"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            }),
            exception: None,
            severity: Some(Severity::Unknown),
            cves: vec!["CVE-1".into(), "CVE-2".into()],
            unscanned: false,
            owner: None,
            ended: None,
        }
    }

    fn resource(format: ReportFormat) -> ApiResource {
        format.resource().unwrap_or_else(|| panic!("no resource"))
    }

    #[test]
    fn a_policy_report_has_a_result_per_workload_and_image() {
        let r = report(
            &resource(ReportFormat::Wgpolicyk8s),
            "shop",
            &[
                entry("web", RuntimeVerdict::fail),
                entry("db", RuntimeVerdict::pass),
            ],
        )
        .unwrap_or_else(|| panic!("no report"));
        assert_eq!(r["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(r["kind"], "PolicyReport");
        assert_eq!(r["metadata"]["name"], "scangate");
        assert_eq!(r["metadata"]["namespace"], "shop");
        assert_eq!(
            r["summary"],
            json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0})
        );
        let first = &r["results"][0];
        assert_eq!(
            first,
            &json!({
                "policy": "scangate", "rule": "image-verdict", "result": "fail",
                "source": "scangate", "scored": true, "severity": "info",
                "message": "x".repeat(256),
                "resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
                "properties": {
                    "image": "docker.io/library/web:1",
                    "scan": "scangate-system/web",
                    "scanOrigin": "trusted",
                    "scanPhase": "Failed",
                    "resultRecordedAt": "2026-01-02T00:00:00Z",
                    "topCVEs": "CVE-1,CVE-2",
                },
            })
        );
        assert_eq!(
            report(&resource(ReportFormat::Wgpolicyk8s), "shop", &[]),
            None
        );
        assert_eq!(ReportFormat::Off.resource(), None);
    }

    #[test]
    fn an_openreports_report_has_the_same_content() {
        let entries = [entry("web", RuntimeVerdict::warn)];
        let wg = report(&resource(ReportFormat::Wgpolicyk8s), "shop", &entries);
        let open = report(&resource(ReportFormat::Openreports), "shop", &entries);
        let (Some(mut wg), Some(mut open)) = (wg, open) else {
            panic!("no report")
        };
        assert_eq!(open["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(open["kind"], "Report");
        for r in [&mut wg, &mut open] {
            r["apiVersion"] = Value::Null;
            r["kind"] = Value::Null;
        }
        assert_eq!(wg, open);
    }

    #[test]
    fn a_report_is_bounded_and_says_so() {
        let entries: Vec<Entry> = (0..MAX_RESULTS + 5)
            .map(|i| {
                entry(
                    &format!("w{i:04}"),
                    if i < 3 {
                        RuntimeVerdict::fail
                    } else {
                        RuntimeVerdict::pass
                    },
                )
            })
            .collect();
        let r = report(&resource(ReportFormat::Wgpolicyk8s), "shop", &entries)
            .unwrap_or_else(|| panic!("no report"));
        assert_eq!(r["results"].as_array().map(Vec::len), Some(MAX_RESULTS));
        assert_eq!(r["summary"]["pass"], MAX_RESULTS + 2);
        assert_eq!(r["summary"]["fail"], 3);
        assert_eq!(
            r["metadata"]["annotations"][RESULTS_ANNOTATION],
            "1000 of 1005 (the most severe; the summary counts all)"
        );
        let small = report(&resource(ReportFormat::Wgpolicyk8s), "shop", &entries[..2])
            .unwrap_or_else(|| panic!("no report"));
        assert_eq!(
            small["metadata"]["annotations"][RESULTS_ANNOTATION],
            "2 of 2"
        );
    }

    #[test]
    fn a_change_marks_the_namespaces_it_may_concern() {
        let marked = |change: Change| {
            let mut dirty = Dirty::default();
            mark(&change, "scangate-system", &mut dirty);
            (dirty.all, dirty.namespaces.into_iter().collect::<Vec<_>>())
        };
        assert_eq!(
            marked(Change::Pod(Some("shop".into()))),
            (false, vec!["shop".into()])
        );
        assert_eq!(marked(Change::Pod(None)), (false, vec![]));
        let mut gone = Pod::default();
        gone.metadata.namespace = Some("blog".into());
        assert_eq!(
            marked(Change::PodGone(Box::new(gone))),
            (false, vec!["blog".into()])
        );
        assert_eq!(
            marked(Change::Exception(Some("shop".into()))),
            (false, vec!["shop".into()])
        );
        assert_eq!(
            marked(Change::Exception(Some("scangate-system".into()))),
            (true, vec![])
        );
        assert_eq!(marked(Change::Scan), (true, vec![]));
    }

    #[test]
    fn the_flag_names_the_format() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let format = |args: &[&str]| {
            let all = ["scangate", "controller"].iter().chain(args);
            match Cli::try_parse_from(all).map(|cli| cli.command) {
                Ok(Command::Controller(args)) => args.policy_reports,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(format(&[]), ReportFormat::Wgpolicyk8s);
        assert_eq!(
            format(&["--policy-reports", "openreports"]),
            ReportFormat::Openreports
        );
        assert_eq!(format(&["--policy-reports=off"]), ReportFormat::Off);
    }

    #[test]
    fn with_one_namespace_the_trusted_scans_are_watched_too() {
        let config = AdmissionConfig {
            trusted_scan_namespaces: vec!["ci".into()],
            ..AdmissionConfig::default()
        };
        assert_eq!(scan_namespaces(&config, None), [None]);
        assert_eq!(
            scan_namespaces(&config, Some("shop")),
            ["ci", "scangate-system", "shop"].map(|s| Some(s.to_string()))
        );
    }
}
