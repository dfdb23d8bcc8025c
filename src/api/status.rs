//! The status shared by ImageScan and SourceScan: conditions, phase, counts, artifacts.
//!
//! The condition types, reasons and messages are a contract copied from the source documents:
//! users of the system they describe read and script against these exact strings.

use std::fmt;
use std::sync::Arc;

use super::severity::{ALL_SEVERITIES, Severity};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a scan's status says about it, derived from its conditions by [`phase`].
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Initial phase: no scan job has started yet.
    Pending,
    /// The scan job is running.
    Scanning,
    /// The scan completed and no CVEs violated the policy.
    Completed,
    /// The scan completed but CVEs violated the policy.
    Failed,
    /// Something went wrong: the job failed, or the template or policy is invalid.
    Error,
}

impl Phase {
    /// Whether the phase is a verdict (Completed, Failed, Error) rather than a wait.
    pub fn is_decided(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed | Phase::Error)
    }

    pub const ALL: [Phase; 5] = [
        Phase::Pending,
        Phase::Scanning,
        Phase::Completed,
        Phase::Failed,
        Phase::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Scanning => "Scanning",
            Phase::Completed => "Completed",
            Phase::Failed => "Failed",
            Phase::Error => "Error",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four condition types of the status contract.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// The scan job is running (`True`) or has finished (`False`).
    Scanning,
    /// The scan job's result: `True` ok, `False` otherwise.
    Succeeded,
    /// Sending the results to the metadata store.
    SendingResults,
    /// Compliance of the results with the ScanPolicy.
    PolicySucceeded,
}

impl ConditionType {
    pub const ALL: [ConditionType; 4] = [
        ConditionType::Scanning,
        ConditionType::Succeeded,
        ConditionType::SendingResults,
        ConditionType::PolicySucceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Scanning => "Scanning",
            ConditionType::Succeeded => "Succeeded",
            ConditionType::SendingResults => "SendingResults",
            ConditionType::PolicySucceeded => "PolicySucceeded",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition's status, as in every Kubernetes condition.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub const ALL: [ConditionStatus; 3] = [
        ConditionStatus::True,
        ConditionStatus::False,
        ConditionStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reasons of the status contract.
pub mod reason {
    pub const JOB_STARTED: &str = "JobStarted";
    pub const JOB_FINISHED: &str = "JobFinished";
    pub const ERROR: &str = "Error";
    pub const SENT: &str = "Sent";
    pub const NOT_CONFIGURED: &str = "NotConfigured";
    pub const EVALUATION_PASSED: &str = "EvaluationPassed";
    pub const EVALUATION_FAILED: &str = "EvaluationFailed";
    /// `PolicySucceeded=False`: the policy denies CVEs that an approver's VEX statement says
    /// are `under_investigation`, and no statement settles yet (phase stays Failed).
    pub const UNDER_REVIEW: &str = "UnderReview";
    /// `Scanning=False`: the scan waits for a free slot (`--max-running-jobs`).
    pub const QUEUED: &str = "Queued";
    /// `Scanning=False`: the scan's round was canceled for good (by `scangate.dev/cancel`, or
    /// paused longer than the pause limit); only a new `scangate.dev/rescan` value starts a
    /// new round.
    pub const CANCELED: &str = "Canceled";
    /// `Scanning=False`: `spec.suspend` paused the scan before its round finished; its Job is
    /// suspended and keeps its slot.
    pub const PAUSED: &str = "Paused";
    /// `Succeeded=True`: the scanner finished but said it could not read part of what it
    /// scanned (`status.scanErrors` says what).
    pub const COMPLETED_WITH_ERRORS: &str = "CompletedWithErrors";
    /// `Scanning=False` and `Succeeded=False`: the image's tag could not be resolved at its
    /// registry, so no scan Job was started.
    pub const RESOLVE_FAILED: &str = "ResolveFailed";
    /// `Scanning=False` of an ImageScan with `resultsFrom: Attestation` that has no result
    /// (phase Pending): the image has no attestation…
    pub const ATTESTATION_MISSING: &str = "AttestationMissing";
    /// …its attestations could not be fetched…
    pub const ATTESTATION_UNAVAILABLE: &str = "AttestationUnavailable";
    /// …none is signed by a configured key (or it was altered after signing)…
    pub const ATTESTATION_UNVERIFIED: &str = "AttestationUnverified";
    /// …the signed one is for other content…
    pub const ATTESTATION_SUBJECT_MISMATCH: &str = "AttestationSubjectMismatch";
    /// …the signed one is not a vulnerability report scangate reads…
    pub const ATTESTATION_PREDICATE_UNKNOWN: &str = "AttestationPredicateUnknown";
    /// …the signed one cannot be read…
    pub const ATTESTATION_MALFORMED: &str = "AttestationMalformed";
    /// …or the newest is older than `attestations.maxAge`.
    pub const ATTESTATION_EXPIRED: &str = "AttestationExpired";

    /// The `Scanning=False` reasons of an ImageScan with `resultsFrom: Attestation` and no
    /// result: no Succeeded condition goes with them.
    pub const ATTESTATION_NO_RESULT: [&str; 7] = [
        ATTESTATION_MISSING,
        ATTESTATION_UNAVAILABLE,
        ATTESTATION_UNVERIFIED,
        ATTESTATION_SUBJECT_MISMATCH,
        ATTESTATION_PREDICATE_UNKNOWN,
        ATTESTATION_MALFORMED,
        ATTESTATION_EXPIRED,
    ];
}

/// Messages of the status contract (the ones that are fixed strings).
pub mod message {
    pub const JOB_RUNNING: &str = "The scan job is running";
    pub const JOB_TERMINATED: &str = "The scan job terminated";
    pub const POLICY_PASSED: &str = "No CVEs were found that violated the policy";
    pub const AN_ERROR_HAS_OCCURRED: &str = "An error has occurred";
    pub const RESULTS_SENT: &str = "The scan results were sent to the metadata store";
    pub const STORE_NOT_CONFIGURED: &str = "The metadata store integration is not configured";
    pub const SENDING_FAILED: &str = "The scan results could not be sent to the metadata store";
    pub const NOT_RESOLVED: &str =
        "No scan job was started: the image's tag could not be resolved at its registry";
    pub const NOT_RESOLVED_AGAIN: &str = "The image's tag could not be resolved again at its \
         registry: the result stands for the content resolved before (status.resolved)";

    /// `Policy violated because of X CVEs`, X being the number of unique CVE ids.
    pub fn policy_violated(unique_cves: usize) -> String {
        format!("Policy violated because of {unique_cves} CVEs")
    }
}

/// One entry of `status.conditions`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    /// A CamelCase word saying why the condition is in its status.
    pub reason: String,
    /// A human readable message; for some types and reasons a fixed string of the contract.
    #[serde(default)]
    pub message: String,
    /// The cause, when something went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the status last changed; set by the status enricher when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The scan's `metadata.generation` this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    fn new(type_: ConditionType, status: ConditionStatus, reason: &str, message: String) -> Self {
        Condition {
            type_,
            status,
            reason: reason.to_string(),
            message,
            error: None,
            last_transition_time: None,
            observed_generation: None,
        }
    }

    /// Sets `lastTransitionTime`: the previous one while this condition type keeps its status
    /// in `previous`, else `now`. The controller and the status enricher both stamp with it.
    pub fn stamp_transition(&mut self, previous: &[Condition], now: jiff::Timestamp) {
        let kept = previous
            .iter()
            .find(|p| p.type_ == self.type_ && p.status == self.status)
            .and_then(|p| p.last_transition_time.clone());
        self.last_transition_time = Some(kept.unwrap_or(Time(now)));
    }

    fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// `Scanning=True/JobStarted`: the scan job is running.
    pub fn job_started() -> Self {
        Self::new(
            ConditionType::Scanning,
            ConditionStatus::True,
            reason::JOB_STARTED,
            message::JOB_RUNNING.into(),
        )
    }

    /// `Scanning=False/JobFinished`: the scan job terminated.
    pub fn job_finished() -> Self {
        Self::new(
            ConditionType::Scanning,
            ConditionStatus::False,
            reason::JOB_FINISHED,
            message::JOB_TERMINATED.into(),
        )
    }

    /// `Scanning=False/Queued`: the scan waits for a slot; `message` says its place.
    pub fn queued(message: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Scanning,
            ConditionStatus::False,
            reason::QUEUED,
            message.into(),
        )
    }

    /// `Scanning=False` with one of the `Attestation…` reasons: an ImageScan with
    /// `resultsFrom: Attestation` has no result (the phase stays Pending); `message` says why.
    pub fn no_attestation(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Scanning,
            ConditionStatus::False,
            reason,
            message.into(),
        )
    }

    /// `Scanning=False/Canceled`: the scan's round was canceled for good; `message` says by
    /// what and how to start a new round.
    pub fn canceled(message: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Scanning,
            ConditionStatus::False,
            reason::CANCELED,
            message.into(),
        )
    }

    /// `Scanning=False/Paused`: `spec.suspend` paused the scan before its round finished;
    /// `message` says how to resume it and when it is canceled.
    pub fn paused(message: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Scanning,
            ConditionStatus::False,
            reason::PAUSED,
            message.into(),
        )
    }

    /// `Scanning=False/ResolveFailed`: no Job was started, the tag could not be resolved.
    pub fn not_resolved() -> Self {
        Self::new(
            ConditionType::Scanning,
            ConditionStatus::False,
            reason::RESOLVE_FAILED,
            message::NOT_RESOLVED.into(),
        )
    }

    /// `Scanning=False/ResolveFailed` after a finished scan: the scheduled re-resolution of the
    /// tag failed, with the registry's error as cause; the result stands (no new Job).
    pub fn not_resolved_again(cause: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Scanning,
            ConditionStatus::False,
            reason::RESOLVE_FAILED,
            message::NOT_RESOLVED_AGAIN.into(),
        )
        .with_error(cause)
    }

    /// `Succeeded=False/ResolveFailed`, with the registry's error as message and cause.
    pub fn resolve_failed(cause: impl Into<String>) -> Self {
        let cause = cause.into();
        Self::new(
            ConditionType::Succeeded,
            ConditionStatus::False,
            reason::RESOLVE_FAILED,
            cause.clone(),
        )
        .with_error(cause)
    }

    /// `Succeeded=True/JobFinished`, with the last seen job status as message.
    pub fn succeeded(last_job_status: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Succeeded,
            ConditionStatus::True,
            reason::JOB_FINISHED,
            last_job_status.into(),
        )
    }

    /// `Succeeded=True/CompletedWithErrors`: the scanner finished but could not read part of
    /// what it scanned; `message` names what was not read.
    pub fn succeeded_with_errors(message: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Succeeded,
            ConditionStatus::True,
            reason::COMPLETED_WITH_ERRORS,
            message.into(),
        )
    }

    /// `Succeeded=False/Error`, with the last seen job status as message and the cause in `error`.
    pub fn scan_failed(last_job_status: impl Into<String>, cause: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Succeeded,
            ConditionStatus::False,
            reason::ERROR,
            last_job_status.into(),
        )
        .with_error(cause)
    }

    /// `SendingResults=True/Sent`.
    pub fn results_sent() -> Self {
        Self::new(
            ConditionType::SendingResults,
            ConditionStatus::True,
            reason::SENT,
            message::RESULTS_SENT.into(),
        )
    }

    /// `SendingResults=False/NotConfigured`.
    pub fn store_not_configured() -> Self {
        Self::new(
            ConditionType::SendingResults,
            ConditionStatus::False,
            reason::NOT_CONFIGURED,
            message::STORE_NOT_CONFIGURED.into(),
        )
    }

    /// `SendingResults=False/Error`, with the store's error.
    pub fn sending_failed(cause: impl Into<String>) -> Self {
        Self::new(
            ConditionType::SendingResults,
            ConditionStatus::False,
            reason::ERROR,
            message::SENDING_FAILED.into(),
        )
        .with_error(cause)
    }

    /// `PolicySucceeded=True/EvaluationPassed`.
    pub fn policy_passed() -> Self {
        Self::new(
            ConditionType::PolicySucceeded,
            ConditionStatus::True,
            reason::EVALUATION_PASSED,
            message::POLICY_PASSED.into(),
        )
    }

    /// `PolicySucceeded=False/EvaluationFailed`: `unique_cves` distinct CVE ids violate the policy.
    pub fn policy_violated(unique_cves: usize) -> Self {
        Self::new(
            ConditionType::PolicySucceeded,
            ConditionStatus::False,
            reason::EVALUATION_FAILED,
            message::policy_violated(unique_cves),
        )
    }

    /// `PolicySucceeded=False/UnderReview`: `unique_cves` distinct CVE ids violate the policy,
    /// and `waiting` of them have an `under_investigation` VEX statement (in `statements`, as
    /// `namespace/name`) that nothing settles yet. The message starts as the contract's
    /// `EvaluationFailed` one, then names the CVEs waiting and how to settle them.
    pub fn policy_under_review(
        unique_cves: usize,
        waiting: &[String],
        statements: &[String],
    ) -> Self {
        const SHOWN: usize = 10;
        let mut cves = waiting
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if waiting.len() > SHOWN {
            cves.push_str(&format!(" and {} more", waiting.len() - SHOWN));
        }
        let statements = statements
            .iter()
            .map(|s| format!("ScanException {s}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            ConditionType::PolicySucceeded,
            ConditionStatus::False,
            reason::UNDER_REVIEW,
            format!(
                "{}; under review: {cves} (VEX under_investigation in {statements}); an approver \
                 settles each with a not_affected, affected or fixed statement (docs/vex.md)",
                message::policy_violated(unique_cves)
            ),
        )
    }

    /// `PolicySucceeded=Unknown/Error`: the policy could not be evaluated.
    pub fn policy_error(cause: impl Into<String>) -> Self {
        Self::new(
            ConditionType::PolicySucceeded,
            ConditionStatus::Unknown,
            reason::ERROR,
            message::AN_ERROR_HAS_OCCURRED.into(),
        )
        .with_error(cause)
    }
}

/// The reasons the contract allows for a condition type in a given status.
pub fn allowed_reasons(type_: ConditionType, status: ConditionStatus) -> &'static [&'static str] {
    use ConditionStatus::*;
    use ConditionType::*;
    match (type_, status) {
        (Scanning, True) => &[reason::JOB_STARTED],
        (Scanning, False) => &[
            reason::JOB_FINISHED,
            reason::QUEUED,
            reason::CANCELED,
            reason::PAUSED,
            reason::RESOLVE_FAILED,
            reason::ATTESTATION_MISSING,
            reason::ATTESTATION_UNAVAILABLE,
            reason::ATTESTATION_UNVERIFIED,
            reason::ATTESTATION_SUBJECT_MISMATCH,
            reason::ATTESTATION_PREDICATE_UNKNOWN,
            reason::ATTESTATION_MALFORMED,
            reason::ATTESTATION_EXPIRED,
        ],
        (Succeeded, True) => &[reason::JOB_FINISHED, reason::COMPLETED_WITH_ERRORS],
        (Succeeded, False) => &[reason::ERROR, reason::RESOLVE_FAILED],
        (SendingResults, True) => &[reason::SENT],
        (SendingResults, False) => &[reason::NOT_CONFIGURED, reason::ERROR],
        (PolicySucceeded, True) => &[reason::EVALUATION_PASSED],
        (PolicySucceeded, False) => &[reason::EVALUATION_FAILED, reason::UNDER_REVIEW],
        (PolicySucceeded, Unknown) => &[reason::ERROR],
        (Scanning | Succeeded | SendingResults, Unknown) => &[],
    }
}

/// The status of the condition of type `type_`, if the list has one.
pub fn condition_status(conditions: &[Condition], type_: ConditionType) -> Option<ConditionStatus> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status)
}

/// The phase, as one pure function of the conditions (the design's rules, in order):
/// no `Scanning` condition → `Pending`; `Scanning=True` → `Scanning`; `Succeeded=False` or
/// `PolicySucceeded=Unknown` → `Error`; `PolicySucceeded=False` → `Failed`; `Succeeded=True` and
/// (`PolicySucceeded=True` or no policy condition) → `Completed`.
///
/// A scan waiting for a slot or canceled before its first result (`Scanning=False/Queued` or
/// `Canceled`, no `Succeeded`) matches no rule either: `Pending`.
///
/// A finished job with no `Succeeded` condition yet matches no rule and stays `Pending`; the
/// status enricher rejects that state as inconsistent (see [`consistency_problem`]).
pub fn phase(conditions: &[Condition]) -> Phase {
    use ConditionStatus::*;
    let scanning = condition_status(conditions, ConditionType::Scanning);
    let succeeded = condition_status(conditions, ConditionType::Succeeded);
    let policy = condition_status(conditions, ConditionType::PolicySucceeded);
    match (scanning, succeeded, policy) {
        (None, _, _) => Phase::Pending,
        (Some(True), _, _) => Phase::Scanning,
        (_, Some(False), _) | (_, _, Some(Unknown)) => Phase::Error,
        (_, _, Some(False)) => Phase::Failed,
        (_, Some(True), Some(True) | None) => Phase::Completed,
        _ => Phase::Pending,
    }
}

/// Why one condition breaks the contract (a status or reason its type cannot have), if it does.
pub fn condition_problem(c: &Condition) -> Option<String> {
    let allowed = allowed_reasons(c.type_, c.status);
    if allowed.is_empty() {
        return Some(format!(
            "condition {} cannot have status {}; it is True or False",
            c.type_, c.status
        ));
    }
    if !allowed.contains(&c.reason.as_str()) {
        return Some(format!(
            "condition {}={} has reason {:?}; the reason must be {}",
            c.type_,
            c.status,
            c.reason,
            allowed.join(" or ")
        ));
    }
    None
}

/// Why a set of conditions cannot be a real scan's state, if it cannot.
pub fn consistency_problem(conditions: &[Condition]) -> Option<String> {
    for (i, c) in conditions.iter().enumerate() {
        if conditions[..i]
            .iter()
            .any(|earlier| earlier.type_ == c.type_)
        {
            return Some(format!(
                "condition type {} appears more than once; keep one entry per type",
                c.type_
            ));
        }
        if let Some(problem) = condition_problem(c) {
            return Some(problem);
        }
    }
    let scanning = condition_status(conditions, ConditionType::Scanning);
    let succeeded = condition_status(conditions, ConditionType::Succeeded);
    let waiting = conditions.iter().any(|c| {
        c.type_ == ConditionType::Scanning
            && (c.reason == reason::QUEUED
                || c.reason == reason::CANCELED
                || c.reason == reason::PAUSED
                || reason::ATTESTATION_NO_RESULT.contains(&c.reason.as_str()))
    });
    if scanning == Some(ConditionStatus::False) && succeeded.is_none() && !waiting {
        return Some(
            "condition Scanning=False says the scan job finished, but there is no Succeeded \
             condition with its result; add it"
                .into(),
        );
    }
    None
}

/// What was scanned: an image with its resolved digest, a git revision or a blob.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryArtifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitArtifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobArtifact>,
}

/// A scanned image.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryArtifact {
    /// The image with its digest, `repository@sha256:…`.
    pub image: String,
    /// When the digest is one platform's manifest of a multi-platform image the tag resolved
    /// to: that image's index digest (`sha256:…`), which the verdict also speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

/// A scanned git revision.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GitArtifact {
    pub url: String,
    pub revision: String,
}

/// A scanned source archive.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BlobArtifact {
    pub url: String,
    /// The archive's checksum or revision, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Unique CVE ids per severity, and their total.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CveCount {
    #[serde(default)]
    pub critical: i64,
    #[serde(default)]
    pub high: i64,
    #[serde(default)]
    pub medium: i64,
    #[serde(default)]
    pub low: i64,
    #[serde(default)]
    pub unknown: i64,
    #[serde(default)]
    pub total: i64,
}

impl CveCount {
    /// The per-severity counts, named, in severity order.
    pub fn by_severity(&self) -> [(&'static str, i64); 5] {
        ALL_SEVERITIES.map(|severity| (severity.as_str(), self.of(severity)))
    }

    /// The count of one severity.
    pub fn of(&self, severity: Severity) -> i64 {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Unknown => self.unknown,
        }
    }

    /// The sum of the per-severity counts: what `total` must be. `None` when it is past what
    /// an `i64` holds (a status written with absurd counts).
    pub fn sum(&self) -> Option<i64> {
        self.by_severity()
            .iter()
            .try_fold(0_i64, |sum, (_, n)| sum.checked_add(*n))
    }
}

/// One CVE that violated the policy.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub id: String,
    pub severity: Severity,
    #[serde(default)]
    pub package: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
}

fn no_violations(violations: &Arc<[Violation]>) -> bool {
    violations.is_empty()
}

/// The scanner that produced the report.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScannedBy {
    pub scanner: Scanner,
}

/// Name, vendor and version of a scanner.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Scanner {
    pub name: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub version: String,
}

/// The status of an ImageScan or SourceScan.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanStatus {
    /// Pending, Scanning, Completed, Failed or Error; derived from the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve_count: Option<CveCount>,
    /// What was scanned, with the resolved digest or revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// The artifact, only while the phase is Completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant_artifact: Option<Artifact>,
    /// The first 20 policy violations, worst first.
    // Shared, not copied, by what reads them from a cached scan (the admission index).
    #[serde(default, skip_serializing_if = "no_violations")]
    pub violations: Arc<[Violation]>,
    /// Where the metadata store keeps the results; only when the integration is configured.
    #[serde(
        default,
        rename = "metadataURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_by: Option<ScannedBy>,
    /// When the latest scan finished successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<Time>,
    /// The last decided result (Completed, Failed or Error) and where its report came from:
    /// kept while a rescan runs or a report is replaced, so admission never falls back to
    /// "not scanned yet" for an image that has a verdict. Written by scangate only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<LastResult>,
    /// Verdicts on content this scan no longer holds, newest first (at most
    /// [`MAX_EARLIER_RESULTS`]): when the report of other content (a moved tag's) replaces a
    /// decided result, the replaced one is kept here, so a pod pinned to the old digest keeps
    /// its verdict and a Failed digest stays denied. Written by scangate only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_results: Vec<EarlierResult>,
    /// What the image's tag named at its registry when the controller last resolved it, before
    /// starting a scan Job on exactly that digest. Only for ImageScans by tag; written by
    /// scangate only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Resolution>,
    /// Where the result came from when it is a signed attestation (`resultsFrom:
    /// Attestation`): the key that verified it, when the scan ran, and the scanner's database.
    /// The report itself stays in the registry. Written by scangate only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<AttestationResult>,
    /// scangate's own signed verdict on the scanned digest, pushed to the image's registry
    /// when the admission config's `attestations.sign` is set: once per digest and verdict,
    /// for trusted ImageScans that are Completed or Failed. A failed push says why here and
    /// never changes the verdict. Written by scangate only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_attestation: Option<VerdictAttestation>,
    /// The ScanPolicy the report was judged by, and why that one: the scan's `scanPolicy`, else
    /// for a trusted scan the admission config's `defaultScanPolicy` or scangate's built-in
    /// default policy. Absent when no policy judges the report (a namespace's own scan that
    /// names none). Written by scangate only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<JudgingPolicy>,
    /// The value of the `scangate.dev/rescan` annotation the controller last started a scan
    /// for: a new value rescans once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_rescan: Option<String>,
    /// The value of the `scangate.dev/reevaluate` annotation the controller last re-evaluated
    /// the scan's report for (`kubectl scangate reevaluate`): a new value re-runs the policy on
    /// the stored report once, without a new scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_reevaluate: Option<String>,
    /// When the report was last re-evaluated for a `scangate.dev/reevaluate` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reevaluated_at: Option<Time>,
    /// Where the current round stands, one entry per stage in order (resolve, queue, scan,
    /// report, evaluate). Shown as coloured bars on the results page. Written by scangate only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<StageProgress>,
    /// When `spec.suspend` paused the current round (the Scanning condition is `Paused`): the
    /// pause limit counts from here. Written by scangate only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Time>,
    /// The value of the `scangate.dev/cancel` annotation the controller last handled: a new
    /// value cancels the current round once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_cancel: Option<String>,
    /// What the scanner said it could not read, from the report of the result shown (at most
    /// [`crate::report::MAX_SCAN_ERRORS`]); with them `Succeeded` is `CompletedWithErrors`.
    /// Written by scangate only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scan_errors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_policy_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_template_generation: Option<i64>,
}

/// One stage of a scan round and where it stands.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StageProgress {
    pub stage: Stage,
    pub state: StageState,
    /// When the stage took this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// The stages of a scan round, in the order they run.
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum Stage {
    /// The tag is resolved to the digest the round scans.
    Resolve,
    /// The round waits for a scan slot.
    Queue,
    /// The scanner runs (or the attestation is fetched and verified).
    Scan,
    /// The scanner's report is read and stored.
    Report,
    /// The policy judges the report.
    Evaluate,
}

/// Where a stage stands. The results page colours them as the scan lifecycle's source document
/// does: grey not started or paused, blue running, green done, red failed, yellow done but not
/// optimal, dark grey canceled.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum StageState {
    NotStarted,
    Running,
    Paused,
    Done,
    /// Done, but not as well as it should have been (the scanner could not read part of the
    /// image, or findings wait for review).
    DoneWithIssues,
    Failed,
    Canceled,
}

/// The signed attestation a result was taken from.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResult {
    /// The name of the configured key (admission config `attestations.keys`) that verified
    /// its signature.
    pub key: String,
    /// The attestation's predicate type.
    pub predicate_type: String,
    /// When the scan ran, as the attestation says (`metadata.scanFinishedOn`).
    pub scan_finished_on: Time,
    /// The scanner's vulnerability database version, when the attestation says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_version: Option<String>,
}

/// scangate's signed verdict (an in-toto Simple Verification Result) on a digest.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerdictAttestation {
    /// The digest the verdict is on, `sha256:…`.
    pub digest: String,
    /// The verdict signed: Completed or Failed.
    pub verdict: Phase,
    /// When it was pushed; absent while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<Time>,
    /// Where it was pushed: `repository:sha256-<hex>.att`, cosign's attestation tag.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Why the last push failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The pushes tried for this digest and verdict and failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<i64>,
}

/// A decided result on content the scan held before (see `ScanStatus::earlier_results`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EarlierResult {
    /// The content, `repository@sha256:…`.
    pub image: String,
    /// The index the content was a platform manifest of, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Completed, Failed or Error.
    pub phase: Phase,
    /// When scangate recorded the report this result is from.
    pub scanned_at: Time,
    /// The first policy violations of that result (at most [`MAX_EARLIER_VIOLATIONS`]).
    #[serde(default, skip_serializing_if = "no_violations")]
    pub violations: Arc<[Violation]>,
}

/// At most this many earlier results are kept.
pub const MAX_EARLIER_RESULTS: usize = 5;
/// At most this many violations are kept with an earlier result.
pub const MAX_EARLIER_VIOLATIONS: usize = 5;

/// A scan's last decided result and its provenance.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LastResult {
    /// Completed, Failed or Error.
    pub phase: Phase,
    /// When scangate recorded the report this result is from.
    pub scanned_at: Time,
    /// Where the report came from: the scan Job, or the identity that pushed it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// The policy a scan's report is judged by.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JudgingPolicy {
    /// `namespace/name` of the ScanPolicy, or `scangate/default.rego` for scangate's built-in
    /// default policy.
    pub name: String,
    /// Why this policy judges the report.
    pub source: PolicySource,
}

/// Why a policy judges a scan's report.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum PolicySource {
    /// The scan's `spec.scanPolicy`.
    ScanPolicy,
    /// The admission config's `defaultScanPolicy`: a trusted scan that names no policy.
    DefaultScanPolicy,
    /// scangate's built-in default policy (denies critical and high): a trusted scan that
    /// names no policy, and the config names no `defaultScanPolicy`.
    BuiltIn,
}

/// A tag resolved at its registry.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// The tag and the digest it named, `repository:tag@sha256:…`: the manifest, or for a
    /// multi-platform image the index.
    pub image: String,
    /// The media type of what the digest names (an OCI or Docker manifest or index).
    pub media_type: String,
    /// For an index, its platform manifests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<ResolvedPlatform>,
    /// When the registry was asked.
    pub resolved_at: Time,
}

/// One platform's manifest in a resolved index.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub digest: String,
}

impl Resolution {
    /// The resolved digest (`sha256:…`), when `image` names one.
    pub fn digest(&self) -> Option<&str> {
        self.image.rsplit_once('@').map(|(_, digest)| digest)
    }

    /// Whether `digest` is the resolved content: the manifest or index itself, or one of the
    /// index's platform manifests (a scanner may report either).
    pub fn covers(&self, digest: &str) -> bool {
        self.digest() == Some(digest) || self.platforms.iter().any(|p| p.digest == digest)
    }
}

/// At most this many violations are kept in the status.
pub const MAX_VIOLATIONS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use ConditionStatus::{False, True, Unknown};

    fn cond(type_: ConditionType, status: ConditionStatus) -> Condition {
        let reason = allowed_reasons(type_, status)
            .first()
            .copied()
            .unwrap_or("Invalid");
        Condition::new(type_, status, reason, String::new())
    }

    #[test]
    fn no_scanning_condition_is_pending() {
        assert_eq!(phase(&[]), Phase::Pending);
        assert_eq!(
            phase(&[cond(ConditionType::PolicySucceeded, False)]),
            Phase::Pending
        );
    }

    #[test]
    fn running_job_is_scanning_whatever_the_previous_result() {
        assert_eq!(phase(&[Condition::job_started()]), Phase::Scanning);
        assert_eq!(
            phase(&[
                Condition::job_started(),
                Condition::scan_failed("Failed", "boom"),
                Condition::policy_violated(3),
            ]),
            Phase::Scanning
        );
    }

    #[test]
    fn a_queued_or_canceled_scan_is_pending_and_consistent() {
        for waiting in [
            Condition::queued("queued: 1 of 2"),
            Condition::canceled("x"),
        ] {
            assert_eq!(phase(std::slice::from_ref(&waiting)), Phase::Pending);
            assert_eq!(consistency_problem(std::slice::from_ref(&waiting)), None);
            // A retry waiting for its slot still shows the failure it retries.
            let retry = [waiting, Condition::scan_failed("Failed", "boom")];
            assert_eq!(phase(&retry), Phase::Error);
            assert_eq!(consistency_problem(&retry), None);
        }
        // A finished Job without its result is still inconsistent.
        assert!(consistency_problem(&[Condition::job_finished()]).is_some());
    }

    #[test]
    fn an_attestation_scan_without_a_result_is_pending_and_consistent() {
        for reason in reason::ATTESTATION_NO_RESULT {
            let alone = [Condition::no_attestation(reason, "why")];
            assert_eq!(phase(&alone), Phase::Pending, "{reason}");
            assert_eq!(consistency_problem(&alone), None, "{reason}");
        }
    }

    #[test]
    fn an_unresolvable_tag_is_an_error_and_consistent() {
        let conditions = [
            Condition::not_resolved(),
            Condition::resolve_failed("registry r.example refused access"),
        ];
        assert_eq!(phase(&conditions), Phase::Error);
        assert_eq!(consistency_problem(&conditions), None);
        assert_eq!(
            conditions[1].error.as_deref(),
            Some("registry r.example refused access")
        );
    }

    #[test]
    fn a_resolution_covers_its_digest_and_its_platforms() {
        let (index, arm) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
        );
        let resolution = Resolution {
            image: format!("r.example/app:1@{index}"),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            platforms: vec![ResolvedPlatform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: Some("v8".into()),
                digest: arm.clone(),
            }],
            resolved_at: Time(jiff::Timestamp::UNIX_EPOCH),
        };
        assert_eq!(resolution.digest(), Some(index.as_str()));
        assert!(resolution.covers(&index));
        assert!(resolution.covers(&arm));
        assert!(!resolution.covers(&format!("sha256:{}", "c".repeat(64))));
    }

    #[test]
    fn failed_job_is_error() {
        assert_eq!(
            phase(&[Condition::job_finished(), Condition::scan_failed("x", "y")]),
            Phase::Error
        );
        // Even with a compliant policy result from before.
        assert_eq!(
            phase(&[
                Condition::job_finished(),
                Condition::scan_failed("x", "y"),
                Condition::policy_passed(),
            ]),
            Phase::Error
        );
    }

    #[test]
    fn policy_evaluation_error_is_error() {
        assert_eq!(
            phase(&[
                Condition::job_finished(),
                Condition::succeeded("Complete"),
                Condition::policy_error("eval failed"),
            ]),
            Phase::Error
        );
    }

    #[test]
    fn policy_violation_is_failed() {
        assert_eq!(
            phase(&[
                Condition::job_finished(),
                Condition::succeeded("Complete"),
                Condition::policy_violated(2),
            ]),
            Phase::Failed
        );
    }

    #[test]
    fn success_with_passed_or_no_policy_is_completed() {
        assert_eq!(
            phase(&[
                Condition::job_finished(),
                Condition::succeeded("Complete"),
                Condition::policy_passed(),
            ]),
            Phase::Completed
        );
        assert_eq!(
            phase(&[Condition::job_finished(), Condition::succeeded("Complete")]),
            Phase::Completed
        );
    }

    #[test]
    fn sending_results_does_not_change_the_phase() {
        for sending in [
            Condition::results_sent(),
            Condition::store_not_configured(),
            Condition::sending_failed("refused"),
        ] {
            assert_eq!(
                phase(&[
                    Condition::job_finished(),
                    Condition::succeeded("Complete"),
                    sending
                ]),
                Phase::Completed
            );
        }
    }

    #[test]
    fn finished_job_without_result_is_pending_and_inconsistent() {
        let conditions = [Condition::job_finished()];
        assert_eq!(phase(&conditions), Phase::Pending);
        let problem = consistency_problem(&conditions).unwrap_or_default();
        assert!(problem.contains("no Succeeded condition"), "{problem}");
    }

    #[test]
    fn phase_is_independent_of_condition_order() {
        let mut conditions = vec![
            Condition::policy_violated(1),
            Condition::succeeded("Complete"),
            Condition::job_finished(),
        ];
        assert_eq!(phase(&conditions), Phase::Failed);
        conditions.reverse();
        assert_eq!(phase(&conditions), Phase::Failed);
    }

    #[test]
    fn every_combination_has_a_phase_matching_the_rules() {
        let states = [None, Some(True), Some(False), Some(Unknown)];
        for scanning in states {
            for succeeded in states {
                for policy in states {
                    let mut conditions = vec![];
                    let entries = [
                        (ConditionType::Scanning, scanning),
                        (ConditionType::Succeeded, succeeded),
                        (ConditionType::PolicySucceeded, policy),
                    ];
                    for (t, s) in entries {
                        if let Some(s) = s {
                            conditions.push(cond(t, s));
                        }
                    }
                    let expected = if scanning.is_none() {
                        Phase::Pending
                    } else if scanning == Some(True) {
                        Phase::Scanning
                    } else if succeeded == Some(False) || policy == Some(Unknown) {
                        Phase::Error
                    } else if policy == Some(False) {
                        Phase::Failed
                    } else if succeeded == Some(True) && matches!(policy, Some(True) | None) {
                        Phase::Completed
                    } else {
                        Phase::Pending
                    };
                    assert_eq!(phase(&conditions), expected, "{conditions:?}");
                }
            }
        }
    }

    #[test]
    fn condition_strings_are_the_contract() {
        let check = |c: Condition, t: &str, s: &str, r: &str, m: &str| {
            let json = serde_json::to_value(&c).unwrap_or_default();
            assert_eq!(json["type"], t);
            assert_eq!(json["status"], s);
            assert_eq!(json["reason"], r);
            assert_eq!(json["message"], m);
        };
        check(
            Condition::job_started(),
            "Scanning",
            "True",
            "JobStarted",
            "The scan job is running",
        );
        check(
            Condition::job_finished(),
            "Scanning",
            "False",
            "JobFinished",
            "The scan job terminated",
        );
        check(
            Condition::succeeded("Job completed"),
            "Succeeded",
            "True",
            "JobFinished",
            "Job completed",
        );
        check(
            Condition::scan_failed("BackoffLimitExceeded", "pod exited 1"),
            "Succeeded",
            "False",
            "Error",
            "BackoffLimitExceeded",
        );
        check(
            Condition::results_sent(),
            "SendingResults",
            "True",
            "Sent",
            message::RESULTS_SENT,
        );
        check(
            Condition::store_not_configured(),
            "SendingResults",
            "False",
            "NotConfigured",
            message::STORE_NOT_CONFIGURED,
        );
        check(
            Condition::sending_failed("connection refused"),
            "SendingResults",
            "False",
            "Error",
            message::SENDING_FAILED,
        );
        check(
            Condition::policy_passed(),
            "PolicySucceeded",
            "True",
            "EvaluationPassed",
            "No CVEs were found that violated the policy",
        );
        check(
            Condition::policy_violated(7),
            "PolicySucceeded",
            "False",
            "EvaluationFailed",
            "Policy violated because of 7 CVEs",
        );
        check(
            Condition::policy_error("undefined function"),
            "PolicySucceeded",
            "Unknown",
            "Error",
            "An error has occurred",
        );
    }

    #[test]
    fn error_conditions_carry_the_cause() {
        assert_eq!(
            Condition::scan_failed("Failed", "image not found").error,
            Some("image not found".into())
        );
        assert_eq!(
            Condition::sending_failed("503 from store").error,
            Some("503 from store".into())
        );
        assert_eq!(
            Condition::policy_error("rego: bad").error,
            Some("rego: bad".into())
        );
        assert_eq!(Condition::policy_passed().error, None);
    }

    #[test]
    fn every_constructor_is_consistent_with_the_reason_table() {
        for c in [
            Condition::job_started(),
            Condition::job_finished(),
            Condition::succeeded("ok"),
            Condition::scan_failed("x", "y"),
            Condition::results_sent(),
            Condition::store_not_configured(),
            Condition::sending_failed("x"),
            Condition::policy_passed(),
            Condition::policy_violated(1),
            Condition::policy_error("x"),
        ] {
            assert_eq!(condition_problem(&c), None, "{c:?}");
        }
    }

    #[test]
    fn duplicated_types_and_wrong_reasons_are_inconsistent() {
        let dup = [Condition::job_started(), Condition::job_finished()];
        assert!(
            consistency_problem(&dup)
                .unwrap_or_default()
                .contains("more than once")
        );
        let mut wrong = Condition::job_started();
        wrong.reason = "JobFinished".into();
        let problem = consistency_problem(&[wrong]).unwrap_or_default();
        assert!(problem.contains("must be JobStarted"), "{problem}");
        let unknown_scanning = cond(ConditionType::Scanning, Unknown);
        assert!(
            condition_problem(&unknown_scanning)
                .unwrap_or_default()
                .contains("cannot have status Unknown")
        );
    }

    #[test]
    fn status_serializes_with_the_contract_field_names() {
        let status = ScanStatus {
            phase: Some(Phase::Completed),
            metadata_url: Some("https://store/x".into()),
            cve_count: Some(CveCount::default()),
            observed_policy_generation: Some(2),
            ..ScanStatus::default()
        };
        let json = serde_json::to_value(&status).unwrap_or_default();
        assert_eq!(json["phase"], "Completed");
        assert_eq!(json["metadataURL"], "https://store/x");
        assert_eq!(json["cveCount"]["total"], 0);
        assert_eq!(json["observedPolicyGeneration"], 2);
    }
}
