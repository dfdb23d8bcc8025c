//! The controller's caches: one watch per kind the reconciler reads (ScanTemplates,
//! ScanPolicies, ScanExceptions, Jobs and report ConfigMaps labelled with the scan label), each
//! kept in a reflector store, stripped of what the controller never reads before it is stored;
//! and the index from each of those objects to the scans it concerns, which sends those scans
//! to their controller. A reconcile reads these stores, never the apiserver.

use std::sync::Arc;

use futures::{SinkExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::kinds::Kind;
use super::kinds::ScanKind;
use super::queue::{Queue, ScanId};
use super::triggers::{Triggers, owners};
use crate::admission::config::AdmissionConfig;
use crate::api::{ImageScan, ScanException, ScanPolicy, ScanSettings, ScanTemplate, SourceScan};
use crate::report::{REPORT_KEY, REPORTED_BY, SCAN_LABEL};

/// The annotation `kubectl apply` keeps a copy of the whole object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The stores a reconcile reads.
#[derive(Clone)]
pub struct Caches {
    pub templates: Store<ScanTemplate>,
    /// The policies of the watched namespace(s), and when that is one namespace other than
    /// scangate's and the admission config names a `defaultScanPolicy`, those of scangate's
    /// namespace too (where it lives).
    pub policies: Vec<Store<ScanPolicy>>,
    /// The exceptions of the watched namespace(s), and when that is one namespace other than
    /// scangate's, those of scangate's namespace too (the admin's count everywhere).
    pub exceptions: Vec<Store<ScanException>>,
    pub jobs: Store<Job>,
    pub reports: Store<ConfigMap>,
}

impl Caches {
    /// The object `name` in `namespace` of `store`.
    pub fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        store.get(&ObjectRef::new(name).within(namespace))
    }

    /// The ScanPolicy `name` in `namespace`, from whichever policy store holds it.
    pub fn policy(&self, namespace: &str, name: &str) -> Option<Arc<ScanPolicy>> {
        self.policies
            .iter()
            .find_map(|store| Caches::get(store, namespace, name))
    }

    /// Waits until every store holds its first full list.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.templates.wait_until_ready().await?;
        for policies in &self.policies {
            policies.wait_until_ready().await?;
        }
        for exceptions in &self.exceptions {
            exceptions.wait_until_ready().await?;
        }
        self.jobs.wait_until_ready().await?;
        self.reports.wait_until_ready().await
    }
}

/// The scans' stores, for the index (templates, policies and exceptions name no scan).
pub struct ScanStores {
    pub images: Store<ImageScan>,
    pub sources: Store<SourceScan>,
    /// The admission rules: scangate's namespace (its exceptions count for scans in every
    /// namespace), its `defaultScanPolicy` and which scans it judges (trusted scans that name
    /// no policy).
    pub config: Arc<AdmissionConfig>,
}

/// Drops what no reader of a cached object looks at: managed fields and the last-applied copy.
pub fn strip_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
    }
}

/// A scan as the controller caches it.
pub fn strip_scan<K: ScanKind>(scan: &mut K) {
    strip_meta(scan.meta_mut());
}

/// A Job as the planner reads it ([`super::job::JobSummary::from_job`]): metadata (names,
/// annotations, owners, creation time), its deadline (named when it is exceeded), whether it
/// is suspended (a paused scan), the conditions and the completion time; not the pod template.
pub fn strip_job(job: &mut Job) {
    strip_meta(&mut job.metadata);
    job.spec = job.spec.take().map(|spec| JobSpec {
        active_deadline_seconds: spec.active_deadline_seconds,
        suspend: spec.suspend,
        template: PodTemplateSpec::default(),
        ..JobSpec::default()
    });
    job.status = job.status.take().map(|status| JobStatus {
        conditions: status.conditions,
        completion_time: status.completion_time,
        ..JobStatus::default()
    });
}

/// A report ConfigMap as the reconciler reads it: the report, the scan label, the owners, who
/// pushed it, and when it was stored (the latest managed-field time, kept as the only entry, as
/// [`super::reconcile::read_report`] reads it).
pub fn strip_report(config_map: &mut ConfigMap) {
    let written = config_map
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.clone())
        .max_by_key(|t| t.0);
    strip_meta(&mut config_map.metadata);
    config_map.metadata.managed_fields = written.map(|time| {
        vec![ManagedFieldsEntry {
            time: Some(time),
            ..ManagedFieldsEntry::default()
        }]
    });
    if let Some(annotations) = &mut config_map.metadata.annotations {
        annotations.retain(|key, _| key == REPORTED_BY);
    }
    config_map.data = None;
    if let Some(data) = &mut config_map.binary_data {
        data.retain(|key, _| key == REPORT_KEY);
    }
}

/// The scans of `store` in `namespace` (every namespace when `None`) for which `uses` holds.
fn scans_where<K: ScanKind>(
    store: &Store<K>,
    namespace: Option<&str>,
    uses: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>> {
    store
        .state()
        .iter()
        .filter(|scan| {
            namespace.is_none_or(|ns| scan.namespace().as_deref() == Some(ns)) && uses(scan)
        })
        .map(|scan| ObjectRef::from_obj(&**scan))
        .collect()
}

/// What a cached object that changed (or went) may concern.
enum Touched {
    /// The scans that name this ScanTemplate.
    Template {
        namespace: Option<String>,
        name: String,
    },
    /// The scans that name this ScanPolicy.
    Policy {
        namespace: Option<String>,
        name: String,
    },
    /// The scans an exception of this namespace may count for.
    Exception { namespace: Option<String> },
    /// The scans that own a report.
    Owned(Vec<ObjectRef<ImageScan>>, Vec<ObjectRef<SourceScan>>),
    /// The scans that own a Job; a Job that changed may free a slot of the queue.
    Job(Vec<ObjectRef<ImageScan>>, Vec<ObjectRef<SourceScan>>),
}

impl Touched {
    fn template(t: ScanTemplate) -> Self {
        Touched::Template {
            namespace: t.namespace(),
            name: t.name_any(),
        }
    }

    fn policy(p: ScanPolicy) -> Self {
        Touched::Policy {
            namespace: p.namespace(),
            name: p.name_any(),
        }
    }

    fn exception(e: ScanException) -> Self {
        Touched::Exception {
            namespace: e.namespace(),
        }
    }

    fn owned<K: Resource>(object: K) -> Self {
        let (images, sources) = owners(object.meta());
        Touched::Owned(images, sources)
    }

    fn job(job: Job) -> Self {
        let (images, sources) = owners(&job.metadata);
        Touched::Job(images, sources)
    }
}

impl ScanStores {
    /// Whether the scan is in its store.
    fn exists(&self, id: &ScanId) -> bool {
        match id.kind {
            Kind::ImageScan => Caches::get(&self.images, &id.namespace, &id.name).is_some(),
            Kind::SourceScan => Caches::get(&self.sources, &id.namespace, &id.name).is_some(),
        }
    }

    /// The scans a changed object concerns.
    fn concerned(
        &self,
        touched: Touched,
    ) -> (Vec<ObjectRef<ImageScan>>, Vec<ObjectRef<SourceScan>>) {
        type Pick = fn(&ScanSettings) -> Option<&str>;
        let named = |namespace: Option<String>, name: String, pick: Pick| {
            let ns = namespace.as_deref();
            (
                scans_where(&self.images, ns, |s: &ImageScan| {
                    pick(s.settings()) == Some(name.as_str())
                }),
                scans_where(&self.sources, ns, |s: &SourceScan| {
                    pick(s.settings()) == Some(name.as_str())
                }),
            )
        };
        match touched {
            Touched::Template { namespace, name } => {
                named(namespace, name, |s| s.scan_template.as_deref())
            }
            Touched::Policy { namespace, name } => {
                let config = &self.config;
                let is_default = namespace.as_deref() == Some(config.scangate_namespace.as_str())
                    && config.default_scan_policy.as_deref() == Some(name.as_str());
                let (mut images, mut sources) =
                    named(namespace, name, |s| s.scan_policy.as_deref());
                if is_default {
                    // The default policy judges the trusted scans that name none, everywhere.
                    let judged = |settings: &ScanSettings, namespace: Option<String>| {
                        settings.scan_policy.is_none()
                            && namespace.is_some_and(|ns| config.scans_are_trusted(&ns))
                    };
                    images.extend(scans_where(&self.images, None, |s: &ImageScan| {
                        judged(s.settings(), s.namespace())
                    }));
                    sources.extend(scans_where(&self.sources, None, |s: &SourceScan| {
                        judged(s.settings(), s.namespace())
                    }));
                }
                (images, sources)
            }
            Touched::Exception { namespace } => {
                // The admin's exceptions count for scans everywhere.
                let ns = namespace
                    .as_deref()
                    .filter(|ns| *ns != self.config.scangate_namespace);
                (
                    scans_where(&self.images, ns, |_: &ImageScan| true),
                    scans_where(&self.sources, ns, |_: &SourceScan| true),
                )
            }
            Touched::Owned(images, sources) | Touched::Job(images, sources) => (images, sources),
        }
    }
}

fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A reflector for `K`: its store, and the stream of objects it touched (which must be polled
/// for the store to fill).
fn reflect<K>(
    client: &Client,
    namespace: Option<&str>,
    config: watcher::Config,
    strip: fn(&mut K),
    touched: fn(K) -> Touched,
) -> (
    Store<K>,
    impl Stream<Item = Result<Touched, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    // The objects of the first list bring no scan: every scan is reconciled once the caches
    // are ready. Those of a later list (after the watch lost its place) do.
    let mut listed = false;
    let stream = watcher(api_for::<K>(client, namespace), config)
        .default_backoff()
        .modify(strip)
        .reflect(writer)
        .try_filter_map(move |event| {
            let object = match event {
                watcher::Event::Apply(o) | watcher::Event::Delete(o) => Some(o),
                watcher::Event::InitApply(o) => listed.then_some(o),
                watcher::Event::Init => None,
                watcher::Event::InitDone => {
                    listed = true;
                    None
                }
            };
            futures::future::ready(Ok(object.map(touched)))
        });
    (store, stream)
}

/// The watches of the caches: their stores, and the future that runs them and sends each
/// change to the scans it concerns (it runs until the triggers' receivers are gone).
pub fn start(
    client: &Client,
    namespace: Option<&str>,
    scans: ScanStores,
    triggers: Triggers,
    queue: Arc<Queue>,
) -> (
    Caches,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let any = watcher::Config::default;
    let (templates, t) = reflect(client, namespace, any(), strip_meta_of, Touched::template);
    let (policies, p) = reflect(client, namespace, any(), strip_meta_of, Touched::policy);
    let (exceptions, e) = reflect(client, namespace, any(), strip_meta_of, Touched::exception);
    let mut policies = vec![policies];
    let mut exceptions = vec![exceptions];
    let mut streams = vec![e.boxed()];
    let scangate = scans.config.scangate_namespace.as_str();
    if namespace.is_some_and(|ns| ns != scangate) {
        let (admins, a) = reflect(
            client,
            Some(scangate),
            any(),
            strip_meta_of,
            Touched::exception,
        );
        exceptions.push(admins);
        streams.push(a.boxed());
        if scans.config.default_scan_policy.is_some() {
            let (defaults, d) = reflect(
                client,
                Some(scangate),
                any(),
                strip_meta_of,
                Touched::policy,
            );
            policies.push(defaults);
            streams.push(d.boxed());
        }
    }
    let labelled = || watcher::Config::default().labels(SCAN_LABEL);
    let (jobs, j) = reflect(client, namespace, labelled(), strip_job, Touched::job);
    let job_store = jobs.clone();
    let (reports, r) = reflect(client, namespace, labelled(), strip_report, Touched::owned);
    streams.extend([t.boxed(), p.boxed(), j.boxed(), r.boxed()]);
    let all = futures::stream::select_all(streams);
    let Triggers {
        mut images,
        mut sources,
    } = triggers;
    let run = async move {
        let mut all = all;
        while let Some(item) = all.next().await {
            let touched = match item {
                Ok(touched) => touched,
                Err(error) => {
                    tracing::warn!(%error, "a cache's watch failed; retrying with backoff");
                    continue;
                }
            };
            let job_changed = matches!(touched, Touched::Job(..));
            let (to_images, to_sources) = scans.concerned(touched);
            for scan in to_images {
                if images.send(scan).await.is_err() {
                    return;
                }
            }
            for scan in to_sources {
                if sources.send(scan).await.is_err() {
                    return;
                }
            }
            if job_changed {
                queue.wake(&job_store, |id| scans.exists(id));
            }
        }
    };
    (
        Caches {
            templates,
            policies,
            exceptions,
            jobs,
            reports,
        },
        run,
    )
}

/// [`strip_meta`] for any cached object.
fn strip_meta_of<K: Resource>(object: &mut K) {
    strip_meta(object.meta_mut());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::reconcile::read_report;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::batch::v1::JobCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use std::collections::BTreeMap;

    fn ts(s: &str) -> Time {
        Time(s.parse().unwrap_or_else(|e| panic!("{e}")))
    }

    fn managed(time: &str) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            operation: Some("Apply".into()),
            time: Some(ts(time)),
            ..ManagedFieldsEntry::default()
        }
    }

    fn meta(annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some("busybox-report".into()),
            namespace: Some("apps".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            managed_fields: Some(vec![
                managed("2026-01-01T10:00:00Z"),
                managed("2026-01-01T12:00:00Z"),
                managed("2026-01-01T11:00:00Z"),
            ]),
            creation_timestamp: Some(ts("2026-01-01T09:00:00Z")),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn managed_fields_and_the_last_applied_copy_go_other_annotations_stay() {
        let mut m = meta(&[
            (LAST_APPLIED, "{...}"),
            ("scangate.dev/approved-by", "alice"),
        ]);
        strip_meta(&mut m);
        assert_eq!(m.managed_fields, None);
        assert_eq!(
            m.annotations,
            Some(BTreeMap::from([(
                "scangate.dev/approved-by".to_string(),
                "alice".to_string()
            )]))
        );
    }

    #[test]
    fn a_cached_job_keeps_what_the_planner_reads_not_its_pod() {
        let mut job = Job {
            metadata: meta(&[("scanning.scangate.dev/attempt", "1")]),
            spec: Some(JobSpec {
                active_deadline_seconds: Some(60),
                backoff_limit: Some(0),
                suspend: Some(true),
                template: PodTemplateSpec {
                    spec: Some(Default::default()),
                    ..PodTemplateSpec::default()
                },
                ..JobSpec::default()
            }),
            status: Some(JobStatus {
                active: Some(1),
                conditions: Some(vec![JobCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some("DeadlineExceeded".into()),
                    ..JobCondition::default()
                }]),
                completion_time: Some(ts("2026-01-01T12:00:00Z")),
                ..JobStatus::default()
            }),
        };
        let before = super::super::job::JobSummary::from_job(&job);
        strip_job(&mut job);
        assert_eq!(super::super::job::JobSummary::from_job(&job), before);
        assert_eq!(
            job.spec,
            Some(JobSpec {
                active_deadline_seconds: Some(60),
                suspend: Some(true),
                template: PodTemplateSpec::default(),
                ..JobSpec::default()
            })
        );
        assert_eq!(job.status.as_ref().and_then(|s| s.active), None);
        assert!(job.metadata.managed_fields.is_none());
    }

    #[test]
    fn a_cached_report_keeps_the_report_its_writer_and_when_it_was_stored() {
        let report = crate::report::Report::default();
        let scan = crate::report::ScanRef {
            api_version: "scanning.scangate.dev/v1beta1".into(),
            kind: "ImageScan".into(),
            name: "busybox".into(),
            namespace: "apps".into(),
            uid: "u".into(),
        };
        let mut config_map =
            crate::report::to_config_map(&report, &scan).unwrap_or_else(|e| panic!("{e}"));
        config_map.metadata.annotations =
            meta(&[(REPORTED_BY, "ci"), (LAST_APPLIED, "{}")]).annotations;
        config_map.metadata.managed_fields = meta(&[]).managed_fields;
        config_map.metadata.creation_timestamp = Some(ts("2026-01-01T09:00:00Z"));
        config_map.data = Some(BTreeMap::from([("other".to_string(), "x".to_string())]));
        if let Some(binary) = &mut config_map.binary_data {
            binary.insert("extra".into(), ByteString(vec![0; 1024]));
        }
        let before = read_report(&config_map);
        strip_report(&mut config_map);
        assert_eq!(read_report(&config_map), before);
        assert_eq!(
            before.map(|(_, at)| at),
            Ok("2026-01-01T12:00:00Z"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")))
        );
        assert_eq!(config_map.metadata.managed_fields.map(|m| m.len()), Some(1));
        assert_eq!(
            config_map.metadata.annotations,
            Some(BTreeMap::from([(
                REPORTED_BY.to_string(),
                "ci".to_string()
            )]))
        );
        assert_eq!(config_map.data, None);
        assert_eq!(
            config_map
                .binary_data
                .map(|b| b.into_keys().collect::<Vec<_>>()),
            Some(vec![REPORT_KEY.to_string()])
        );
    }

    #[test]
    fn jobs_and_reports_concern_the_scans_that_own_them() {
        let owner = |kind: &str, api_version: &str, name: &str| OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u".into(),
            ..OwnerReference::default()
        };
        let m = ObjectMeta {
            namespace: Some("apps".into()),
            owner_references: Some(vec![
                owner("ImageScan", "scanning.scangate.dev/v1beta1", "busybox"),
                owner("SourceScan", "scanning.scangate.dev/v1beta1", "repo"),
                // Another group's kind of the same name is not a scan.
                owner("ImageScan", "example.com/v1", "other"),
                owner("Deployment", "apps/v1", "web"),
            ]),
            ..ObjectMeta::default()
        };
        let (images, sources) = owners(&m);
        assert_eq!(images, [ObjectRef::new("busybox").within("apps")]);
        assert_eq!(sources, [ObjectRef::new("repo").within("apps")]);
    }

    #[test]
    fn the_default_policy_concerns_the_trusted_scans_that_name_no_policy() {
        let (images, mut writer) = reflector::store::<ImageScan>();
        for (namespace, name, policy) in [
            ("scangate-system", "first-sight", None),
            ("scangate-system", "named", Some("strict")),
            ("shop", "own", None),
            ("shop", "own-named", Some("baseline")),
        ] {
            let mut scan = ImageScan::new(
                name,
                crate::api::ImageScanSpec {
                    results_from: None,
                    registry: crate::api::RegistrySpec {
                        image: "busybox:1.32.1".into(),
                        image_pull_secret: None,
                    },
                    scan: ScanSettings {
                        scan_policy: policy.map(Into::into),
                        ..ScanSettings::default()
                    },
                },
            );
            scan.metadata.namespace = Some(namespace.into());
            writer.apply_watcher_event(&watcher::Event::Apply(scan));
        }
        let (sources, _) = reflector::store::<SourceScan>();
        let mut config = AdmissionConfig {
            default_scan_policy: Some("baseline".into()),
            ..AdmissionConfig::default()
        };
        let concerned = |config: &AdmissionConfig, namespace: &str, name: &str| {
            let stores = ScanStores {
                images: images.clone(),
                sources: sources.clone(),
                config: Arc::new(config.clone()),
            };
            let (images, _) = stores.concerned(Touched::Policy {
                namespace: Some(namespace.into()),
                name: name.into(),
            });
            let mut names: Vec<String> = images.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        };
        // The default policy: the trusted scans that name no policy.
        assert_eq!(
            concerned(&config, "scangate-system", "baseline"),
            ["first-sight"]
        );
        // A policy of that name elsewhere: the scans of its namespace that name it.
        assert_eq!(concerned(&config, "shop", "baseline"), ["own-named"]);
        // With trustNamespaceScans, a namespace's own scans are trusted results too.
        config.trust_namespace_scans = true;
        assert_eq!(
            concerned(&config, "scangate-system", "baseline"),
            ["first-sight", "own"]
        );
        // Without a defaultScanPolicy, a policy concerns the scans that name it only.
        config.default_scan_policy = None;
        assert!(concerned(&config, "scangate-system", "baseline").is_empty());
    }
}
