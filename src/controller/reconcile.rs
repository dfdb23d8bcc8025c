//! The reconciler: gathers what the cluster says about a scan (I/O), decides with the pure
//! functions of `job` and `status`, and applies the result. Nothing that matters is kept in
//! memory: every reconcile starts from the cluster's state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::events::phase_note;
use super::job::{JobAction, JobState, JobSummary, PlanInputs, build_job, plan, rescan_at, until};
use super::kinds::ScanKind;
use super::metrics::Metrics;
use super::policy::{PolicyCache, exceptions_input};
use super::status::{
    PolicyState, ReportSource, Results, ScanState, SendState, StatusInputs, desired_status,
    previous_facts, state_from_job, state_without_job,
};
use super::store::{MetadataStore, ScanIdentity};
use super::writes::{StatusWrite, backoff, classify};
use super::{Error, Result};
use crate::admission::config::AdmissionConfig;
use crate::admission::scanning::template_pod;
use crate::api::{
    ConditionStatus, ConditionType, Phase, ScanException, ScanPolicy, ScanStatus, ScanTemplate,
    Scanner,
};
use crate::policy::outcome;
use crate::report::{
    REPORTED_BY, Report, SCAN_LABEL, config_map_name, from_config_map, scan_label_value,
};

/// The field manager of the controller's status writes.
pub const FIELD_MANAGER: &str = "scangate-controller";

/// The Succeeded message of a scan whose report was pushed (no template).
pub const PUSHED_MESSAGE: &str = "The report was pushed with scangate report";

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Errors (missing template, failed Jobs, store failures) are retried after this long.
    pub error_retry: Duration,
    /// Finished Jobs are deleted after this long.
    pub job_ttl: Duration,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// The admission rules: which namespaces are trusted, the exception rules, and what a
    /// template's pod must be for a Job to be created from it, as the webhook checks it (a
    /// template written before the rule never produces a pod).
    pub config: Arc<AdmissionConfig>,
    pub settings: Settings,
    pub store: Option<MetadataStore>,
    pub policies: PolicyCache,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Status writes that failed in a row, per scan (`kind/namespace/name`); an entry goes
    /// when a write succeeds or the scan is being deleted.
    pub status_failures: Mutex<HashMap<String, u32>>,
}

/// Reconciles one scan, in a span, counting it.
pub async fn reconcile<K: ScanKind>(scan: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let kind = K::kind(&());
    let span = tracing::info_span!(
        "reconcile",
        kind = %kind,
        namespace = %scan.namespace().unwrap_or_default(),
        name = %scan.name_any(),
    );
    let started = Instant::now();
    let result = reconcile_scan(&*scan, &ctx).instrument(span.clone()).await;
    ctx.metrics
        .reconciled(&kind, result.is_ok(), started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        span.in_scope(|| tracing::warn!(error = %e, "reconcile failed"));
    }
    result
}

/// Retries a failed reconcile after the error-retry delay.
pub fn error_policy<K: ScanKind>(_scan: Arc<K>, _error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(ctx.settings.error_retry)
}

/// A report read from its ConfigMap, or why it could not be.
type ReadReport = Result<(Report, Timestamp), String>;

/// The key of a scan in [`Context::status_failures`].
fn failure_key<K: ScanKind>(scan: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        scan.namespace().unwrap_or_default(),
        scan.name_any()
    )
}

async fn reconcile_scan<K: ScanKind>(scan: &K, ctx: &Context) -> Result<Action> {
    if scan.meta().deletion_timestamp.is_some() {
        if let Ok(mut failures) = ctx.status_failures.lock() {
            failures.remove(&failure_key(scan));
        }
        return Ok(Action::await_change());
    }
    let client = &ctx.client;
    let settings = &ctx.settings;
    let name = scan.name_any();
    let namespace = scan.namespace().unwrap_or_default();
    let uid = scan.uid().unwrap_or_default();
    let generation = scan.meta().generation;
    let spec = scan.settings();
    let previous = scan.scan_status();
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::now());
    let mut wake: Vec<Timestamp> = vec![];
    let mut retry_errors = false;

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let report_name = config_map_name(&name);
    let report_map = config_maps
        .get_opt(&report_name)
        .await?
        .filter(|cm| belongs_to(cm, &uid, &name));
    let reported_by = report_map
        .as_ref()
        .and_then(|cm| cm.annotations().get(REPORTED_BY).cloned());
    let mut report: Option<ReadReport> = report_map.map(|cm| {
        let (report, stored_at) = read_report(&cm)?;
        // A report for another image (or repository) is refused, never used.
        scan.check_report(&report).map_err(|e| e.to_string())?;
        Ok((report, stored_at))
    });
    // The Job whose report the scan shows, when it still exists.
    let mut report_job = None;

    let mut template_generation = None;
    let state = match &spec.scan_template {
        None => state_without_job(previous, ok_of(&report).as_ref(), PUSHED_MESSAGE),
        Some(template_name) => {
            let templates: Api<ScanTemplate> = Api::namespaced(client.clone(), &namespace);
            match templates.get_opt(template_name).await? {
                None => {
                    retry_errors = true;
                    ScanState::Unrunnable {
                        error: format!("ScanTemplate {template_name} not found"),
                    }
                }
                Some(template) => {
                    let tgen = template.metadata.generation.unwrap_or(0);
                    template_generation = Some(tgen);
                    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
                    let owned: Vec<Job> = jobs
                        .list(
                            &ListParams::default()
                                .labels(&format!("{SCAN_LABEL}={}", scan_label_value(&name))),
                        )
                        .await?
                        .items
                        .into_iter()
                        .filter(|j| j.owner_references().iter().any(|o| o.uid == uid))
                        .collect();
                    let previous_facts = previous_facts(previous, generation, template_generation);
                    let decided = plan(&PlanInputs {
                        scan_uid: uid.clone(),
                        scan_generation: generation.unwrap_or(0),
                        template_generation: tgen,
                        jobs: owned.iter().map(JobSummary::from_job).collect(),
                        previous: previous_facts,
                        report_ok: matches!(report, Some(Ok(_))),
                        rescan_interval: rescan_interval(spec.rescan_interval.as_deref()),
                        suspend: spec.suspend,
                        error_retry: settings.error_retry,
                        now,
                    });
                    wake.extend(decided.requeue_at);
                    let allowed = template_pod(
                        template_name,
                        &template.spec.template,
                        &ctx.config.templates,
                    );
                    match (decided.action, allowed) {
                        (JobAction::Use(job), _) => {
                            report_job = Some(job.name.clone());
                            state_from_job(&job.state, ok_of(&report).as_ref(), &report_name)
                        }
                        (JobAction::Idle, _) => {
                            state_without_job(previous, ok_of(&report).as_ref(), "Complete")
                        }
                        (JobAction::Create(_), Err(error)) => {
                            // The template's watch brings the scan back when it is fixed.
                            tracing::warn!(%error, "scan Job not created: the template's pod is refused");
                            ScanState::Unrunnable { error }
                        }
                        (JobAction::Create(key), Ok(())) => {
                            // A new scan: the old report must not pass for its result.
                            if report.take().is_some() {
                                match delete_ignoring_missing(&config_maps, &report_name).await {
                                    Err(Error::Kube(kube::Error::Api(status)))
                                        if status.code == 403 =>
                                    {
                                        // The new report will overwrite it; without `delete` on
                                        // ConfigMaps, a Job that stores none is not told apart.
                                        tracing::warn!(error = %status.message, "cannot delete the previous report before rescanning");
                                    }
                                    other => other?,
                                }
                            }
                            for old in owned
                                .iter()
                                .filter(|j| JobSummary::from_job(j).state == JobState::Running)
                            {
                                delete_ignoring_missing(&jobs, &old.name_any()).await?;
                            }
                            let job = build_job(
                                scan,
                                &template.spec.template,
                                &key,
                                settings.job_ttl,
                                &ctx.config.templates.service_account,
                            );
                            match create_or_adopt(&jobs, &job, &uid).await? {
                                Ok(job) => {
                                    ctx.metrics
                                        .jobs_created
                                        .get_or_create(&super::metrics::KindLabels {
                                            kind: K::kind(&()).into_owned(),
                                        })
                                        .inc();
                                    tracing::info!(job = %job.name_any(), attempt = key.attempt, "scan job started");
                                    let summary = JobSummary::from_job(&job);
                                    state_from_job(&summary.state, None, &report_name)
                                }
                                Err(error) => {
                                    retry_errors = true;
                                    ScanState::Unrunnable { error }
                                }
                            }
                        }
                    }
                }
            }
        }
    };

    let mut results = None;
    if let (ScanState::Finished { .. }, Some(Ok((report, stored_at)))) = (&state, &report) {
        let (policy, expiry, report_for_store) =
            evaluate_policy(scan, report, &namespace, now, ctx).await?;
        if matches!(policy, PolicyState::Error { .. }) {
            retry_errors = true;
        }
        wake.extend(expiry);
        let sending = send_results(scan, &report_for_store, *stored_at, previous, ctx).await;
        if matches!(sending, SendState::Failed { .. }) {
            retry_errors = true;
        }
        if !spec.suspend
            && spec.scan_template.is_some()
            && let Some(at) = rescan_at(
                Some(*stored_at),
                rescan_interval(spec.rescan_interval.as_deref()),
            )
        {
            wake.push(at);
        }
        results = Some(Results {
            cve_count: report.cve_count(),
            artifact: scan.artifact(report),
            scanner: Scanner {
                name: report.scanner.name.clone(),
                vendor: report.scanner.vendor.clone(),
                version: report.scanner.version.clone(),
            },
            stored_at: *stored_at,
            source: match &spec.scan_template {
                Some(template) => ReportSource::Job {
                    namespace: namespace.clone(),
                    job: report_job.clone(),
                    template: template.clone(),
                },
                None => ReportSource::Pushed {
                    by: reported_by.clone(),
                },
            },
            policy,
            sending,
        });
    }

    let desired = desired_status(&StatusInputs {
        generation,
        template_generation,
        previous,
        state,
        results,
        now,
    });
    let changed = match previous {
        Some(p) => serde_json::to_value(p)? != serde_json::to_value(&desired)?,
        None => true,
    };
    if changed {
        if let Some(retry) = write_status(scan, &desired, ctx).await {
            return Ok(Action::requeue(retry));
        }
        let old_phase = previous.and_then(|p| p.phase);
        if desired.phase != old_phase {
            publish_phase_event(scan, &desired, ctx).await;
        }
    }

    if retry_errors {
        wake.push(
            now.checked_add(
                jiff::SignedDuration::try_from(settings.error_retry).unwrap_or_default(),
            )
            .unwrap_or(now),
        );
    }
    Ok(match wake.into_iter().min() {
        Some(at) => Action::requeue(until(now, at).max(Duration::from_secs(1))),
        None => Action::await_change(),
    })
}

/// `Ok(())` or the error, for the pure state functions.
fn ok_of(report: &Option<ReadReport>) -> Option<Result<(), String>> {
    report
        .as_ref()
        .map(|r| r.as_ref().map(|_| ()).map_err(Clone::clone))
}

fn rescan_interval(text: Option<&str>) -> Option<Duration> {
    text.and_then(|t| crate::api::parse_duration(t).ok())
        .filter(|d| !d.is_zero())
}

/// Writes the scan's status (server-side apply) and counts the write. `None` when written;
/// when the apiserver refused it or could not be reached, the delay after which to try again
/// (1 s, doubled per failure in a row of this scan, at most `error_retry`), with the cause
/// logged.
async fn write_status<K: ScanKind>(
    scan: &K,
    desired: &ScanStatus,
    ctx: &Context,
) -> Option<Duration> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &scan.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired,
    });
    let written = api
        .patch_status(
            &scan.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    let key = failure_key(scan);
    let mut failures = ctx
        .status_failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let error = match written {
        Ok(_) => {
            failures.remove(&key);
            ctx.metrics.status_written(StatusWrite::ok);
            return None;
        }
        Err(error) => error,
    };
    let code = match &error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    };
    let result = classify(code);
    ctx.metrics.status_written(result);
    let count = failures.entry(key).or_insert(0);
    *count = count.saturating_add(1);
    let retry = backoff(*count, ctx.settings.error_retry);
    match &error {
        kube::Error::Api(status) if result == StatusWrite::refused => tracing::warn!(
            code = status.code,
            reason = %status.reason,
            cause = %status.message,
            failures = *count,
            retry_in = ?retry,
            "the apiserver refused the status write; retrying (when scangate's status webhook refused it, the controller does not run as the identity of `controllerUsername` in the admission config)"
        ),
        _ => tracing::warn!(
            error = %error,
            failures = *count,
            retry_in = ?retry,
            "the status write failed; retrying"
        ),
    }
    Some(retry)
}

/// Whether a report ConfigMap belongs to the scan: it carries the scan's label, and when it
/// has owners, the scan (by uid) is one of them. An ownerReference alone is not enough (anyone
/// who can write ConfigMaps can set one), nor a label on a ConfigMap owned by something else.
pub fn belongs_to(config_map: &ConfigMap, uid: &str, scan_name: &str) -> bool {
    let labelled = config_map
        .labels()
        .get(SCAN_LABEL)
        .is_some_and(|v| *v == scan_label_value(scan_name));
    let owners = config_map.owner_references();
    labelled && (owners.is_empty() || owners.iter().any(|o| o.uid == uid))
}

/// Reads the report and when it was stored: the latest write recorded in the ConfigMap's
/// managed fields, else its creation.
pub fn read_report(config_map: &ConfigMap) -> ReadReport {
    let report = from_config_map(config_map).map_err(|e| e.to_string())?;
    let created = config_map.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let written = config_map
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max();
    let stored_at = [created, written]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    Ok((report, stored_at))
}

async fn delete_ignoring_missing<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates the Job; when it exists already (a restart, or a lost response), adopts it if it is
/// the scan's. A Job the apiserver refuses (an invalid template, a quota, a policy) is
/// `Ok(Err(cause))`: the scan shows the cause.
async fn create_or_adopt(api: &Api<Job>, job: &Job, uid: &str) -> Result<Result<Job, String>> {
    match api.create(&PostParams::default(), job).await {
        Ok(created) => Ok(Ok(created)),
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
            Ok(Err(format!(
                "cannot create the scan Job from ScanTemplate: {}",
                status.message
            )))
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let name = job.name_any();
            let existing = api.get(&name).await?;
            if existing.owner_references().iter().any(|o| o.uid == uid) {
                Ok(Ok(existing))
            } else {
                Err(Error::JobNotOurs { name })
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Evaluates the scan's policy with the active exceptions; returns the policy state, when the
/// first exception used expires, and the report as evaluated (with `exceptions`).
async fn evaluate_policy<K: ScanKind>(
    scan: &K,
    report: &Report,
    namespace: &str,
    now: Timestamp,
    ctx: &Context,
) -> Result<(PolicyState, Option<Timestamp>, Report)> {
    let mut evaluated = report.clone();
    let Some(policy_name) = &scan.settings().scan_policy else {
        return Ok((PolicyState::NoPolicy, None, evaluated));
    };
    let policies: Api<ScanPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(policy) = policies.get_opt(policy_name).await? else {
        ctx.policies.remove(namespace, policy_name);
        return Ok((
            PolicyState::Error {
                error: format!("ScanPolicy {policy_name} not found"),
                generation: None,
            },
            None,
            evaluated,
        ));
    };
    use super::policy::Evaluated;
    use crate::policy::Outcome;
    let generation = policy.metadata.generation.unwrap_or(0);
    let mut all = vec![];
    for source in exception_namespaces(namespace, &ctx.config) {
        let exceptions: Api<ScanException> = Api::namespaced(ctx.client.clone(), source);
        all.extend(exceptions.list(&ListParams::default()).await?.items);
    }
    let image = scan.exception_image(Some(report));
    let (active, expiry) = exceptions_input(&all, image.as_ref(), namespace, &ctx.config, now);
    evaluated.exceptions = active;
    let input = serde_json::to_value(&evaluated)?;
    let state = match ctx.policies.evaluate(&policy, input).await {
        Evaluated::Ran(evaluation) => PolicyState::Evaluated {
            outcome: outcome(&evaluated, Ok(evaluation)),
            generation,
        },
        Evaluated::Failed(error) => PolicyState::Evaluated {
            outcome: Outcome::error(error),
            generation,
        },
        Evaluated::DoesNotCompile(error) | Evaluated::Unavailable(error) => PolicyState::Error {
            error,
            generation: Some(generation),
        },
    };
    Ok((state, expiry, evaluated))
}

/// The namespaces whose exceptions may shape a scan's result in `namespace`.
fn exception_namespaces<'a>(namespace: &'a str, config: &'a AdmissionConfig) -> Vec<&'a str> {
    let mut sources = vec![config.scangate_namespace.as_str()];
    if config.exception_counts_for_scan(namespace, namespace) && namespace != sources[0] {
        sources.push(namespace);
    }
    sources
}

/// Sends the report to the metadata store unless it was sent already (same report).
async fn send_results<K: ScanKind>(
    scan: &K,
    report: &Report,
    stored_at: Timestamp,
    previous: Option<&ScanStatus>,
    ctx: &Context,
) -> SendState {
    let Some(store) = &ctx.store else {
        return SendState::NotConfigured;
    };
    if let Some(p) = previous {
        let sent = p
            .conditions
            .iter()
            .any(|c| c.type_ == ConditionType::SendingResults && c.status == ConditionStatus::True);
        let same_report = p.scanned_at.as_ref().map(|t| t.0) == Some(stored_at);
        if sent
            && same_report
            && let Some(url) = &p.metadata_url
        {
            return SendState::Sent { url: url.clone() };
        }
    }
    let identity = ScanIdentity {
        kind: K::kind(&()).into_owned(),
        namespace: scan.namespace().unwrap_or_default(),
        name: scan.name_any(),
        uid: scan.uid().unwrap_or_default(),
    };
    match store.send(&identity, report).await {
        Ok(url) => {
            tracing::info!(url = %url, "results sent to the metadata store");
            SendState::Sent { url }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot send results to the metadata store");
            SendState::Failed {
                error: e.to_string(),
            }
        }
    }
}

async fn publish_phase_event<K: ScanKind>(scan: &K, status: &ScanStatus, ctx: &Context) {
    let phase = status.phase.unwrap_or(Phase::Pending);
    let type_ = match phase {
        Phase::Failed | Phase::Error => EventType::Warning,
        _ => EventType::Normal,
    };
    let event = Event {
        type_,
        reason: phase.as_str().to_string(),
        note: Some(phase_note(phase, &status.conditions)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &scan.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use std::collections::BTreeMap;

    fn config_map(label: Option<&str>, owner_uids: &[&str]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("busybox-report".into()),
                labels: label.map(|v| BTreeMap::from([(SCAN_LABEL.to_string(), v.to_string())])),
                owner_references: Some(
                    owner_uids
                        .iter()
                        .map(|uid| OwnerReference {
                            api_version: "scanning.scangate.dev/v1beta1".into(),
                            kind: "ImageScan".into(),
                            name: "busybox".into(),
                            uid: (*uid).into(),
                            ..OwnerReference::default()
                        })
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn a_report_counts_only_with_the_scan_label_and_the_scan_among_its_owners() {
        assert!(belongs_to(
            &config_map(Some("busybox"), &["u1"]),
            "u1",
            "busybox"
        ));
        assert!(belongs_to(
            &config_map(Some("busybox"), &[]),
            "u1",
            "busybox"
        ));
        assert!(belongs_to(
            &config_map(Some("busybox"), &["other", "u1"]),
            "u1",
            "busybox"
        ));
        // An ownerReference alone is not enough.
        assert!(!belongs_to(&config_map(None, &["u1"]), "u1", "busybox"));
        assert!(!belongs_to(
            &config_map(Some("alpine"), &["u1"]),
            "u1",
            "busybox"
        ));
        // Labelled, but owned by something else (a scan of the same name, deleted and made again).
        assert!(!belongs_to(
            &config_map(Some("busybox"), &["old"]),
            "u1",
            "busybox"
        ));
    }
}
