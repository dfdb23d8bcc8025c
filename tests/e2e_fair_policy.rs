//! Fair, stable policy evaluation on a real kube-apiserver (issue 20): one tenant's dry runs
//! of a slow ScanPolicy cannot hold up the admin's ScanPolicy writes (trusted work has its own
//! policy workers, each user's checks in progress are bounded), and a policy evaluation that
//! hits a limit never replaces a trusted scan's decided verdict on the same report.

mod common;

use std::time::Duration;

use common::cluster::{cluster, deployment, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::GRYPE_BUSYBOX;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// A ScanPolicy named `name` whose Rego is `rego`.
fn policy(name: &str, namespace: &str, rego: &str) -> String {
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"regoFile": rego},
    })
    .to_string()
}

/// A hundred million iterations: past the webhook's 2 s time limit on this machine.
const SLOW: &str = "package main\nimport rego.v1\n\
    deny contains \"x\" if count([1 | some a in numbers.range(1, 10000); some b in numbers.range(1, 10000)]) < 0\n";

#[test]
fn one_tenants_dry_runs_cannot_hold_up_the_admins_policy_writes() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-fair-webhook", &[]);
    let tenant = env.tenant();
    let ns = env.ns.name.clone();
    // Sixteen concurrent dry runs of a slow policy, as one tenant.
    let dry_runs: Vec<_> = (0..16)
        .map(|i| {
            let yaml = policy(&format!("slow-{i}"), &ns, SLOW);
            let (cluster, tenant) = (env.cluster, tenant.clone());
            std::thread::spawn(move || {
                let out = cluster.kubectl_in(
                    &["--as", &tenant, "apply", "--dry-run=server", "-f", "-"],
                    Some(&yaml),
                );
                (out.status.success(), stderr(&out))
            })
        })
        .collect();
    // Once the first refusals are back, the tenant's two checks hold their workers (each
    // runs until the 2 s time limit): the admin writes a policy in scangate's namespace.
    cluster.eventually("a tenant's dry run to be refused", WAIT, || {
        dry_runs.iter().any(|t| t.is_finished()).then_some(())
    });
    let admin = env.cluster.apply(
        &policy("strict", &env.system.name, scangate::policy::DEFAULT_POLICY),
        &[],
    );
    let answers: Vec<(bool, String)> = dry_runs
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|_| panic!("a dry run's thread panicked"))
        })
        .collect();
    assert!(
        admin.status.success(),
        "the admin's ScanPolicy write was refused: {}\ntenant's answers: {answers:#?}",
        stderr(&admin)
    );
    let bounded = format!(
        "too many policy checks in progress for {tenant} (2 running or waiting, the most one \
         user may have at once)"
    );
    let refused = answers
        .iter()
        .filter(|(ok, said)| !ok && said.contains(&bounded))
        .count();
    let stopped = answers
        .iter()
        .filter(|(ok, said)| !ok && said.contains("exceeded the time limit of 2 s"))
        .count();
    assert_eq!((refused, stopped), (14, 2), "{answers:#?}");
}

/// The status of ImageScan `name` in `namespace`.
fn status(env: &Enforced, namespace: &str, name: &str) -> Value {
    let out = env
        .cluster
        .kubectl_ok(&["get", "imagescan", name, "-n", namespace, "-o", "json"]);
    serde_json::from_str::<Value>(&out).map_or(Value::Null, |scan| scan["status"].clone())
}

/// The PolicySucceeded condition of a status.
fn verdict(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == "PolicySucceeded"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_policy_that_times_out_keeps_the_trusted_verdict() {
    let Some(cluster) = cluster() else { return };
    // The admin's pipeline pushes the trusted report.
    let env = Enforced::with_config(
        cluster,
        "e2e-fair-verdict",
        &[],
        "trustedReporters: [kubernetes-admin]",
    );
    let system = env.system.name.clone();
    let scan_in_system = |lease: &str, args: &[&str]| {
        Controller::of(cluster.kubeconfig_as("scangate-controller"), &system)
            .config(&env.config)
            .lease(&format!("scangate-e2e-{lease}-{system}"), None)
            .args(args)
            .start()
    };
    let mut first = scan_in_system("fair-a", &[]);
    let out = env.cluster.apply(
        &policy("strict", &system, scangate::policy::DEFAULT_POLICY),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let scan = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": "busybox", "namespace": system},
        "spec": {"registry": {"image": "busybox:1.32.1"}, "scanPolicy": "strict"},
    });
    let out = env.cluster.apply(&scan.to_string(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(GRYPE_BUSYBOX).expect("fixture"))
            .expect("fixture JSON");
    env.cluster
        .push_report(&format!("{system}/busybox"), &report);
    let failed = cluster.eventually("the trusted scan to be Failed", WAIT, || {
        let status = status(&env, &system, "busybox");
        (status["phase"] == "Failed").then_some(status)
    });
    let denied = env.ns.apply(&deployment("app", "busybox:1.32.1"));
    assert!(!denied.status.success(), "a Failed image was admitted");

    // The controller restarts with a time limit no evaluation meets: it evaluates the scan
    // again (it remembers nothing), the evaluation is stopped, and the verdict stands.
    first.kill();
    let second = scan_in_system("fair-b", &["--policy-time-limit", "1ms"]);
    let kept = cluster.eventually("the verdict to be kept with the cause", WAIT, || {
        let status = status(&env, &system, "busybox");
        let error = verdict(&status)["error"].as_str().map(str::to_string)?;
        Some((status, error))
    });
    let (kept, error) = kept;
    assert!(
        error.contains("exceeded the time limit of 1 ms")
            && error.contains("The verdict on this report stands until an evaluation succeeds"),
        "{error}\ncontroller log:\n{}",
        second.logs()
    );
    assert_eq!(kept["phase"], "Failed", "{kept:#}");
    assert_eq!(kept["lastResult"], failed["lastResult"], "{kept:#}");
    assert_eq!(kept["violations"], failed["violations"], "{kept:#}");
    assert_eq!(verdict(&kept)["status"], "False", "{kept:#}");
    assert_eq!(verdict(&kept)["reason"], "EvaluationFailed", "{kept:#}");
    let still = env.ns.apply(&deployment("app", "busybox:1.32.1"));
    assert!(
        !still.status.success() && stderr(&still).contains("busybox"),
        "the Failed image must stay denied: {}",
        stderr(&still)
    );
}
