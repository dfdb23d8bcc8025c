//! ScanException: a reviewed, expiring permission to run an image despite its CVEs.
// clippy reads the repeated `printcolumn(type_ = …)` arguments of the derive as duplicated
// attributes; they are separate columns.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Admits images matching `images` despite the listed CVEs (or despite all, when `cves` is
/// empty) until `expires`. Active exceptions are given to the policy as `input.exceptions` and
/// are honoured by admission; an expired one does nothing.
///
/// With `vex` it is an OpenVEX statement about the listed CVEs in those images instead: only
/// `not_affected` admits (exactly like a plain exception for those CVEs); `under_investigation`
/// puts a scan the CVEs fail Under Review and admits nothing; `affected` and `fixed` settle a
/// review and admit nothing. The same approver and expiry rules hold for every statement.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "scanning.scangate.dev",
    version = "v1beta1",
    kind = "ScanException",
    namespaced,
    shortname = "scanex",
    category = "scangate",
    doc = "ScanException admits matching images despite the listed CVEs until it expires.",
    printcolumn(name = "Expires", type_ = "date", json_path = ".spec.expires"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".spec.reason"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScanExceptionSpec {
    /// Image reference patterns: `registry/repo:tag`, `registry/repo@sha256:…`, or with a
    /// trailing `*` (`ghcr.io/org/*`).
    pub images: Vec<String>,
    /// CVE ids; empty means every CVE of the matching images.
    #[serde(default)]
    pub cves: Vec<String>,
    /// Why the exception was granted, and by whom.
    pub reason: String,
    /// When the exception stops applying (RFC 3339). Bounded by the admin's configured maximum.
    pub expires: Time,
    /// An OpenVEX statement about `cves` (required non-empty) in `images`, instead of a plain
    /// exception (docs/vex.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vex: Option<VexStatement>,
}

impl ScanExceptionSpec {
    /// Whether it admits the CVEs it names: a plain exception, or a `not_affected` statement.
    pub fn admits(&self) -> bool {
        self.vex.as_ref().is_none_or(|v| v.status.admits())
    }
}

/// The OpenVEX fields of a statement (OpenVEX v0.2.0, `statements[]`): the vulnerability is
/// `cves[0]` (the others its aliases), the products are `images`, the timestamp is when an
/// approver wrote it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VexStatement {
    pub status: VexStatus,
    /// Why the images are not affected; required with `not_affected`, refused with any other
    /// status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<VexJustification>,
    /// Free text: why the vulnerability cannot be exploited in these images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact_statement: Option<String>,
    /// What to do about it; required with `affected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_statement: Option<String>,
}

/// OpenVEX status labels.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum VexStatus {
    /// The images are not affected: admits them despite the CVEs, like an exception.
    NotAffected,
    /// The images are affected: the policy's verdict stands.
    Affected,
    /// The images contain a fix: the policy's verdict (from the scanner's findings) stands.
    Fixed,
    /// Not known yet: a scan the CVEs fail is Under Review until a statement settles them.
    UnderInvestigation,
}

impl VexStatus {
    /// Every status, in the order OpenVEX lists them.
    pub const ALL: [VexStatus; 4] = [
        VexStatus::NotAffected,
        VexStatus::Affected,
        VexStatus::Fixed,
        VexStatus::UnderInvestigation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VexStatus::NotAffected => "not_affected",
            VexStatus::Affected => "affected",
            VexStatus::Fixed => "fixed",
            VexStatus::UnderInvestigation => "under_investigation",
        }
    }

    /// Whether a statement with this status admits the images despite its CVEs.
    pub fn admits(self) -> bool {
        self == VexStatus::NotAffected
    }

    /// Whether it settles a review (every status but `under_investigation`).
    pub fn settles(self) -> bool {
        self != VexStatus::UnderInvestigation
    }
}

impl std::fmt::Display for VexStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// OpenVEX justification labels of a `not_affected` statement.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum VexJustification {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeCannotBeControlledByAdversary,
    InlineMitigationsAlreadyExist,
}

/// The CVEs among `denied` that are under review: named by an `under_investigation` statement
/// and by no statement that settles them (`not_affected`, `affected`, `fixed`). `statements`
/// are the ones that count, as (status, CVE ids); ids compare case-insensitively. Sorted,
/// without duplicates, in the case `denied` spells them.
pub fn under_review<'a>(
    denied: impl IntoIterator<Item = &'a str>,
    statements: &[(VexStatus, &[String])],
) -> Vec<String> {
    let says = |cve: &str, settled: bool| {
        statements.iter().any(|(status, cves)| {
            status.settles() == settled && cves.iter().any(|c| c.eq_ignore_ascii_case(cve))
        })
    };
    let waiting: std::collections::BTreeSet<&str> = denied
        .into_iter()
        .filter(|cve| says(cve, false) && !says(cve, true))
        .collect();
    waiting.into_iter().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_denied_cve_under_investigation_waits_until_a_statement_settles_it() {
        let investigating = ids(&["CVE-1", "CVE-2"]);
        let fixed = ids(&["cve-2"]);
        let other = ids(&["CVE-9"]);
        let statements = [
            (VexStatus::UnderInvestigation, investigating.as_slice()),
            (VexStatus::Fixed, fixed.as_slice()),
            (VexStatus::NotAffected, other.as_slice()),
        ];
        // CVE-2 is settled (fixed), CVE-3 has no statement: only CVE-1 waits.
        assert_eq!(
            under_review(["CVE-3", "CVE-2", "CVE-1", "CVE-1"], &statements),
            ["CVE-1"]
        );
        // A CVE the policy does not deny is not under review.
        assert!(under_review(["CVE-3"], &statements).is_empty());
        for status in [
            VexStatus::NotAffected,
            VexStatus::Affected,
            VexStatus::Fixed,
        ] {
            let settled = [
                (VexStatus::UnderInvestigation, investigating.as_slice()),
                (status, investigating.as_slice()),
            ];
            assert!(under_review(["CVE-1"], &settled).is_empty(), "{status}");
        }
    }

    #[test]
    fn only_not_affected_admits() {
        for status in VexStatus::ALL {
            assert_eq!(status.admits(), status == VexStatus::NotAffected);
            let json = serde_json::to_value(status).unwrap_or_default();
            assert_eq!(json, status.as_str());
        }
        let spec: ScanExceptionSpec = serde_json::from_value(serde_json::json!({
            "images": ["nginx"], "cves": ["CVE-1"], "reason": "r",
            "expires": "2030-01-01T00:00:00Z",
            "vex": {"status": "under_investigation"},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!spec.admits());
        let plain = ScanExceptionSpec { vex: None, ..spec };
        assert!(plain.admits());
    }
}
