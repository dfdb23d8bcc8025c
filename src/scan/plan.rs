//! The planner of one reconcile, pure. From what the caches hold for a scan ([`Observed`]),
//! [`plan`] decides the effects ([`Step`]: delete the previous report or a stale Job, create
//! (or adopt) the Job, resolving the image's tag at its registry first, evaluate the policy
//! that judges the report ([`judge`]), send the results, resolve a finished trusted scan's tag
//! again when its resolution is due ([`tag_recheck`])); from their outcomes
//! ([`Outcomes`]), [`settle`] decides the status to write (none when it equals the observed
//! one), whether to publish the phase event, and when to come back. The reconciler only
//! gathers the inputs and executes what these say.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::evaluation::{self, LastEvaluation, Next};
use super::job::{JobAction, JobKey, JobState, JobSummary, PlanInputs, job_name, rescan_at, until};
use super::policy::{built_in_policy, exceptions_input};
use super::progress::Round;
use super::queue::{Decision, QUEUED_RECHECK};
use super::status::{
    PolicyState, ReportSource, Results, ScanState, SendState, StatusInputs, desired_status,
    not_resolved_again, previous_facts, state_from_job, state_without_job,
};
use crate::admission::config::AdmissionConfig;
use crate::admission::scanning::template_pod;
use crate::api::{
    Artifact, ConditionStatus, ConditionType, JudgingPolicy, PolicySource, Resolution,
    ResolvedPlatform, ScanException, ScanPolicy, ScanSettings, ScanStatus, ScanTemplate, Scanner,
    reason,
};
use crate::image::ImageRef;
use crate::registry::Resolved;
use crate::report::Report;

/// The Succeeded message of a scan whose report was pushed (no template).
pub const PUSHED_MESSAGE: &str = "The report was pushed with scangate report";

/// A report the scan may use, as the caches hold it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportFacts {
    pub report: Report,
    /// When it was stored.
    pub stored_at: Timestamp,
    /// What it says was scanned, as the scan's status shows it.
    pub artifact: Artifact,
    /// The image exceptions are matched against.
    pub exception_image: Option<ImageRef>,
}

/// The scan's report ConfigMap (one that belongs to the scan).
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedReport {
    /// The report, or why it cannot be used (unreadable, or for another image or repository).
    pub read: Result<ReportFacts, String>,
    /// Who pushed it, as the webhook recorded it.
    pub reported_by: Option<String>,
}

/// What an ImageScan with `resultsFrom: Attestation` found in its image's registry; with a
/// verified one, [`Observed::report`] holds its report.
#[derive(Clone, Debug, PartialEq)]
pub enum AttestationFound {
    /// A verified attestation: where its report came from (a [`ReportSource::Attestation`]).
    Verified { source: ReportSource },
    /// No result: the reason of the `Scanning=False` condition and its message.
    NoResult {
        reason: &'static str,
        message: String,
    },
}

/// An image's tag to resolve at its registry before its scan Job starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveTarget {
    /// The spec's image: a tag, no digest.
    pub image: ImageRef,
    /// The scan's imagePullSecret, read in the scan's namespace.
    pub pull_secret: Option<String>,
}

/// Everything one reconcile decides from: the scan and what the caches hold for it.
#[derive(Clone, Debug)]
pub struct Observed {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub generation: Option<i64>,
    /// The scan is being deleted.
    pub deleting: bool,
    /// When the scan was created: its place in the queue for its first Job.
    pub created: Timestamp,
    /// The scan's `scangate.dev/rescan` annotation.
    pub rescan_request: Option<String>,
    /// The scan's `scangate.dev/reevaluate` annotation.
    pub reevaluate_request: Option<String>,
    /// The scan's `scangate.dev/cancel` annotation.
    pub cancel_request: Option<String>,
    /// [`super::job::spec_fingerprint`] of the scan's spec.
    pub spec: String,
    /// The tag to resolve before a Job starts: ImageScans by tag (no digest), when the
    /// controller resolves tags.
    pub resolve: Option<ResolveTarget>,
    pub settings: ScanSettings,
    pub previous: Option<ScanStatus>,
    pub report: Option<ObservedReport>,
    /// For an ImageScan with `resultsFrom: Attestation`: what its registry holds. No Job runs
    /// for it, whatever its template.
    pub attestation: Option<AttestationFound>,
    /// The scan's ScanTemplate, when it names one and it exists.
    pub template: Option<Arc<ScanTemplate>>,
    /// The Jobs owned by the scan.
    pub jobs: Vec<JobSummary>,
    /// The scan's ScanPolicy, when it names one and it exists.
    pub policy: Option<Arc<ScanPolicy>>,
    /// The admission config's `defaultScanPolicy` (in scangate's namespace), when the config
    /// names one and it exists.
    pub default_policy: Option<Arc<ScanPolicy>>,
    /// The ScanExceptions of the namespaces whose exceptions may count for this scan.
    pub exceptions: Vec<Arc<ScanException>>,
    /// The scan's last policy evaluation, as this controller remembers it.
    pub last_evaluation: Option<LastEvaluation>,
    pub now: Timestamp,
}

/// The rules a plan follows, from the controller's configuration.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub config: &'a AdmissionConfig,
    /// Errors are retried after this long.
    pub error_retry: Duration,
    /// A metadata store is configured.
    pub store_configured: bool,
    /// A finished trusted scan by tag has its tag resolved again this long after its last
    /// resolution (`status.resolved.resolvedAt`); `None`: never.
    pub tag_recheck: Option<Duration>,
    /// A scan paused longer than this is canceled for good (`--pause-limit`).
    pub pause_limit: Duration,
}

/// One effect of a reconcile, in the order of [`Work::steps`].
#[derive(Clone, Debug)]
pub enum Step {
    /// Resolve the image's tag at its registry, with the scan's pull secret; first, before a
    /// [`Step::CreateJob`]. Its outcome is the digest the Job scans; when it fails, the steps
    /// after it are not run (the previous report stays, no Job starts).
    Resolve(ResolveTarget),
    /// Delete the previous report before a new scan, so it never passes for the new one's.
    DeleteReport { name: String },
    /// Delete a Job of an earlier key that still runs, or of a canceled round.
    DeleteJob { name: String },
    /// Set the Job's `spec.suspend`: pause it (the Job controller deletes its pods; the Job
    /// keeps its slot) or resume it.
    SuspendJob { name: String, suspend: bool },
    /// Create the scan Job (or adopt it when it exists and is the scan's); its outcome tells the
    /// scan's state.
    CreateJob {
        key: JobKey,
        template: Arc<ScanTemplate>,
    },
    /// The policy that judges the scan is gone: forget what was known of it.
    ForgetPolicy { namespace: String, name: String },
    /// Evaluate the policy (in the sandbox) on the report with its exceptions; the outcome is the
    /// policy state.
    EvaluatePolicy {
        policy: Arc<ScanPolicy>,
        input: Arc<Report>,
    },
    /// Send the report (with its exceptions) to the metadata store; the outcome is the send
    /// state.
    SendResults { report: Arc<Report> },
    /// Resolve the tag of a finished trusted scan again, with the scan's pull secret; last, so
    /// its failure stops nothing. Its outcome refreshes `status.resolved`, or records the new
    /// digest when the tag moved (the next reconcile rescans it); a failure leaves the result
    /// as it is and says so.
    RecheckTag(ResolveTarget),
}

/// What [`plan`] decided.
#[derive(Clone, Debug)]
pub enum Plan {
    /// The scan is being deleted: nothing to do, forget its write failures.
    Forget,
    Work(Box<Work>),
}

/// The effects of a reconcile and what the status is made of.
#[derive(Clone, Debug)]
pub struct Work {
    pub steps: Vec<Step>,
    /// The scan's state; `None` when a [`Step::CreateJob`] decides it.
    pub state: Option<ScanState>,
    pub template_generation: Option<i64>,
    /// The report's results, when the state is `Finished`; their `policy` and `sending` are
    /// replaced by the outcomes of [`Step::EvaluatePolicy`] and [`Step::SendResults`] when
    /// those are planned.
    pub results: Option<Results>,
    /// Come back at the earliest of these (a retry, a rescan, an exception's expiry).
    pub wake: Vec<Timestamp>,
    /// Come back after the error-retry delay.
    pub retry_errors: bool,
    /// The [`Step::CreateJob`] needs a slot of the queue first.
    pub slot: Option<SlotRequest>,
    /// The `scangate.dev/rescan` value the status records as handled; with a
    /// [`Step::CreateJob`], `created_rescan` once the Job is created.
    pub handled_rescan: Option<String>,
    pub created_rescan: Option<String>,
    /// The `scangate.dev/reevaluate` value the status records as handled, and when.
    pub reevaluated: Option<Reevaluated>,
    /// The `scangate.dev/cancel` value the status records as handled.
    pub handled_cancel: Option<String>,
    /// What the [`Step::EvaluatePolicy`] evaluates ([`evaluation::input_of`]), when planned.
    pub evaluation_input: Option<u64>,
}

/// A `scangate.dev/reevaluate` value handled: the report was evaluated again at `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reevaluated {
    pub request: String,
    pub at: Timestamp,
}

/// The `scangate.dev/reevaluate` value to record as handled. A value the status does not
/// record yet is handled by a reconcile that evaluates the scan's report (`evaluates`: its
/// state is finished with a readable report, so the policy runs on it with the exceptions of
/// now); otherwise, and for a value handled already, the status keeps what it records. Only
/// the status changes: no Job, no rescan.
pub fn reevaluation(
    request: Option<&str>,
    previous: Option<&ScanStatus>,
    evaluates: bool,
    now: Timestamp,
) -> Option<Reevaluated> {
    let recorded = previous.and_then(|p| {
        p.handled_reevaluate.clone().map(|request| Reevaluated {
            request,
            at: p.reevaluated_at.as_ref().map_or(now, |t| t.0),
        })
    });
    match request {
        Some(request) if evaluates && recorded.as_ref().is_none_or(|r| r.request != request) => {
            Some(Reevaluated {
                request: request.to_string(),
                at: now,
            })
        }
        _ => recorded,
    }
}

/// A Job to start, waiting for a slot since `since`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRequest {
    pub job: String,
    pub since: Timestamp,
}

impl Work {
    /// The work of a scan the queue did not let start: no Job (nor the deletion of the report
    /// it would replace), the state says its place (or the place the status shows, when the
    /// queue says not to show a new one yet); it comes back after [`QUEUED_RECHECK`] if no
    /// slot frees before. A Job of an earlier key is still deleted.
    pub fn queued(mut self: Box<Self>, decision: &Decision, o: &Observed) -> Box<Self> {
        let Decision::Queued {
            position,
            waiting,
            limits,
            show,
        } = decision
        else {
            return self;
        };
        let shown = o
            .previous
            .as_ref()
            .and_then(|p| {
                p.conditions
                    .iter()
                    .find(|c| c.type_ == ConditionType::Scanning && c.reason == reason::QUEUED)
            })
            .map(|c| c.message.clone());
        self.steps.retain(|s| {
            !matches!(
                s,
                Step::Resolve(_) | Step::CreateJob { .. } | Step::DeleteReport { .. }
            )
        });
        let failure = o.previous.as_ref().and_then(|p| {
            p.conditions
                .iter()
                .find(|c| c.type_ == ConditionType::Succeeded && c.status == ConditionStatus::False)
                .cloned()
        });
        let message = match shown {
            Some(shown) if !show => shown,
            _ => Decision::message(*position, *waiting, *limits),
        };
        self.state = Some(ScanState::Queued { message, failure });
        self.created_rescan = None;
        self.slot = None;
        self.wake.push(
            o.now
                .checked_add(jiff::SignedDuration::try_from(QUEUED_RECHECK).unwrap_or_default())
                .unwrap_or(o.now),
        );
        self
    }
}

/// What the steps gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcomes {
    /// The state of the Job created or adopted, or why the apiserver refused it.
    pub created: Option<Result<JobState, String>>,
    /// What the tag named at its registry, or why it could not be resolved.
    pub resolved: Option<Result<Resolved, String>>,
    /// What the tag of a finished scan names now ([`Step::RecheckTag`]), or why it could not
    /// be resolved again.
    pub rechecked: Option<Result<Resolved, String>>,
    pub policy: Option<PolicyState>,
    pub sending: Option<SendState>,
}

/// The end of a reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Settled {
    /// The status to write; `None` when the observed one is it already.
    pub write: Option<ScanStatus>,
    /// Publish the phase event once the status is written (the phase changed).
    pub publish_event: bool,
    /// Come back after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
    /// What to remember of the policy evaluation made, once the status is written.
    pub evaluation: Option<LastEvaluation>,
}

/// The rescan interval a scan asks for, if any (zero is none).
pub fn rescan_interval(text: Option<&str>) -> Option<Duration> {
    text.and_then(|t| crate::api::parse_duration(t).ok())
        .filter(|d| !d.is_zero())
}

/// `Ok(())` or the error, for the pure state functions.
fn usable(report: Option<&ObservedReport>) -> Option<Result<(), String>> {
    report.map(|r| r.read.as_ref().map(|_| ()).map_err(Clone::clone))
}

/// The effects of a reconcile, and the scan's state when no Job is to be created.
pub fn plan(o: &Observed, rules: Rules<'_>) -> Plan {
    if o.deleting {
        return Plan::Forget;
    }
    let previous = o.previous.as_ref();
    let report_name = crate::report::config_map_name(&o.name);
    // A result older than maxResultAge counts as unscanned at admission: rescan it by then.
    let interval = match (
        rescan_interval(o.settings.rescan_interval.as_deref()),
        rules.config.max_result_age(),
    ) {
        (Some(every), Some(max)) => Some(every.min(max)),
        (every, max) => every.or(max),
    };
    let mut handled_rescan = previous.and_then(|p| p.handled_rescan.clone());
    let mut created_rescan = None;
    let mut slot = None;
    let mut steps = vec![];
    let mut wake = vec![];
    let mut retry_errors = false;
    let mut template_generation = None;
    let mut report = o.report.as_ref();
    let mut report_job = None;
    let mut handled_cancel = previous.and_then(|p| p.handled_cancel.clone());

    let state = match (&o.attestation, &o.settings.scan_template, &o.template) {
        (Some(AttestationFound::NoResult { reason, message }), _, _) => {
            Some(ScanState::NoAttestation {
                reason,
                message: message.clone(),
            })
        }
        (Some(AttestationFound::Verified { source }), _, _) => Some(match usable(report) {
            Some(Ok(())) => ScanState::Finished {
                message: format!("The report came from {source}"),
            },
            other => state_without_job(previous, other.as_ref(), PUSHED_MESSAGE),
        }),
        (None, None, _) => Some(state_without_job(
            previous,
            usable(report).as_ref(),
            PUSHED_MESSAGE,
        )),
        (None, Some(name), None) => {
            retry_errors = true;
            Some(ScanState::Unrunnable {
                error: format!("ScanTemplate {name} not found"),
            })
        }
        (None, Some(name), Some(template)) => {
            let tgen = template.metadata.generation.unwrap_or(0);
            template_generation = Some(tgen);
            let decided = super::job::plan(&PlanInputs {
                scan_uid: o.uid.clone(),
                scan_generation: o.generation.unwrap_or(0),
                spec: o.spec.clone(),
                template_generation: tgen,
                jobs: o.jobs.clone(),
                previous: previous_facts(previous, o.generation, template_generation),
                report_ok: matches!(report, Some(ObservedReport { read: Ok(_), .. })),
                rescan_interval: interval,
                rescan_request: o.rescan_request.clone(),
                tag_moved_since: tag_moved_since(o),
                suspend: o.settings.suspend,
                error_retry: rules.error_retry,
                now: o.now,
            });
            wake.extend(decided.requeue_at);
            let running: Vec<&JobSummary> = o
                .jobs
                .iter()
                .filter(|j| j.state == JobState::Running)
                .collect();
            let delete_running = |steps: &mut Vec<Step>, except: Option<&str>| {
                steps.extend(
                    running
                        .iter()
                        .filter(|j| Some(j.name.as_str()) != except)
                        .map(|j| Step::DeleteJob {
                            name: j.name.clone(),
                        }),
                );
            };
            let in_use = match &decided.action {
                JobAction::Use(job) if job.state == JobState::Running => Some(job.clone()),
                _ => None,
            };
            let round_done =
                matches!(&decided.action, JobAction::Use(job) if job.state != JobState::Running);
            let control = control(o, rules, !running.is_empty(), round_done);
            if let Some(value) = &control.handled_cancel {
                handled_cancel = Some(value.clone());
            }
            match (control.now, decided.action) {
                (Control::Canceled { message }, _) => {
                    // Canceled for good: no Job runs or starts until a new rescan value.
                    delete_running(&mut steps, None);
                    Some(ScanState::Canceled { message })
                }
                (Control::Paused { since, cancel_at }, _) => {
                    wake.push(cancel_at);
                    // The Job of this round is suspended and kept; others are deleted.
                    let kept = in_use.as_ref().map(|j| j.name.as_str());
                    delete_running(&mut steps, kept);
                    if let Some(job) = in_use.as_ref().filter(|j| !j.suspended) {
                        steps.push(Step::SuspendJob {
                            name: job.name.clone(),
                            suspend: true,
                        });
                    }
                    Some(ScanState::Paused {
                        since,
                        cancel_at,
                        job: in_use.is_some(),
                    })
                }
                (Control::Run, JobAction::Use(job)) => {
                    if job.suspended && job.state == JobState::Running {
                        // Resumed: the same Job goes on, in the slot it kept.
                        steps.push(Step::SuspendJob {
                            name: job.name.clone(),
                            suspend: false,
                        });
                    }
                    if o.rescan_request.is_some() {
                        handled_rescan = o.rescan_request.clone();
                    }
                    report_job = Some(job.name.clone());
                    Some(state_from_job(
                        &job.state,
                        usable(report).as_ref(),
                        &report_name,
                    ))
                }
                (Control::Run, JobAction::Idle) => Some(state_without_job(
                    previous,
                    usable(report).as_ref(),
                    "Complete",
                )),
                (Control::Run, JobAction::Create(key)) => {
                    match template_pod(name, &template.spec.template, &rules.config.templates) {
                        // The template's watch brings the scan back when it is fixed.
                        Err(error) => Some(ScanState::Unrunnable { error }),
                        Ok(()) => match resolve_failure(o, rules) {
                            // The tag could not be resolved a moment ago: again once the
                            // error-retry delay has passed, not at every watch event.
                            Some((error, retry)) => {
                                wake.push(retry);
                                Some(ScanState::ResolveFailed { error })
                            }
                            None => {
                                if let Some(target) = &o.resolve {
                                    steps.push(Step::Resolve(target.clone()));
                                }
                                // A new scan: the old report must not pass for its result.
                                if report.take().is_some() {
                                    steps.push(Step::DeleteReport {
                                        name: report_name.clone(),
                                    });
                                }
                                steps.extend(
                                    o.jobs.iter().filter(|j| j.state == JobState::Running).map(
                                        |j| Step::DeleteJob {
                                            name: j.name.clone(),
                                        },
                                    ),
                                );
                                slot = Some(SlotRequest {
                                    job: job_name(&o.name, &key),
                                    since: decided.due_since.unwrap_or(o.created),
                                });
                                created_rescan = o.rescan_request.clone();
                                steps.push(Step::CreateJob {
                                    key,
                                    template: template.clone(),
                                });
                                None
                            }
                        },
                    }
                }
            }
        }
    };

    let mut results = None;
    let mut evaluation_input = None;
    if let (Some(ScanState::Finished { .. }), Some(observed)) = (&state, report)
        && let Ok(facts) = &observed.read
    {
        let judging = judge(o, rules.config);
        let judged_by = judging.as_ref().map(|j| j.judging.clone());
        let (policy, evaluated, input) =
            plan_policy(o, judging, facts, rules, &mut steps, &mut wake);
        evaluation_input = input;
        let sending = plan_sending(o, facts, &evaluated, rules, &mut steps);
        if !o.settings.suspend
            && o.settings.scan_template.is_some()
            && let Some(at) = rescan_at(Some(facts.stored_at), interval)
        {
            wake.push(at);
        }
        let report = &facts.report;
        results = Some(Results {
            cve_count: report.cve_count(),
            artifact: facts.artifact.clone(),
            scanner: Scanner {
                name: report.scanner.name.clone(),
                vendor: report.scanner.vendor.clone(),
                version: report.scanner.version.clone(),
            },
            stored_at: facts.stored_at,
            source: match (&o.attestation, &o.settings.scan_template) {
                (Some(AttestationFound::Verified { source }), _) => source.clone(),
                (_, Some(template)) => ReportSource::Job {
                    namespace: o.namespace.clone(),
                    job: report_job,
                    template: template.clone(),
                },
                (_, None) => ReportSource::Pushed {
                    by: observed.reported_by.clone(),
                },
            },
            policy,
            judged_by,
            sending,
            scan_errors: report.scan_errors.clone(),
        });
    }
    match tag_recheck(o, rules, results.is_some()) {
        TagRecheck::Off => {}
        TagRecheck::At(at) => wake.push(at),
        TagRecheck::Now(target) => steps.push(Step::RecheckTag(target)),
    }
    let reevaluated = reevaluation(
        o.reevaluate_request.as_deref(),
        previous,
        results.is_some(),
        o.now,
    );
    Plan::Work(Box::new(Work {
        steps,
        state,
        template_generation,
        results,
        wake,
        retry_errors,
        slot,
        handled_rescan,
        created_rescan,
        reevaluated,
        evaluation_input,
        handled_cancel,
    }))
}

/// What the scan's lifecycle asks of its round, before the Job plan: run as planned, pause,
/// or stay canceled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Run as the Job plan says (and resume a suspended Job of this round).
    Run,
    /// Paused by `spec.suspend` since `since` (recorded by scangate in `status.pausedAt`):
    /// the round's Job is suspended, or the scan keeps its place in the queue, until
    /// `cancel_at`.
    Paused {
        since: Timestamp,
        cancel_at: Timestamp,
    },
    /// Canceled for good; `message` says by what.
    Canceled { message: String },
}

/// [`control`]'s answer, and the `scangate.dev/cancel` value it handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controlled {
    pub now: Control,
    pub handled_cancel: Option<String>,
}

/// The lifecycle of a scan's round, pure, from the previous status (which only scangate
/// writes), the spec and the annotations:
///
/// - a round canceled before stays canceled (its Job deleted, unsuspending does not restart
///   it) until a new `scangate.dev/rescan` value starts a new round;
/// - a new `scangate.dev/cancel` value cancels the round if it is unfinished (a Job runs or is
///   paused, or the scan waits for a slot; not `round_done`: its Job has finished); on a
///   finished round it is only recorded;
/// - `spec.suspend` pauses an unfinished round (`running_job`, or the scan was queued or
///   paused): the pause starts when scangate first sees it, and a round paused for
///   `rules.pause_limit` is canceled. A finished round is not paused: suspend only stops new
///   rounds, as before.
pub fn control(o: &Observed, rules: Rules<'_>, running_job: bool, round_done: bool) -> Controlled {
    let previous = o.previous.as_ref();
    let scanning = previous.and_then(|p| {
        p.conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Scanning)
    });
    let was = |reason: &str| scanning.is_some_and(|c| c.reason == reason);
    let handled_cancel = previous.and_then(|p| p.handled_cancel.clone());
    let new_rescan = o.rescan_request.is_some()
        && o.rescan_request != previous.and_then(|p| p.handled_rescan.clone());
    if was(reason::CANCELED) && !new_rescan {
        return Controlled {
            now: Control::Canceled {
                message: scanning.map(|c| c.message.clone()).unwrap_or_default(),
            },
            handled_cancel,
        };
    }
    let unfinished = !round_done
        && (running_job
            || was(reason::QUEUED)
            || was(reason::PAUSED)
            || scanning.is_some_and(|c| c.status == ConditionStatus::True));
    if o.cancel_request.is_some() && o.cancel_request != handled_cancel {
        return Controlled {
            now: if unfinished {
                Control::Canceled {
                    message: super::status::CANCELED_BY_REQUEST.into(),
                }
            } else {
                Control::Run
            },
            handled_cancel: o.cancel_request.clone(),
        };
    }
    if !o.settings.suspend || !unfinished {
        return Controlled {
            now: Control::Run,
            handled_cancel,
        };
    }
    let since = previous
        .filter(|_| was(reason::PAUSED))
        .and_then(|p| p.paused_at.as_ref())
        .map_or(o.now, |t| t.0);
    let cancel_at = jiff::SignedDuration::try_from(rules.pause_limit)
        .ok()
        .and_then(|limit| since.checked_add(limit).ok())
        .unwrap_or(Timestamp::MAX);
    Controlled {
        now: if o.now >= cancel_at {
            Control::Canceled {
                message: super::status::canceled_by_pause_limit(since, rules.pause_limit),
            }
        } else {
            Control::Paused { since, cancel_at }
        },
        handled_cancel,
    }
}

/// What kind of round the scan runs, for `status.progress`.
fn round_of(o: &Observed) -> Round {
    match (&o.attestation, &o.settings.scan_template) {
        (Some(_), _) => Round::Attestation,
        (None, Some(_)) => Round::Job {
            resolves: o.resolve.is_some(),
        },
        (None, None) => Round::Pushed,
    }
}

/// A resolution of the tag that failed for this generation less than the error-retry delay
/// ago: its error, and when to try again.
fn resolve_failure(o: &Observed, rules: Rules<'_>) -> Option<(String, Timestamp)> {
    o.resolve.as_ref()?;
    let previous = o.previous.as_ref()?;
    if previous.observed_generation != o.generation {
        return None;
    }
    let failed = previous.conditions.iter().find(|c| {
        c.type_ == ConditionType::Succeeded
            && c.status == ConditionStatus::False
            && c.reason == reason::RESOLVE_FAILED
    })?;
    let retry = failed
        .last_transition_time
        .as_ref()?
        .0
        .checked_add(jiff::SignedDuration::try_from(rules.error_retry).ok()?)
        .ok()?;
    let error = failed
        .error
        .clone()
        .unwrap_or_else(|| failed.message.clone());
    (o.now < retry).then_some((error, retry))
}

/// `status.resolved`: what the tag named now, from a resolution's outcome, else what the
/// previous status recorded for the same tag.
fn resolution(o: &Observed, outcome: Option<&Result<Resolved, String>>) -> Option<Resolution> {
    let target = o.resolve.as_ref()?;
    if let Some(Ok(resolved)) = outcome {
        let image = target.image.with_digest(&resolved.digest).ok()?;
        return Some(Resolution {
            image: image.to_string(),
            media_type: resolved.media_type.as_str().to_string(),
            platforms: resolved
                .platforms
                .iter()
                .map(|p| ResolvedPlatform {
                    os: p.os.clone(),
                    architecture: p.architecture.clone(),
                    variant: p.variant.clone(),
                    digest: p.digest.clone(),
                })
                .collect(),
            resolved_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(o.now),
        });
    }
    o.previous.as_ref()?.resolved.clone().filter(|r| {
        ImageRef::parse(&r.image).ok().and_then(|i| i.by_tag()) == target.image.by_tag()
    })
}

/// When a finished scan's tag is resolved again ([`tag_recheck`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagRecheck {
    /// Not for this scan: not a trusted scan by tag with a template and a resolution, not
    /// finished with a readable report, suspended, or re-resolution is off.
    Off,
    /// Now, in this reconcile.
    Now(ResolveTarget),
    /// Come back then.
    At(Timestamp),
}

/// Whether the tag of a finished trusted scan by tag is resolved again now, or when: once its
/// last resolution (`status.resolved.resolvedAt`) is older than the recheck interval, and at
/// every reconcile while the last re-resolution failed (the status says so; a failed one is
/// retried after the error-retry delay, see [`settle`]). Never on the admission path, never
/// for a scan that is not finished (a new Job resolves its tag anyway).
pub fn tag_recheck(o: &Observed, rules: Rules<'_>, finished: bool) -> TagRecheck {
    let (Some(interval), Some(target)) = (rules.tag_recheck, &o.resolve) else {
        return TagRecheck::Off;
    };
    let applies = finished
        && !o.settings.suspend
        && o.settings.scan_template.is_some()
        && rules.config.scans_are_trusted(&o.namespace);
    let Some(recorded) = resolution(o, None).filter(|_| applies) else {
        return TagRecheck::Off;
    };
    let failed_before = o.previous.as_ref().and_then(not_resolved_again).is_some();
    let due = jiff::SignedDuration::try_from(interval)
        .ok()
        .and_then(|every| recorded.resolved_at.0.checked_add(every).ok())
        .unwrap_or(Timestamp::MAX);
    if failed_before || o.now >= due {
        TagRecheck::Now(target.clone())
    } else {
        TagRecheck::At(due)
    }
}

/// When the controller found the scan's tag naming other content than its last result is for
/// (`status.resolved` does not cover the digest of `status.artifact`): that content is due for
/// a scan since then.
fn tag_moved_since(o: &Observed) -> Option<Timestamp> {
    let recorded = resolution(o, None)?;
    let scanned = o.previous.as_ref()?.artifact.as_ref()?.registry.as_ref()?;
    let scanned = ImageRef::parse(&scanned.image).ok()?;
    let digest = scanned.digest()?;
    (!recorded.covers(digest)).then_some(recorded.resolved_at.0)
}

/// The policy that judges a scan's report, and why that one.
#[derive(Clone, Debug)]
pub struct Judge {
    pub judging: JudgingPolicy,
    /// The policy, or where a named one that does not exist was looked for.
    pub policy: Result<Arc<ScanPolicy>, MissingPolicy>,
}

/// A named ScanPolicy that does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingPolicy {
    pub namespace: String,
    pub name: String,
}

/// The policy that judges a scan's report: the scan's `scanPolicy` (in its namespace); for a
/// trusted scan that names none, the admission config's `defaultScanPolicy` (in scangate's
/// namespace), else scangate's built-in default policy, so no trusted result stands without a
/// policy behind it. `None` for a namespace's own scan that names none: its result counts only
/// against its namespace, where without a policy it denies nothing.
pub fn judge(o: &Observed, config: &AdmissionConfig) -> Option<Judge> {
    let named = |namespace: &str, name: &str, source, found: &Option<Arc<ScanPolicy>>| Judge {
        judging: JudgingPolicy {
            name: format!("{namespace}/{name}"),
            source,
        },
        policy: found.clone().ok_or_else(|| MissingPolicy {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
    };
    if let Some(name) = &o.settings.scan_policy {
        return Some(named(
            &o.namespace,
            name,
            PolicySource::ScanPolicy,
            &o.policy,
        ));
    }
    if !config.scans_are_trusted(&o.namespace) {
        return None;
    }
    Some(match &config.default_scan_policy {
        Some(name) => named(
            &config.scangate_namespace,
            name,
            PolicySource::DefaultScanPolicy,
            &o.default_policy,
        ),
        None => Judge {
            judging: JudgingPolicy {
                name: crate::policy::DEFAULT_POLICY_NAME.to_string(),
                source: PolicySource::BuiltIn,
            },
            policy: Ok(built_in_policy()),
        },
    })
}

/// The policy state, or the evaluation to run for it, the report as evaluated (with its
/// exceptions), and what the evaluation decides from when one is planned. An input evaluated
/// already keeps the status's verdict ([`evaluation::next`]).
fn plan_policy(
    o: &Observed,
    judge: Option<Judge>,
    facts: &ReportFacts,
    rules: Rules<'_>,
    steps: &mut Vec<Step>,
    wake: &mut Vec<Timestamp>,
) -> (PolicyState, Arc<Report>, Option<u64>) {
    let Some(judge) = judge else {
        return (PolicyState::NoPolicy, Arc::new(facts.report.clone()), None);
    };
    let policy = match judge.policy {
        Ok(policy) => policy,
        Err(MissingPolicy { namespace, name }) => {
            let error = match judge.judging.source {
                PolicySource::DefaultScanPolicy => format!(
                    "ScanPolicy {namespace}/{name} (the admission config's defaultScanPolicy) not found"
                ),
                _ => format!("ScanPolicy {name} not found"),
            };
            steps.push(Step::ForgetPolicy { namespace, name });
            return (
                PolicyState::Error {
                    error,
                    generation: None,
                },
                Arc::new(facts.report.clone()),
                None,
            );
        }
    };
    let active = exceptions_input(
        o.exceptions.iter().map(|e| &**e),
        facts.exception_image.as_ref(),
        &o.namespace,
        rules.config,
        o.now,
    );
    wake.extend(active.first_expiry);
    let mut evaluated = facts.report.clone();
    evaluated.exceptions = active.exceptions;
    evaluated.vex = active.vex;
    let evaluated = Arc::new(evaluated);
    let input = evaluation::input_of(&policy, &evaluated);
    let forced = o.reevaluate_request.is_some()
        && o.reevaluate_request
            != o.previous
                .as_ref()
                .and_then(|p| p.handled_reevaluate.clone());
    match evaluation::next(
        o.last_evaluation.as_ref(),
        o.previous.as_ref(),
        input,
        forced,
        rules.error_retry,
        o.now,
    ) {
        Next::Evaluate => {}
        Next::Carry => return (PolicyState::Carried, evaluated, None),
        Next::CarryUntil(due) => {
            wake.push(due);
            return (PolicyState::Carried, evaluated, None);
        }
    }
    steps.push(Step::EvaluatePolicy {
        policy: policy.clone(),
        input: evaluated.clone(),
    });
    let pending = PolicyState::Error {
        error: "the policy was not evaluated".into(),
        generation: policy.metadata.generation,
    };
    (pending, evaluated, Some(input))
}

/// The send state, or the send to make for it: the report is sent once (the status says it
/// was sent, for this report).
fn plan_sending(
    o: &Observed,
    facts: &ReportFacts,
    evaluated: &Arc<Report>,
    rules: Rules<'_>,
    steps: &mut Vec<Step>,
) -> SendState {
    if !rules.store_configured {
        return SendState::NotConfigured;
    }
    if let Some(p) = &o.previous {
        let sent = p
            .conditions
            .iter()
            .any(|c| c.type_ == ConditionType::SendingResults && c.status == ConditionStatus::True);
        let same_report = p.scanned_at.as_ref().map(|t| t.0) == Some(facts.stored_at);
        if sent
            && same_report
            && let Some(url) = &p.metadata_url
        {
            return SendState::Sent { url: url.clone() };
        }
    }
    steps.push(Step::SendResults {
        report: evaluated.clone(),
    });
    SendState::Failed {
        error: "the results were not sent".into(),
    }
}

/// The status, event and requeue of a reconcile, from its work and the steps' outcomes.
pub fn settle(o: &Observed, work: Box<Work>, outcomes: Outcomes, rules: Rules<'_>) -> Settled {
    let Work {
        state,
        template_generation,
        mut results,
        mut wake,
        mut retry_errors,
        mut handled_rescan,
        created_rescan,
        reevaluated,
        evaluation_input,
        handled_cancel,
        ..
    } = *work;
    let mut evaluated = None;
    if matches!(outcomes.created, Some(Ok(_))) && created_rescan.is_some() {
        handled_rescan = created_rescan;
    }
    let recorded = resolution(o, None);
    let resolved = resolution(
        o,
        outcomes.resolved.as_ref().or(outcomes.rechecked.as_ref()),
    );
    let not_resolved_again = match outcomes.rechecked {
        Some(Err(error)) => {
            // The result stands; the registry is asked again after the error-retry delay.
            retry_errors = true;
            Some(error)
        }
        Some(Ok(_)) => {
            let moved = resolved.as_ref().and_then(Resolution::digest)
                != recorded.as_ref().and_then(Resolution::digest);
            if moved {
                // The tag moved: its new content is scanned in the next reconcile, at once.
                wake.push(o.now);
            } else if let Some(next) = rules
                .tag_recheck
                .and_then(|every| jiff::SignedDuration::try_from(every).ok())
                .and_then(|every| o.now.checked_add(every).ok())
            {
                wake.push(next);
            }
            None
        }
        None => None,
    };
    let resolve_error = match outcomes.resolved {
        Some(Err(error)) => Some(error),
        _ => None,
    };
    let state = match (state, resolve_error, outcomes.created) {
        (Some(state), _, _) => state,
        (None, Some(error), _) => {
            retry_errors = true;
            ScanState::ResolveFailed { error }
        }
        (None, None, Some(Ok(job))) => {
            state_from_job(&job, None, &crate::report::config_map_name(&o.name))
        }
        (None, None, Some(Err(error))) => {
            retry_errors = true;
            ScanState::Unrunnable { error }
        }
        (None, None, None) => {
            retry_errors = true;
            ScanState::Unrunnable {
                error: "the scan Job was not created".into(),
            }
        }
    };
    if let Some(results) = &mut results {
        let mut policy_retry = true;
        if let Some(policy) = outcomes.policy {
            let answered = evaluation::answered(&policy);
            let failures = evaluation_input.map_or(u32::from(!answered), |input| {
                evaluation::failures(o.last_evaluation.as_ref(), input, answered)
            });
            results.policy = if answered {
                policy
            } else {
                // Tried again with backoff, not after the error-retry delay.
                policy_retry = false;
                let retry_at = evaluation::next_try(o.now, failures, rules.error_retry);
                wake.push(retry_at);
                evaluation::stabilise(policy, o.previous.as_ref(), results.stored_at, retry_at)
            };
            evaluated = evaluation_input.map(|input| (input, failures));
        }
        if let Some(sending) = outcomes.sending {
            results.sending = sending;
        }
        retry_errors |= (policy_retry && matches!(results.policy, PolicyState::Error { .. }))
            || matches!(results.sending, SendState::Failed { .. });
    }
    let previous = o.previous.as_ref();
    let mut desired = desired_status(&StatusInputs {
        generation: o.generation,
        template_generation,
        previous,
        state,
        results,
        handled_rescan,
        resolved,
        not_resolved_again,
        round: round_of(o),
        handled_cancel,
        now: o.now,
    });
    if let Some(r) = reevaluated {
        desired.handled_reevaluate = Some(r.request);
        desired.reevaluated_at = Some(Time(r.at));
    }
    let changed = match previous {
        Some(p) => serde_json::to_value(p).ok() != serde_json::to_value(&desired).ok(),
        None => true,
    };
    let publish_event = changed && desired.phase != previous.and_then(|p| p.phase);
    if retry_errors {
        wake.push(
            o.now
                .checked_add(jiff::SignedDuration::try_from(rules.error_retry).unwrap_or_default())
                .unwrap_or(o.now),
        );
    }
    let evaluation =
        evaluated.map(|(input, failures)| evaluation::remember(input, failures, &desired, o.now));
    Settled {
        write: changed.then_some(desired),
        publish_event,
        evaluation,
        requeue_after: wake
            .into_iter()
            .min()
            .map(|at| until(o.now, at).max(Duration::from_secs(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Phase, ScanPolicySpec, ScanTemplateSpec};
    use crate::policy::{Evaluation, outcome};
    use crate::report::{Package, Severity, Vulnerability};
    use k8s_openapi::api::core::v1::PodSpec;

    const NOW: &str = "2026-01-02T00:00:00Z";
    const STORED: &str = "2026-01-01T12:00:00Z";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn config() -> AdmissionConfig {
        AdmissionConfig::default()
    }

    fn rules(config: &AdmissionConfig) -> Rules<'_> {
        Rules {
            config,
            error_retry: Duration::from_secs(60),
            store_configured: false,
            tag_recheck: None,
            pause_limit: Duration::from_secs(7 * 24 * 3600),
        }
    }

    fn report() -> Report {
        Report {
            vulnerabilities: vec![Vulnerability {
                id: "CVE-1".into(),
                severity: Severity::Critical,
                package: Package {
                    name: "busybox".into(),
                    version: "1.32.1".into(),
                    ..Package::default()
                },
                ..Vulnerability::default()
            }],
            ..Report::default()
        }
    }

    fn pushed(report: Report) -> ObservedReport {
        ObservedReport {
            read: Ok(ReportFacts {
                report,
                stored_at: ts(STORED),
                artifact: Artifact::default(),
                exception_image: None,
            }),
            reported_by: Some("ci".into()),
        }
    }

    /// A template whose pod Pod Security `restricted` accepts, or (`privileged`) refuses.
    fn pod_template(privileged: bool) -> Arc<ScanTemplate> {
        let pod = serde_json::json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "scan",
                "image": "grype",
                "securityContext": {"allowPrivilegeEscalation": privileged, "privileged": privileged, "capabilities": {"drop": ["ALL"]}},
            }],
        });
        let template: PodSpec = serde_json::from_value(pod).unwrap_or_else(|e| panic!("{e}"));
        let mut t = ScanTemplate::new("grype", ScanTemplateSpec { template });
        t.metadata.namespace = Some("apps".into());
        t.metadata.generation = Some(2);
        Arc::new(t)
    }

    fn template() -> Arc<ScanTemplate> {
        pod_template(false)
    }

    fn policy() -> Arc<ScanPolicy> {
        let mut p = ScanPolicy::new(
            "strict",
            ScanPolicySpec {
                rego_file: "package main\ndeny contains msg if { false; msg := \"\" }".into(),
            },
        );
        p.metadata.namespace = Some("apps".into());
        p.metadata.generation = Some(4);
        Arc::new(p)
    }

    /// What `strict` ([`policy`]) gives on [`report`]: CVE-1 denied.
    fn denied_by_strict() -> PolicyState {
        PolicyState::Evaluated {
            outcome: outcome(
                &report(),
                Ok(Evaluation {
                    deny: vec!["CVE-1 (critical)".into()],
                }),
            ),
            generation: Some(4),
        }
    }

    /// The outcomes of a reconcile that evaluated the policy, to `policy`.
    fn evaluated(policy: PolicyState) -> Outcomes {
        Outcomes {
            policy: Some(policy),
            ..Outcomes::default()
        }
    }

    /// A scan with no template, no report and no status.
    fn scan() -> Observed {
        Observed {
            name: "busybox".into(),
            namespace: "apps".into(),
            uid: "uid-1".into(),
            generation: Some(1),
            deleting: false,
            created: ts("2026-01-01T00:00:00Z"),
            rescan_request: None,
            reevaluate_request: None,
            cancel_request: None,
            spec: "spec-1".into(),
            resolve: None,
            settings: ScanSettings::default(),
            previous: None,
            report: None,
            attestation: None,
            template: None,
            jobs: vec![],
            policy: None,
            default_policy: None,
            exceptions: vec![],
            last_evaluation: None,
            now: ts(NOW),
        }
    }

    fn with_template(mut o: Observed) -> Observed {
        o.settings.scan_template = Some("grype".into());
        o.template = Some(template());
        o
    }

    fn work(o: &Observed, rules: Rules<'_>) -> Box<Work> {
        match plan(o, rules) {
            Plan::Work(work) => work,
            Plan::Forget => panic!("a scan not being deleted is planned"),
        }
    }

    /// The steps, in words.
    fn steps(work: &Work) -> Vec<String> {
        work.steps
            .iter()
            .map(|s| match s {
                Step::Resolve(target) => format!(
                    "resolve {} with {}",
                    target.image,
                    target.pull_secret.as_deref().unwrap_or("no secret")
                ),
                Step::DeleteReport { name } => format!("delete report {name}"),
                Step::DeleteJob { name } => format!("delete job {name}"),
                Step::SuspendJob { name, suspend } => format!("suspend job {name}: {suspend}"),
                Step::CreateJob { key, template } => format!(
                    "create job attempt {} from {}",
                    key.attempt,
                    template.metadata.name.as_deref().unwrap_or_default()
                ),
                Step::ForgetPolicy { namespace, name } => {
                    format!("forget policy {namespace}/{name}")
                }
                Step::EvaluatePolicy { policy, input } => format!(
                    "evaluate {}/{} with {} exceptions",
                    policy.metadata.namespace.as_deref().unwrap_or_default(),
                    policy.metadata.name.as_deref().unwrap_or_default(),
                    input.exceptions.len()
                ),
                Step::SendResults { .. } => "send results".into(),
                Step::RecheckTag(target) => format!(
                    "resolve again {} with {}",
                    target.image,
                    target.pull_secret.as_deref().unwrap_or("no secret")
                ),
            })
            .collect()
    }

    fn job(name: &str, o: &Observed, state: JobState) -> JobSummary {
        JobSummary {
            name: name.into(),
            scan_generation: o.generation,
            spec: Some(o.spec.clone()),
            suspended: false,
            template_generation: Some(2),
            round: Some(super::super::job::round_of(None)),
            attempt: 0,
            state,
            created: ts("2026-01-01T00:00:00Z"),
        }
    }

    /// Plans, settles with `outcomes`, and returns the settled end.
    fn run(o: &Observed, rules: Rules<'_>, outcomes: Outcomes) -> Settled {
        settle(o, work(o, rules), outcomes, rules)
    }

    #[test]
    fn a_scan_being_deleted_is_forgotten() {
        let config = config();
        let mut o = scan();
        o.deleting = true;
        assert!(matches!(plan(&o, rules(&config)), Plan::Forget));
    }

    #[test]
    fn a_new_scan_without_a_report_is_written_pending_once() {
        let config = config();
        let mut o = scan();
        let first = run(&o, rules(&config), Outcomes::default());
        let status = first
            .write
            .unwrap_or_else(|| panic!("a new scan gets a status"));
        assert_eq!(status.phase, Some(Phase::Pending));
        assert!(first.publish_event);
        assert_eq!(first.requeue_after, None);

        // The same inputs over the status just written: nothing to write, no event.
        o.previous = Some(status);
        let again = run(&o, rules(&config), Outcomes::default());
        assert_eq!(again.write, None);
        assert!(!again.publish_event);
    }

    #[test]
    fn a_missing_template_is_an_error_retried_later() {
        let config = config();
        let mut o = scan();
        o.settings.scan_template = Some("grype".into());
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty());
        assert!(w.retry_errors);
        assert_eq!(
            w.state,
            Some(ScanState::Unrunnable {
                error: "ScanTemplate grype not found".into()
            })
        );
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        assert_eq!(end.write.and_then(|s| s.phase), Some(Phase::Error));
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_first_scan_creates_its_job_and_the_job_tells_the_state() {
        let config = config();
        let o = with_template(scan());
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["create job attempt 0 from grype"]);
        assert_eq!(w.state, None);
        assert_eq!(w.template_generation, Some(2));
        let end = settle(
            &o,
            w,
            Outcomes {
                created: Some(Ok(JobState::Running)),
                ..Outcomes::default()
            },
            rules(&config),
        );
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Scanning));
        assert_eq!(status.observed_template_generation, Some(2));
    }

    #[test]
    fn a_template_whose_pod_the_rules_refuse_creates_no_job() {
        let config = config();
        let mut o = with_template(scan());
        o.template = Some(pod_template(true));
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty());
        assert!(
            matches!(&w.state, Some(ScanState::Unrunnable { error }) if error.contains("privileged")),
            "{:?}",
            w.state
        );
    }

    #[test]
    fn a_job_the_apiserver_refuses_is_an_error_retried_later() {
        let config = config();
        let o = with_template(scan());
        let end = run(
            &o,
            rules(&config),
            Outcomes {
                created: Some(Err("cannot create the scan Job: quota".into())),
                ..Outcomes::default()
            },
        );
        assert_eq!(end.write.and_then(|s| s.phase), Some(Phase::Error));
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_new_round_deletes_the_old_report_and_the_running_job_of_another_key() {
        let config = config();
        let mut o = with_template(scan());
        o.report = Some(pushed(report()));
        let mut old = job("busybox-old", &o, JobState::Running);
        old.scan_generation = Some(0);
        old.spec = Some("spec-0".into());
        o.jobs = vec![old];
        let w = work(&o, rules(&config));
        assert_eq!(
            steps(&w),
            [
                "delete report busybox-report",
                "delete job busybox-old",
                "create job attempt 0 from grype"
            ]
        );
        assert!(w.results.is_none());
    }

    #[test]
    fn a_running_job_is_used_and_nothing_is_created() {
        let config = config();
        let mut o = with_template(scan());
        o.jobs = vec![job("busybox-1", &o, JobState::Running)];
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty());
        assert_eq!(w.state, Some(ScanState::Running));
    }

    #[test]
    fn a_verified_attestation_is_judged_like_a_report_and_runs_no_job() {
        let config = config();
        let mut o = with_template(scan());
        o.settings.scan_policy = Some("strict".into());
        o.policy = Some(policy());
        o.report = Some(ObservedReport {
            reported_by: None,
            ..pushed(report())
        });
        let source = ReportSource::Attestation {
            key: "ci".into(),
            predicate_type: crate::attest::COSIGN_VULN_V1.into(),
            scan_finished_on: ts(STORED),
            db_version: None,
        };
        o.attestation = Some(AttestationFound::Verified {
            source: source.clone(),
        });
        let w = work(&o, rules(&config));
        // The template is not run: the attestation is the only source.
        assert_eq!(steps(&w), ["evaluate apps/strict with 0 exceptions"]);
        assert_eq!(w.results.as_ref().map(|r| r.source.clone()), Some(source));
        let end = settle(&o, w, evaluated(denied_by_strict()), rules(&config));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(
            status.attestation.as_ref().map(|a| a.key.as_str()),
            Some("ci")
        );
        let succeeded = status
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Succeeded)
            .map(|c| c.message.clone());
        assert_eq!(
            succeeded.as_deref(),
            Some("The report came from an attestation signed with key ci")
        );
    }

    #[test]
    fn an_unusable_attestation_is_pending_with_its_reason_and_plans_nothing() {
        let config = config();
        let mut o = with_template(scan());
        o.settings.scan_policy = Some("strict".into());
        o.policy = Some(policy());
        o.attestation = Some(AttestationFound::NoResult {
            reason: reason::ATTESTATION_UNVERIFIED,
            message: "No configured key verifies the attestation".into(),
        });
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty(), "{:?}", steps(&w));
        assert!(w.results.is_none());
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Pending));
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].reason, "AttestationUnverified");
        assert_eq!(crate::api::consistency_problem(&status.conditions), None);
    }

    #[test]
    fn a_completed_job_with_its_report_evaluates_the_policy_then_settles_on_its_outcome() {
        let config = config();
        let mut o = with_template(scan());
        o.settings.scan_policy = Some("strict".into());
        o.policy = Some(policy());
        o.report = Some(pushed(report()));
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["evaluate apps/strict with 0 exceptions"]);
        let source = w.results.as_ref().map(|r| r.source.clone());
        assert_eq!(
            source,
            Some(ReportSource::Job {
                namespace: "apps".into(),
                job: Some("busybox-1".into()),
                template: "grype".into()
            })
        );
        let end = settle(&o, w, evaluated(denied_by_strict()), rules(&config));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Failed));
        assert!(end.publish_event);
        assert_eq!(end.requeue_after, None);
    }

    #[test]
    fn a_decided_verdict_is_evaluated_once_and_outlives_an_evaluation_without_answer() {
        let config = config();
        let mut o = scan();
        o.settings.scan_policy = Some("strict".into());
        o.policy = Some(policy());
        o.report = Some(pushed(report()));
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["evaluate apps/strict with 0 exceptions"]);
        let end = settle(&o, w, evaluated(denied_by_strict()), rules(&config));
        let failed = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(failed.phase, Some(Phase::Failed));
        // The next reconcile over that status: the same input is not evaluated again.
        o.previous = Some(failed.clone());
        o.last_evaluation = end.evaluation.clone();
        assert_eq!(end.evaluation.as_ref().map(|e| e.failures), Some(0));
        let w = work(&o, rules(&config));
        assert!(steps(&w).is_empty(), "{:?}", steps(&w));
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        assert_eq!(end.write, None, "nothing changed");
        // A reevaluation asked for evaluates, and a time limit there keeps the verdict.
        o.reevaluate_request = Some("now".into());
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["evaluate apps/strict with 0 exceptions"]);
        let stopped = PolicyState::Unanswered {
            error: "policy apps/strict.rego exceeded the time limit of 2 s".into(),
            generation: Some(4),
            limit: true,
        };
        let end = settle(&o, w, evaluated(stopped), rules(&config));
        let kept = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(kept.phase, Some(Phase::Failed));
        assert_eq!(kept.last_result, failed.last_result);
        assert_eq!(kept.violations, failed.violations);
        let condition = kept
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::PolicySucceeded)
            .unwrap_or_else(|| panic!("a policy condition"));
        assert_eq!(condition.status, ConditionStatus::False);
        let error = condition.error.clone().unwrap_or_default();
        assert!(error.contains("exceeded the time limit of 2 s"), "{error}");
        assert!(!end.publish_event, "the phase did not change");
        // Tried again after the error-retry delay, then after twice that.
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));
        assert_eq!(end.evaluation.as_ref().map(|e| e.failures), Some(1));
        o.previous = Some(kept);
        o.last_evaluation = end.evaluation;
        let w = work(&o, rules(&config));
        assert!(steps(&w).is_empty(), "not due yet: {:?}", steps(&w));
    }

    #[test]
    fn a_namespaces_own_pushed_report_without_policy_completes_with_no_step() {
        let config = config();
        let mut o = scan();
        o.report = Some(pushed(report()));
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty());
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Completed));
        assert_eq!(status.cve_count.map(|c| c.critical), Some(1));
        assert_eq!(status.policy, None);
    }

    /// A config under which the test scans' namespace `apps` is scangate's: its scans are
    /// trusted results.
    fn trusted() -> AdmissionConfig {
        AdmissionConfig {
            scangate_namespace: "apps".into(),
            ..AdmissionConfig::default()
        }
    }

    fn judged(o: &Observed, config: &AdmissionConfig) -> Option<(String, PolicySource, bool)> {
        judge(o, config).map(|j| (j.judging.name, j.judging.source, j.policy.is_ok()))
    }

    #[test]
    fn a_policy_judges_every_trusted_scan_and_a_namespaces_own_scan_when_it_names_one() {
        let mut o = scan();
        // A namespace's own scan: its policy, or none.
        assert_eq!(judged(&o, &config()), None);
        o.settings.scan_policy = Some("strict".into());
        assert_eq!(
            judged(&o, &config()),
            Some(("apps/strict".into(), PolicySource::ScanPolicy, false))
        );
        o.policy = Some(policy());
        assert_eq!(
            judged(&o, &config()),
            Some(("apps/strict".into(), PolicySource::ScanPolicy, true))
        );
        // A trusted scan that names none: scangate's built-in default policy...
        o.settings.scan_policy = None;
        let mut config = trusted();
        assert_eq!(
            judged(&o, &config),
            Some(("scangate/default.rego".into(), PolicySource::BuiltIn, true))
        );
        // ...or the config's defaultScanPolicy, in scangate's namespace, when it names one.
        config.scangate_namespace = "scangate-system".into();
        config.trust_namespace_scans = true;
        config.default_scan_policy = Some("baseline".into());
        assert_eq!(
            judged(&o, &config),
            Some((
                "scangate-system/baseline".into(),
                PolicySource::DefaultScanPolicy,
                false
            ))
        );
        o.default_policy = Some(policy());
        let found = judge(&o, &config).and_then(|j| j.policy.ok());
        assert!(found.is_some_and(|p| Arc::ptr_eq(
            &p,
            o.default_policy.as_ref().unwrap_or_else(|| panic!("set"))
        )));
        // The scan's own policy still comes first.
        o.settings.scan_policy = Some("strict".into());
        assert_eq!(
            judged(&o, &config).map(|j| j.1),
            Some(PolicySource::ScanPolicy)
        );
    }

    #[test]
    fn a_trusted_report_without_a_policy_is_judged_by_the_built_in_policy() {
        let config = trusted();
        let mut o = scan();
        o.report = Some(pushed(report()));
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["evaluate scangate/default with 0 exceptions"]);
        let Some(Step::EvaluatePolicy { policy, .. }) = w.steps.first() else {
            panic!("an evaluation")
        };
        assert_eq!(policy.spec.rego_file, crate::policy::DEFAULT_POLICY);
        let denied = PolicyState::Evaluated {
            outcome: outcome(
                &report(),
                Ok(Evaluation {
                    deny: vec!["CVE-1 (critical) in busybox 1.32.1".into()],
                }),
            ),
            generation: None,
        };
        let end = settle(
            &o,
            w,
            Outcomes {
                policy: Some(denied),
                ..Outcomes::default()
            },
            rules(&config),
        );
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(
            status.policy,
            Some(JudgingPolicy {
                name: "scangate/default.rego".into(),
                source: PolicySource::BuiltIn,
            })
        );
        assert_eq!(status.observed_policy_generation, None);
        assert_eq!(status.last_result.map(|l| l.phase), Some(Phase::Failed));
    }

    #[test]
    fn the_default_scan_policy_judges_trusted_scans_and_a_missing_one_is_an_error() {
        let config = AdmissionConfig {
            default_scan_policy: Some("strict".into()),
            ..trusted()
        };
        let mut o = scan();
        o.report = Some(pushed(report()));
        // Missing: an error, like a missing named policy, and the status says which.
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["forget policy apps/strict"]);
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Error));
        assert_eq!(
            condition_of(&status, ConditionType::PolicySucceeded).and_then(|c| c.error.clone()),
            Some(
                "ScanPolicy apps/strict (the admission config's defaultScanPolicy) not found"
                    .into()
            )
        );
        assert_eq!(
            status.policy.map(|p| p.source),
            Some(PolicySource::DefaultScanPolicy)
        );

        // There: evaluated, and its generation observed, so a new one is told apart.
        o.default_policy = Some(policy());
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["evaluate apps/strict with 0 exceptions"]);
        let passed = PolicyState::Evaluated {
            outcome: outcome(&report(), Ok(Evaluation { deny: vec![] })),
            generation: Some(4),
        };
        let status = settle(
            &o,
            w,
            Outcomes {
                policy: Some(passed),
                ..Outcomes::default()
            },
            rules(&config),
        )
        .write
        .unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Completed));
        assert_eq!(status.observed_policy_generation, Some(4));
        assert_eq!(
            status.policy,
            Some(JudgingPolicy {
                name: "apps/strict".into(),
                source: PolicySource::DefaultScanPolicy,
            })
        );
    }

    #[test]
    fn a_missing_policy_is_forgotten_and_an_error() {
        let config = config();
        let mut o = scan();
        o.settings.scan_policy = Some("strict".into());
        o.report = Some(pushed(report()));
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["forget policy apps/strict"]);
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        assert_eq!(end.write.and_then(|s| s.phase), Some(Phase::Error));
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn results_are_sent_once_per_report() {
        let config = config();
        let store = Rules {
            store_configured: true,
            ..rules(&config)
        };
        let mut o = scan();
        o.report = Some(pushed(report()));
        let w = work(&o, store);
        assert_eq!(steps(&w), ["send results"]);
        let end = settle(
            &o,
            w,
            Outcomes {
                sending: Some(SendState::Sent {
                    url: "https://store/r/1".into(),
                }),
                ..Outcomes::default()
            },
            store,
        );
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.metadata_url.as_deref(), Some("https://store/r/1"));

        // Sent for this report: not again, and nothing to write.
        o.previous = Some(status);
        let w = work(&o, store);
        assert!(w.steps.is_empty());
        assert_eq!(settle(&o, w, Outcomes::default(), store).write, None);
    }

    #[test]
    fn a_failed_send_is_retried_later() {
        let config = config();
        let store = Rules {
            store_configured: true,
            ..rules(&config)
        };
        let mut o = scan();
        o.report = Some(pushed(report()));
        let end = run(
            &o,
            store,
            Outcomes {
                sending: Some(SendState::Failed {
                    error: "connection refused".into(),
                }),
                ..Outcomes::default()
            },
        );
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_report_for_another_image_fails_the_scan_without_a_step() {
        let config = config();
        let mut o = scan();
        o.report = Some(ObservedReport {
            read: Err("the report is for another image".into()),
            reported_by: None,
        });
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty());
        assert!(w.results.is_none());
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        assert_eq!(end.write.and_then(|s| s.phase), Some(Phase::Error));
    }

    #[test]
    fn a_rescan_interval_brings_a_finished_scan_back_when_due() {
        let config = config();
        let mut o = with_template(scan());
        o.settings.rescan_interval = Some("24h".into());
        o.report = Some(pushed(report()));
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        let end = run(&o, rules(&config), Outcomes::default());
        // Stored at 12:00 the day before, rescanned 24 h after: 12 h from now.
        assert_eq!(end.requeue_after, Some(Duration::from_secs(12 * 3600)));
    }

    fn queued_decision(position: usize, waiting: usize) -> Decision {
        Decision::Queued {
            position,
            waiting,
            limits: super::super::queue::Limits {
                total: 5,
                per_namespace: 3,
                first_sight: 2,
            },
            show: true,
        }
    }

    fn condition_of(status: &ScanStatus, t: ConditionType) -> Option<&crate::api::Condition> {
        status.conditions.iter().find(|c| c.type_ == t)
    }

    #[test]
    fn a_first_scan_asks_for_a_slot_from_its_creation_and_waits_pending_with_its_place() {
        let config = config();
        let o = with_template(scan());
        let w = work(&o, rules(&config));
        let slot = w
            .slot
            .clone()
            .unwrap_or_else(|| panic!("a slot is asked for"));
        assert_eq!(slot.since, o.created);
        assert!(slot.job.starts_with("busybox-"));
        let w = w.queued(&queued_decision(3, 12), &o);
        assert!(w.steps.is_empty());
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Pending));
        let scanning = condition_of(&status, ConditionType::Scanning);
        assert_eq!(scanning.map(|c| c.reason.as_str()), Some("Queued"));
        assert_eq!(
            scanning.map(|c| c.message.as_str()),
            Some("queued: 3 of 12 waiting; limit 5 running, 3 per namespace")
        );
        assert_eq!(crate::api::consistency_problem(&status.conditions), None);
        // Back after a while to show its new place, or when a slot frees.
        assert_eq!(end.requeue_after, Some(QUEUED_RECHECK));

        // Still queued: a queued status does not count as a finished scan. A new place not to
        // be shown yet keeps the status as it is.
        let mut again = o.clone();
        again.previous = Some(status);
        let mut later = queued_decision(2, 12);
        if let Decision::Queued { show, .. } = &mut later {
            *show = false;
        }
        let w = work(&again, rules(&config)).queued(&later, &again);
        assert_eq!(
            settle(&again, w, Outcomes::default(), rules(&config)).write,
            None
        );
        let w = work(&again, rules(&config)).queued(&queued_decision(2, 12), &again);
        let moved = settle(&again, w, Outcomes::default(), rules(&config)).write;
        assert_eq!(
            moved
                .as_ref()
                .and_then(|s| condition_of(s, ConditionType::Scanning))
                .map(|c| c.message.as_str()),
            Some("queued: 2 of 12 waiting; limit 5 running, 3 per namespace")
        );
        let w = work(&again, rules(&config));
        assert_eq!(steps(&w), ["create job attempt 0 from grype"]);
        // Granted: the Job is created and the scan runs.
        let w = w.queued(&Decision::Start, &again);
        assert_eq!(steps(&w), ["create job attempt 0 from grype"]);
    }

    #[test]
    fn a_queued_rescan_keeps_the_report_and_the_last_result_until_it_starts() {
        let config = config();
        let mut o = with_template(scan());
        o.settings.rescan_interval = Some("1h".into());
        o.report = Some(pushed(report()));
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        let done = run(&o, rules(&config), Outcomes::default())
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(done.phase, Some(Phase::Completed));
        o.previous = Some(done);
        let w = work(&o, rules(&config));
        assert_eq!(
            steps(&w),
            [
                "delete report busybox-report",
                "create job attempt 0 from grype"
            ]
        );
        // Due one hour after the report was stored: its place in the queue.
        assert_eq!(
            w.slot.as_ref().map(|s| s.since),
            Some(ts("2026-01-01T13:00:00Z"))
        );
        let w = w.queued(&queued_decision(1, 1), &o);
        assert!(w.steps.is_empty(), "{:?}", steps(&w));
        let status = settle(&o, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Pending));
        assert_eq!(status.last_result.map(|l| l.phase), Some(Phase::Completed));
        assert_eq!(status.cve_count.map(|c| c.critical), Some(1));
    }

    #[test]
    fn a_queued_retry_still_shows_the_failure() {
        let config = config();
        let mut o = with_template(scan());
        let failed = job(
            "busybox-1",
            &o,
            JobState::Failed {
                message: "Failed: BackoffLimitExceeded".into(),
                error: "boom".into(),
                at: ts("2026-01-01T00:00:00Z"),
            },
        );
        o.jobs = vec![failed];
        let shown = run(&o, rules(&config), Outcomes::default())
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(shown.phase, Some(Phase::Error));
        o.previous = Some(shown);
        o.now = ts("2026-01-02T00:02:00Z");
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["create job attempt 1 from grype"]);
        let w = w.queued(&queued_decision(2, 2), &o);
        let status = settle(&o, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Error));
        assert_eq!(
            condition_of(&status, ConditionType::Scanning).map(|c| c.reason.as_str()),
            Some("Queued")
        );
        // The failure's time is kept, so the retry stays due.
        o.previous = Some(status);
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["create job attempt 1 from grype"]);
    }

    fn scanning_reason(status: &ScanStatus) -> Option<&str> {
        condition_of(status, ConditionType::Scanning).map(|c| c.reason.as_str())
    }

    fn stage_states(status: &ScanStatus) -> Vec<crate::api::StageState> {
        status.progress.iter().map(|p| p.state).collect()
    }

    /// A scan whose Job runs, with the status that says so.
    fn running_scan(config: &AdmissionConfig) -> Observed {
        let mut o = with_template(scan());
        o.jobs = vec![job("busybox-1", &o, JobState::Running)];
        o.previous = run(&o, rules(config), Outcomes::default()).write;
        o
    }

    #[test]
    fn suspending_a_running_scan_pauses_its_job_and_resuming_goes_on_with_it() {
        use crate::api::StageState::{Done, NotStarted, Paused, Running};
        let config = config();
        let mut o = running_scan(&config);
        // spec.suspend flipped: a new generation, the same spec otherwise.
        o.settings.suspend = true;
        o.generation = Some(2);
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["suspend job busybox-1: true"]);
        assert!(w.slot.is_none());
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        let paused = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(paused.phase, Some(Phase::Pending));
        assert_eq!(scanning_reason(&paused), Some("Paused"));
        assert_eq!(crate::api::consistency_problem(&paused.conditions), None);
        assert_eq!(paused.paused_at, Some(Time(o.now)));
        let message = condition_of(&paused, ConditionType::Scanning)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        assert!(message.contains("set spec.suspend to false"), "{message}");
        assert!(message.contains("2026-01-09T00:00:00Z"), "{message}");
        assert_eq!(stage_states(&paused), [Done, Done, Paused, Paused, Paused]);
        // It comes back when the pause limit is reached.
        assert_eq!(end.requeue_after, Some(Duration::from_secs(7 * 24 * 3600)));

        // The Job is suspended now: nothing more to do, the pause keeps its start.
        o.jobs[0].suspended = true;
        o.previous = Some(paused.clone());
        o.now = ts("2026-01-03T00:00:00Z");
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty());
        assert_eq!(
            settle(&o, w, Outcomes::default(), rules(&config)).write,
            None
        );

        // Resumed (another generation): the same Job goes on, no new Job, no queue.
        o.settings.suspend = false;
        o.generation = Some(3);
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["suspend job busybox-1: false"]);
        assert!(w.slot.is_none());
        let resumed = settle(&o, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(resumed.phase, Some(Phase::Scanning));
        assert_eq!(resumed.paused_at, None);
        assert_eq!(
            stage_states(&resumed),
            [Done, Done, Running, NotStarted, NotStarted]
        );
    }

    #[test]
    fn a_scan_paused_past_the_limit_is_canceled_for_good() {
        use crate::api::StageState::{Canceled, Done};
        let config = config();
        let mut o = running_scan(&config);
        o.settings.suspend = true;
        o.generation = Some(2);
        o.previous = settle(
            &o,
            work(&o, rules(&config)),
            Outcomes::default(),
            rules(&config),
        )
        .write;
        o.jobs[0].suspended = true;
        // A day short of the limit: still paused. At the limit: canceled, its Job deleted.
        o.now = ts("2026-01-08T23:59:59Z");
        assert_eq!(
            work(&o, rules(&config))
                .state
                .as_ref()
                .map(|s| matches!(s, ScanState::Paused { .. })),
            Some(true)
        );
        o.now = ts("2026-01-09T00:00:00Z");
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["delete job busybox-1"]);
        let canceled = settle(&o, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(canceled.phase, Some(Phase::Pending));
        assert_eq!(scanning_reason(&canceled), Some("Canceled"));
        assert_eq!(crate::api::consistency_problem(&canceled.conditions), None);
        assert_eq!(
            stage_states(&canceled),
            [Done, Done, Canceled, Canceled, Canceled]
        );

        // Unsuspended: no Job starts, it stays canceled.
        o.jobs = vec![];
        o.previous = Some(canceled);
        o.settings.suspend = false;
        o.generation = Some(3);
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty(), "{:?}", steps(&w));
        assert_eq!(
            settle(&o, w, Outcomes::default(), rules(&config))
                .write
                .map(|s| s.phase),
            Some(Some(Phase::Pending))
        );
        // Only a new rescan value starts a new round.
        o.rescan_request = Some("r1".into());
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["create job attempt 0 from grype"]);
    }

    #[test]
    fn the_cancel_annotation_cancels_an_unfinished_round_once() {
        let config = config();
        let mut o = running_scan(&config);
        o.cancel_request = Some("c1".into());
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["delete job busybox-1"]);
        let canceled = settle(&o, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(scanning_reason(&canceled), Some("Canceled"));
        assert_eq!(canceled.handled_cancel.as_deref(), Some("c1"));
        // The Job is gone; it stays canceled.
        o.jobs = vec![];
        o.previous = Some(canceled);
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty());

        // A finished scan: a new cancel value is recorded and changes nothing else.
        let mut done = with_template(scan());
        done.report = Some(pushed(report()));
        done.jobs = vec![job(
            "busybox-1",
            &done,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        done.previous = run(&done, rules(&config), Outcomes::default()).write;
        let phase = done.previous.as_ref().and_then(|p| p.phase);
        done.cancel_request = Some("c2".into());
        let w = work(&done, rules(&config));
        assert!(w.steps.iter().all(|s| !matches!(s, Step::DeleteJob { .. })));
        let after = settle(&done, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(after.phase, phase);
        assert_eq!(after.handled_cancel.as_deref(), Some("c2"));
        assert_eq!(scanning_reason(&after), Some("JobFinished"));
    }

    #[test]
    fn a_paused_scan_never_dates_its_pause_from_a_status_it_did_not_pause() {
        // `pausedAt` counts only with a Paused condition scangate wrote; any other value
        // (e.g. a status restored from elsewhere) does not shorten the pause.
        let config = config();
        let mut o = running_scan(&config);
        if let Some(p) = o.previous.as_mut() {
            p.paused_at = Some(Time(ts("2000-01-01T00:00:00Z")));
        }
        o.settings.suspend = true;
        o.generation = Some(2);
        match work(&o, rules(&config)).state {
            Some(ScanState::Paused { since, .. }) => assert_eq!(since, o.now),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_queued_scan_canceled_leaves_the_queue_for_good() {
        let config = config();
        let mut o = with_template(scan());
        let w = work(&o, rules(&config)).queued(&queued_decision(2, 3), &o);
        o.previous = settle(&o, w, Outcomes::default(), rules(&config)).write;
        o.cancel_request = Some("c1".into());
        let w = work(&o, rules(&config));
        assert!(w.slot.is_none(), "it asks for no slot");
        assert!(w.steps.is_empty(), "{:?}", steps(&w));
        let canceled = settle(&o, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(scanning_reason(&canceled), Some("Canceled"));
        assert_eq!(canceled.phase, Some(Phase::Pending));
        // Still canceled at the next reconcile: no Job, no slot.
        o.previous = Some(canceled);
        let w = work(&o, rules(&config));
        assert!(w.slot.is_none() && w.steps.is_empty());
    }

    #[test]
    fn a_queued_scan_suspended_is_paused_and_keeps_its_place() {
        use crate::api::StageState::{Done, Paused};
        let config = config();
        let mut o = with_template(scan());
        let w = work(&o, rules(&config)).queued(&queued_decision(4, 4), &o);
        let since = w.slot.clone();
        assert!(since.is_none());
        o.previous = settle(&o, w, Outcomes::default(), rules(&config)).write;
        o.settings.suspend = true;
        o.generation = Some(2);
        let w = work(&o, rules(&config));
        assert!(w.slot.is_none());
        let status = settle(&o, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(scanning_reason(&status), Some("Paused"));
        let message = condition_of(&status, ConditionType::Scanning)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        assert!(
            message.contains("keeps its place in the queue"),
            "{message}"
        );
        assert_eq!(
            stage_states(&status),
            [Done, Paused, Paused, Paused, Paused]
        );
        // Resumed: it asks for a slot again with the same place (its creation time).
        o.previous = Some(status);
        o.settings.suspend = false;
        o.generation = Some(3);
        let w = work(&o, rules(&config));
        assert_eq!(
            w.slot.as_ref().map(|s| s.since),
            Some(o.created),
            "the place in the queue is the original request's"
        );
        // Suspended from the start: Pending with no condition, as before.
        let mut fresh = with_template(scan());
        fresh.settings.suspend = true;
        let status = run(&fresh, rules(&config), Outcomes::default())
            .write
            .unwrap_or_else(|| panic!("written"));
        assert!(status.conditions.is_empty());
    }

    #[test]
    fn a_new_rescan_annotation_value_rescans_once_and_is_recorded() {
        let config = config();
        let mut o = with_template(scan());
        o.report = Some(pushed(report()));
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        o.previous = run(&o, rules(&config), Outcomes::default()).write;
        // Nothing to do without a request.
        assert!(work(&o, rules(&config)).steps.is_empty());
        o.rescan_request = Some("2026-01-02T00:00:00Z".into());
        let w = work(&o, rules(&config));
        assert_eq!(
            steps(&w),
            [
                "delete report busybox-report",
                "create job attempt 0 from grype"
            ]
        );
        let end = settle(
            &o,
            w,
            Outcomes {
                created: Some(Ok(JobState::Running)),
                ..Outcomes::default()
            },
            rules(&config),
        );
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Scanning));
        assert_eq!(
            status.handled_rescan.as_deref(),
            Some("2026-01-02T00:00:00Z")
        );
        // Not created (queued): not handled yet.
        let queued = work(&o, rules(&config)).queued(&queued_decision(1, 1), &o);
        let status = settle(&o, queued, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(status.handled_rescan, None);
    }

    #[test]
    fn results_older_than_the_max_result_age_are_rescanned_by_then() {
        let config = AdmissionConfig {
            max_result_age: Some("6h".into()),
            ..AdmissionConfig::default()
        };
        let mut o = with_template(scan());
        o.report = Some(pushed(report()));
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        let end = run(&o, rules(&config), Outcomes::default());
        // Stored at 12:00 the day before: 6 h old at 18:00, already past at midnight.
        assert_eq!(end.requeue_after, Some(Duration::from_secs(1)));
        o.previous = end.write;
        let w = work(&o, rules(&config));
        assert_eq!(
            steps(&w),
            [
                "delete report busybox-report",
                "create job attempt 0 from grype"
            ]
        );
        // A shorter rescanInterval still wins.
        o.settings.rescan_interval = Some("1h".into());
        assert_eq!(
            work(&o, rules(&config)).slot.map(|s| s.since),
            Some(ts("2026-01-01T13:00:00Z"))
        );
    }

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn by_tag(o: Observed) -> Observed {
        Observed {
            resolve: Some(ResolveTarget {
                image: ImageRef::parse("r.example/team/app:1").unwrap_or_else(|e| panic!("{e}")),
                pull_secret: Some("pull".into()),
            }),
            ..with_template(o)
        }
    }

    fn resolved(c: char) -> Resolved {
        Resolved {
            digest: digest(c),
            media_type: crate::registry::MediaType::OciIndex,
            platforms: vec![crate::registry::Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: Some("v8".into()),
                digest: digest('f'),
            }],
        }
    }

    #[test]
    fn a_tag_is_resolved_before_its_job_starts_and_the_status_records_it() {
        let config = config();
        let o = by_tag(scan());
        let w = work(&o, rules(&config));
        assert_eq!(
            steps(&w),
            [
                "resolve r.example/team/app:1 with pull",
                "create job attempt 0 from grype"
            ]
        );
        let end = settle(
            &o,
            w,
            Outcomes {
                resolved: Some(Ok(resolved('a'))),
                created: Some(Ok(JobState::Running)),
                ..Outcomes::default()
            },
            rules(&config),
        );
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Scanning));
        let resolution = status
            .resolved
            .clone()
            .unwrap_or_else(|| panic!("resolved"));
        assert_eq!(
            resolution.image,
            format!("r.example/team/app:1@{}", digest('a'))
        );
        assert_eq!(
            resolution.media_type,
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(resolution.platforms.len(), 1);
        assert_eq!(resolution.platforms[0].variant.as_deref(), Some("v8"));
        assert_eq!(resolution.resolved_at.0, o.now);

        // While the Job runs, nothing is resolved again and the resolution stays.
        let mut running = o.clone();
        running.previous = Some(status);
        running.jobs = vec![job("busybox-1", &running, JobState::Running)];
        let w = work(&running, rules(&config));
        assert!(w.steps.is_empty(), "{:?}", steps(&w));
        assert_eq!(
            settle(&running, w, Outcomes::default(), rules(&config)).write,
            None
        );
    }

    #[test]
    fn an_unresolvable_tag_starts_no_job_and_is_retried_after_the_error_delay() {
        let config = config();
        let mut o = by_tag(scan());
        let w = work(&o, rules(&config));
        let end = settle(
            &o,
            w,
            Outcomes {
                resolved: Some(Err("registry r.example refused access".into())),
                ..Outcomes::default()
            },
            rules(&config),
        );
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Error));
        assert_eq!(status.resolved, None);
        let succeeded = condition_of(&status, ConditionType::Succeeded);
        assert_eq!(succeeded.map(|c| c.reason.as_str()), Some("ResolveFailed"));
        assert_eq!(
            succeeded.map(|c| c.message.as_str()),
            Some("registry r.example refused access")
        );
        assert_eq!(crate::api::consistency_problem(&status.conditions), None);

        // A watch event right after: not asked again, the status stays.
        o.previous = Some(status);
        let w = work(&o, rules(&config));
        assert!(w.steps.is_empty(), "{:?}", steps(&w));
        assert!(w.slot.is_none());
        let end = settle(&o, w, Outcomes::default(), rules(&config));
        assert_eq!(end.write, None);
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));

        // After the delay: resolved again, through the queue; a queued scan asks nothing.
        o.now = ts("2026-01-02T00:01:00Z");
        let w = work(&o, rules(&config));
        assert_eq!(
            steps(&w),
            [
                "resolve r.example/team/app:1 with pull",
                "create job attempt 0 from grype"
            ]
        );
        assert!(w.slot.is_some());
        let w = w.queued(&queued_decision(1, 2), &o);
        assert!(w.steps.is_empty(), "{:?}", steps(&w));
        let queued = settle(&o, w, Outcomes::default(), rules(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        // Still saying why it failed while it waits.
        assert_eq!(queued.phase, Some(Phase::Error));
        assert_eq!(
            condition_of(&queued, ConditionType::Succeeded).map(|c| c.reason.as_str()),
            Some("ResolveFailed")
        );
        assert_eq!(crate::api::consistency_problem(&queued.conditions), None);

        // A new generation (the spec was fixed) is resolved at once.
        let mut fixed = o.clone();
        fixed.now = ts(NOW);
        fixed.generation = Some(2);
        assert_eq!(
            steps(&work(&fixed, rules(&config)))
                .first()
                .map(String::as_str),
            Some("resolve r.example/team/app:1 with pull")
        );
    }

    #[test]
    fn a_rescan_resolves_the_moved_tag_and_keeps_the_last_result() {
        let config = config();
        let mut o = by_tag(scan());
        o.report = Some(pushed(report()));
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        let mut done = run(&o, rules(&config), Outcomes::default())
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(done.phase, Some(Phase::Completed));
        // No resolution in the outcomes and none before: none recorded.
        assert_eq!(done.resolved, None);
        done.resolved = resolution(&o, Some(&Ok(resolved('a'))));
        o.previous = Some(done);
        o.rescan_request = Some("2026-01-02T00:00:00Z".into());
        let w = work(&o, rules(&config));
        assert_eq!(
            steps(&w),
            [
                "resolve r.example/team/app:1 with pull",
                "delete report busybox-report",
                "create job attempt 0 from grype"
            ]
        );
        let status = settle(
            &o,
            w,
            Outcomes {
                resolved: Some(Ok(resolved('b'))),
                created: Some(Ok(JobState::Running)),
                ..Outcomes::default()
            },
            rules(&config),
        )
        .write
        .unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Scanning));
        assert_eq!(
            status.resolved.as_ref().and_then(|r| r.digest()),
            Some(digest('b').as_str())
        );
        assert_eq!(status.last_result.map(|l| l.phase), Some(Phase::Completed));
    }

    #[test]
    fn a_resolution_of_another_tag_is_not_carried() {
        let mut o = by_tag(scan());
        let mut previous = ScanStatus {
            resolved: resolution(&o, Some(&Ok(resolved('a')))),
            ..ScanStatus::default()
        };
        o.previous = Some(previous.clone());
        assert_eq!(resolution(&o, None), previous.resolved);
        if let Some(r) = &mut previous.resolved {
            r.image = format!("r.example/team/app:2@{}", digest('a'));
        }
        o.previous = Some(previous);
        assert_eq!(resolution(&o, None), None);
        // Resolution off, or a digest-pinned scan: nothing recorded.
        o.resolve = None;
        assert_eq!(resolution(&o, Some(&Ok(resolved('a')))), None);
    }

    /// Resolving tags again an hour after their last resolution.
    fn rechecking(config: &AdmissionConfig) -> Rules<'_> {
        Rules {
            tag_recheck: Some(Duration::from_secs(3600)),
            ..rules(config)
        }
    }

    /// The policy passed on the report.
    fn passed() -> Outcomes {
        Outcomes {
            policy: Some(PolicyState::Evaluated {
                outcome: outcome(&report(), Ok(Evaluation { deny: vec![] })),
                generation: Some(4),
            }),
            ..Outcomes::default()
        }
    }

    /// A trusted scan of `r.example/team/app:1` by tag, resolved to digest `a` at
    /// `2026-01-01T11:00:00Z`, its Job complete and its report (of that content) judged by
    /// `strict`; the status written, at 12:00.
    fn scanned_by_tag(rules: Rules<'_>) -> Observed {
        let mut o = by_tag(scan());
        o.settings.scan_policy = Some("strict".into());
        o.policy = Some(policy());
        let mut report = pushed(report());
        if let Ok(facts) = &mut report.read {
            facts.artifact = Artifact {
                registry: Some(crate::api::RegistryArtifact {
                    image: format!("r.example/team/app:1@{}", digest('a')),
                    index: None,
                }),
                ..Artifact::default()
            };
        }
        o.report = Some(report);
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        o.now = ts("2026-01-01T11:00:00Z");
        o.previous = Some(ScanStatus {
            resolved: resolution(&o, Some(&Ok(resolved('a')))),
            ..ScanStatus::default()
        });
        o.now = ts(STORED);
        o.previous = run(&o, rules, passed()).write;
        assert_eq!(
            o.previous.as_ref().and_then(|p| p.phase),
            Some(Phase::Completed)
        );
        o
    }

    #[test]
    fn a_finished_trusted_tag_is_resolved_again_when_its_resolution_is_due() {
        let config = trusted();
        let mut o = scanned_by_tag(rechecking(&config));
        // Resolved at 11:00: asked again at 12:00, not before.
        o.now = ts("2026-01-01T11:59:00Z");
        let w = work(&o, rechecking(&config));
        assert_eq!(steps(&w), ["evaluate apps/strict with 0 exceptions"]);
        let end = settle(&o, w, passed(), rechecking(&config));
        assert_eq!(end.write, None);
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));

        // Due: resolved again, last. The same digest: only resolvedAt moves, one write, no
        // event, and the next time is an hour on.
        o.now = ts("2026-01-01T12:00:00Z");
        let w = work(&o, rechecking(&config));
        assert_eq!(
            steps(&w),
            [
                "evaluate apps/strict with 0 exceptions",
                "resolve again r.example/team/app:1 with pull"
            ]
        );
        assert!(w.slot.is_none());
        let end = settle(
            &o,
            w,
            Outcomes {
                rechecked: Some(Ok(resolved('a'))),
                ..passed()
            },
            rechecking(&config),
        );
        assert!(!end.publish_event);
        assert_eq!(end.requeue_after, Some(Duration::from_secs(3600)));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        let mut expected = o.previous.clone().unwrap_or_default();
        if let Some(r) = &mut expected.resolved {
            r.resolved_at = Time(o.now);
        }
        assert_eq!(status, expected);

        // Not for a namespace's own scan, a running one, a suspended one, or with it off.
        let mut other = o.clone();
        other.previous = Some(status);
        other.now = ts("2026-01-01T14:00:00Z");
        let recheck = |o: &Observed, config: &AdmissionConfig, rules: Rules<'_>| {
            tag_recheck(o, Rules { config, ..rules }, true)
        };
        assert!(matches!(
            recheck(&other, &config, rechecking(&config)),
            TagRecheck::Now(_)
        ));
        assert_eq!(
            recheck(&other, &AdmissionConfig::default(), rechecking(&config)),
            TagRecheck::Off
        );
        assert_eq!(recheck(&other, &config, rules(&config)), TagRecheck::Off);
        assert_eq!(
            tag_recheck(&other, rechecking(&config), false),
            TagRecheck::Off
        );
        other.settings.suspend = true;
        assert_eq!(
            recheck(&other, &config, rechecking(&config)),
            TagRecheck::Off
        );
    }

    #[test]
    fn a_moved_tag_records_the_new_digest_then_its_content_is_scanned_keeping_the_last_result() {
        let config = trusted();
        let mut o = scanned_by_tag(rechecking(&config));
        o.now = ts("2026-01-01T12:00:00Z");
        let w = work(&o, rechecking(&config));
        let end = settle(
            &o,
            w,
            Outcomes {
                rechecked: Some(Ok(resolved('b'))),
                ..passed()
            },
            rechecking(&config),
        );
        // The new digest is recorded at once (admission no longer lets the result speak for
        // the tag); the verdict stays the old content's; back at once to scan the new one.
        assert_eq!(end.requeue_after, Some(Duration::from_secs(1)));
        assert!(!end.publish_event);
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(
            status.resolved.as_ref().and_then(|r| r.digest()),
            Some(digest('b').as_str())
        );
        assert_eq!(status.phase, Some(Phase::Completed));
        assert_eq!(
            status.last_result.as_ref().map(|l| l.phase),
            Some(Phase::Completed)
        );
        assert_eq!(tag_moved_since(&o), None);

        // The next reconcile: the old report is not of the resolved content any more; the new
        // content is scanned in the round of the last result, its place in the queue since the
        // move was found.
        o.previous = Some(status);
        o.now = ts("2026-01-01T12:00:01Z");
        o.report = Some(ObservedReport {
            read: Err("the report is of other content than the tag resolved to".into()),
            reported_by: None,
        });
        assert_eq!(tag_moved_since(&o), Some(ts("2026-01-01T12:00:00Z")));
        let w = work(&o, rechecking(&config));
        assert_eq!(
            steps(&w),
            [
                "resolve r.example/team/app:1 with pull",
                "delete report busybox-report",
                "create job attempt 0 from grype"
            ]
        );
        assert_eq!(
            w.slot.as_ref().map(|s| s.since),
            Some(ts("2026-01-01T12:00:00Z"))
        );
        // Waiting for a slot: Pending, the last result kept.
        let queued = work(&o, rechecking(&config)).queued(&queued_decision(1, 3), &o);
        let waiting = settle(&o, queued, Outcomes::default(), rechecking(&config))
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(waiting.phase, Some(Phase::Pending));
        assert_eq!(waiting.last_result.map(|l| l.phase), Some(Phase::Completed));
        // Started: scanning the new digest, the last result kept.
        let status = settle(
            &o,
            w,
            Outcomes {
                resolved: Some(Ok(resolved('b'))),
                created: Some(Ok(JobState::Running)),
                ..Outcomes::default()
            },
            rechecking(&config),
        )
        .write
        .unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Scanning));
        assert_eq!(
            status.resolved.as_ref().and_then(|r| r.digest()),
            Some(digest('b').as_str())
        );
        assert_eq!(status.last_result.map(|l| l.phase), Some(Phase::Completed));
    }

    #[test]
    fn a_failed_recheck_keeps_the_verdict_says_so_and_is_retried() {
        let config = trusted();
        let mut o = scanned_by_tag(rechecking(&config));
        let judged = o.previous.clone().unwrap_or_default();
        o.now = ts("2026-01-01T12:00:00Z");
        let w = work(&o, rechecking(&config));
        let end = settle(
            &o,
            w,
            Outcomes {
                rechecked: Some(Err("registry r.example is unreachable".into())),
                ..passed()
            },
            rechecking(&config),
        );
        assert_eq!(end.requeue_after, Some(Duration::from_secs(60)));
        assert!(!end.publish_event);
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Completed));
        assert_eq!(status.resolved, judged.resolved);
        assert_eq!(status.last_result, judged.last_result);
        let scanning = condition_of(&status, ConditionType::Scanning);
        assert_eq!(scanning.map(|c| c.reason.as_str()), Some("ResolveFailed"));
        assert_eq!(
            scanning.and_then(|c| c.error.as_deref()),
            Some("registry r.example is unreachable")
        );
        assert_eq!(crate::api::consistency_problem(&status.conditions), None);

        // Still finished: no Job; asked again at the next reconcile, and once it answers the
        // condition is as before.
        o.previous = Some(status);
        o.now = ts("2026-01-01T12:01:00Z");
        let w = work(&o, rechecking(&config));
        assert_eq!(
            steps(&w),
            [
                "evaluate apps/strict with 0 exceptions",
                "resolve again r.example/team/app:1 with pull"
            ]
        );
        let again = settle(
            &o,
            w,
            Outcomes {
                rechecked: Some(Err("registry r.example is unreachable".into())),
                ..passed()
            },
            rechecking(&config),
        );
        assert_eq!(again.write, None);
        let w = work(&o, rechecking(&config));
        let status = settle(
            &o,
            w,
            Outcomes {
                rechecked: Some(Ok(resolved('a'))),
                ..passed()
            },
            rechecking(&config),
        )
        .write
        .unwrap_or_else(|| panic!("written"));
        assert_eq!(
            condition_of(&status, ConditionType::Scanning).map(|c| c.reason.as_str()),
            Some("JobFinished")
        );
        assert_eq!(status.phase, Some(Phase::Completed));
    }

    #[test]
    fn a_new_reevaluate_value_evaluates_the_stored_report_again_without_a_job() {
        let config = config();
        let mut o = with_template(scan());
        o.settings.scan_policy = Some("strict".into());
        o.policy = Some(policy());
        o.report = Some(pushed(report()));
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        let passed = || Outcomes {
            policy: Some(PolicyState::Evaluated {
                outcome: outcome(&report(), Ok(Evaluation { deny: vec![] })),
                generation: Some(4),
            }),
            ..Outcomes::default()
        };
        o.previous = run(&o, rules(&config), passed()).write;
        assert_eq!(run(&o, rules(&config), passed()).write, None);

        // A new value: the policy runs on the stored report, no Job, no report deleted; the
        // status records the value and when, and that alone is written.
        o.reevaluate_request = Some("2026-01-02T00:00:00Z".into());
        let w = work(&o, rules(&config));
        assert_eq!(steps(&w), ["evaluate apps/strict with 0 exceptions"]);
        assert!(w.slot.is_none());
        let end = settle(&o, w, passed(), rules(&config));
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(
            status.handled_reevaluate.as_deref(),
            Some("2026-01-02T00:00:00Z")
        );
        assert_eq!(status.reevaluated_at.as_ref().map(|t| t.0), Some(ts(NOW)));
        assert_eq!(status.phase, Some(Phase::Completed));
        assert!(!end.publish_event);
        // Handled: the same value changes nothing any more, later too.
        o.previous = Some(status.clone());
        o.now = ts("2026-01-02T01:00:00Z");
        assert_eq!(run(&o, rules(&config), passed()).write, None);

        // A verdict that turned (the policy's data changed outside the watches): shown at once.
        o.reevaluate_request = Some("2026-01-02T01:00:00Z".into());
        let denied = Outcomes {
            policy: Some(PolicyState::Evaluated {
                outcome: outcome(
                    &report(),
                    Ok(Evaluation {
                        deny: vec!["CVE-1 (critical)".into()],
                    }),
                ),
                generation: Some(4),
            }),
            ..Outcomes::default()
        };
        let end = run(&o, rules(&config), denied);
        let status = end.write.unwrap_or_else(|| panic!("written"));
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(
            status.handled_reevaluate.as_deref(),
            Some("2026-01-02T01:00:00Z")
        );
        assert_eq!(
            status.reevaluated_at.map(|t| t.0),
            Some(ts("2026-01-02T01:00:00Z"))
        );
    }

    #[test]
    fn a_reevaluate_value_waits_for_a_report_to_evaluate() {
        let config = config();
        // Running its first scan: nothing to evaluate, the value is not handled yet.
        let mut o = with_template(scan());
        o.jobs = vec![job("busybox-1", &o, JobState::Running)];
        o.reevaluate_request = Some("2026-01-02T00:00:00Z".into());
        let status = run(&o, rules(&config), Outcomes::default())
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(status.handled_reevaluate, None);
        // Its report arrives: evaluated, so the value is handled.
        o.previous = Some(status);
        o.report = Some(pushed(report()));
        o.jobs = vec![job(
            "busybox-1",
            &o,
            JobState::Complete {
                message: "Complete".into(),
                at: ts(STORED),
            },
        )];
        let status = run(&o, rules(&config), Outcomes::default())
            .write
            .unwrap_or_else(|| panic!("written"));
        assert_eq!(
            status.handled_reevaluate.as_deref(),
            Some("2026-01-02T00:00:00Z")
        );
    }

    #[test]
    fn reevaluation_keeps_what_the_status_records_unless_a_new_value_is_evaluated() {
        let now = ts(NOW);
        let previous = ScanStatus {
            handled_reevaluate: Some("a".into()),
            reevaluated_at: Some(Time(ts(STORED))),
            ..ScanStatus::default()
        };
        let kept = Some(Reevaluated {
            request: "a".into(),
            at: ts(STORED),
        });
        assert_eq!(reevaluation(Some("a"), Some(&previous), true, now), kept);
        assert_eq!(reevaluation(Some("b"), Some(&previous), false, now), kept);
        assert_eq!(reevaluation(None, Some(&previous), true, now), kept);
        assert_eq!(
            reevaluation(Some("b"), Some(&previous), true, now),
            Some(Reevaluated {
                request: "b".into(),
                at: now
            })
        );
        assert_eq!(reevaluation(Some("b"), None, false, now), None);
    }
}
