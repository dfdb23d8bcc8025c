//! The controller's PolicyReports as the tests read them.

use serde_json::Value;

/// One result of a PolicyReport.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReportResult {
    /// `Kind/name` of the workload.
    pub workload: String,
    pub image: String,
    /// pass, fail, warn or skip.
    pub result: String,
    /// The deciding scan, `namespace/name` (empty when none).
    pub scan: String,
}

/// The results of a PolicyReport (`kubectl get policyreport -o json`).
pub fn results(report: &Value) -> Vec<ReportResult> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| ReportResult {
            workload: format!(
                "{}/{}",
                s(&r["resources"][0]["kind"]),
                s(&r["resources"][0]["name"])
            ),
            image: s(&r["properties"]["image"]),
            result: s(&r["result"]),
            scan: s(&r["properties"]["scan"]),
        })
        .collect()
}
