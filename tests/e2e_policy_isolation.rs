//! No policy can stop the gate (*Trust model* point 8), on a real kube-apiserver: while hostile
//! ScanPolicies are refused (a memory bomb, a CPU bomb, twenty CPU-heavy policies at once), a
//! loop of workload admissions keeps getting the webhook's answer, and the webhook process
//! stays the same and alive. Everything is done as a tenant: a user with the built-in `edit`
//! role and scangate's `scangate-edit` in its namespace, which may write ScanPolicies there.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::cluster::{cluster, deployment, stderr};
use common::enforced::Enforced;

/// A ScanPolicy named `name` whose `deny` rule has `body` as its condition.
fn policy(name: &str, body: &str) -> String {
    format!(
        "apiVersion: scanning.scangate.dev/v1beta1
kind: ScanPolicy
metadata:
  name: {name}
spec:
  regoFile: |
    package main
    import rego.v1
    deny contains \"x\" if {{
      {body}
    }}
"
    )
}

/// The policy of the issue: a 24 TB allocation in one builtin call.
const MEMORY_BOMB: &str = "count(numbers.range(1, 1000000000000)) > 0";

/// 2.4 GB asked for at once: past the limit, though the machine might grant it.
const LARGE_ALLOCATION: &str = "count(numbers.range(1, 100000000)) > 0";

/// Ten billion iterations.
const CPU_BOMB: &str =
    "count([1 | some a in numbers.range(1, 100000); some b in numbers.range(1, 100000)]) > 0";

/// A hundred million iterations: heavy, finite, past the time limit on a shared machine.
fn cpu_heavy(i: usize) -> String {
    format!(
        "count([{i} | some a in numbers.range(1, 10000); some b in numbers.range(1, 10000)]) > 0"
    )
}

/// What an admission that reached the webhook's answer can never say.
fn webhook_unanswered(text: &str) -> bool {
    text.contains("failed calling webhook")
        || text.contains("context deadline exceeded")
        || text.contains("Timeout")
        || text.contains("connection refused")
}

#[test]
fn hostile_policies_are_refused_while_workloads_keep_being_reviewed() {
    let Some(cluster) = cluster() else { return };
    let mut env = Enforced::start(cluster, "e2e-policy-iso", &[]);
    let pid = env.webhook.pid();
    let tenant = format!("tenant-{}", env.ns.name);
    for role in ["edit", "scangate-edit"] {
        env.ns.kubectl_ok(&[
            "create",
            "rolebinding",
            &format!("tenant-{role}"),
            &format!("--clusterrole={role}"),
            &format!("--user={tenant}"),
        ]);
    }
    let as_tenant = format!("--as={tenant}");

    // The loop of workload admissions: an unscanned image, warned by the webhook.
    let stop = Arc::new(AtomicBool::new(false));
    let reviewed = Arc::new(AtomicUsize::new(0));
    let workloads = {
        let (stop, reviewed) = (stop.clone(), reviewed.clone());
        let ns = env.ns.name.clone();
        let as_tenant = as_tenant.clone();
        let manifest = deployment("app", "registry.example/app:1");
        std::thread::spawn(move || {
            let mut unanswered = Vec::new();
            // Stops when told, and after a bounded number of admissions whatever happens.
            for _ in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let out = cluster.apply(&manifest, &["-n", &ns, &as_tenant, "--dry-run=server"]);
                let text = stderr(&out);
                if webhook_unanswered(&text) || !text.contains("has no trusted scan") {
                    unanswered.push(text);
                }
                reviewed.fetch_add(1, Ordering::Relaxed);
            }
            unanswered
        })
    };

    let apply = |name: &str, body: &str| {
        let out = cluster.apply(
            &policy(name, body),
            &["-n", &env.ns.name, &as_tenant, "--dry-run=server"],
        );
        assert!(!out.status.success(), "{name} was admitted");
        stderr(&out)
    };
    for (name, body) in [("memory-bomb", MEMORY_BOMB), ("large", LARGE_ALLOCATION)] {
        let memory = apply(name, body);
        assert!(
            memory.contains("exceeded the memory limit of 256 MiB"),
            "{name}: {memory}"
        );
    }
    let cpu = apply("cpu-bomb", CPU_BOMB);
    assert!(cpu.contains("exceeded the time limit of 2 s"), "{cpu}");

    let heavy: Vec<_> = (0..20)
        .map(|i| {
            let ns = env.ns.name.clone();
            let as_tenant = as_tenant.clone();
            let manifest = policy(&format!("heavy-{i}"), &cpu_heavy(i));
            std::thread::spawn(move || {
                let out = cluster.apply(&manifest, &["-n", &ns, &as_tenant, "--dry-run=server"]);
                (out.status.success(), stderr(&out))
            })
        })
        .collect();
    let mut busy = 0;
    for (i, thread) in heavy.into_iter().enumerate() {
        let (admitted, text) = thread.join().unwrap_or_else(|_| panic!("heavy-{i}"));
        busy += usize::from(text.contains("too many policy checks in progress"));
        let named = text.contains("exceeded the time limit of 2 s")
            || text.contains("too many policy checks in progress");
        assert!(
            !admitted && named && !webhook_unanswered(&text),
            "heavy-{i}: {text}"
        );
    }

    // A few more admissions after the storm, then stop the loop.
    let seen = reviewed.load(Ordering::Relaxed);
    cluster.eventually(
        "workload admissions after the policies",
        Duration::from_secs(60),
        || (reviewed.load(Ordering::Relaxed) >= seen + 3).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    let unanswered = workloads.join().unwrap_or_default();
    eprintln!(
        "{} workload admissions; of 20 heavy policies, {busy} refused as too many at once",
        reviewed.load(Ordering::Relaxed)
    );
    assert!(
        unanswered.is_empty(),
        "{} of {} workload admissions did not get the webhook's answer; first: {}",
        unanswered.len(),
        reviewed.load(Ordering::Relaxed),
        unanswered.first().map(String::as_str).unwrap_or_default()
    );

    assert_eq!(env.webhook.pid(), pid);
    assert!(
        env.webhook.exited().is_none(),
        "the webhook exited; log:\n{}",
        env.webhook.logs()
    );
}
