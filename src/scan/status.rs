//! The status a scan should have, as one pure function of what the reconciler gathered.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::progress::{At, Evaluated, Round, progress};
use crate::api::{
    Artifact, AttestationResult, Condition, ConditionStatus, ConditionType, CveCount,
    EarlierResult, JudgingPolicy, LastResult, MAX_EARLIER_RESULTS, MAX_EARLIER_VIOLATIONS, Phase,
    Resolution, ScanStatus, ScannedBy, Scanner, phase, reason,
};
use crate::policy::Outcome;

/// Where the scan itself is (not the policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanState {
    /// Nothing ran yet: no template and no report pushed, or suspended before the first Job.
    Pending,
    /// The scan cannot run: e.g. its ScanTemplate does not exist. `Scanning=False`,
    /// `Succeeded=False/Error`.
    Unrunnable { error: String },
    /// A scan Job runs.
    Running,
    /// A report is there: the Job completed, or the report was pushed. `message` is the last
    /// Job status.
    Finished { message: String },
    /// The Job failed (`report: false`), or completed without a readable report
    /// (`report: true`).
    Failed {
        message: String,
        error: String,
        report: bool,
    },
    /// The scan waits for a slot to start its Job (`message` says its place); a retry keeps
    /// showing the failure it retries (`failure`: the `Succeeded=False` condition, its reason
    /// `Error` or `ResolveFailed`).
    Queued {
        message: String,
        failure: Option<Condition>,
    },
    /// `spec.suspend` paused the round before it finished: its Job is suspended (`job`), or it
    /// was waiting for a slot and keeps its place. `since` is when scangate first saw it
    /// paused; still paused at `cancel_at`, it is canceled.
    Paused {
        since: Timestamp,
        cancel_at: Timestamp,
        job: bool,
    },
    /// The round was canceled for good (`message` says by what and how to start a new one):
    /// its Job is deleted, unsuspending does not restart it.
    Canceled { message: String },
    /// The image's tag could not be resolved at its registry (`error` says why): no Job was
    /// started. `Scanning=False` and `Succeeded=False`, both `ResolveFailed`.
    ResolveFailed { error: String },
    /// An ImageScan with `resultsFrom: Attestation` has no result: no attestation, none
    /// usable, or the newest expired (`reason`, one of the `Attestation…` reasons, says which
    /// and `message` why). `Scanning=False` alone: the phase is Pending, never a verdict.
    NoAttestation {
        reason: &'static str,
        message: String,
    },
}

/// The Scanning condition's message of a round canceled with `scangate.dev/cancel`.
pub const CANCELED_BY_REQUEST: &str = "canceled for good: the scangate.dev/cancel annotation \
     asked for it; unsuspending does not restart it, a new scangate.dev/rescan value (scangate \
     rescan) starts a new round";

/// The Scanning condition's message of a round canceled by the pause limit.
pub fn canceled_by_pause_limit(since: Timestamp, limit: std::time::Duration) -> String {
    format!(
        "canceled for good: paused since {since}, longer than the pause limit of {:#} \
         (--pause-limit); unsuspending does not restart it, a new scangate.dev/rescan value \
         (scangate rescan) starts a new round",
        jiff::SignedDuration::try_from(limit).unwrap_or(jiff::SignedDuration::MAX)
    )
}

/// The Scanning condition's message of a paused round.
pub fn paused_message(since: Timestamp, cancel_at: Timestamp, job: bool) -> String {
    let held = if job {
        "its Job is suspended and keeps its slot"
    } else {
        "it keeps its place in the queue"
    };
    format!(
        "paused since {since}: spec.suspend is true, {held}; set spec.suspend to false \
         (scangate resume) to resume it; still paused at {cancel_at}, it is canceled for good"
    )
}

/// The Succeeded message of a scan whose scanner finished but could not read part of its
/// target: what it could not read, the first errors and how many more.
pub fn completed_with_errors_message(scan_errors: &[String]) -> String {
    const SHOWN: usize = 3;
    let shown = scan_errors
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    let more = match scan_errors.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" (and {n} more in status.scanErrors)"),
    };
    format!("The scanner finished but could not read part of the target: {shown}{more}")
}

/// What the policy said about the report.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyState {
    /// No policy judges the report (a namespace's own scan that names none): no
    /// PolicySucceeded condition.
    NoPolicy,
    /// The policy is missing or does not compile.
    Error {
        error: String,
        generation: Option<i64>,
    },
    /// Evaluated (compliant, violated, or an evaluation error inside the outcome);
    /// `generation` is the policy's (none for scangate's built-in policy).
    Evaluated {
        outcome: Outcome,
        generation: Option<i64>,
    },
    /// The previous status's verdict stands as it is (its PolicySucceeded condition,
    /// violations and observed policy generation): nothing it was decided from has changed, or
    /// an evaluation that gave no answer is not due again yet.
    Carried,
    /// The previous status's verdict on this same report stands, and its PolicySucceeded
    /// condition's `error` says why no new one was reached.
    Kept { error: String },
    /// The evaluation gave no answer this time: a limit stopped it (`limit`), or the pool or
    /// a worker failed. [`crate::scan::plan::settle`] turns it into `Kept`, a decided
    /// error, or `Error`; shown as it is, it reads as `Error`.
    Unanswered {
        error: String,
        generation: Option<i64>,
        limit: bool,
    },
}

/// The outcome of sending the report to the metadata store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendState {
    NotConfigured,
    Sent { url: String },
    Failed { error: String },
}

/// Where a report came from, as `status.lastResult.source` says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportSource {
    /// A scan Job the controller ran from the scan's ScanTemplate; `job` is `None` once the
    /// Job is gone (deleted after its TTL) and no earlier status named it.
    Job {
        namespace: String,
        job: Option<String>,
        template: String,
    },
    /// Pushed with `scangate report --to-configmap`; `by` is the writer the webhook recorded
    /// on the report ConfigMap (`scangate.dev/reported-by`).
    Pushed { by: Option<String> },
    /// A signed attestation in the image's registry, verified with the configured `key`.
    Attestation {
        key: String,
        predicate_type: String,
        scan_finished_on: Timestamp,
        db_version: Option<String>,
    },
}

impl std::fmt::Display for ReportSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportSource::Job {
                namespace,
                job: Some(job),
                template,
            } => write!(
                f,
                "Job {namespace}/{job} from ScanTemplate {namespace}/{template}"
            ),
            ReportSource::Job {
                namespace,
                job: None,
                template,
            } => write!(
                f,
                "a Job (since deleted) from ScanTemplate {namespace}/{template}"
            ),
            ReportSource::Pushed { by: Some(by) } => write!(f, "pushed by {by}"),
            ReportSource::Pushed { by: None } => f.write_str("pushed (writer not recorded)"),
            ReportSource::Attestation { key, .. } => {
                write!(f, "an attestation signed with key {key}")
            }
        }
    }
}

/// What a readable report gives the status.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    pub cve_count: CveCount,
    pub artifact: Artifact,
    pub scanner: Scanner,
    /// When the report was stored.
    pub stored_at: Timestamp,
    /// Where the report came from.
    pub source: ReportSource,
    pub policy: PolicyState,
    /// The policy that judges the report, when one does.
    pub judged_by: Option<JudgingPolicy>,
    pub sending: SendState,
    /// What the scanner said it could not read (the report's `scanErrors`).
    pub scan_errors: Vec<String>,
}

/// Everything [`desired_status`] decides from.
#[derive(Clone, Debug)]
pub struct StatusInputs<'a> {
    /// The scan's `metadata.generation`.
    pub generation: Option<i64>,
    /// The template's generation, when the scan has one and it exists.
    pub template_generation: Option<i64>,
    pub previous: Option<&'a ScanStatus>,
    pub state: ScanState,
    /// Present when the state is `Finished`.
    pub results: Option<Results>,
    /// The `scangate.dev/rescan` value handled (see [`ScanStatus::handled_rescan`]).
    pub handled_rescan: Option<String>,
    /// What the tag named when last resolved (see [`ScanStatus::resolved`]).
    pub resolved: Option<Resolution>,
    /// Why the scheduled re-resolution of a finished scan's tag failed, when it did: the
    /// Scanning condition says so ([`Condition::not_resolved_again`]), the result stands.
    pub not_resolved_again: Option<String>,
    /// What kind of round the scan runs (for `status.progress`).
    pub round: Round,
    /// The `scangate.dev/cancel` value handled (see [`ScanStatus::handled_cancel`]).
    pub handled_cancel: Option<String>,
    pub now: Timestamp,
}

/// The scan's status: conditions per the contract, the phase derived from them, counts,
/// artifact, violations, scanner, times and observed generations. Condition transition times
/// are carried over from `previous` while a condition's status does not change, so applying
/// the same inputs twice gives the same status.
///
/// `lastResult` is set from a report whose status is decided (Completed, Failed, Error); in
/// every other state (a rescan, a new template generation, a report that disappeared or was
/// refused, a failed Job) it is carried over unchanged, with the counts, artifact,
/// violations, scanner and `scannedAt` it stands for, so admission never falls back to "not
/// scanned yet" for an image that has a verdict.
pub fn desired_status(inputs: &StatusInputs<'_>) -> ScanStatus {
    let mut status = ScanStatus {
        observed_generation: inputs.generation,
        observed_template_generation: inputs.template_generation,
        scanned_at: inputs.previous.and_then(|p| p.scanned_at.clone()),
        handled_rescan: inputs.handled_rescan.clone(),
        handled_cancel: inputs.handled_cancel.clone(),
        resolved: inputs.resolved.clone(),
        // Written by the verdict signer (`super::verdicts`), carried over here.
        verdict_attestation: inputs.previous.and_then(|p| p.verdict_attestation.clone()),
        ..ScanStatus::default()
    };
    let scan_errors = match (&inputs.state, &inputs.results) {
        (ScanState::Finished { .. }, Some(results)) => results.scan_errors.clone(),
        _ => vec![],
    };
    let mut conditions = vec![];
    match &inputs.state {
        ScanState::Pending => {}
        ScanState::Unrunnable { error } => {
            conditions.push(Condition::job_finished());
            conditions.push(Condition::scan_failed(error.clone(), error.clone()));
        }
        ScanState::Running => conditions.push(Condition::job_started()),
        ScanState::Failed { message, error, .. } => {
            conditions.push(Condition::job_finished());
            conditions.push(Condition::scan_failed(message.clone(), error.clone()));
        }
        ScanState::Finished { message } => {
            conditions.push(match &inputs.not_resolved_again {
                Some(cause) => Condition::not_resolved_again(cause.clone()),
                None => Condition::job_finished(),
            });
            conditions.push(if scan_errors.is_empty() {
                Condition::succeeded(message.clone())
            } else {
                Condition::succeeded_with_errors(completed_with_errors_message(&scan_errors))
            });
        }
        ScanState::Queued { message, failure } => {
            conditions.push(Condition::queued(message.clone()));
            if let Some(failed) = failure {
                conditions.push(failed.clone());
            }
        }
        ScanState::Paused {
            since,
            cancel_at,
            job,
        } => {
            status.paused_at = Some(Time(*since));
            conditions.push(Condition::paused(paused_message(*since, *cancel_at, *job)));
        }
        ScanState::Canceled { message } => conditions.push(Condition::canceled(message.clone())),
        ScanState::ResolveFailed { error } => {
            conditions.push(Condition::not_resolved());
            conditions.push(Condition::resolve_failed(error.clone()));
        }
        ScanState::NoAttestation { reason, message } => {
            conditions.push(Condition::no_attestation(reason, message.clone()));
        }
    }
    if let (ScanState::Finished { .. }, Some(results)) = (&inputs.state, &inputs.results) {
        status.cve_count = Some(results.cve_count.clone());
        status.artifact = Some(results.artifact.clone());
        status.scanned_by = Some(ScannedBy {
            scanner: results.scanner.clone(),
        });
        status.scanned_at = Some(Time(results.stored_at));
        status.policy = results.judged_by.clone();
        status.scan_errors = scan_errors.clone();
        if let ReportSource::Attestation {
            key,
            predicate_type,
            scan_finished_on,
            db_version,
        } = &results.source
        {
            status.attestation = Some(AttestationResult {
                key: key.clone(),
                predicate_type: predicate_type.clone(),
                scan_finished_on: Time(*scan_finished_on),
                db_version: db_version.clone(),
            });
        }
        conditions.push(match &results.sending {
            SendState::NotConfigured => Condition::store_not_configured(),
            SendState::Sent { url } => {
                status.metadata_url = Some(url.clone());
                Condition::results_sent()
            }
            SendState::Failed { error } => Condition::sending_failed(error.clone()),
        });
        match &results.policy {
            PolicyState::NoPolicy => {}
            PolicyState::Error { error, generation }
            | PolicyState::Unanswered {
                error, generation, ..
            } => {
                status.observed_policy_generation = *generation;
                conditions.push(Condition::policy_error(error.clone()));
            }
            PolicyState::Carried | PolicyState::Kept { .. } => {
                let kept_error = match &results.policy {
                    PolicyState::Kept { error } => Some(error.clone()),
                    _ => None,
                };
                let previous = inputs.previous.and_then(|p| {
                    let verdict = p
                        .conditions
                        .iter()
                        .find(|c| c.type_ == ConditionType::PolicySucceeded)?;
                    Some((p, verdict))
                });
                match previous {
                    Some((p, verdict)) => {
                        status.observed_policy_generation = p.observed_policy_generation;
                        status.violations = p.violations.clone();
                        let mut verdict = verdict.clone();
                        if kept_error.is_some() {
                            verdict.error = kept_error;
                        }
                        conditions.push(verdict);
                    }
                    None => conditions.push(Condition::policy_error(
                        kept_error.unwrap_or_else(|| "the policy was not evaluated".into()),
                    )),
                }
            }
            PolicyState::Evaluated {
                outcome,
                generation,
            } => {
                status.observed_policy_generation = *generation;
                status.violations = outcome.violations.as_slice().into();
                conditions.push(outcome.condition.clone());
            }
        }
    }
    let previous = inputs.previous.map_or(&[][..], |p| &p.conditions[..]);
    for condition in &mut conditions {
        condition.stamp_transition(previous, inputs.now);
        condition.observed_generation = inputs.generation;
    }
    let derived = phase(&conditions);
    status.phase = Some(derived);
    let carried = inputs.previous.and_then(carried_result).filter(|last| {
        // An attestation past `attestations.maxAge` counts as no result: a Completed verdict
        // does not stand; a Failed one still denies (as a stale denial does under
        // maxResultAge).
        !(matches!(&inputs.state, ScanState::NoAttestation { reason: r, .. }
            if *r == reason::ATTESTATION_EXPIRED)
            && last.phase == Phase::Completed)
    });
    match (&inputs.state, &inputs.results) {
        (ScanState::Finished { .. }, Some(results)) if derived.is_decided() => {
            // The same report keeps the source recorded while its Job existed.
            let source = match (&results.source, &carried) {
                (ReportSource::Job { job: None, .. }, Some(last))
                    if last.scanned_at.0 == results.stored_at && !last.source.is_empty() =>
                {
                    last.source.clone()
                }
                (source, _) => source.to_string(),
            };
            status.last_result = Some(LastResult {
                phase: derived,
                scanned_at: Time(results.stored_at),
                source,
            });
        }
        _ => {
            status.last_result = carried;
            if let Some(p) = inputs.previous {
                status.cve_count = p.cve_count.clone();
                status.artifact = p.artifact.clone();
                status.violations = p.violations.clone();
                status.scanned_by = p.scanned_by.clone();
                status.policy = p.policy.clone();
                status.scan_errors = p.scan_errors.clone();
            }
        }
    }
    if derived == Phase::Completed {
        status.compliant_artifact = status.artifact.clone();
    }
    status.earlier_results = earlier_results(inputs.previous, &status);
    status.conditions = conditions;
    status.progress = progress(
        inputs.round,
        progress_at(inputs, &status),
        inputs.previous.map_or(&[][..], |p| &p.progress[..]),
        inputs.now,
    );
    status
}

/// Where the round stands, for [`progress`].
fn progress_at(inputs: &StatusInputs<'_>, status: &ScanStatus) -> At {
    match &inputs.state {
        ScanState::Pending => At::NotStarted,
        ScanState::Unrunnable { .. } => At::Unrunnable,
        ScanState::Running => At::Running,
        ScanState::Finished { .. } => {
            let evaluated = match inputs.results.as_ref().map(|r| &r.policy) {
                Some(PolicyState::Kept { .. }) => Evaluated::Kept,
                _ => match status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == ConditionType::PolicySucceeded)
                {
                    Some(c) if c.status == ConditionStatus::Unknown => Evaluated::Failed,
                    Some(c) if c.reason == reason::UNDER_REVIEW => Evaluated::UnderReview,
                    _ => Evaluated::Done,
                },
            };
            At::Finished {
                scan_errors: !status.scan_errors.is_empty(),
                not_resolved_again: inputs.not_resolved_again.is_some(),
                evaluated,
            }
        }
        ScanState::Failed { report: true, .. } => At::ReportFailed,
        ScanState::Failed { report: false, .. } => At::ScanFailed,
        ScanState::Queued { .. } => At::Queued,
        ScanState::Paused { job, .. } => At::Paused { job: *job },
        ScanState::Canceled { .. } => At::Canceled,
        ScanState::ResolveFailed { .. } => At::ResolveFailed,
        ScanState::NoAttestation { .. } => At::NoAttestation,
    }
}

/// The scanned image (`repository@sha256:…`) of a status, when it has a digest.
fn scanned_digest(status: &ScanStatus) -> Option<&str> {
    let image = &status.artifact.as_ref()?.registry.as_ref()?.image;
    image.rsplit_once('@').map(|(_, digest)| digest)
}

/// The earlier results of `now`: those of `previous`, and its own decided result when `now`
/// holds other content; never one for the content `now` holds, newest first, bounded.
fn earlier_results(previous: Option<&ScanStatus>, now: &ScanStatus) -> Vec<EarlierResult> {
    let Some(previous) = previous else {
        return vec![];
    };
    let current = scanned_digest(now);
    let mut earlier = vec![];
    let replaced = scanned_digest(previous).filter(|old| Some(*old) != current);
    if let (Some(_), Some(last), Some(artifact)) = (
        replaced,
        carried_result(previous).filter(|l| l.phase.is_decided()),
        previous.artifact.as_ref().and_then(|a| a.registry.as_ref()),
    ) {
        earlier.push(EarlierResult {
            image: artifact.image.clone(),
            index: artifact.index.clone(),
            phase: last.phase,
            scanned_at: last.scanned_at,
            violations: previous
                .violations
                .iter()
                .take(MAX_EARLIER_VIOLATIONS)
                .cloned()
                .collect(),
        });
    }
    earlier.extend(previous.earlier_results.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    earlier.retain(|e| {
        let digest = e.image.rsplit_once('@').map(|(_, d)| d);
        digest != current && seen.insert(digest.map(str::to_string))
    });
    earlier.truncate(MAX_EARLIER_RESULTS);
    earlier
}

/// The decided result a previous status stands for: its `lastResult`, or for a status written
/// before `lastResult` existed, its Completed or Failed phase and `scannedAt` (an Error there
/// may be a failed Job, not a verdict on a report).
fn carried_result(previous: &ScanStatus) -> Option<LastResult> {
    previous
        .last_result
        .clone()
        .or_else(|| match (previous.phase, &previous.scanned_at) {
            (Some(phase @ (Phase::Completed | Phase::Failed)), Some(at)) => Some(LastResult {
                phase,
                scanned_at: at.clone(),
                source: String::new(),
            }),
            _ => None,
        })
}

/// Why the last scheduled re-resolution of a finished scan's tag failed, when the status says
/// it did: `Scanning=False/ResolveFailed` over `Succeeded=True` (a first resolution that failed
/// has `Succeeded=False`).
pub fn not_resolved_again(status: &ScanStatus) -> Option<String> {
    let find = |t: ConditionType| status.conditions.iter().find(|c| c.type_ == t);
    let succeeded = find(ConditionType::Succeeded)?;
    let scanning = find(ConditionType::Scanning)?;
    (succeeded.status == ConditionStatus::True
        && scanning.status == ConditionStatus::False
        && scanning.reason == reason::RESOLVE_FAILED)
        .then(|| scanning.error.clone().unwrap_or_default())
}

/// What the previous status says for planning: whether a scan finished for these
/// generations, `scannedAt`, and when `Succeeded` turned `False`.
pub fn previous_facts(
    previous: Option<&ScanStatus>,
    generation: Option<i64>,
    template_generation: Option<i64>,
) -> super::job::Previous {
    let Some(p) = previous else {
        return super::job::Previous::default();
    };
    let find = |t: ConditionType| p.conditions.iter().find(|c| c.type_ == t);
    // Queued or canceled is not finished; a failed re-resolution of a finished scan still is.
    let finished = find(ConditionType::Scanning)
        .is_some_and(|c| c.status == ConditionStatus::False && c.reason == reason::JOB_FINISHED)
        || not_resolved_again(p).is_some();
    let failed = find(ConditionType::Succeeded).filter(|c| c.status == ConditionStatus::False);
    super::job::Previous {
        done: finished
            && p.observed_generation == generation
            && p.observed_template_generation == template_generation,
        scanned_at: p.scanned_at.as_ref().map(|t| t.0),
        failed_at: failed.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0)),
        handled_rescan: p.handled_rescan.clone(),
    }
}

/// The scan's state when no Job of the current round exists (suspended, or the Job was
/// deleted after its TTL) or the scan has no template: from the report if there is one, else
/// what the previous status said.
pub fn state_without_job(
    previous: Option<&ScanStatus>,
    report: Option<&Result<(), String>>,
    finished_message: &str,
) -> ScanState {
    let previous_succeeded = previous.and_then(|p| {
        p.conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Succeeded)
    });
    match report {
        Some(Ok(())) => ScanState::Finished {
            // The last Job status; a CompletedWithErrors message is made again from the report.
            message: previous_succeeded
                .filter(|c| {
                    c.status == ConditionStatus::True
                        && c.reason == reason::JOB_FINISHED
                        && !c.message.is_empty()
                })
                .map(|c| c.message.clone())
                .unwrap_or_else(|| finished_message.to_string()),
        },
        Some(Err(error)) => ScanState::Failed {
            message: "The report cannot be used".into(),
            error: error.clone(),
            report: true,
        },
        None => match previous_succeeded {
            Some(c) if c.status == ConditionStatus::False => ScanState::Failed {
                message: c.message.clone(),
                error: c.error.clone().unwrap_or_default(),
                report: false,
            },
            _ => ScanState::Pending,
        },
    }
}

/// The scan's state from its current Job and report.
pub fn state_from_job(
    job: &super::job::JobState,
    report: Option<&Result<(), String>>,
    report_name: &str,
) -> ScanState {
    use super::job::JobState;
    match (job, report) {
        (JobState::Running, _) => ScanState::Running,
        (JobState::Complete { message, .. }, Some(Ok(()))) => ScanState::Finished {
            message: message.clone(),
        },
        (JobState::Complete { message, .. }, Some(Err(error))) => ScanState::Failed {
            message: message.clone(),
            error: error.clone(),
            report: true,
        },
        (JobState::Complete { message, .. }, None) => ScanState::Failed {
            message: message.clone(),
            error: format!(
                "the scan job completed without storing a report in ConfigMap {report_name}"
            ),
            report: true,
        },
        (JobState::Failed { message, error, .. }, _) => ScanState::Failed {
            message: message.clone(),
            error: error.clone(),
            report: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RegistryArtifact;
    use crate::policy::{Evaluation, outcome};
    use crate::report::{Package, Report, Severity, Vulnerability};

    use super::super::job::JobState;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    const NOW: &str = "2026-01-02T00:00:00Z";

    fn report() -> Report {
        let vuln = |id: &str, severity| Vulnerability {
            id: id.into(),
            severity,
            package: Package {
                name: "busybox".into(),
                version: "1.32.1".into(),
                ..Package::default()
            },
            fixed_versions: vec!["1.33.0".into()],
            ..Vulnerability::default()
        };
        Report {
            vulnerabilities: vec![
                vuln("CVE-1", Severity::Critical),
                vuln("CVE-2", Severity::High),
                vuln("CVE-3", Severity::Low),
            ],
            ..Report::default()
        }
    }

    fn results(policy: PolicyState, sending: SendState) -> Results {
        Results {
            cve_count: report().cve_count(),
            artifact: Artifact {
                registry: Some(RegistryArtifact {
                    image: "docker.io/library/busybox:1.32.1@sha256:ab".into(),
                    index: None,
                }),
                ..Artifact::default()
            },
            scanner: Scanner {
                name: "grype".into(),
                vendor: "anchore".into(),
                version: "0.94.0".into(),
            },
            stored_at: ts("2026-01-01T12:00:00Z"),
            source: job_source(Some("busybox-0123456789")),
            policy,
            judged_by: None,
            sending,
            scan_errors: vec![],
        }
    }

    fn job_source(job: Option<&str>) -> ReportSource {
        ReportSource::Job {
            namespace: "scangate-system".into(),
            job: job.map(Into::into),
            template: "grype".into(),
        }
    }

    fn violated() -> PolicyState {
        let deny = vec!["CVE-1 (critical)".to_string(), "CVE-2 (high)".to_string()];
        PolicyState::Evaluated {
            outcome: outcome(&report(), Ok(Evaluation { deny })),
            generation: Some(4),
        }
    }

    fn compliant() -> PolicyState {
        PolicyState::Evaluated {
            outcome: outcome(&report(), Ok(Evaluation { deny: vec![] })),
            generation: Some(4),
        }
    }

    fn finished() -> ScanState {
        ScanState::Finished {
            message: "Complete: CompletionsReached".into(),
        }
    }

    fn status(
        state: ScanState,
        results: Option<Results>,
        previous: Option<&ScanStatus>,
    ) -> ScanStatus {
        desired_status(&StatusInputs {
            generation: Some(2),
            template_generation: Some(1),
            previous,
            state,
            results,
            handled_rescan: None,
            resolved: None,
            not_resolved_again: None,
            round: Round::Job { resolves: false },
            handled_cancel: None,
            now: ts(NOW),
        })
    }

    fn condition(status: &ScanStatus, t: ConditionType) -> Option<&Condition> {
        status.conditions.iter().find(|c| c.type_ == t)
    }

    fn assert_consistent(status: &ScanStatus) {
        assert_eq!(
            crate::api::consistency_problem(&status.conditions),
            None,
            "{status:?}"
        );
        // What the status enricher would derive is what the controller wrote.
        let json = serde_json::to_value(status).unwrap_or_default();
        let enriched = crate::admission::status::enrich(Some(&json), &json, Some(2), ts(NOW))
            .unwrap_or_else(|e| panic!("{e}: {status:?}"));
        assert_eq!(&enriched, status);
    }

    #[test]
    fn pending_has_no_conditions() {
        let s = status(ScanState::Pending, None, None);
        assert_eq!(s.phase, Some(Phase::Pending));
        assert!(s.conditions.is_empty());
        assert_eq!(s.observed_generation, Some(2));
        assert_consistent(&s);
    }

    #[test]
    fn missing_template_is_error() {
        let s = status(
            ScanState::Unrunnable {
                error: "ScanTemplate grype not found".into(),
            },
            None,
            None,
        );
        assert_eq!(s.phase, Some(Phase::Error));
        assert_eq!(
            condition(&s, ConditionType::Scanning),
            Some(&{
                let mut c = Condition::job_finished();
                c.last_transition_time = Some(Time(ts(NOW)));
                c.observed_generation = Some(2);
                c
            })
        );
        let succeeded = condition(&s, ConditionType::Succeeded)
            .cloned()
            .unwrap_or_else(|| panic!());
        assert_eq!(succeeded.reason, reason::ERROR);
        assert_eq!(
            succeeded.error.as_deref(),
            Some("ScanTemplate grype not found")
        );
        assert_consistent(&s);
    }

    #[test]
    fn running_job_is_scanning_and_keeps_scanned_at() {
        let previous = ScanStatus {
            scanned_at: Some(Time(ts("2026-01-01T00:00:00Z"))),
            ..ScanStatus::default()
        };
        let s = status(ScanState::Running, None, Some(&previous));
        assert_eq!(s.phase, Some(Phase::Scanning));
        let c = condition(&s, ConditionType::Scanning)
            .cloned()
            .unwrap_or_else(|| panic!());
        assert_eq!(
            (c.status, c.reason.as_str(), c.message.as_str()),
            (
                ConditionStatus::True,
                "JobStarted",
                "The scan job is running"
            )
        );
        assert_eq!(s.scanned_at, previous.scanned_at);
        assert_eq!(s.cve_count, None);
        assert_consistent(&s);
    }

    #[test]
    fn failed_job_is_error_with_the_cause() {
        let state = state_from_job(
            &JobState::Failed {
                message: "Failed: BackoffLimitExceeded".into(),
                error: "Job has reached the specified backoff limit".into(),
                at: ts(NOW),
            },
            None,
            "scan-report",
        );
        let s = status(state, None, None);
        assert_eq!(s.phase, Some(Phase::Error));
        let c = condition(&s, ConditionType::Succeeded)
            .cloned()
            .unwrap_or_else(|| panic!());
        assert_eq!(c.message, "Failed: BackoffLimitExceeded");
        assert_eq!(
            c.error.as_deref(),
            Some("Job has reached the specified backoff limit")
        );
        assert_eq!(condition(&s, ConditionType::PolicySucceeded), None);
        assert_consistent(&s);
    }

    #[test]
    fn completed_job_with_a_corrupt_or_missing_report_is_error() {
        let complete = JobState::Complete {
            message: "Complete".into(),
            at: ts(NOW),
        };
        let corrupt = state_from_job(
            &complete,
            Some(&Err("gzip data is corrupt".into())),
            "scan-report",
        );
        let s = status(corrupt, None, None);
        assert_eq!(s.phase, Some(Phase::Error));
        assert_eq!(
            condition(&s, ConditionType::Succeeded).and_then(|c| c.error.clone()),
            Some("gzip data is corrupt".into())
        );
        assert_consistent(&s);
        let missing = state_from_job(&complete, None, "scan-report");
        let s = status(missing, None, None);
        let error = condition(&s, ConditionType::Succeeded)
            .and_then(|c| c.error.clone())
            .unwrap_or_default();
        assert!(error.contains("ConfigMap scan-report"), "{error}");
        assert_consistent(&s);
    }

    #[test]
    fn compliant_report_is_completed_with_counts_and_compliant_artifact() {
        let s = status(
            finished(),
            Some(results(compliant(), SendState::NotConfigured)),
            None,
        );
        assert_eq!(s.phase, Some(Phase::Completed));
        let counts = s.cve_count.clone().unwrap_or_default();
        assert_eq!(
            (counts.critical, counts.high, counts.low, counts.total),
            (1, 1, 1, 3)
        );
        assert_eq!(s.compliant_artifact, s.artifact);
        assert!(s.artifact.is_some());
        assert_eq!(s.scanned_at, Some(Time(ts("2026-01-01T12:00:00Z"))));
        assert_eq!(
            s.scanned_by.as_ref().map(|b| b.scanner.name.as_str()),
            Some("grype")
        );
        assert_eq!(s.observed_policy_generation, Some(4));
        assert_eq!(s.observed_template_generation, Some(1));
        let c = condition(&s, ConditionType::Succeeded)
            .cloned()
            .unwrap_or_else(|| panic!());
        assert_eq!(c.message, "Complete: CompletionsReached");
        assert_eq!(
            condition(&s, ConditionType::PolicySucceeded).map(|c| c.message.as_str()),
            Some("No CVEs were found that violated the policy")
        );
        assert_eq!(
            condition(&s, ConditionType::SendingResults).map(|c| c.reason.as_str()),
            Some("NotConfigured")
        );
        assert!(s.violations.is_empty());
        assert_consistent(&s);
    }

    #[test]
    fn violated_policy_is_failed_with_violations() {
        let s = status(
            finished(),
            Some(results(violated(), SendState::NotConfigured)),
            None,
        );
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_eq!(
            condition(&s, ConditionType::PolicySucceeded).map(|c| c.message.as_str()),
            Some("Policy violated because of 2 CVEs")
        );
        let ids: Vec<&str> = s.violations.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["CVE-1", "CVE-2"]);
        assert_eq!(s.compliant_artifact, None);
        assert_consistent(&s);
    }

    #[test]
    fn policy_error_is_error() {
        let policy = PolicyState::Error {
            error: "ScanPolicy strict not found".into(),
            generation: None,
        };
        let s = status(
            finished(),
            Some(results(policy, SendState::NotConfigured)),
            None,
        );
        assert_eq!(s.phase, Some(Phase::Error));
        let c = condition(&s, ConditionType::PolicySucceeded)
            .cloned()
            .unwrap_or_else(|| panic!());
        assert_eq!(c.status, ConditionStatus::Unknown);
        assert_eq!(c.message, "An error has occurred");
        assert_eq!(c.error.as_deref(), Some("ScanPolicy strict not found"));
        assert_eq!(s.observed_policy_generation, None);
        assert_consistent(&s);
    }

    #[test]
    fn no_policy_is_completed_without_a_policy_condition() {
        let s = status(
            finished(),
            Some(results(PolicyState::NoPolicy, SendState::NotConfigured)),
            None,
        );
        assert_eq!(s.phase, Some(Phase::Completed));
        assert_eq!(condition(&s, ConditionType::PolicySucceeded), None);
        assert_consistent(&s);
    }

    #[test]
    fn sending_results_never_changes_the_verdict() {
        let sent = status(
            finished(),
            Some(results(
                compliant(),
                SendState::Sent {
                    url: "https://store/r/1".into(),
                },
            )),
            None,
        );
        assert_eq!(sent.phase, Some(Phase::Completed));
        assert_eq!(sent.metadata_url.as_deref(), Some("https://store/r/1"));
        assert_eq!(
            condition(&sent, ConditionType::SendingResults).map(|c| c.reason.as_str()),
            Some("Sent")
        );
        let failed = status(
            finished(),
            Some(results(
                violated(),
                SendState::Failed {
                    error: "connection refused".into(),
                },
            )),
            None,
        );
        assert_eq!(failed.phase, Some(Phase::Failed));
        assert_eq!(failed.metadata_url, None);
        assert_eq!(
            condition(&failed, ConditionType::SendingResults).and_then(|c| c.error.as_deref()),
            Some("connection refused")
        );
        assert_consistent(&sent);
        assert_consistent(&failed);
    }

    #[test]
    fn transition_times_are_kept_while_statuses_do_not_change() {
        let first = status(
            finished(),
            Some(results(compliant(), SendState::NotConfigured)),
            None,
        );
        let later = desired_status(&StatusInputs {
            generation: Some(2),
            template_generation: Some(1),
            previous: Some(&first),
            state: finished(),
            results: Some(results(violated(), SendState::NotConfigured)),
            handled_rescan: None,
            resolved: None,
            not_resolved_again: None,
            round: Round::Job { resolves: false },
            handled_cancel: None,
            now: ts("2026-01-03T00:00:00Z"),
        });
        let time = |s: &ScanStatus, t| condition(s, t).and_then(|c| c.last_transition_time.clone());
        assert_eq!(time(&later, ConditionType::Scanning), Some(Time(ts(NOW))));
        assert_eq!(
            time(&later, ConditionType::PolicySucceeded),
            Some(Time(ts("2026-01-03T00:00:00Z")))
        );
        // The same inputs give the same status: nothing to write.
        let again = desired_status(&StatusInputs {
            generation: Some(2),
            template_generation: Some(1),
            previous: Some(&later),
            state: finished(),
            results: Some(results(violated(), SendState::NotConfigured)),
            handled_rescan: None,
            resolved: None,
            not_resolved_again: None,
            round: Round::Job { resolves: false },
            handled_cancel: None,
            now: ts("2026-01-04T00:00:00Z"),
        });
        assert_eq!(again, later);
    }

    #[test]
    fn a_failed_recheck_keeps_the_verdict_and_the_scan_finished() {
        let s = desired_status(&StatusInputs {
            generation: Some(2),
            template_generation: Some(1),
            previous: None,
            state: finished(),
            results: Some(results(violated(), SendState::NotConfigured)),
            handled_rescan: None,
            resolved: None,
            not_resolved_again: Some("registry r.example is unreachable".into()),
            round: Round::Job { resolves: true },
            handled_cancel: None,
            now: ts(NOW),
        });
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_consistent(&s);
        let scanning = condition(&s, ConditionType::Scanning);
        assert_eq!(scanning.map(|c| c.reason.as_str()), Some("ResolveFailed"));
        assert_eq!(
            not_resolved_again(&s).as_deref(),
            Some("registry r.example is unreachable")
        );
        assert!(previous_facts(Some(&s), Some(2), Some(1)).done);
        // A first resolution that failed (no Job, Succeeded=False) is not a failed recheck.
        let first = status(
            ScanState::ResolveFailed {
                error: "registry r.example is unreachable".into(),
            },
            None,
            None,
        );
        assert_eq!(not_resolved_again(&first), None);
        assert!(!previous_facts(Some(&first), Some(2), Some(1)).done);
    }

    #[test]
    fn the_judging_policy_is_recorded_with_the_result_and_kept_while_it_stands() {
        let judged_by = crate::api::JudgingPolicy {
            name: "scangate/default.rego".into(),
            source: crate::api::PolicySource::BuiltIn,
        };
        let mut judged = results(violated(), SendState::NotConfigured);
        judged.judged_by = Some(judged_by.clone());
        let done = status(finished(), Some(judged), None);
        assert_eq!(done.policy.as_ref(), Some(&judged_by));
        assert_consistent(&done);
        let rescanning = status(ScanState::Running, None, Some(&done));
        assert_eq!(rescanning.policy, Some(judged_by));
    }

    #[test]
    fn an_attestation_result_records_its_key_and_an_expired_one_is_no_result() {
        let attested = |policy| {
            let mut r = results(policy, SendState::NotConfigured);
            r.source = ReportSource::Attestation {
                key: "ci".into(),
                predicate_type: crate::attest::COSIGN_VULN_V1.into(),
                scan_finished_on: r.stored_at,
                db_version: Some("v6".into()),
            };
            r
        };
        let verified = ScanState::Finished {
            message: "The report came from an attestation signed with key ci".into(),
        };
        let clean = status(verified.clone(), Some(attested(compliant())), None);
        assert_eq!(clean.phase, Some(Phase::Completed));
        let attestation = clean.attestation.clone().unwrap();
        assert_eq!(attestation.key, "ci");
        assert_eq!(attestation.db_version.as_deref(), Some("v6"));
        assert_eq!(
            clean.last_result.as_ref().map(|l| l.source.as_str()),
            Some("an attestation signed with key ci")
        );
        assert_consistent(&clean);
        let failed = status(verified, Some(attested(violated())), None);
        assert_eq!(failed.phase, Some(Phase::Failed));

        let no_result = |reason| ScanState::NoAttestation {
            reason,
            message: "why".into(),
        };
        // Expired: a Completed verdict no longer stands, a Failed one does.
        let expired = status(no_result(reason::ATTESTATION_EXPIRED), None, Some(&clean));
        assert_eq!(expired.phase, Some(Phase::Pending));
        assert_eq!(expired.last_result, None);
        assert_eq!(expired.attestation, None);
        assert_consistent(&expired);
        let still_denied = status(no_result(reason::ATTESTATION_EXPIRED), None, Some(&failed));
        assert_eq!(still_denied.last_result, failed.last_result);
        // Gone from the registry, or no longer verifiable: the last verdict stands.
        let missing = status(no_result(reason::ATTESTATION_MISSING), None, Some(&clean));
        assert_eq!(missing.phase, Some(Phase::Pending));
        assert_eq!(missing.last_result, clean.last_result);
        assert_eq!(
            condition(&missing, ConditionType::Scanning).map(|c| c.reason.as_str()),
            Some("AttestationMissing")
        );
        assert_consistent(&missing);
    }

    #[test]
    fn an_unresolvable_tag_is_an_error_that_keeps_the_last_result() {
        let done = status(
            finished(),
            Some(results(compliant(), SendState::NotConfigured)),
            None,
        );
        let failed = status(
            ScanState::ResolveFailed {
                error: "registry r.example has no manifest for r.example/app:2".into(),
            },
            None,
            Some(&done),
        );
        assert_eq!(failed.phase, Some(Phase::Error));
        let succeeded = condition(&failed, ConditionType::Succeeded);
        assert_eq!(succeeded.map(|c| c.reason.as_str()), Some("ResolveFailed"));
        assert_eq!(
            succeeded.map(|c| c.message.as_str()),
            Some("registry r.example has no manifest for r.example/app:2")
        );
        assert_eq!(
            condition(&failed, ConditionType::Scanning).map(|c| c.reason.as_str()),
            Some("ResolveFailed")
        );
        assert_eq!(failed.last_result, done.last_result);
        assert_eq!(failed.artifact, done.artifact);
        assert_consistent(&failed);
    }

    #[test]
    fn state_without_a_job_comes_from_the_report_or_the_previous_failure() {
        assert_eq!(state_without_job(None, None, "pushed"), ScanState::Pending);
        assert_eq!(
            state_without_job(None, Some(&Ok(())), "pushed"),
            ScanState::Finished {
                message: "pushed".into()
            }
        );
        assert!(matches!(
            state_without_job(None, Some(&Err("bad".into())), "pushed"),
            ScanState::Failed { error, .. } if error == "bad"
        ));
        let previous = status(
            finished(),
            Some(results(compliant(), SendState::NotConfigured)),
            None,
        );
        assert_eq!(
            state_without_job(Some(&previous), Some(&Ok(())), "Complete"),
            finished(),
            "the last Job status is kept after the Job is deleted"
        );
        let failed = status(
            ScanState::Failed {
                message: "Failed".into(),
                error: "boom".into(),
                report: false,
            },
            None,
            None,
        );
        assert_eq!(
            state_without_job(Some(&failed), None, "Complete"),
            ScanState::Failed {
                message: "Failed".into(),
                error: "boom".into(),
                report: false,
            }
        );
    }

    #[test]
    fn previous_facts_say_whether_this_generation_finished() {
        let done = status(
            finished(),
            Some(results(compliant(), SendState::NotConfigured)),
            None,
        );
        let facts = previous_facts(Some(&done), Some(2), Some(1));
        assert!(facts.done);
        assert_eq!(facts.scanned_at, Some(ts("2026-01-01T12:00:00Z")));
        assert_eq!(facts.failed_at, None);
        assert!(!previous_facts(Some(&done), Some(3), Some(1)).done);
        assert!(!previous_facts(Some(&done), Some(2), Some(2)).done);
        let running = status(ScanState::Running, None, None);
        assert!(!previous_facts(Some(&running), Some(2), Some(1)).done);
        let failed = status(ScanState::Unrunnable { error: "x".into() }, None, None);
        assert_eq!(
            previous_facts(Some(&failed), Some(2), None).failed_at,
            Some(ts(NOW))
        );
    }

    fn last(status: &ScanStatus) -> Option<(Phase, Timestamp, &str)> {
        status
            .last_result
            .as_ref()
            .map(|l| (l.phase, l.scanned_at.0, l.source.as_str()))
    }

    const STORED: &str = "2026-01-01T12:00:00Z";
    const JOB_SOURCE: &str =
        "Job scangate-system/busybox-0123456789 from ScanTemplate scangate-system/grype";

    /// The fields a rescan keeps from the verdict it stands in for.
    fn verdict_fields(s: &ScanStatus) -> impl PartialEq + std::fmt::Debug + '_ {
        (
            &s.violations,
            &s.cve_count,
            &s.artifact,
            &s.scanned_by,
            &s.scanned_at,
            &s.last_result,
        )
    }

    #[test]
    fn a_decided_report_records_the_last_result_and_its_source() {
        let failed = status(
            finished(),
            Some(results(violated(), SendState::NotConfigured)),
            None,
        );
        assert_eq!(last(&failed), Some((Phase::Failed, ts(STORED), JOB_SOURCE)));
        let completed = status(
            finished(),
            Some(results(compliant(), SendState::NotConfigured)),
            Some(&failed),
        );
        assert_eq!(
            last(&completed),
            Some((Phase::Completed, ts(STORED), JOB_SOURCE))
        );
        let policy_error = status(
            finished(),
            Some(results(
                PolicyState::Error {
                    error: "ScanPolicy strict not found".into(),
                    generation: None,
                },
                SendState::NotConfigured,
            )),
            None,
        );
        assert_eq!(
            last(&policy_error).map(|l| l.0),
            Some(Phase::Error),
            "a policy that cannot decide the report is a decided Error"
        );
        assert_consistent(&failed);
        assert_consistent(&completed);
    }

    #[test]
    fn a_report_of_other_content_keeps_the_replaced_verdict_for_its_digest() {
        let of = |digest: &str, policy: PolicyState| {
            let mut r = results(policy, SendState::NotConfigured);
            r.artifact.registry = Some(RegistryArtifact {
                image: format!("docker.io/library/busybox:1.32.1@sha256:{digest}"),
                index: None,
            });
            r
        };
        let failed = status(finished(), Some(of("aa", violated())), None);
        assert!(failed.earlier_results.is_empty());
        // The same content judged again (a policy change): nothing earlier.
        let again = status(finished(), Some(of("aa", compliant())), Some(&failed));
        assert!(again.earlier_results.is_empty());
        // While the rescan of moved content runs, the artifact is the old one: nothing yet.
        let rescanning = status(ScanState::Running, None, Some(&failed));
        assert!(rescanning.earlier_results.is_empty());
        // The new content's report: the Failed verdict on the old digest is kept.
        let moved = status(finished(), Some(of("bb", compliant())), Some(&rescanning));
        assert_eq!(moved.earlier_results.len(), 1);
        let earlier = &moved.earlier_results[0];
        assert_eq!(earlier.image, "docker.io/library/busybox:1.32.1@sha256:aa");
        assert_eq!(earlier.phase, Phase::Failed);
        assert_eq!(
            earlier.violations[..],
            failed.violations[..earlier.violations.len()]
        );
        // Moving back to the old content drops its earlier verdict (the scan holds it again),
        // keeps the other, newest first, bounded.
        let back = status(finished(), Some(of("aa", violated())), Some(&moved));
        assert_eq!(
            back.earlier_results
                .iter()
                .map(|e| (e.image.as_str(), e.phase))
                .collect::<Vec<_>>(),
            [(
                "docker.io/library/busybox:1.32.1@sha256:bb",
                Phase::Completed
            )]
        );
        let mut many = back;
        for i in 0..10 {
            many = status(
                finished(),
                Some(of(&format!("{i:02}"), violated())),
                Some(&many),
            );
        }
        assert_eq!(many.earlier_results.len(), MAX_EARLIER_RESULTS);
        assert!(many.earlier_results[0].image.ends_with("sha256:08"));
    }

    #[test]
    fn a_rescan_keeps_the_verdict_while_it_runs() {
        let failed = status(
            finished(),
            Some(results(violated(), SendState::NotConfigured)),
            None,
        );
        // A rescan, or a new template generation: a new Job runs.
        let rescanning = status(ScanState::Running, None, Some(&failed));
        assert_eq!(rescanning.phase, Some(Phase::Scanning));
        assert_eq!(verdict_fields(&rescanning), verdict_fields(&failed));
        assert_eq!(rescanning.violations.len(), 2);
        assert_eq!(rescanning.compliant_artifact, None);
        assert_consistent(&rescanning);
        // The report disappeared (deleted, or deleted before the rescan): Pending, same verdict.
        let state = state_without_job(Some(&rescanning), None, "Complete");
        assert_eq!(state, ScanState::Pending);
        let pending = status(state, None, Some(&rescanning));
        assert_eq!(pending.phase, Some(Phase::Pending));
        assert_eq!(verdict_fields(&pending), verdict_fields(&failed));
        // The rescan Job fails: Error, and the verdict is still the report's.
        let job_failed = status(
            ScanState::Failed {
                message: "Failed: BackoffLimitExceeded".into(),
                error: "Job has reached the specified backoff limit".into(),
                report: false,
            },
            None,
            Some(&pending),
        );
        assert_eq!(job_failed.phase, Some(Phase::Error));
        assert_eq!(
            last(&job_failed),
            Some((Phase::Failed, ts(STORED), JOB_SOURCE))
        );
        // The rescan's report decides again, from its own time.
        let mut newer = results(compliant(), SendState::NotConfigured);
        newer.stored_at = ts("2026-01-05T00:00:00Z");
        let completed = status(finished(), Some(newer), Some(&job_failed));
        assert_eq!(
            last(&completed),
            Some((Phase::Completed, ts("2026-01-05T00:00:00Z"), JOB_SOURCE))
        );
        assert!(completed.violations.is_empty());
    }

    #[test]
    fn pushed_reports_name_their_writer() {
        let pushed = |by: Option<&str>| {
            let mut r = results(violated(), SendState::NotConfigured);
            r.source = ReportSource::Pushed {
                by: by.map(Into::into),
            };
            status(
                ScanState::Finished {
                    message: "pushed".into(),
                },
                Some(r),
                None,
            )
        };
        assert_eq!(
            last(&pushed(Some("system:serviceaccount:ci:pusher"))).map(|l| l.2.to_string()),
            Some("pushed by system:serviceaccount:ci:pusher".into())
        );
        assert_eq!(
            last(&pushed(None)).map(|l| l.2.to_string()),
            Some("pushed (writer not recorded)".into())
        );
    }

    #[test]
    fn the_same_report_keeps_its_job_after_the_job_is_gone() {
        let failed = status(
            finished(),
            Some(results(violated(), SendState::NotConfigured)),
            None,
        );
        let mut gone = results(violated(), SendState::NotConfigured);
        gone.source = job_source(None);
        let later = status(finished(), Some(gone.clone()), Some(&failed));
        assert_eq!(last(&later), last(&failed));
        // Without an earlier status naming it, the source says the Job is gone.
        let fresh = status(finished(), Some(gone), None);
        assert_eq!(
            last(&fresh).map(|l| l.2.to_string()),
            Some("a Job (since deleted) from ScanTemplate scangate-system/grype".into())
        );
    }

    #[test]
    fn statuses_from_before_last_result_carry_their_verdict() {
        let mut old = status(
            finished(),
            Some(results(violated(), SendState::NotConfigured)),
            None,
        );
        old.last_result = None;
        let rescanning = status(ScanState::Running, None, Some(&old));
        assert_eq!(last(&rescanning), Some((Phase::Failed, ts(STORED), "")));
        // An old Error (perhaps a failed Job) is no verdict to carry.
        let mut error = status(
            ScanState::Unrunnable {
                error: "ScanTemplate grype not found".into(),
            },
            None,
            None,
        );
        error.scanned_at = Some(Time(ts(STORED)));
        assert_eq!(
            status(ScanState::Running, None, Some(&error)).last_result,
            None
        );
    }

    #[test]
    fn scan_errors_complete_with_errors_and_show_in_progress() {
        use crate::api::StageState::{Done, DoneWithIssues};
        let mut with_errors = results(compliant(), SendState::NotConfigured);
        with_errors.scan_errors = vec!["layer sha256:0f could not be read".into()];
        let s = status(finished(), Some(with_errors), None);
        assert_eq!(s.phase, Some(Phase::Completed));
        let succeeded = condition(&s, ConditionType::Succeeded)
            .cloned()
            .unwrap_or_else(|| panic!());
        assert_eq!(
            (succeeded.status, succeeded.reason.as_str()),
            (ConditionStatus::True, reason::COMPLETED_WITH_ERRORS)
        );
        assert!(
            succeeded
                .message
                .contains("could not read part of the target: layer sha256:0f could not be read"),
            "{}",
            succeeded.message
        );
        assert_eq!(s.scan_errors, ["layer sha256:0f could not be read"]);
        assert_eq!(
            s.progress.iter().map(|p| p.state).collect::<Vec<_>>(),
            [Done, Done, DoneWithIssues, DoneWithIssues, Done]
        );
        assert_consistent(&s);
        // The Job is deleted after its TTL: the same message, made again from the report, not
        // stacked on the previous one.
        assert_eq!(
            state_without_job(Some(&s), Some(&Ok(())), "Complete"),
            finished_with("Complete")
        );
    }

    fn finished_with(message: &str) -> ScanState {
        ScanState::Finished {
            message: message.into(),
        }
    }

    #[test]
    fn the_completed_with_errors_message_names_the_first_errors_and_counts_the_rest() {
        let errors: Vec<String> = (1..=5).map(|i| format!("e{i}")).collect();
        assert_eq!(
            completed_with_errors_message(&errors),
            "The scanner finished but could not read part of the target: e1; e2; e3 (and 2 \
             more in status.scanErrors)"
        );
    }

    #[test]
    fn the_pause_limit_reads_as_a_duration() {
        let message =
            canceled_by_pause_limit(ts(NOW), std::time::Duration::from_secs(7 * 24 * 3600));
        assert!(message.contains("pause limit of 168h"), "{message}");
    }

    #[test]
    fn findings_under_review_leave_the_evaluate_stage_done_with_issues() {
        use crate::api::StageState::{Done, DoneWithIssues};
        let mut review = outcome(
            &report(),
            Ok(Evaluation {
                deny: vec!["CVE-1".into()],
            }),
        );
        review.condition =
            Condition::policy_under_review(1, &["CVE-1".into()], &["apps/vex".into()]);
        let policy = PolicyState::Evaluated {
            outcome: review,
            generation: Some(4),
        };
        let s = status(
            finished(),
            Some(results(policy, SendState::NotConfigured)),
            None,
        );
        assert_eq!(
            s.progress.iter().map(|p| p.state).collect::<Vec<_>>(),
            [Done, Done, Done, Done, DoneWithIssues]
        );
    }
}
