//! Stable verdicts: a scan's policy is evaluated once per input (the policy, the report and
//! the exceptions that count), and an evaluation that gives no answer (a limit stopped it, a
//! worker failed, the pool was busy) never replaces a verdict on the same report: that
//! verdict stands, its condition says why, and the evaluation is tried again with backoff.
//! Pure; the controller keeps one [`LastEvaluation`] per scan in memory (a restart evaluates
//! each scan once more).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use jiff::Timestamp;

use super::job::retry_delay;
use super::status::PolicyState;
use crate::api::{Condition, ConditionStatus, ConditionType, ScanPolicy, ScanStatus};
use crate::policy::Outcome;
use crate::report::Report;

/// What the controller remembers of a scan's last policy evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastEvaluation {
    /// What was evaluated ([`input_of`]).
    pub input: u64,
    /// A fingerprint of the PolicySucceeded condition the status was written with: while the
    /// status still shows it, the status is that evaluation's.
    pub condition: Option<u64>,
    /// Evaluations of this input in a row that gave no answer.
    pub failures: u32,
    /// When the last of them ended.
    pub at: Timestamp,
}

/// A fingerprint of what an evaluation decides from: the policy (which object, which
/// generation, its Rego) and the report with its exceptions, as the worker is given them.
#[must_use]
pub fn input_of(policy: &ScanPolicy, report: &Report) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    policy.metadata.namespace.hash(&mut hasher);
    policy.metadata.name.hash(&mut hasher);
    policy.metadata.uid.hash(&mut hasher);
    policy.metadata.generation.hash(&mut hasher);
    policy.spec.rego_file.hash(&mut hasher);
    // A report that cannot be serialised hashes what was written of it; it then fails the
    // same way when sent to the worker.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), report);
    hasher.finish()
}

/// Feeds serialised bytes to a hasher, so a report is hashed without a copy of its JSON.
struct HashWriter<'a, H>(&'a mut H);

impl<H: Hasher> std::io::Write for HashWriter<'_, H> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether a reconcile evaluates the policy, or carries the status's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Evaluate now.
    Evaluate,
    /// Keep the status's verdict: the same input was decided.
    Carry,
    /// Keep it until the time given, when an evaluation that gave no answer is due again.
    CarryUntil(Timestamp),
}

/// Whether to evaluate `input` now, or when. A reevaluation asked for (`forced`) always
/// evaluates, as does a status that no longer shows the last evaluation.
#[must_use]
pub fn next(
    last: Option<&LastEvaluation>,
    previous: Option<&ScanStatus>,
    input: u64,
    forced: bool,
    error_retry: Duration,
    now: Timestamp,
) -> Next {
    let Some(last) = last.filter(|l| l.input == input && !forced) else {
        return Next::Evaluate;
    };
    let shown = previous.and_then(condition_of);
    if shown != last.condition || shown.is_none() {
        return Next::Evaluate;
    }
    if last.failures == 0 {
        return Next::Carry;
    }
    let due = next_try(last.at, last.failures, error_retry);
    if now < due {
        Next::CarryUntil(due)
    } else {
        Next::Evaluate
    }
}

/// When an evaluation that gave no answer `failures` times in a row is tried again: the
/// error-retry delay, doubled for each failure after the first, at most 64 times.
#[must_use]
pub fn next_try(at: Timestamp, failures: u32, error_retry: Duration) -> Timestamp {
    let delay = retry_delay(error_retry, failures.saturating_sub(1));
    jiff::SignedDuration::try_from(delay)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(at)
}

/// The policy state an evaluation leaves the scan with. An evaluation that gave no answer
/// keeps the previous status's verdict when it was on this same report (`stored_at`) and was
/// a verdict (PolicySucceeded `True` or `False`); otherwise a limit counts as the policy's
/// error on this report (a decided result, as `onError` says), and a busy pool or a failed
/// worker leaves the policy in error, retried.
#[must_use]
pub fn stabilise(
    state: PolicyState,
    previous: Option<&ScanStatus>,
    stored_at: Timestamp,
    retry_at: Timestamp,
) -> PolicyState {
    let PolicyState::Unanswered {
        error,
        generation,
        limit,
    } = state
    else {
        return state;
    };
    let verdict_on_this_report = previous.is_some_and(|p| {
        p.scanned_at.as_ref().map(|t| t.0) == Some(stored_at)
            && policy_condition(p).is_some_and(|c| c.status != ConditionStatus::Unknown)
    });
    if verdict_on_this_report {
        PolicyState::Kept {
            error: format!(
                "the last evaluation gave no answer: {error}. The verdict on this report \
                 stands until an evaluation succeeds; next try at {retry_at}"
            ),
        }
    } else if limit {
        PolicyState::Evaluated {
            outcome: Outcome::error(error),
            generation,
        }
    } else {
        PolicyState::Error { error, generation }
    }
}

/// Evaluations of `input` in a row that gave no answer, after one that was `answered` or not.
#[must_use]
pub fn failures(last: Option<&LastEvaluation>, input: u64, answered: bool) -> u32 {
    match last.filter(|l| l.input == input) {
        _ if answered => 0,
        Some(l) => l.failures.saturating_add(1),
        None => 1,
    }
}

/// What to remember of an evaluation of `input`, once the status shows `written`.
#[must_use]
pub fn remember(input: u64, failures: u32, written: &ScanStatus, now: Timestamp) -> LastEvaluation {
    LastEvaluation {
        input,
        condition: condition_of(written),
        failures,
        at: now,
    }
}

/// Whether an evaluation's state is an answer (a verdict or the policy's own error), as
/// opposed to no answer this time.
#[must_use]
pub const fn answered(state: &PolicyState) -> bool {
    !matches!(state, PolicyState::Unanswered { .. })
}

/// A fingerprint of a status's PolicySucceeded condition.
fn condition_of(status: &ScanStatus) -> Option<u64> {
    let condition = policy_condition(status)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_writer(HashWriter(&mut hasher), condition).ok()?;
    Some(hasher.finish())
}

fn policy_condition(status: &ScanStatus) -> Option<&Condition> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::PolicySucceeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ScanPolicySpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    const STORED: &str = "2026-01-01T12:00:00Z";
    const NOW: &str = "2026-01-02T00:00:00Z";
    const MINUTE: Duration = Duration::from_secs(60);

    fn status(condition: Condition) -> ScanStatus {
        ScanStatus {
            scanned_at: Some(Time(ts(STORED))),
            conditions: vec![condition],
            ..ScanStatus::default()
        }
    }

    fn unanswered(limit: bool) -> PolicyState {
        PolicyState::Unanswered {
            error: "policy apps/slow.rego exceeded the time limit of 2 s".into(),
            generation: Some(3),
            limit,
        }
    }

    fn policy(rego: &str, generation: i64) -> ScanPolicy {
        let mut policy = ScanPolicy::new(
            "slow",
            ScanPolicySpec {
                rego_file: rego.into(),
            },
        );
        policy.metadata.generation = Some(generation);
        policy
    }

    #[test]
    fn the_input_changes_with_the_policy_and_the_report() {
        let report = Report::default();
        let other = Report {
            exceptions: vec![serde_json::json!({"cves": ["CVE-1"]})],
            ..Report::default()
        };
        let base = input_of(&policy("package main", 1), &report);
        assert_eq!(base, input_of(&policy("package main", 1), &report));
        assert_ne!(base, input_of(&policy("package main", 2), &report));
        assert_ne!(base, input_of(&policy("package main\n", 1), &report));
        assert_ne!(base, input_of(&policy("package main", 1), &other));
    }

    #[test]
    fn a_decided_input_is_not_evaluated_again_while_the_status_shows_it() {
        let shown = status(Condition::policy_violated(2));
        let last = LastEvaluation {
            input: 7,
            condition: condition_of(&shown),
            failures: 0,
            at: ts(STORED),
        };
        let now = ts(NOW);
        assert_eq!(
            next(Some(&last), Some(&shown), 7, false, MINUTE, now),
            Next::Carry
        );
        // Another input, a reevaluation asked for, or a status that shows something else.
        assert_eq!(
            next(Some(&last), Some(&shown), 8, false, MINUTE, now),
            Next::Evaluate
        );
        assert_eq!(
            next(Some(&last), Some(&shown), 7, true, MINUTE, now),
            Next::Evaluate
        );
        let other = status(Condition::policy_passed());
        assert_eq!(
            next(Some(&last), Some(&other), 7, false, MINUTE, now),
            Next::Evaluate
        );
        assert_eq!(
            next(None, Some(&shown), 7, false, MINUTE, now),
            Next::Evaluate
        );
    }

    #[test]
    fn an_unanswered_input_is_tried_again_with_backoff() {
        let shown = status(Condition::policy_violated(2));
        let last = |failures| LastEvaluation {
            input: 7,
            condition: condition_of(&shown),
            failures,
            at: ts(NOW),
        };
        let at = |s: &str| Next::CarryUntil(ts(s));
        let now = ts(NOW);
        assert_eq!(
            next(Some(&last(1)), Some(&shown), 7, false, MINUTE, now),
            at("2026-01-02T00:01:00Z")
        );
        assert_eq!(
            next(Some(&last(3)), Some(&shown), 7, false, MINUTE, now),
            at("2026-01-02T00:04:00Z")
        );
        let later = ts("2026-01-02T00:05:00Z");
        assert_eq!(
            next(Some(&last(3)), Some(&shown), 7, false, MINUTE, later),
            Next::Evaluate
        );
    }

    #[test]
    fn no_answer_keeps_the_verdict_on_the_same_report() {
        let failed = status(Condition::policy_violated(2));
        let retry = ts(NOW);
        match stabilise(unanswered(true), Some(&failed), ts(STORED), retry) {
            PolicyState::Kept { error } => {
                assert!(error.contains("exceeded the time limit of 2 s"), "{error}");
                assert!(
                    error.contains("stands until an evaluation succeeds"),
                    "{error}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            stabilise(unanswered(false), Some(&failed), ts(STORED), retry),
            PolicyState::Kept { .. }
        ));
    }

    #[test]
    fn without_a_verdict_on_this_report_a_limit_is_the_policys_error() {
        let failed = status(Condition::policy_violated(2));
        let newer = ts("2026-01-01T13:00:00Z");
        let retry = ts(NOW);
        match stabilise(unanswered(true), Some(&failed), newer, retry) {
            PolicyState::Evaluated {
                outcome,
                generation,
            } => {
                assert_eq!(outcome.condition.status, ConditionStatus::Unknown);
                assert_eq!(generation, Some(3));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            stabilise(unanswered(false), None, ts(STORED), retry),
            PolicyState::Error { .. }
        ));
        // An error on this report is no verdict to keep.
        let errored = status(Condition::policy_error("boom"));
        assert!(matches!(
            stabilise(unanswered(false), Some(&errored), ts(STORED), retry),
            PolicyState::Error { .. }
        ));
        let passed = PolicyState::Carried;
        assert_eq!(
            stabilise(passed.clone(), Some(&failed), ts(STORED), retry),
            passed
        );
    }

    #[test]
    fn failures_are_counted_per_input() {
        let written = status(Condition::policy_violated(2));
        let now = ts(NOW);
        let first = remember(7, failures(None, 7, false), &written, now);
        assert_eq!(first.failures, 1);
        let second = remember(7, failures(Some(&first), 7, false), &written, now);
        assert_eq!(second.failures, 2);
        assert_eq!(failures(Some(&second), 8, false), 1);
        assert_eq!(failures(Some(&second), 7, true), 0);
        let ok = remember(7, 0, &written, now);
        assert_eq!(ok.condition, condition_of(&written));
        assert_ne!(
            ok.condition,
            condition_of(&status(Condition::policy_passed()))
        );
    }
}
