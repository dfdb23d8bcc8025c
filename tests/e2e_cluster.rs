//! The harness works: the CRDs install on a real kube-apiserver as structural schemas, kubectl
//! shows the design's printer columns and explains the status, and the controllers run.

mod common;

use std::time::Duration;

use common::cluster::cluster;

const SCAN: &str = "apiVersion: scanning.scangate.dev/v1beta1
kind: ImageScan
metadata:
  name: busybox
spec:
  registry:
    image: busybox:1.32.1
";

const STATUS: &str = r#"{"status": {
  "phase": "Failed",
  "artifact": {"registry": {"image": "docker.io/library/busybox@sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7"}},
  "cveCount": {"critical": 1, "high": 10, "medium": 2, "low": 2, "unknown": 0, "total": 15},
  "scannedBy": {"scanner": {"name": "grype", "vendor": "anchore", "version": "0.94.0"}},
  "conditions": [
    {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated", "lastTransitionTime": "2026-11-23T10:00:00Z"},
    {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete", "lastTransitionTime": "2026-11-23T10:00:00Z"},
    {"type": "PolicySucceeded", "status": "False", "reason": "EvaluationFailed", "message": "Policy violated because of 11 CVEs", "lastTransitionTime": "2026-11-23T10:00:00Z"}
  ]
}}"#;

#[test]
fn printer_columns_show_a_status_set_through_the_subresource() {
    let Some(cluster) = cluster() else { return };
    let ns = cluster.namespace("e2e-columns", &[]);
    let out = ns.apply(SCAN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ns.kubectl_ok(&[
        "patch",
        "imagescan",
        "busybox",
        "--subresource=status",
        "--type=merge",
        "-p",
        STATUS,
    ]);
    let table = ns.kubectl_ok(&["get", "imagescans"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PHASE",
            "SCANNEDIMAGE",
            "AGE",
            "CRITICAL",
            "HIGH",
            "MEDIUM",
            "LOW",
            "UNKNOWN",
            "CVETOTAL"
        ]
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..3],
        [
            "busybox",
            "Failed",
            "docker.io/library/busybox@sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7"
        ]
    );
    assert_eq!(row[4..], ["1", "10", "2", "2", "0", "15"]);

    let wide = ns.kubectl_ok(&["get", "imagescans", "-o", "wide"]);
    assert!(
        wide.lines()
            .next()
            .unwrap_or_default()
            .ends_with("SCANNER   SCANNERVERSION"),
        "{wide}"
    );
    assert!(wide.contains("grype     0.94.0"), "{wide}");
    // The category and short name reach it too.
    assert!(
        ns.kubectl_ok(&["get", "scangate"])
            .contains("imagescan.scanning.scangate.dev/busybox")
    );
    assert!(ns.kubectl_ok(&["get", "imgscan"]).contains("busybox"));
}

#[test]
fn explain_describes_the_status() {
    let Some(cluster) = cluster() else { return };
    // The apiserver publishes a new CRD's OpenAPI a few seconds after it is Established.
    let text = cluster.eventually(
        "kubectl explain to know ImageScans",
        Duration::from_secs(60),
        || {
            let out = cluster.kubectl(&["explain", "imagescan.status.cveCount"]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    );
    for field in ["critical", "high", "medium", "low", "unknown", "total"] {
        assert!(text.contains(field), "{field} missing:\n{text}");
    }
    let conditions = cluster.kubectl_ok(&["explain", "imagescan.status.conditions"]);
    assert!(conditions.contains("lastTransitionTime"), "{conditions}");
}

#[test]
fn the_apiserver_rejects_a_status_outside_the_schema() {
    let Some(cluster) = cluster() else { return };
    let ns = cluster.namespace("e2e-schema", &[]);
    assert!(ns.apply(SCAN).status.success());
    let out = ns.kubectl(&[
        "patch",
        "imagescan",
        "busybox",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status": {"phase": "Exploded"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unsupported value: \"Exploded\""));
}

#[test]
fn a_deployment_creates_pods() {
    let Some(cluster) = cluster() else { return };
    let ns = cluster.namespace("e2e-pods", &[]);
    let deployment = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
";
    assert!(ns.apply(deployment).status.success());
    cluster.eventually(
        "two pods of the deployment",
        Duration::from_secs(60),
        || {
            let out = ns.kubectl(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ]);
            let phases = String::from_utf8_lossy(&out.stdout).into_owned();
            (phases
                .split_whitespace()
                // Pending, or Running once kwok's fake node runs them (tests/e2e_running.rs).
                .filter(|p| *p == "Pending" || *p == "Running")
                .count()
                == 2)
                .then_some(())
        },
    );
    let rs = ns.kubectl_ok(&["get", "replicasets", "-o", "name"]);
    assert!(rs.starts_with("replicaset.apps/web-"), "{rs}");
}
