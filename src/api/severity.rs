//! The five severities of scangate's reports and scan statuses, worst first: one order for
//! the report, the policy outcome, the status and the status guard.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The severity of a vulnerability: critical, high, medium, low or unknown.
//
// Serialized in lowercase. The derived `Ord` sorts worst first (`Critical < High < Medium <
// Low < Unknown`), so `sort()` puts the most severe findings at the top and `min()` picks the
// worst of several ratings. `Unknown` sorts last: a known severity of the same CVE always wins
// over an unknown one.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Critical.
    Critical,
    /// High (Red Hat: Important).
    High,
    /// Medium (Red Hat: Moderate).
    Medium,
    /// Low, Negligible, and the "no impact" ratings `none` and `info`.
    Low,
    /// Missing, `Unknown`, or a value scangate does not recognize.
    #[default]
    Unknown,
}

/// Every severity, worst first.
pub const ALL_SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Unknown,
];

impl Severity {
    /// The lowercase name used in the normalized report.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
