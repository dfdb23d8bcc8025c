//! The product end to end: `scangate controller` under its own ServiceAccount's RBAC
//! (deploy/rbac/rbac.yaml, by impersonation) and `scangate webhook` enforcing and enriching
//! scan status, on the local control plane. The test plays the scanner (there is no kubelet).
//! A scan the controller finds violating its policy blocks the image's Deployment; a policy
//! change lets it through, without a new scan.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cluster::{Cluster, cluster, deployment, stderr};
use common::enforced::Enforced;
use common::webhook::{free_port, http_get};
use serde_json::{Value, json};

const FIXTURE: &str = "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json";
const WAIT: Duration = Duration::from_secs(60);

struct Product {
    enforced: Enforced,
    controller: Child,
    controller_log: std::path::PathBuf,
    controller_admin: String,
}

impl Drop for Product {
    fn drop(&mut self) {
        let _ = self.controller.kill();
        let _ = self.controller.wait();
        if std::thread::panicking() {
            eprintln!(
                "controller log:\n{}",
                std::fs::read_to_string(&self.controller_log).unwrap_or_default()
            );
        }
    }
}

fn start(cluster: &'static Cluster) -> Product {
    // The source documents' flow in a single-team cluster: the namespace's own template, policy
    // and scans decide there.
    let enforced = Enforced::with_config(cluster, "e2e-product", &[], "trustNamespaceScans: true");
    let ns = &enforced.ns;
    let id = ns.name.clone();
    let dir = &enforced.dir;
    let controller_log = dir.path().join("controller.log");
    let admin = format!("127.0.0.1:{}", free_port());
    let controller = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "controller",
            "--namespace",
            &ns.name,
            "--leader-election-namespace",
            "scangate-system",
            "--leader-election-lease",
            &format!("scangate-e2e-product-{id}"),
            "--admin-listen",
            &admin,
            "--config",
            &enforced.config.display().to_string(),
            "--error-retry",
            "2s",
            // Its images are on no reachable registry: scan the tags as written.
            "--resolve-tags=false",
        ])
        .env("KUBECONFIG", cluster.kubeconfig_as("scangate-controller"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&controller_log).expect("log"))
        .spawn()
        .expect("start the controller");
    let product = Product {
        enforced,
        controller,
        controller_log,
        controller_admin: format!("http://{admin}"),
    };
    cluster.eventually("the controller to be ready", WAIT, || {
        http_get(&product.controller_admin, "/readyz").filter(|(code, _)| *code == 200)
    });
    product
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
    apply_json(
        &p,
        &json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ScanTemplate",
            "metadata": {"name": "grype", "namespace": ns},
            "spec": {"template": {
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "scan",
                    "image": "anchore/grype",
                    "command": ["sh", "-c", "grype \"$SCAN_IMAGE\" -o json > /tmp/r.json && scangate report /tmp/r.json --to-configmap \"$SCAN_NAMESPACE/$SCAN_NAME\""],
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                }],
            }},
        }),
    );
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
    let start = cluster.eventually("the Job's startTime", WAIT, || {
        let text =
            p.enforced
                .ns
                .kubectl_ok(&["get", "job", &job, "-o", "jsonpath={.status.startTime}"]);
        (!text.is_empty()).then_some(text)
    });
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let condition = |t: &str| json!({"type": t, "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now});
    let patch = json!({"status": {"startTime": start, "completionTime": now, "active": 0, "ready": 0,
        "terminating": 0, "succeeded": 1,
        "conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}});
    p.enforced.ns.kubectl_ok(&[
        "patch",
        "job",
        &job,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);

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
    let reconciles = || {
        http_get(&p.controller_admin, "/metrics")
            .map(|(_, text)| {
                text.lines()
                    .filter(|l| l.starts_with("scangate_controller_reconciles_total{"))
                    .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()))
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
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
