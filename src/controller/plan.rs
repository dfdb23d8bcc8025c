//! The planner of one reconcile, pure. From what the caches hold for a scan ([`Observed`]),
//! [`plan`] decides the effects ([`Step`]: delete the previous report or a stale Job, create
//! (or adopt) the Job, evaluate the policy, send the results); from their outcomes
//! ([`Outcomes`]), [`settle`] decides the status to write (none when it equals the observed
//! one), whether to publish the phase event, and when to come back. The reconciler only
//! gathers the inputs and executes what these say.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::job::{JobAction, JobKey, JobState, JobSummary, PlanInputs, rescan_at, until};
use super::policy::exceptions_input;
use super::status::{
    PolicyState, ReportSource, Results, ScanState, SendState, StatusInputs, desired_status,
    previous_facts, state_from_job, state_without_job,
};
use crate::admission::config::AdmissionConfig;
use crate::admission::scanning::template_pod;
use crate::api::{
    Artifact, ConditionStatus, ConditionType, ScanException, ScanPolicy, ScanSettings, ScanStatus,
    ScanTemplate, Scanner,
};
use crate::image::ImageRef;
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

/// Everything one reconcile decides from: the scan and what the caches hold for it.
#[derive(Clone, Debug)]
pub struct Observed {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub generation: Option<i64>,
    /// The scan is being deleted.
    pub deleting: bool,
    pub settings: ScanSettings,
    pub previous: Option<ScanStatus>,
    pub report: Option<ObservedReport>,
    /// The scan's ScanTemplate, when it names one and it exists.
    pub template: Option<Arc<ScanTemplate>>,
    /// The Jobs owned by the scan.
    pub jobs: Vec<JobSummary>,
    /// The scan's ScanPolicy, when it names one and it exists.
    pub policy: Option<Arc<ScanPolicy>>,
    /// The ScanExceptions of the namespaces whose exceptions may count for this scan.
    pub exceptions: Vec<Arc<ScanException>>,
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
}

/// One effect of a reconcile, in the order of [`Work::steps`].
#[derive(Clone, Debug)]
pub enum Step {
    /// Delete the previous report before a new scan, so it never passes for the new one's.
    DeleteReport { name: String },
    /// Delete a Job of an earlier key that still runs.
    DeleteJob { name: String },
    /// Create the scan Job (or adopt it when it exists and is the scan's); its outcome tells the
    /// scan's state.
    CreateJob {
        key: JobKey,
        template: Arc<ScanTemplate>,
    },
    /// The scan's policy is gone: forget what was known of it.
    ForgetPolicy { name: String },
    /// Evaluate the policy (in the sandbox) on the report with its exceptions; the outcome is the
    /// policy state.
    EvaluatePolicy {
        policy: Arc<ScanPolicy>,
        input: Arc<Report>,
    },
    /// Send the report (with its exceptions) to the metadata store; the outcome is the send
    /// state.
    SendResults { report: Arc<Report> },
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
}

/// What the steps gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcomes {
    /// The state of the Job created or adopted, or why the apiserver refused it.
    pub created: Option<Result<JobState, String>>,
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
    let interval = rescan_interval(o.settings.rescan_interval.as_deref());
    let mut steps = vec![];
    let mut wake = vec![];
    let mut retry_errors = false;
    let mut template_generation = None;
    let mut report = o.report.as_ref();
    let mut report_job = None;

    let state = match (&o.settings.scan_template, &o.template) {
        (None, _) => Some(state_without_job(
            previous,
            usable(report).as_ref(),
            PUSHED_MESSAGE,
        )),
        (Some(name), None) => {
            retry_errors = true;
            Some(ScanState::Unrunnable {
                error: format!("ScanTemplate {name} not found"),
            })
        }
        (Some(name), Some(template)) => {
            let tgen = template.metadata.generation.unwrap_or(0);
            template_generation = Some(tgen);
            let decided = super::job::plan(&PlanInputs {
                scan_uid: o.uid.clone(),
                scan_generation: o.generation.unwrap_or(0),
                template_generation: tgen,
                jobs: o.jobs.clone(),
                previous: previous_facts(previous, o.generation, template_generation),
                report_ok: matches!(report, Some(ObservedReport { read: Ok(_), .. })),
                rescan_interval: interval,
                suspend: o.settings.suspend,
                error_retry: rules.error_retry,
                now: o.now,
            });
            wake.extend(decided.requeue_at);
            match decided.action {
                JobAction::Use(job) => {
                    report_job = Some(job.name.clone());
                    Some(state_from_job(
                        &job.state,
                        usable(report).as_ref(),
                        &report_name,
                    ))
                }
                JobAction::Idle => Some(state_without_job(
                    previous,
                    usable(report).as_ref(),
                    "Complete",
                )),
                JobAction::Create(key) => {
                    match template_pod(name, &template.spec.template, &rules.config.templates) {
                        // The template's watch brings the scan back when it is fixed.
                        Err(error) => Some(ScanState::Unrunnable { error }),
                        Ok(()) => {
                            // A new scan: the old report must not pass for its result.
                            if report.take().is_some() {
                                steps.push(Step::DeleteReport {
                                    name: report_name.clone(),
                                });
                            }
                            steps.extend(
                                o.jobs
                                    .iter()
                                    .filter(|j| j.state == JobState::Running)
                                    .map(|j| Step::DeleteJob {
                                        name: j.name.clone(),
                                    }),
                            );
                            steps.push(Step::CreateJob {
                                key,
                                template: template.clone(),
                            });
                            None
                        }
                    }
                }
            }
        }
    };

    let mut results = None;
    if let (Some(ScanState::Finished { .. }), Some(observed)) = (&state, report)
        && let Ok(facts) = &observed.read
    {
        let (policy, evaluated) = plan_policy(o, facts, rules, &mut steps, &mut wake);
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
            source: match &o.settings.scan_template {
                Some(template) => ReportSource::Job {
                    namespace: o.namespace.clone(),
                    job: report_job,
                    template: template.clone(),
                },
                None => ReportSource::Pushed {
                    by: observed.reported_by.clone(),
                },
            },
            policy,
            sending,
        });
    }
    Plan::Work(Box::new(Work {
        steps,
        state,
        template_generation,
        results,
        wake,
        retry_errors,
    }))
}

/// The policy state, or the evaluation to run for it, and the report as evaluated (with its
/// exceptions).
fn plan_policy(
    o: &Observed,
    facts: &ReportFacts,
    rules: Rules<'_>,
    steps: &mut Vec<Step>,
    wake: &mut Vec<Timestamp>,
) -> (PolicyState, Arc<Report>) {
    let Some(name) = &o.settings.scan_policy else {
        return (PolicyState::NoPolicy, Arc::new(facts.report.clone()));
    };
    let Some(policy) = &o.policy else {
        steps.push(Step::ForgetPolicy { name: name.clone() });
        return (
            PolicyState::Error {
                error: format!("ScanPolicy {name} not found"),
                generation: None,
            },
            Arc::new(facts.report.clone()),
        );
    };
    let (active, expiry) = exceptions_input(
        o.exceptions.iter().map(|e| &**e),
        facts.exception_image.as_ref(),
        &o.namespace,
        rules.config,
        o.now,
    );
    wake.extend(expiry);
    let mut evaluated = facts.report.clone();
    evaluated.exceptions = active;
    let evaluated = Arc::new(evaluated);
    steps.push(Step::EvaluatePolicy {
        policy: policy.clone(),
        input: evaluated.clone(),
    });
    let pending = PolicyState::Error {
        error: "the policy was not evaluated".into(),
        generation: policy.metadata.generation,
    };
    (pending, evaluated)
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
        ..
    } = *work;
    let state = match (state, outcomes.created) {
        (Some(state), _) => state,
        (None, Some(Ok(job))) => {
            state_from_job(&job, None, &crate::report::config_map_name(&o.name))
        }
        (None, Some(Err(error))) => {
            retry_errors = true;
            ScanState::Unrunnable { error }
        }
        (None, None) => {
            retry_errors = true;
            ScanState::Unrunnable {
                error: "the scan Job was not created".into(),
            }
        }
    };
    if let Some(results) = &mut results {
        if let Some(policy) = outcomes.policy {
            results.policy = policy;
        }
        if let Some(sending) = outcomes.sending {
            results.sending = sending;
        }
        retry_errors |= matches!(results.policy, PolicyState::Error { .. })
            || matches!(results.sending, SendState::Failed { .. });
    }
    let previous = o.previous.as_ref();
    let desired = desired_status(&StatusInputs {
        generation: o.generation,
        template_generation,
        previous,
        state,
        results,
        now: o.now,
    });
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
    Settled {
        write: changed.then_some(desired),
        publish_event,
        requeue_after: wake
            .into_iter()
            .min()
            .map(|at| until(o.now, at).max(Duration::from_secs(1))),
    }
}
