//! The status enricher: whoever writes a scan's status (the controller, a CI pipeline, an admin
//! with `kubectl patch --subresource=status`), phase, totals, compliant artifact and condition
//! timestamps are derived here, in one place, and an inconsistent status is refused.

use jiff::Timestamp;
use serde_json::Value;

use crate::api::{
    ALL_SEVERITIES, ConditionStatus, ConditionType, MAX_VIOLATIONS, Phase, ScanStatus,
    consistency_problem, phase,
};

/// Why a status was refused. The message is shown to whoever wrote it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("status is not valid: {0}")]
    Invalid(String),
    #[error("status is inconsistent: {0}")]
    Inconsistent(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Derives what can be derived in `new` and checks the rest.
///
/// `old` is the status before the write, if the object had one; `generation` is the object's
/// `metadata.generation`; `now` stamps conditions whose status changed. A derived field whose
/// value contradicts the conditions is re-derived when it was carried over unchanged from `old`
/// (a merge patch that only touched conditions) and refused when the writer set it.
pub fn enrich(
    old: Option<&Value>,
    new: &Value,
    generation: Option<i64>,
    now: Timestamp,
) -> Result<ScanStatus> {
    check_shape(new)?;
    let old: Option<ScanStatus> = old
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let mut status: ScanStatus = serde_json::from_value(new.clone())
        .map_err(|e| Error::Invalid(format!("{e}; see `kubectl explain imagescan.status`")))?;

    if let Some(problem) = consistency_problem(&status.conditions) {
        return Err(Error::Inconsistent(problem));
    }

    let derived = phase(&status.conditions);
    let old_phase = old.as_ref().and_then(|o| o.phase);
    match status.phase {
        Some(written) if written != derived && Some(written) != old_phase => {
            return Err(Error::Inconsistent(format!(
                "status.phase is {written} but the conditions make it {derived}; omit phase, it is derived from the conditions"
            )));
        }
        _ => status.phase = Some(derived),
    }

    if let Some(count) = status.cve_count.as_mut() {
        if let Some((severity, n)) = count.by_severity().into_iter().find(|(_, n)| *n < 0) {
            return Err(Error::Invalid(format!(
                "status.cveCount.{severity} is {n}; counts cannot be negative"
            )));
        }
        let sum = count.sum().ok_or_else(|| {
            Error::Invalid(format!(
                "status.cveCount adds up to more than {}; write the real counts",
                i64::MAX
            ))
        })?;
        let old_total = old
            .as_ref()
            .and_then(|o| o.cve_count.as_ref())
            .map(|c| c.total);
        if count.total != 0 && count.total != sum && Some(count.total) != old_total {
            return Err(Error::Inconsistent(format!(
                "status.cveCount.total is {} but the severities add up to {sum}; omit total, it is derived",
                count.total
            )));
        }
        count.total = sum;
    }

    status.compliant_artifact = if derived == Phase::Completed {
        status.artifact.clone()
    } else {
        None
    };

    let previous = old.as_ref().map_or(&[][..], |o| &o.conditions[..]);
    for condition in &mut status.conditions {
        condition.stamp_transition(previous, now);
        if condition.observed_generation.is_none() {
            condition.observed_generation = generation;
        }
    }

    // Severity's order is worst first.
    let mut violations = status.violations.to_vec();
    violations.sort_by_key(|v| v.severity);
    violations.truncate(MAX_VIOLATIONS);
    status.violations = violations.into();
    Ok(status)
}

/// Checks what serde would reject with a less helpful message: condition types and statuses,
/// count types, violation severities.
fn check_shape(status: &Value) -> Result<()> {
    let Some(status) = status.as_object() else {
        return Err(Error::Invalid(format!(
            "status must be an object, not {status}"
        )));
    };
    if let Some(phase) = status.get("phase").filter(|p| !p.is_null()) {
        let known = Phase::ALL
            .iter()
            .any(|p| phase.as_str() == Some(p.as_str()));
        if !known {
            return Err(Error::Invalid(format!(
                "status.phase {phase} is not one of {}",
                join(Phase::ALL.iter().map(|p| p.as_str()))
            )));
        }
    }
    let conditions = status.get("conditions").and_then(Value::as_array);
    for (i, condition) in conditions.into_iter().flatten().enumerate() {
        let type_ = condition.get("type").and_then(Value::as_str);
        if !ConditionType::ALL.iter().any(|t| Some(t.as_str()) == type_) {
            return Err(Error::Invalid(format!(
                "status.conditions[{i}].type {} is not a scan condition type; use one of {}",
                show(condition.get("type")),
                join(ConditionType::ALL.iter().map(|t| t.as_str()))
            )));
        }
        let cstatus = condition.get("status").and_then(Value::as_str);
        if !ConditionStatus::ALL
            .iter()
            .any(|s| Some(s.as_str()) == cstatus)
        {
            return Err(Error::Invalid(format!(
                "status.conditions[{i}].status {} is not one of True, False, Unknown",
                show(condition.get("status"))
            )));
        }
        if condition.get("reason").and_then(Value::as_str).is_none() {
            return Err(Error::Invalid(format!(
                "status.conditions[{i}] ({}) has no reason",
                type_.unwrap_or_default()
            )));
        }
    }
    if let Some(count) = status.get("cveCount").and_then(Value::as_object) {
        for (key, value) in count {
            if !value.is_i64() {
                return Err(Error::Invalid(format!(
                    "status.cveCount.{key} is {value}; counts are whole numbers"
                )));
            }
        }
    }
    let violations = status.get("violations").and_then(Value::as_array);
    for (i, violation) in violations.into_iter().flatten().enumerate() {
        let severity = violation.get("severity").and_then(Value::as_str);
        if !ALL_SEVERITIES.iter().any(|s| Some(s.as_str()) == severity) {
            return Err(Error::Invalid(format!(
                "status.violations[{i}].severity {} is not one of {}",
                show(violation.get("severity")),
                join(ALL_SEVERITIES.iter().map(|s| s.as_str()))
            )));
        }
    }
    Ok(())
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(missing)".to_string(), Value::to_string)
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Artifact, Condition, RegistryArtifact};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn completed_status() -> Value {
        json!({
            "conditions": [
                Condition::job_finished(),
                Condition::succeeded("Complete"),
                Condition::policy_passed(),
            ],
            "cveCount": {"critical": 0, "high": 1, "medium": 2, "low": 3, "unknown": 0},
            "artifact": {"registry": {"image": "docker.io/library/nginx@sha256:abc"}}
        })
    }

    fn ok(old: Option<&Value>, new: &Value) -> ScanStatus {
        enrich(old, new, Some(3), t("2026-01-02T03:04:05Z")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refused(old: Option<&Value>, new: &Value) -> String {
        match enrich(old, new, Some(3), t("2026-01-02T03:04:05Z")) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn derives_phase_total_and_compliant_artifact() {
        let status = ok(None, &completed_status());
        assert_eq!(status.phase, Some(Phase::Completed));
        assert_eq!(status.cve_count.map(|c| c.total), Some(6));
        assert_eq!(
            status.compliant_artifact,
            Some(Artifact {
                registry: Some(RegistryArtifact {
                    image: "docker.io/library/nginx@sha256:abc".into(),
                    index: None,
                }),
                ..Artifact::default()
            })
        );
    }

    #[test]
    fn compliant_artifact_only_while_completed() {
        let mut failed = completed_status();
        failed["conditions"][2] = json!(Condition::policy_violated(1));
        failed["compliantArtifact"] = failed["artifact"].clone();
        let status = ok(None, &failed);
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(status.compliant_artifact, None);
    }

    #[test]
    fn new_conditions_get_now_and_the_generation() {
        let status = ok(None, &completed_status());
        for c in &status.conditions {
            assert_eq!(
                c.last_transition_time,
                Some(Time(t("2026-01-02T03:04:05Z")))
            );
            assert_eq!(c.observed_generation, Some(3));
        }
    }

    #[test]
    fn transition_time_changes_only_when_the_status_changes() {
        let mut old = completed_status();
        for c in old["conditions"].as_array_mut().into_iter().flatten() {
            c["lastTransitionTime"] = json!("2025-12-01T00:00:00Z");
        }
        let mut new = old.clone();
        // The policy flips to violated; other conditions keep their status.
        new["conditions"][2] = json!(Condition::policy_violated(2));
        // A writer cannot move the time of an unchanged condition.
        new["conditions"][0]["lastTransitionTime"] = json!("2030-01-01T00:00:00Z");
        let status = ok(Some(&old), &new);
        let time = |ty: ConditionType| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == ty)
                .and_then(|c| c.last_transition_time.clone())
        };
        assert_eq!(
            time(ConditionType::Scanning),
            Some(Time(t("2025-12-01T00:00:00Z")))
        );
        assert_eq!(
            time(ConditionType::Succeeded),
            Some(Time(t("2025-12-01T00:00:00Z")))
        );
        assert_eq!(
            time(ConditionType::PolicySucceeded),
            Some(Time(t("2026-01-02T03:04:05Z")))
        );
        assert_eq!(status.phase, Some(Phase::Failed));
    }

    #[test]
    fn a_written_phase_that_contradicts_the_conditions_is_refused() {
        let mut new = completed_status();
        new["phase"] = json!("Failed");
        let message = refused(None, &new);
        assert!(
            message.contains("status.phase is Failed but the conditions make it Completed"),
            "{message}"
        );
    }

    #[test]
    fn a_stale_phase_carried_over_is_rederived() {
        let mut old = completed_status();
        old["phase"] = json!("Completed");
        let mut new = old.clone();
        new["conditions"][2] = json!(Condition::policy_violated(4));
        assert_eq!(ok(Some(&old), &new).phase, Some(Phase::Failed));
    }

    #[test]
    fn a_written_total_that_contradicts_the_counts_is_refused() {
        let mut new = completed_status();
        new["cveCount"]["total"] = json!(99);
        let message = refused(None, &new);
        assert!(
            message.contains("total is 99 but the severities add up to 6"),
            "{message}"
        );
        // Carried over from the old status: re-derived.
        let mut old = completed_status();
        old["cveCount"]["total"] = json!(99);
        let status = ok(Some(&old), &new);
        assert_eq!(status.cve_count.map(|c| c.total), Some(6));
    }

    #[test]
    fn negative_counts_are_refused() {
        let mut new = completed_status();
        new["cveCount"]["high"] = json!(-1);
        let message = refused(None, &new);
        assert!(
            message.contains("status.cveCount.high is -1; counts cannot be negative"),
            "{message}"
        );
        new["cveCount"]["high"] = json!(1.5);
        assert!(refused(None, &new).contains("whole numbers"));
    }

    /// Seen with the `admission_review` fuzz target: counts whose sum is past `i64::MAX` made
    /// the enricher panic (an overflow) instead of refusing the status.
    #[test]
    fn counts_adding_up_past_the_largest_count_are_refused() {
        let mut new = completed_status();
        new["cveCount"] = json!({"critical": i64::MAX, "high": 2});
        let message = refused(None, &new);
        assert!(
            message.contains("status.cveCount adds up to more than 9223372036854775807"),
            "{message}"
        );
    }

    #[test]
    fn unknown_condition_types_and_statuses_are_refused() {
        let mut new = completed_status();
        new["conditions"][1]["type"] = json!("Ready");
        let message = refused(None, &new);
        assert!(
            message.contains("status.conditions[1].type \"Ready\" is not a scan condition type; use one of Scanning, Succeeded, SendingResults, PolicySucceeded"),
            "{message}"
        );
        let mut new = completed_status();
        new["conditions"][0]["status"] = json!("Maybe");
        let message = refused(None, &new);
        assert!(
            message.contains(
                "status.conditions[0].status \"Maybe\" is not one of True, False, Unknown"
            ),
            "{message}"
        );
        let mut new = completed_status();
        new["conditions"][0]
            .as_object_mut()
            .map(|c| c.remove("reason"));
        assert!(refused(None, &new).contains("has no reason"));
        let mut new = completed_status();
        new["phase"] = json!("Done");
        assert!(refused(None, &new).contains("status.phase \"Done\" is not one of Pending"));
    }

    #[test]
    fn reasons_that_break_the_contract_are_refused() {
        let mut new = completed_status();
        new["conditions"][2]["reason"] = json!("Passed");
        let message = refused(None, &new);
        assert!(message.contains("must be EvaluationPassed"), "{message}");
        let mut new = completed_status();
        new["conditions"][1] = json!(Condition::job_started());
        assert!(refused(None, &new).contains("more than once"));
    }

    #[test]
    fn violations_are_sorted_worst_first_and_capped() {
        let mut new = completed_status();
        new["conditions"][2] = json!(Condition::policy_violated(25));
        let violations: Vec<Value> = (0..25)
            .map(|i| {
                let severity = if i % 2 == 0 { "low" } else { "critical" };
                json!({"id": format!("CVE-2024-{i}"), "severity": severity, "package": "p", "version": "1"})
            })
            .collect();
        new["violations"] = json!(violations);
        let status = ok(None, &new);
        assert_eq!(status.violations.len(), MAX_VIOLATIONS);
        assert!(
            status.violations[..12]
                .iter()
                .all(|v| v.severity == crate::api::Severity::Critical)
        );
        assert!(
            status.violations[12..]
                .iter()
                .all(|v| v.severity == crate::api::Severity::Low)
        );
        new["violations"][3]["severity"] = json!("Severe");
        assert!(refused(None, &new).contains("status.violations[3].severity \"Severe\""));
    }

    #[test]
    fn non_object_status_is_refused() {
        assert!(refused(None, &json!("x")).contains("must be an object"));
        assert!(refused(None, &json!({"conditions": "x"})).contains("not valid"));
    }

    #[test]
    fn empty_status_is_pending() {
        assert_eq!(ok(None, &json!({})).phase, Some(Phase::Pending));
    }
}
