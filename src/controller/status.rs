//! The status a scan should have, as one pure function of what the reconciler gathered.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    Artifact, Condition, ConditionStatus, ConditionType, CveCount, Phase, ScanStatus, ScannedBy,
    Scanner, phase,
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
    /// The Job failed, or completed without a readable report.
    Failed { message: String, error: String },
}

/// What the policy said about the report.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyState {
    /// The scan has no `scanPolicy`: no PolicySucceeded condition.
    NoPolicy,
    /// The policy is missing or does not compile.
    Error { error: String, generation: Option<i64> },
    /// Evaluated (compliant, violated, or an evaluation error inside the outcome).
    Evaluated { outcome: Outcome, generation: i64 },
}

/// The outcome of sending the report to the metadata store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendState {
    NotConfigured,
    Sent { url: String },
    Failed { error: String },
}

/// What a readable report gives the status.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    pub cve_count: CveCount,
    pub artifact: Artifact,
    pub scanner: Scanner,
    /// When the report was stored.
    pub stored_at: Timestamp,
    pub policy: PolicyState,
    pub sending: SendState,
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
    pub now: Timestamp,
}

/// The scan's status: conditions per the contract, the phase derived from them, counts,
/// artifact, violations, scanner, times and observed generations. Condition transition times
/// are carried over from `previous` while a condition's status does not change, so applying
/// the same inputs twice gives the same status.
pub fn desired_status(inputs: &StatusInputs<'_>) -> ScanStatus {
    let mut status = ScanStatus {
        observed_generation: inputs.generation,
        observed_template_generation: inputs.template_generation,
        scanned_at: inputs.previous.and_then(|p| p.scanned_at.clone()),
        ..ScanStatus::default()
    };
    let mut conditions = vec![];
    match &inputs.state {
        ScanState::Pending => {}
        ScanState::Unrunnable { error } => {
            conditions.push(Condition::job_finished());
            conditions.push(Condition::scan_failed(error.clone(), error.clone()));
        }
        ScanState::Running => conditions.push(Condition::job_started()),
        ScanState::Failed { message, error } => {
            conditions.push(Condition::job_finished());
            conditions.push(Condition::scan_failed(message.clone(), error.clone()));
        }
        ScanState::Finished { message } => {
            conditions.push(Condition::job_finished());
            conditions.push(Condition::succeeded(message.clone()));
        }
    }
    if let (ScanState::Finished { .. }, Some(results)) = (&inputs.state, &inputs.results) {
        status.cve_count = Some(results.cve_count.clone());
        status.artifact = Some(results.artifact.clone());
        status.scanned_by = Some(ScannedBy {
            scanner: results.scanner.clone(),
        });
        status.scanned_at = Some(Time(results.stored_at));
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
            PolicyState::Error { error, generation } => {
                status.observed_policy_generation = *generation;
                conditions.push(Condition::policy_error(error.clone()));
            }
            PolicyState::Evaluated {
                outcome,
                generation,
            } => {
                status.observed_policy_generation = Some(*generation);
                status.violations = outcome.violations.clone();
                conditions.push(outcome.condition.clone());
            }
        }
    }
    for condition in &mut conditions {
        let previous = inputs
            .previous
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == condition.type_));
        condition.last_transition_time = match previous {
            Some(p) if p.status == condition.status && p.last_transition_time.is_some() => {
                p.last_transition_time.clone()
            }
            _ => Some(Time(inputs.now)),
        };
        condition.observed_generation = inputs.generation;
    }
    let derived = phase(&conditions);
    status.phase = Some(derived);
    if derived == Phase::Completed {
        status.compliant_artifact = status.artifact.clone();
    }
    status.conditions = conditions;
    status
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
    let finished =
        find(ConditionType::Scanning).is_some_and(|c| c.status == ConditionStatus::False);
    let failed = find(ConditionType::Succeeded).filter(|c| c.status == ConditionStatus::False);
    super::job::Previous {
        done: finished
            && p.observed_generation == generation
            && p.observed_template_generation == template_generation,
        scanned_at: p.scanned_at.as_ref().map(|t| t.0),
        failed_at: failed.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0)),
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
            message: previous_succeeded
                .filter(|c| c.status == ConditionStatus::True && !c.message.is_empty())
                .map(|c| c.message.clone())
                .unwrap_or_else(|| finished_message.to_string()),
        },
        Some(Err(error)) => ScanState::Failed {
            message: "The report could not be read".into(),
            error: error.clone(),
        },
        None => match previous_succeeded {
            Some(c) if c.status == ConditionStatus::False => ScanState::Failed {
                message: c.message.clone(),
                error: c.error.clone().unwrap_or_default(),
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
        },
        (JobState::Complete { message, .. }, None) => ScanState::Failed {
            message: message.clone(),
            error: format!(
                "the scan job completed without storing a report in ConfigMap {report_name}"
            ),
        },
        (JobState::Failed { message, error, .. }, _) => ScanState::Failed {
            message: message.clone(),
            error: error.clone(),
        },
    }
}
