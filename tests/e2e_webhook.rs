//! The webhook enforcing on a real kube-apiserver: webhook configurations point at the webhook
//! on loopback with the local CA, and kubectl is the client, as for a user.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, cluster, deployment, stderr};
use common::enforced::Enforced;

fn enforced(cluster: &'static Cluster, mode: Option<&str>) -> Enforced {
    match mode {
        Some(mode) => Enforced::start(
            cluster,
            "e2e-webhook",
            &[("scangate.dev/enforcement", mode)],
        ),
        None => Enforced::start(cluster, "e2e-webhook", &[]),
    }
}

const BUSYBOX: &str = "docker.io/library/busybox@sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";

const FAILED: &str = r#""cveCount": {"critical": 1, "high": 10, "medium": 2, "low": 2},
  "violations": [{"id": "CVE-2022-48174", "severity": "critical", "package": "busybox", "version": "1.32.1"},
                 {"id": "CVE-2021-42376", "severity": "medium", "package": "busybox", "version": "1.32.1", "fixedVersion": "1.34.0"}],
  "conditions": [
    {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
    {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"},
    {"type": "PolicySucceeded", "status": "False", "reason": "EvaluationFailed", "message": "Policy violated because of 2 CVEs"}]"#;

const PASSED: &str = r#""cveCount": {"medium": 2},
  "conditions": [
    {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
    {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"},
    {"type": "PolicySucceeded", "status": "True", "reason": "EvaluationPassed", "message": "No CVEs were found that violated the policy"}]"#;

/// Waits until the webhook's index has the scan: a server dry run is denied.
fn wait_denied(env: &Enforced, manifest: &str) {
    env.cluster.eventually(
        "the webhook to see the failed scan",
        Duration::from_secs(30),
        || {
            let out = env
                .cluster
                .apply(manifest, &["-n", &env.ns.name, "--dry-run=server"]);
            (!out.status.success()).then_some(())
        },
    );
}

#[test]
fn a_deployment_of_a_failed_image_is_denied_and_creates_nothing() {
    let Some(cluster) = cluster() else { return };
    let env = enforced(cluster, None);
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, FAILED);
    let manifest = deployment("legacy", "busybox:1.32.1");
    wait_denied(&env, &manifest);
    let out = env.ns.apply(&manifest);
    assert!(!out.status.success());
    let message = stderr(&out);
    for part in [
        "admission webhook \"workloads.scangate.dev\" denied the request",
        "container \"app\"",
        &format!(
            "image docker.io/library/busybox:1.32.1@sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7 failed trusted scan {}/busybox",
            env.system.name
        ),
        "CVE-2022-48174 (critical) in busybox 1.32.1, no fix yet",
        "CVE-2021-42376 (medium) in busybox 1.32.1, fixed in 1.34.0",
        "ScanException",
    ] {
        assert!(message.contains(part), "missing {part:?} in {message}");
    }
    let out = env.ns.kubectl(&["get", "deployment", "legacy"]);
    assert!(!out.status.success(), "the deployment exists");
    let pods = env.ns.kubectl_ok(&["get", "pods", "-o", "name"]);
    assert_eq!(pods.trim(), "");
    // A bare Pod of the image is denied too.
    let out = env.ns.kubectl(&["run", "sh", "--image=busybox:1.32.1"]);
    assert!(
        stderr(&out).contains("denied the request"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_warn_namespace_admits_with_a_warning() {
    let Some(cluster) = cluster() else { return };
    let env = enforced(cluster, Some("warn"));
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, FAILED);
    let manifest = deployment("legacy", "busybox:1.32.1");
    env.cluster.eventually(
        "the warning about the failed scan",
        Duration::from_secs(30),
        || {
            let out = env
                .cluster
                .apply(&manifest, &["-n", &env.ns.name, "--dry-run=server"]);
            stderr(&out).contains("failed trusted scan").then_some(())
        },
    );
    let out = env.ns.apply(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let warning = stderr(&out);
    assert!(
        warning.contains(&format!(
            "Warning: namespace {} is in warn mode; this would be denied",
            env.ns.name
        )),
        "{warning}"
    );
    env.ns.kubectl_ok(&["get", "deployment", "legacy"]);
}

#[test]
fn a_clean_image_is_admitted_silently() {
    let Some(cluster) = cluster() else { return };
    let env = enforced(cluster, None);
    env.trusted_scan("alpine",
        "alpine:3.10",
        "docker.io/library/alpine@sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4",
        PASSED,
    );
    let manifest = deployment("storefront", "alpine:3.10");
    env.cluster.eventually(
        "the webhook to see the passed scan",
        Duration::from_secs(30),
        || {
            let out = env
                .cluster
                .apply(&manifest, &["-n", &env.ns.name, "--dry-run=server"]);
            (out.status.success() && !stderr(&out).contains("Warning")).then_some(())
        },
    );
    let out = env.ns.apply(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    // The controllers run the admitted deployment: its pod is created (and reviewed) too.
    env.cluster
        .eventually("the deployment's pod", Duration::from_secs(60), || {
            let pods = env
                .ns
                .kubectl_ok(&["get", "pods", "-l", "app=storefront", "-o", "name"]);
            (!pods.trim().is_empty()).then_some(())
        });
}

#[test]
fn a_scanpolicy_with_a_syntax_error_is_rejected_with_the_line() {
    let Some(cluster) = cluster() else { return };
    let env = enforced(cluster, None);
    let policy = "apiVersion: scanning.scangate.dev/v1beta1
kind: ScanPolicy
metadata: {name: broken}
spec:
  regoFile: |
    package main
    import rego.v1
    deny contains msg if {
      some v in input.vulnerabilities
      v.severity == \"critical\"
      msg := sprintf(\"%s\", [v.id]
    }
";
    let out = env.ns.apply(policy);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("admission webhook \"scanning.scangate.dev\" denied the request"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}/broken.rego:7:", env.ns.name))
            || message.contains("broken.rego:7:"),
        "{message}"
    );
    // A valid one is accepted.
    let good = policy.replace("[v.id]\n", "[v.id])\n");
    let out = env.ns.apply(&good);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_expired_scanexception_is_rejected() {
    let Some(cluster) = cluster() else { return };
    let env = enforced(cluster, None);
    let exception = |expires: &str| {
        format!(
            "apiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata: {{name: hotfix}}\nspec:\n  images: [busybox]\n  cves: [CVE-2022-48174]\n  reason: waiting for the vendor fix\n  expires: \"{expires}\"\n"
        )
    };
    let out = env.ns.apply(&exception("2020-01-01T00:00:00Z"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is in the past"), "{}", stderr(&out));
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 7))
        .expect("a week from now");
    let out = env.ns.apply(&exception(&soon.to_string()));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_exception_admits_the_failed_image() {
    let Some(cluster) = cluster() else { return };
    let env = enforced(cluster, None);
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, FAILED);
    let manifest = deployment("legacy", "busybox:1.32.1");
    wait_denied(&env, &manifest);
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .expect("tomorrow");
    let out = env.ns.apply(&format!(
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata: {{name: legacy}}\nspec:\n  images: [busybox]\n  cves: [CVE-2022-48174, CVE-2021-42376]\n  reason: ticket SEC-1\n  expires: \"{soon}\"\n"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    env.cluster.eventually(
        "the exception to admit the image",
        Duration::from_secs(30),
        || env.ns.apply(&manifest).status.success().then_some(()),
    );
}

#[test]
fn a_status_written_through_the_subresource_comes_back_enriched() {
    let Some(cluster) = cluster() else { return };
    let env = enforced(cluster, None);
    let out = env.ns.apply("apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {name: nginx}\nspec:\n  registry: {image: nginx}\n");
    assert!(out.status.success(), "{}", stderr(&out));
    // Anyone but the controller is refused, whatever it writes.
    let out = env.ns.kubectl(&[
        "patch",
        "imagescan",
        "nginx",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status": {"cveCount": {"high": 2}}}"#,
    ]);
    assert!(
        stderr(&out).contains("only scangate's controller (system:serviceaccount:scangate-system:scangate-controller) writes the status of scans"),
        "{}",
        stderr(&out)
    );
    let out = env.as_controller(&[
        "-n", &env.ns.name,
        "patch", "imagescan", "nginx", "--subresource=status", "--type=merge", "-p",
        r#"{"status": {"cveCount": {"high": 2, "low": 3},
            "artifact": {"registry": {"image": "docker.io/library/nginx@sha256:6e5b3a39c5aed7a4aa8a3e0bd1f66ddab3ba6a1e2bd1ad6ae1e0cf2c6bdf0e4f"}},
            "conditions": [{"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
                           {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"}]}}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = env
        .ns
        .kubectl_ok(&["get", "imagescan", "nginx", "-o", "json"]);
    let scan: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let status = &scan["status"];
    assert_eq!(status["phase"], "Completed");
    assert_eq!(status["cveCount"]["total"], 5);
    assert_eq!(status["compliantArtifact"], status["artifact"]);
    assert!(
        status["conditions"][0]["lastTransitionTime"].is_string(),
        "{status}"
    );
    assert_eq!(status["conditions"][0]["observedGeneration"], 1);
    // An inconsistent status is refused with the reason.
    let out = env.as_controller(&[
        "-n",
        &env.ns.name,
        "patch",
        "imagescan",
        "nginx",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status": {"phase": "Failed"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("status.phase is Failed but the conditions make it Completed"),
        "{}",
        stderr(&out)
    );
    // Printer columns show the derived values.
    let table = env.ns.kubectl_ok(&["get", "imagescans"]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.split_whitespace().nth(1) == Some("Completed")),
        "{table}"
    );
}
