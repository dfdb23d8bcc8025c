//! What many tests start from: real images by digest, scan statuses, a real scanner report.

use std::path::Path;

use scangate::report::{Limits, Report};
use serde_json::{Value, json};

pub const BUSYBOX: &str = "docker.io/library/busybox@sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";
pub const ALPINE: &str = "docker.io/library/alpine@sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4";

/// The status fields of a scan whose policy failed on one critical CVE (busybox's).
pub const FAILED: &str = r#""cveCount": {"critical": 1, "high": 10},
  "violations": [{"id": "CVE-2022-48174", "severity": "critical", "package": "busybox", "version": "1.32.1"}],
  "conditions": [
    {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
    {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"},
    {"type": "PolicySucceeded", "status": "False", "reason": "EvaluationFailed", "message": "Policy violated because of 1 CVEs"}]"#;

/// The status fields of a scan that passed its policy.
pub const PASSED: &str = r#""cveCount": {},
  "conditions": [
    {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
    {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"},
    {"type": "PolicySucceeded", "status": "True", "reason": "EvaluationPassed", "message": "No CVEs were found that violated the policy"}]"#;

/// Grype's real report on busybox 1.32.1 (15 CVEs), relative to the repository.
pub const GRYPE_BUSYBOX: &str = "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json";

/// [`GRYPE_BUSYBOX`], read.
pub fn grype_busybox() -> Report {
    Report::from_path(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(GRYPE_BUSYBOX),
        Limits::default(),
    )
    .expect("fixture report")
}

/// ScanTemplate `grype` of `ns`: the scanner's pod as Pod Security `restricted` accepts it,
/// storing its report with `scangate report --to-configmap`. (Tests play its Jobs: there is no
/// container runtime.)
pub fn grype_template(ns: &str) -> Value {
    let restricted = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanTemplate",
        "metadata": {"name": "grype", "namespace": ns},
        "spec": {"template": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "scan",
                "image": "anchore/grype",
                "command": ["sh", "-c", "grype \"$SCAN_IMAGE\" -o json > /tmp/r.json && scangate report /tmp/r.json --to-configmap \"$SCAN_NAMESPACE/$SCAN_NAME\""],
                "securityContext": restricted,
            }],
        }},
    })
}

/// `report` as the ConfigMap a pipeline stores for each ImageScan of `list` (a `kubectl get
/// imagescans -o json` list of namespace `ns`), owned by its scan.
pub fn report_config_maps(report: &Report, ns: &str, list: &Value) -> Vec<Value> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|scan| {
            let owner = scangate::report::ScanRef {
                api_version: "scanning.scangate.dev/v1beta1".into(),
                kind: "ImageScan".into(),
                name: scan["metadata"]["name"].as_str().unwrap_or_default().into(),
                namespace: ns.to_string(),
                uid: scan["metadata"]["uid"].as_str().unwrap_or_default().into(),
            };
            let cm = scangate::report::to_config_map(report, &owner).expect("ConfigMap");
            serde_json::to_value(cm).expect("JSON")
        })
        .collect()
}
