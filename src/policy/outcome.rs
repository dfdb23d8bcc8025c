//! What a policy evaluation means for a scan: the `PolicySucceeded` condition, the violations
//! kept in the status, and the unique CVE count of the contract's message.

use std::collections::BTreeSet;

use super::{Evaluation, Result};
use crate::api::{Condition, MAX_VIOLATIONS, VexStatus, Violation, under_review};
use crate::report::{Report, Vulnerability};

/// The result of checking a report against a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The policy's deny messages.
    pub deny: Vec<String>,
    /// The first violations, worst first, for the status.
    pub violations: Vec<Violation>,
    /// Unique CVE ids that violated the policy (`Policy violated because of X CVEs`).
    pub unique_cves: usize,
    /// The `PolicySucceeded` condition.
    pub condition: Condition,
}

impl Outcome {
    /// A policy that could not be evaluated on the report: no violations, the error condition.
    #[must_use]
    pub fn error(message: String) -> Self {
        Self {
            deny: vec![],
            violations: vec![],
            unique_cves: 0,
            condition: Condition::policy_error(message),
        }
    }
}

/// Reads an evaluation against the report it was made from. A vulnerability violates the
/// policy when a deny message names its id; a policy whose messages name no id counts one
/// violation per message.
pub fn outcome(report: &Report, evaluation: Result<Evaluation>) -> Outcome {
    let evaluation = match evaluation {
        Ok(e) => e,
        Err(e) => return Outcome::error(e.to_string()),
    };
    if evaluation.is_compliant() {
        return Outcome {
            deny: evaluation.deny,
            violations: vec![],
            unique_cves: 0,
            condition: Condition::policy_passed(),
        };
    }
    let named: Vec<&Vulnerability> = report
        .vulnerabilities_worst_first()
        .into_iter()
        .filter(|v| !v.id.is_empty() && evaluation.deny.iter().any(|m| m.contains(&v.id)))
        .collect();
    let ids: BTreeSet<&str> = named.iter().map(|v| v.id.as_str()).collect();
    let unique_cves = if ids.is_empty() {
        evaluation.deny.len()
    } else {
        ids.len()
    };
    let violations = named
        .into_iter()
        .take(MAX_VIOLATIONS)
        .map(|v| Violation {
            id: v.id.clone(),
            severity: v.severity,
            package: v.package.name.clone(),
            version: v.package.version.clone(),
            fixed_version: v.fixed_versions.first().cloned(),
        })
        .collect();
    let statements: Vec<(VexStatus, &[String])> = report
        .vex
        .iter()
        .map(|v| (v.statement.status, v.cves.as_slice()))
        .collect();
    let waiting = under_review(ids.iter().copied(), &statements);
    let condition = if waiting.is_empty() {
        Condition::policy_violated(unique_cves)
    } else {
        let by: BTreeSet<&str> = report
            .vex
            .iter()
            .filter(|v| {
                v.statement.status == VexStatus::UnderInvestigation
                    && v.cves
                        .iter()
                        .any(|c| waiting.iter().any(|w| w.eq_ignore_ascii_case(c)))
            })
            .map(|v| v.exception.as_str())
            .collect();
        let by: Vec<String> = by.into_iter().map(String::from).collect();
        Condition::policy_under_review(unique_cves, &waiting, &by)
    };
    Outcome {
        deny: evaluation.deny,
        violations,
        unique_cves,
        condition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConditionStatus;
    use crate::report::{Package, Severity};

    fn vuln(id: &str, severity: Severity, package: &str) -> Vulnerability {
        Vulnerability {
            id: id.into(),
            severity,
            package: Package {
                name: package.into(),
                version: "1.0".into(),
                package_type: "deb".into(),
                purl: None,
            },
            fixed_versions: vec!["1.1".into()],
            ..Vulnerability::default()
        }
    }

    fn report() -> Report {
        Report {
            vulnerabilities: vec![
                vuln("CVE-1", Severity::High, "a"),
                vuln("CVE-1", Severity::High, "b"),
                vuln("CVE-2", Severity::Critical, "c"),
                vuln("CVE-3", Severity::Low, "d"),
            ],
            ..Report::default()
        }
    }

    fn eval(deny: &[&str]) -> Result<Evaluation> {
        Ok(Evaluation {
            deny: deny.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn violations_are_the_named_cves_counted_once() {
        let o = outcome(&report(), eval(&["CVE-1 in a", "CVE-1 in b", "CVE-2 in c"]));
        assert_eq!(o.unique_cves, 2);
        assert_eq!(o.condition, Condition::policy_violated(2));
        assert_eq!(o.condition.message, "Policy violated because of 2 CVEs");
        let ids: Vec<&str> = o.violations.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(
            ids,
            ["CVE-2", "CVE-1", "CVE-1"],
            "worst first, one per package"
        );
        assert_eq!(o.violations[0].severity, Severity::Critical);
        assert_eq!(o.violations[0].fixed_version.as_deref(), Some("1.1"));
    }

    fn statement(
        name: &str,
        cves: &[&str],
        status: crate::api::VexStatus,
    ) -> crate::report::VexInput {
        crate::report::VexInput {
            exception: format!("apps/{name}"),
            images: vec!["nginx".into()],
            cves: cves.iter().map(|c| c.to_string()).collect(),
            statement: crate::api::VexStatement {
                status,
                justification: None,
                impact_statement: None,
                action_statement: None,
            },
            expires: "2030-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_denied_cve_under_investigation_puts_the_verdict_under_review_until_settled() {
        use crate::api::{VexStatus, reason};
        let mut input = report();
        input.vex = vec![
            statement(
                "looking",
                &["cve-2", "CVE-3"],
                VexStatus::UnderInvestigation,
            ),
            statement("other", &["CVE-9"], VexStatus::Affected),
        ];
        let o = outcome(&input, eval(&["CVE-1 in a", "CVE-2 in c"]));
        assert_eq!(o.condition.status, ConditionStatus::False);
        assert_eq!(o.condition.reason, reason::UNDER_REVIEW);
        assert_eq!(
            o.condition.message,
            "Policy violated because of 2 CVEs; under review: CVE-2 (VEX under_investigation in \
             ScanException apps/looking); an approver settles each with a not_affected, affected \
             or fixed statement (docs/vex.md)"
        );
        // A statement under investigation for a CVE the policy does not deny changes nothing.
        let o = outcome(&input, eval(&["CVE-1 in a"]));
        assert_eq!(o.condition, Condition::policy_violated(1));
        // Settled (affected): plain EvaluationFailed.
        input
            .vex
            .push(statement("settled", &["CVE-2"], VexStatus::Affected));
        let o = outcome(&input, eval(&["CVE-1 in a", "CVE-2 in c"]));
        assert_eq!(o.condition, Condition::policy_violated(2));
        // A compliant verdict is never under review.
        assert_eq!(
            outcome(&input, eval(&[])).condition,
            Condition::policy_passed()
        );
    }

    #[test]
    fn messages_without_ids_count_one_each() {
        let o = outcome(&report(), eval(&["too many criticals"]));
        assert_eq!(o.unique_cves, 1);
        assert!(o.violations.is_empty());
    }

    #[test]
    fn compliant_and_error() {
        let o = outcome(&report(), eval(&[]));
        assert_eq!(o.condition, Condition::policy_passed());
        let o = outcome(
            &report(),
            Err(super::super::Error::Timeout {
                name: "p".into(),
                limit: std::time::Duration::from_secs(1),
            }),
        );
        assert_eq!(o.condition.status, ConditionStatus::Unknown);
        assert!(o.condition.error.unwrap_or_default().contains("p"));
    }
}
