//! The product end to end: `scangate controller` under its own ServiceAccount's RBAC
//! (deploy/rbac/rbac.yaml, by impersonation) and `scangate webhook` enforcing and enriching
//! scan status, on the local control plane. The test plays the scanner (there is no kubelet).
//! A scan the controller finds violating its policy blocks the image's Deployment; a policy
//! change lets it through, without a new scan.

mod common;

use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, cluster, deployment, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{GRYPE_BUSYBOX as FIXTURE, grype_template};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The controller is stopped before the namespace is deleted (fields drop in order).
struct Product {
    controller: Controller,
    enforced: Enforced,
}

fn start(cluster: &'static Cluster) -> Product {
    // The source documents' flow in a single-team cluster: the namespace's own template, policy
    // and scans decide there.
    let enforced = Enforced::with_config(cluster, "e2e-product", &[], "trustNamespaceScans: true");
    let controller = Controller::of_enforced(&enforced, "product").start();
    Product {
        controller,
        enforced,
    }
}

fn apply_json(p: &Product, object: &Value) {
    let out = p.enforced.ns.apply(&object.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
}

fn policy(ns: &str, not_allowed: &str) -> Value {
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {"regoFile": scangate::policy::DEFAULT_POLICY.replace(
            "notAllowedSeverities := [\"critical\", \"high\"]",
            &format!("notAllowedSeverities := {not_allowed}"),
        )},
    })
}

fn scan_status(p: &Product) -> Value {
    let text = p
        .enforced
        .ns
        .kubectl_ok(&["get", "imagescan", "busybox", "-o", "json"]);
    serde_json::from_str::<Value>(&text)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

fn wait_phase(p: &Product, phase: &str) -> Value {
    p.enforced
        .cluster
        .eventually(&format!("the scan to be {phase}"), WAIT, || {
            Some(scan_status(p)).filter(|s| s["phase"] == phase)
        })
}

#[test]
fn the_controller_finds_the_violation_and_the_webhook_blocks_the_image() {
    let Some(cluster) = cluster() else { return };
    let p = start(cluster);
    let ns = p.enforced.ns.name.clone();
    apply_json(&p, &grype_template(&ns));
    apply_json(&p, &policy(&ns, "[\"critical\", \"high\"]"));
    apply_json(
        &p,
        &json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": "busybox", "namespace": ns},
            "spec": {"registry": {"image": "busybox:1.32.1"}, "scanTemplate": "grype", "scanPolicy": "default"},
        }),
    );

    // The controller (as its ServiceAccount) starts the Job; the test plays the scanner.
    let job = cluster.eventually("the scan Job", WAIT, || {
        let text = p.enforced.ns.kubectl_ok(&[
            "get",
            "jobs",
            "-l",
            "scanning.scangate.dev/scan=busybox",
            "-o",
            "json",
        ]);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|l| l["items"][0]["metadata"]["name"].as_str().map(String::from))
    });
    let scanning = wait_phase(&p, "Scanning");
    // The webhook's enricher stamped the condition.
    assert!(scanning["conditions"][0]["lastTransitionTime"].is_string());

    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "report",
            FIXTURE,
            "--to-configmap",
            &format!("{ns}/busybox"),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .expect("scangate report");
    assert!(out.status.success(), "{}", stderr(&out));
    p.enforced.ns.complete_job(&job);

    let failed = wait_phase(&p, "Failed");
    assert_eq!(failed["cveCount"]["total"], 15);
    let policy_condition = failed["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PolicySucceeded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        policy_condition["message"],
        "Policy violated because of 11 CVEs"
    );

    // The status is stable with the enricher in the loop: no write-reconcile ping-pong.
    let reconciles = || p.controller.metric("scangate_controller_reconciles_total{");
    std::thread::sleep(Duration::from_secs(2));
    let before = reconciles();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        reconciles(),
        before,
        "the controller keeps reconciling a settled scan"
    );

    // The webhook blocks the image the controller found violating.
    let manifest = deployment("app", "busybox:1.32.1");
    let message = cluster.eventually("the webhook to deny the image", WAIT, || {
        let out = p.enforced.ns.apply(&manifest);
        (!out.status.success()).then(|| stderr(&out))
    });
    assert!(message.contains("denied the request"), "{message}");
    assert!(message.contains("CVE-"), "{message}");

    // A policy that allows everything: Completed without a new scan, and the image is admitted.
    apply_json(&p, &policy(&ns, "[]"));
    wait_phase(&p, "Completed");
    // Silently: with trustNamespaceScans the namespace's Completed scan is a trusted result.
    cluster.eventually("the webhook to admit the image silently", WAIT, || {
        let out = cluster.apply(&manifest, &["-n", &ns, "--dry-run=server"]);
        (out.status.success() && !stderr(&out).contains("Warning")).then_some(())
    });
    let jobs = p.enforced.ns.kubectl_ok(&["get", "jobs", "-o", "name"]);
    assert_eq!(jobs.lines().count(), 1, "{jobs}");
}
