//! The reconciler: observes what the caches hold for a scan, plans with the pure functions of
//! [`super::plan`], and applies the plan (the Job, the policy in the sandbox, the metadata
//! store, the status write, the event). Nothing that matters is kept in memory: every reconcile
//! starts from the cluster's state, as the watches show it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::cache::Caches;
use super::evaluation::LastEvaluation;
use super::events::phase_note;
use super::job::{JobSummary, build_job, spec_fingerprint};
use super::kinds::{ScanKind, check_resolved};
use super::metrics::{ApiResource, Metrics, Verb};
use super::plan::{
    AttestationFound, Observed, ObservedReport, Outcomes, Plan, ReportFacts, ResolveTarget, Rules,
    Step, plan, rescan_interval, settle,
};
use super::policy::PolicyCache;
use super::queue::{Decision, Pool, Queue, ScanId};
use super::status::{PolicyState, ReportSource, SendState};
use super::store::{MetadataStore, ScanIdentity};
use super::writes::{StatusWrite, backoff, classify};
use super::{Error, Result};
use crate::admission::config::AdmissionConfig;
use crate::api::{Phase, ScanPolicy, ScanStatus, annotation, reason};
use crate::attest;
use crate::image::ImageRef;
use crate::policy::outcome;
use crate::registry::{DockerConfig, Resolved, Resolver};
use crate::report::{
    REPORTED_BY, Report, SCAN_LABEL, config_map_name, from_config_map, scan_label_value,
};
use crate::sandbox::Requester;

/// The field manager of the controller's status writes.
pub const FIELD_MANAGER: &str = "scangate-controller";

/// A status write that takes longer than this is given up, and tried again with backoff.
pub const STATUS_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Errors (missing template, failed Jobs, store failures) are retried after this long.
    pub error_retry: Duration,
    /// Finished Jobs are deleted after this long.
    pub job_ttl: Duration,
    /// Finished trusted scans by tag have their tag resolved again this long after its last
    /// resolution; `None`: never (`--tag-recheck-interval=0s`, or `--resolve-tags=false`).
    pub tag_recheck: Option<Duration>,
    /// A scan paused longer than this is canceled for good (`--pause-limit`).
    pub pause_limit: Duration,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// The admission rules: which namespaces are trusted, the exception rules, and what a
    /// template's pod must be for a Job to be created from it, as the webhook checks it (a
    /// template written before the rule never produces a pod).
    pub config: Arc<AdmissionConfig>,
    pub settings: Settings,
    /// Resolves ImageScans' tags before their Jobs start; `None` with `--resolve-tags=false`.
    pub resolver: Option<Resolver>,
    pub store: Option<MetadataStore>,
    pub policies: PolicyCache,
    pub metrics: Arc<Metrics>,
    /// Publishes the phase Events, off the reconcile.
    pub events: super::publisher::Publisher,
    /// What a reconcile reads.
    pub caches: Caches,
    /// The scans waiting for a slot to start their Job, and the slots granted.
    pub queue: Arc<Queue>,
    /// Status writes that failed in a row, per scan (`kind/namespace/name`); an entry goes
    /// when a write succeeds or the scan is being deleted.
    pub status_failures: Mutex<HashMap<String, u32>>,
    /// The status last written per scan, with the resourceVersion of the scan it was written
    /// over: while the scan's cache still shows that version, the write is what the status is.
    /// An entry goes when the cache shows another version or the scan is being deleted.
    pub written: Mutex<HashMap<String, (Option<String>, ScanStatus)>>,
    /// The last policy evaluation per scan, remembered once its status is written: an
    /// unchanged input is not evaluated again, one that gave no answer is retried with backoff.
    pub evaluations: Mutex<HashMap<String, LastEvaluation>>,
    /// Fetches images' attestations (and resolves the tags of ImageScans with `resultsFrom:
    /// Attestation`), whether or not `--resolve-tags` is on.
    pub registry: Resolver,
    /// The last look at the registry per ImageScan with `resultsFrom: Attestation`: the
    /// registry is asked again after [`ATTESTATION_RECHECK`] (or the scan's shorter
    /// `rescanInterval`; after the error-retry delay when it could not be asked), or when the
    /// scan's generation changes, not at every reconcile.
    pub attestations: Mutex<HashMap<String, LastFetch>>,
    /// The failed pushes of each scan's signed verdict (see [`super::verdicts`]).
    pub verdict_attempts: super::verdicts::Attempts,
}

/// An ImageScan with `resultsFrom: Attestation` looks at its image's attestations again this
/// long after its last look, or after its `rescanInterval` when that is shorter.
pub const ATTESTATION_RECHECK: Duration = Duration::from_secs(600);

/// One look at an image's attestations.
#[derive(Clone, Debug)]
pub struct LastFetch {
    generation: Option<i64>,
    at: Instant,
    /// The image pinned to its digest, and what its attestations gave; or why they could not
    /// be fetched.
    result: Result<(ImageRef, attest::Outcome), String>,
}

/// What the registry gives an ImageScan with `resultsFrom: Attestation` in this reconcile.
struct AttestationLook {
    found: AttestationFound,
    report: Option<ObservedReport>,
    /// Look again after this long.
    recheck: Duration,
}

/// Why a status write failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Kube(kube::Error),
    #[error("no answer within {STATUS_WRITE_TIMEOUT:?}")]
    Timeout,
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

/// The key of a scan in [`Context::status_failures`] and [`Context::written`].
fn failure_key<K: ScanKind>(scan: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        scan.namespace().unwrap_or_default(),
        scan.name_any()
    )
}

/// Observe, plan, apply, settle, write.
async fn reconcile_scan<K: ScanKind>(scan: &K, ctx: &Context) -> Result<Action> {
    let mut observed = observe(scan, ctx);
    let mut recheck = None;
    if let Some(image) = scan.attested_image()
        && !observed.deleting
    {
        match look_at_attestations(scan, image, &observed, ctx).await {
            // The registry could not be asked and a decided result stands: no status write.
            None => return Ok(Action::requeue(ctx.settings.error_retry)),
            Some(AttestationLook {
                found,
                report,
                recheck: after,
            }) => {
                // The attestation is the scan's only source: no Job, no report ConfigMap.
                observed.attestation = Some(found);
                observed.report = report;
                observed.resolve = None;
                observed.settings.scan_template = None;
                observed.template = None;
                observed.jobs.clear();
                recheck = Some(after);
            }
        }
    }
    let rules = Rules {
        config: &ctx.config,
        error_retry: ctx.settings.error_retry,
        store_configured: ctx.store.is_some(),
        tag_recheck: ctx.settings.tag_recheck,
        pause_limit: ctx.settings.pause_limit,
    };
    let id = ScanId::of(scan);
    let work = match plan(&observed, rules) {
        Plan::Forget => {
            ctx.queue.leave(&id, &ctx.caches.jobs);
            let key = failure_key(scan);
            if let Ok(mut failures) = ctx.status_failures.lock() {
                failures.remove(&key);
            }
            if let Ok(mut written) = ctx.written.lock() {
                written.remove(&key);
            }
            if let Ok(mut evaluations) = ctx.evaluations.lock() {
                evaluations.remove(&key);
            }
            if let Ok(mut looks) = ctx.attestations.lock() {
                looks.remove(&key);
            }
            if let Ok(mut attempts) = ctx.verdict_attempts.lock() {
                attempts.remove(&key);
            }
            return Ok(Action::await_change());
        }
        Plan::Work(work) => work,
    };
    let work = match &work.slot {
        Some(slot) => {
            let pool = Pool::of(&id.namespace, scan.labels(), &ctx.config.scangate_namespace);
            let decision = ctx
                .queue
                .admit(&id, pool, slot.since, &slot.job, &ctx.caches.jobs);
            if let Decision::Queued {
                position, waiting, ..
            } = &decision
            {
                tracing::debug!(position, waiting, "queued: waiting for a slot");
            }
            work.queued(&decision, &observed)
        }
        None => {
            ctx.queue.leave(&id, &ctx.caches.jobs);
            work
        }
    };
    let outcomes = apply(scan, &observed, &work.steps, ctx).await;
    if work.slot.is_some()
        && !matches!(
            &outcomes,
            Ok(Outcomes {
                created: Some(Ok(_)),
                ..
            })
        )
    {
        // Granted, but no Job: the slot goes to the next scan.
        ctx.queue.release(&id);
    }
    let outcomes = outcomes?;
    let mut settled = settle(&observed, work, outcomes, rules);
    let verdict_retry =
        super::verdicts::sign_verdict(scan, &failure_key(scan), &observed, &mut settled.write, ctx)
            .await;
    if let Some(status) = &settled.write {
        if let Some(retry) = write_status(scan, status, ctx).await {
            return Ok(Action::requeue(retry));
        }
        if settled.publish_event {
            publish_phase_event(scan, status, ctx);
        }
    }
    if let Some(evaluation) = settled.evaluation
        && let Ok(mut evaluations) = ctx.evaluations.lock()
    {
        evaluations.insert(failure_key(scan), evaluation);
    }
    let requeue = [settled.requeue_after, recheck, verdict_retry]
        .into_iter()
        .flatten()
        .min();
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// The attestations of the scan's image, fetched again when the last look is older than the
/// recheck interval or of another generation, verified with the configured keys. `None` when
/// the registry could not be asked and the scan's decided result stands.
async fn look_at_attestations<K: ScanKind>(
    scan: &K,
    spec_image: &str,
    o: &Observed,
    ctx: &Context,
) -> Option<AttestationLook> {
    let every = rescan_interval(o.settings.rescan_interval.as_deref())
        .map_or(ATTESTATION_RECHECK, |i| i.min(ATTESTATION_RECHECK));
    let rules = &ctx.config.attestations;
    // Checked when the config was read.
    let keys = rules.keys().unwrap_or_default();
    let max_age = rules.max_age();
    let refused = |message: String| {
        Some(AttestationLook {
            found: AttestationFound::NoResult {
                reason: reason::ATTESTATION_UNVERIFIED,
                message,
            },
            report: None,
            recheck: every,
        })
    };
    if !ctx.config.is_trusted_namespace(&o.namespace) {
        return refused(format!(
            "Attestations are verified only for ImageScans in {} and the admission config's \
             trustedScanNamespaces; no result was taken: scan the image with a ScanTemplate \
             here, or ask the admin for an ImageScan in a trusted namespace",
            ctx.config.scangate_namespace
        ));
    }
    if keys.is_empty() {
        return refused(
            "No attestation keys are configured, so no attestation can be verified: the admin \
             lists public keys in the admission config's attestations.keys"
                .into(),
        );
    }
    let key = failure_key(scan);
    // A look that failed is tried again after the error-retry delay.
    let valid_for = |l: &LastFetch| match l.result {
        Ok(_) => every,
        Err(_) => ctx.settings.error_retry.min(every),
    };
    let cached = ctx.attestations.lock().ok().and_then(|looks| {
        looks
            .get(&key)
            .filter(|l| l.generation == o.generation && l.at.elapsed() < valid_for(l))
            .cloned()
    });
    let look = match cached {
        Some(look) => look,
        None => {
            let look = LastFetch {
                generation: o.generation,
                at: Instant::now(),
                result: fetch_attestations(spec_image, scan.image_pull_secret(), o, ctx)
                    .await
                    .map(|(image, envelopes)| {
                        let digest = image.digest().unwrap_or_default().to_string();
                        let outcome = attest::choose(
                            &envelopes,
                            &keys,
                            &image.to_string(),
                            &digest,
                            max_age,
                            o.now,
                        );
                        (image, outcome)
                    }),
            };
            if let Ok(mut looks) = ctx.attestations.lock() {
                looks.insert(key, look.clone());
            }
            look
        }
    };
    let recheck = valid_for(&look)
        .saturating_sub(look.at.elapsed())
        .max(Duration::from_secs(1));
    let no_result = |reason: &'static str, message: String| {
        Some(AttestationLook {
            found: AttestationFound::NoResult { reason, message },
            report: None,
            recheck,
        })
    };
    let (image, outcome) = match look.result {
        Ok(found) => found,
        Err(error) => {
            let decided = o.previous.as_ref().is_some_and(|p| {
                p.observed_generation == o.generation
                    && matches!(p.phase, Some(Phase::Completed | Phase::Failed))
            });
            if decided {
                tracing::warn!(%error, "attestations not fetched: the result stands");
                return None;
            }
            return no_result(
                reason::ATTESTATION_UNAVAILABLE,
                format!(
                    "The attestations of {spec_image} could not be fetched: {error}; they are \
                     asked again in {}s",
                    recheck.as_secs()
                ),
            );
        }
    };
    let digest = image.digest().unwrap_or_default().to_string();
    let attested = match outcome {
        attest::Outcome::None => {
            return no_result(
                reason::ATTESTATION_MISSING,
                format!(
                    "{image} has no attestation in its registry (neither a referrer nor \
                     cosign's {} tag): attest the scanner's report with `cosign attest --type \
                     vuln`",
                    crate::registry::cosign_tag(&digest)
                ),
            );
        }
        attest::Outcome::Rejected(rejection) => {
            return no_result(rejection.reason(), rejection.message(&digest, max_age));
        }
        attest::Outcome::Verified(attested) => attested,
    };
    let expires = attest::expires_at(&attested, max_age);
    if expires.is_some_and(|at| at <= o.now) {
        let expired = attest::Rejection::Expired {
            key: attested.key.clone(),
            scan_finished_on: attested.scan_finished_on,
        };
        return no_result(expired.reason(), expired.message(&digest, max_age));
    }
    let until_expiry = expires
        .and_then(|at| at.duration_since(o.now).try_into().ok())
        .unwrap_or(recheck);
    let report = attested.report;
    let read = scan
        .check_report(&report)
        .map_err(|e| e.to_string())
        .map(|()| ReportFacts {
            artifact: scan.artifact(&report),
            exception_image: scan.exception_image(Some(&report)),
            stored_at: attested.scan_finished_on,
            report,
        });
    tracing::debug!(key = %attested.key, %digest, "attestation verified");
    Some(AttestationLook {
        found: AttestationFound::Verified {
            source: ReportSource::Attestation {
                key: attested.key,
                predicate_type: attested.predicate.as_str().to_string(),
                scan_finished_on: attested.scan_finished_on,
                db_version: attested.db_version,
            },
        },
        report: Some(ObservedReport {
            read,
            reported_by: None,
        }),
        recheck: recheck.min(until_expiry).max(Duration::from_secs(1)),
    })
}

/// The scan's image pinned to its digest (its tag resolved when it names none) and the
/// envelopes its registry holds for that digest, asked with the scan's pull secret.
async fn fetch_attestations(
    spec_image: &str,
    pull: Option<&str>,
    o: &Observed,
    ctx: &Context,
) -> std::result::Result<(ImageRef, Vec<Vec<u8>>), String> {
    let image = ImageRef::parse(spec_image).map_err(|e| e.to_string())?;
    let secret = match pull {
        Some(name) => Some(
            pull_secret(name, &o.namespace, ctx)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let credentials = secret
        .as_ref()
        .and_then(|c| c.credentials_for(image.registry()));
    let pinned = match image.digest() {
        Some(_) => image,
        None => {
            let resolved = ctx
                .registry
                .resolve(&image, credentials)
                .await
                .map_err(|e| e.to_string())?;
            image
                .with_digest(&resolved.digest)
                .map_err(|e| e.to_string())?
        }
    };
    let envelopes = ctx
        .registry
        .attestations(&pinned, credentials)
        .await
        .map_err(|e| e.to_string())?;
    Ok((pinned, envelopes))
}

/// What the caches hold for the scan. The status is the one this controller wrote last while
/// the scan's cache has not shown that write yet (the scan is the one it was written over).
fn observe<K: ScanKind>(scan: &K, ctx: &Context) -> Observed {
    let caches = &ctx.caches;
    let name = scan.name_any();
    let namespace = scan.namespace().unwrap_or_default();
    let uid = scan.uid().unwrap_or_default();
    let settings = scan.settings().clone();
    let key = failure_key(scan);
    let mut written = ctx
        .written
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let previous = match written.get(&key) {
        Some((over, status)) if *over == scan.resource_version() => Some(status.clone()),
        Some(_) => {
            written.remove(&key);
            scan.scan_status().cloned()
        }
        None => scan.scan_status().cloned(),
    };
    drop(written);
    let last_evaluation = ctx
        .evaluations
        .lock()
        .ok()
        .and_then(|evaluations| evaluations.get(&key).cloned());
    let resolve = ctx
        .resolver
        .as_ref()
        .and_then(|_| scan.tag_to_resolve())
        .map(|image| ResolveTarget {
            image,
            pull_secret: scan.image_pull_secret().map(str::to_string),
        });
    let resolution = previous.as_ref().and_then(|p| p.resolved.as_ref());
    let report = Caches::get(&caches.reports, &namespace, &config_map_name(&name))
        .filter(|cm| belongs_to(cm, &uid, &name))
        .map(|cm| ObservedReport {
            reported_by: cm.annotations().get(REPORTED_BY).cloned(),
            read: read_report(&cm).and_then(|(report, stored_at)| {
                // A report for another image (or repository) is refused, never used.
                scan.check_report(&report).map_err(|e| e.to_string())?;
                // A tag resolved before the Job: the report must be of that content.
                if let Some(target) = &resolve {
                    check_resolved(&target.image, resolution, &report)
                        .map_err(|e| e.to_string())?;
                }
                Ok(ReportFacts {
                    artifact: scan.artifact(&report),
                    exception_image: scan.exception_image(Some(&report)),
                    report,
                    stored_at,
                })
            }),
        });
    let template = settings
        .scan_template
        .as_deref()
        .and_then(|t| Caches::get(&caches.templates, &namespace, t));
    let jobs = match template {
        None => vec![],
        Some(_) => {
            let label = scan_label_value(&name);
            caches
                .jobs
                .state()
                .iter()
                .filter(|j| {
                    j.namespace().as_deref() == Some(namespace.as_str())
                        && j.labels().get(SCAN_LABEL) == Some(&label)
                        && j.owner_references().iter().any(|o| o.uid == uid)
                })
                .map(|j| JobSummary::from_job(j))
                .collect()
        }
    };
    let policy = settings
        .scan_policy
        .as_deref()
        .and_then(|p| caches.policy(&namespace, p));
    let default_policy = ctx
        .config
        .default_scan_policy
        .as_deref()
        .and_then(|p| caches.policy(&ctx.config.scangate_namespace, p));
    let sources = exception_namespaces(&namespace, &ctx.config);
    let exceptions = caches
        .exceptions
        .iter()
        .flat_map(Store::state)
        .filter(|e| {
            e.namespace()
                .is_some_and(|ns| sources.contains(&ns.as_str()))
        })
        .collect();
    let now = Timestamp::now();
    Observed {
        uid,
        generation: scan.meta().generation,
        deleting: scan.meta().deletion_timestamp.is_some(),
        created: scan.meta().creation_timestamp.as_ref().map_or(now, |t| t.0),
        rescan_request: scan.annotations().get(annotation::RESCAN).cloned(),
        reevaluate_request: scan.annotations().get(annotation::REEVALUATE).cloned(),
        cancel_request: scan.annotations().get(annotation::CANCEL).cloned(),
        spec: spec_fingerprint(
            serde_json::to_value(scan)
                .ok()
                .as_ref()
                .and_then(|v| v.get("spec"))
                .unwrap_or(&serde_json::Value::Null),
        ),
        resolve,
        settings,
        previous,
        report,
        attestation: None,
        template,
        jobs,
        policy,
        default_policy,
        exceptions,
        last_evaluation,
        now: Timestamp::from_second(now.as_second()).unwrap_or(now),
        name,
        namespace,
    }
}

/// Executes the steps, in order, and gathers their outcomes.
async fn apply<K: ScanKind>(
    scan: &K,
    observed: &Observed,
    steps: &[Step],
    ctx: &Context,
) -> Result<Outcomes> {
    let namespace = &observed.namespace;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let mut outcomes = Outcomes::default();
    // The image the Job scans in place of the spec's: the tag pinned to its resolved digest.
    let mut pinned: Option<ImageRef> = None;
    for step in steps {
        match step {
            Step::Resolve(target) => match resolve(target, namespace, ctx).await {
                Ok(resolved) => {
                    tracing::info!(image = %target.image, digest = %resolved.digest, "tag resolved");
                    pinned = target.image.with_digest(&resolved.digest).ok();
                    outcomes.resolved = Some(Ok(resolved));
                }
                Err(error) => {
                    tracing::warn!(image = %target.image, %error, "tag not resolved: no scan Job");
                    outcomes.resolved = Some(Err(error.to_string()));
                    // No Job, and the previous report stays: the steps after it are not run.
                    return Ok(outcomes);
                }
            },
            Step::DeleteReport { name } => {
                let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
                ctx.metrics.requested(Verb::delete, ApiResource::configmaps);
                match delete_ignoring_missing(&config_maps, name).await {
                    Err(Error::Kube(kube::Error::Api(status))) if status.code == 403 => {
                        // The new report will overwrite it; without `delete` on ConfigMaps, a
                        // Job that stores none is not told apart.
                        tracing::warn!(error = %status.message, "cannot delete the previous report before rescanning");
                    }
                    other => other?,
                }
            }
            Step::DeleteJob { name } => {
                ctx.metrics.requested(Verb::delete, ApiResource::jobs);
                delete_ignoring_missing(&jobs, name).await?;
            }
            Step::SuspendJob { name, suspend } => {
                ctx.metrics.requested(Verb::patch, ApiResource::jobs);
                let patch = serde_json::json!({ "spec": { "suspend": suspend } });
                jobs.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                tracing::info!(job = %name, suspend, "scan job {}", if *suspend { "paused" } else { "resumed" });
            }
            Step::CreateJob { key, template } => {
                let job = build_job(
                    scan,
                    &template.spec.template,
                    key,
                    ctx.settings.job_ttl,
                    &ctx.config.templates,
                    pinned.as_ref(),
                );
                let created = match create_or_adopt(&jobs, &job, &observed.uid, &ctx.metrics)
                    .await?
                {
                    Ok(job) => {
                        ctx.metrics
                            .jobs_created
                            .get_or_create(&super::metrics::KindLabels {
                                kind: K::kind(&()).into_owned(),
                            })
                            .inc();
                        tracing::info!(job = %job.name_any(), attempt = key.attempt, "scan job started");
                        Ok(JobSummary::from_job(&job).state)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "scan Job not created");
                        Err(error)
                    }
                };
                outcomes.created = Some(created);
            }
            Step::ForgetPolicy { namespace, name } => ctx.policies.remove(namespace, name),
            Step::EvaluatePolicy { policy, input } => {
                // Tenants are served in turn, each scan namespace as one tenant.
                let requester = ctx
                    .config
                    .policy_requester(namespace, || namespace.to_string());
                outcomes.policy = Some(evaluate_policy(&requester, policy, input, ctx).await?);
            }
            Step::SendResults { report } => {
                outcomes.sending = Some(send_results(scan, report, ctx).await);
            }
            Step::RecheckTag(target) => {
                let recorded = observed
                    .previous
                    .as_ref()
                    .and_then(|p| p.resolved.as_ref())
                    .and_then(|r| r.digest());
                outcomes.rechecked = Some(match resolve(target, namespace, ctx).await {
                    Ok(resolved) if recorded == Some(resolved.digest.as_str()) => {
                        tracing::debug!(image = %target.image, digest = %resolved.digest, "tag resolved again: unchanged");
                        Ok(resolved)
                    }
                    Ok(resolved) => {
                        tracing::info!(image = %target.image, digest = %resolved.digest, previous = ?recorded, "tag resolved again: it moved; scanning the new content");
                        Ok(resolved)
                    }
                    Err(error) => {
                        tracing::warn!(image = %target.image, %error, "tag not resolved again: the result stands");
                        Err(error.to_string())
                    }
                });
            }
        }
    }
    Ok(outcomes)
}

/// What the target's tag names at its registry now, asked with the credentials of the scan's
/// imagePullSecret for that registry (the Secret read by name in the scan's namespace).
async fn resolve(target: &ResolveTarget, namespace: &str, ctx: &Context) -> Result<Resolved> {
    // Planned only with a resolver (see `observe`).
    let Some(resolver) = &ctx.resolver else {
        return Err(Error::Registry(Box::new(crate::registry::Error::Client(
            "tag resolution is off (--resolve-tags=false)".into(),
        ))));
    };
    let config = match &target.pull_secret {
        Some(name) => Some(pull_secret(name, namespace, ctx).await?),
        None => None,
    };
    let credentials = config
        .as_ref()
        .and_then(|c| c.credentials_for(target.image.registry()));
    resolver
        .resolve(&target.image, credentials)
        .await
        .map_err(|e| Error::Registry(Box::new(e)))
}

/// The `.dockerconfigjson` of the Secret `name` in `namespace`.
pub(super) async fn pull_secret(
    name: &str,
    namespace: &str,
    ctx: &Context,
) -> Result<DockerConfig> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.requested(Verb::get, ApiResource::secrets);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|cause| Error::PullSecretUnreadable {
            namespace: namespace.to_string(),
            name: name.to_string(),
            cause,
        })?
        .ok_or_else(|| Error::PullSecretMissing {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })?;
    let json = secret
        .data
        .as_ref()
        .and_then(|d| d.get(DOCKER_CONFIG_KEY))
        .filter(|_| secret.type_.as_deref() == Some(DOCKER_CONFIG_TYPE))
        .ok_or_else(|| Error::PullSecretType {
            namespace: namespace.to_string(),
            name: name.to_string(),
            type_: secret.type_.clone().unwrap_or_default(),
        })?;
    DockerConfig::parse(&json.0).map_err(|cause| Error::PullSecretFormat {
        namespace: namespace.to_string(),
        name: name.to_string(),
        cause: Box::new(cause),
    })
}

/// The type of a pull secret, and its key.
const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

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
    ctx.metrics.requested(Verb::patch, ApiResource::scans);
    // `fieldValidation=Ignore`: by default the apiserver parses each apply's YAML a second
    // time, strictly, only to warn of unknown fields, and kube drops warnings. The status is
    // built from the typed status, which a test keeps equal to the CRD's schema. That second
    // parse took 6 % of the apiserver's CPU while it applied these statuses (BENCHMARKS.md).
    let params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_ignore();
    let written = tokio::time::timeout(
        STATUS_WRITE_TIMEOUT,
        api.patch_status(&scan.name_any(), &params, &Patch::Apply(&patch)),
    )
    .await;
    let key = failure_key(scan);
    let mut failures = ctx
        .status_failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let error = match written {
        Ok(Ok(updated)) => {
            failures.remove(&key);
            ctx.metrics.status_written(StatusWrite::ok);
            if let Some(status) = updated.scan_status()
                && let Ok(mut written) = ctx.written.lock()
            {
                written.insert(key, (scan.resource_version(), status.clone()));
            }
            return None;
        }
        Ok(Err(error)) => WriteError::Kube(error),
        Err(_) => WriteError::Timeout,
    };
    let code = match &error {
        WriteError::Kube(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    };
    let result = classify(code);
    ctx.metrics.status_written(result);
    let count = failures.entry(key).or_insert(0);
    *count = count.saturating_add(1);
    let retry = backoff(*count, ctx.settings.error_retry);
    match &error {
        WriteError::Kube(kube::Error::Api(status)) if result == StatusWrite::refused => {
            tracing::warn!(
                code = status.code,
                reason = %status.reason,
                cause = %status.message,
                failures = *count,
                retry_in = ?retry,
                "the apiserver refused the status write; retrying (when scangate's status webhook refused it, the controller does not run as the identity of `controllerUsername` in the admission config)"
            )
        }
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
async fn create_or_adopt(
    api: &Api<Job>,
    job: &Job,
    uid: &str,
    metrics: &Metrics,
) -> Result<Result<Job, String>> {
    metrics.requested(Verb::create, ApiResource::jobs);
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
            metrics.requested(Verb::get, ApiResource::jobs);
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

/// Evaluates the policy in the sandbox, in the requester's lane, on the report with its
/// exceptions.
async fn evaluate_policy(
    requester: &Requester,
    policy: &ScanPolicy,
    input: &Report,
    ctx: &Context,
) -> Result<PolicyState> {
    use super::policy::Evaluated;
    use crate::policy::Outcome;
    let generation = policy.metadata.generation;
    let value = serde_json::to_value(input)?;
    Ok(
        match ctx.policies.evaluate(requester, policy, value).await {
            Evaluated::Ran(evaluation) => PolicyState::Evaluated {
                outcome: outcome(input, Ok(evaluation)),
                generation,
            },
            Evaluated::Failed(error) => PolicyState::Evaluated {
                outcome: Outcome::error(error),
                generation,
            },
            Evaluated::DoesNotCompile(error) => PolicyState::Error { error, generation },
            Evaluated::Stopped(error) => PolicyState::Unanswered {
                error,
                generation,
                limit: true,
            },
            Evaluated::Unavailable(error) => PolicyState::Unanswered {
                error,
                generation,
                limit: false,
            },
        },
    )
}

/// The namespaces whose exceptions may shape a scan's result in `namespace`.
fn exception_namespaces<'a>(namespace: &'a str, config: &'a AdmissionConfig) -> Vec<&'a str> {
    let mut sources = vec![config.scangate_namespace.as_str()];
    if config.exception_counts_for_scan(namespace, namespace) && namespace != sources[0] {
        sources.push(namespace);
    }
    sources
}

/// Sends the report to the metadata store.
async fn send_results<K: ScanKind>(scan: &K, report: &Report, ctx: &Context) -> SendState {
    let Some(store) = &ctx.store else {
        return SendState::NotConfigured;
    };
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

/// Queues the Event of a phase change (see [`super::publisher`]).
fn publish_phase_event<K: ScanKind>(scan: &K, status: &ScanStatus, ctx: &Context) {
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
    ctx.events.send(event, scan.object_ref(&()));
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
