//! End to end: what the controller asks the apiserver for, from the apiserver's own metrics
//! (`apiserver_request_total` by verb and resource). Reconciles read the controller's watch
//! caches: while scans are created and their reports pushed, the controller GETs and LISTs no
//! template, policy, exception, Job or ConfigMap, and writes each scan's status once per state
//! change (Pending, then Failed).
//!
//! Alone in its test binary, so that no other test's requests are counted; it waits first
//! until no namespace is terminating and nothing reads those kinds (the garbage collector of
//! earlier tests' namespaces). Run with
//! `SCANGATE_E2E=1 cargo test --test e2e_controller_requests` after `make controlplane`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{Cluster, cluster, stderr};
use common::controller::Controller;
use common::fixtures::{grype_busybox, report_config_maps};
use serde_json::{Value, json};

const SCANS: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(120);
/// What reconciles read from the caches only.
const READ_BY_CACHES: [&str; 5] = [
    "scantemplates",
    "scanpolicies",
    "scanexceptions",
    "jobs",
    "configmaps",
];

/// `apiserver_request_total` summed by [verb, resource, subresource].
type Counts = BTreeMap<Vec<String>, f64>;

fn apiserver_requests(cluster: &Cluster) -> Counts {
    let text = cluster.kubectl_ok(&["get", "--raw", "/metrics"]);
    common::prom::sums_by(
        &text,
        "apiserver_request_total",
        &["verb", "resource", "subresource"],
    )
}

/// The apiserver's counts once no namespace is being deleted and nobody has read what the
/// caches hold for 2 s: the namespaces of earlier tests are deleted, and the namespace
/// controller and garbage collector read their objects a while after, with pauses.
fn quiet(cluster: &Cluster) -> Counts {
    let mut last = apiserver_requests(cluster);
    cluster.eventually(
        "no namespace terminating, and no GET or LIST of templates, policies, exceptions, Jobs \
         or ConfigMaps for 2 s",
        TIMEOUT,
        || {
            std::thread::sleep(Duration::from_secs(2));
            if cluster.terminating_namespaces() {
                last = apiserver_requests(cluster);
                return None;
            }
            let now = apiserver_requests(cluster);
            let reads = common::prom::increase(&last, &now).keys().any(|key| {
                matches!(key[0].as_str(), "GET" | "LIST")
                    && READ_BY_CACHES.contains(&key[1].as_str())
            });
            last = now.clone();
            (!reads).then_some(now)
        },
    )
}

fn create(cluster: &Cluster, namespace: &str, items: Vec<Value>) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let out = cluster.kubectl_in(&["-n", namespace, "create", "-f", "-"], Some(&list));
    assert!(out.status.success(), "kubectl create: {}", stderr(&out));
}

/// How many of the namespace's ImageScans are in `phase`.
fn in_phase(cluster: &Cluster, namespace: &str, phase: &str) -> usize {
    let out = cluster.kubectl_ok(&["-n", namespace, "get", "imagescans", "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["status"]["phase"] == phase)
        .count()
}

#[test]
fn reconciles_read_the_caches_and_write_each_state_once() {
    let Some(cluster) = cluster() else {
        return;
    };
    let ns = cluster.namespace("scangate-requests", &[]);
    let rego = scangate::policy::DEFAULT_POLICY;
    create(
        cluster,
        &ns.name,
        vec![json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ScanPolicy",
            "metadata": {"name": "default"},
            "spec": {"regoFile": rego},
        })],
    );
    let controller = Controller::of(&cluster.kubeconfig, &ns.name).start();

    let before = quiet(cluster);
    let scans = (0..SCANS)
        .map(|i| {
            json!({
                "apiVersion": "scanning.scangate.dev/v1beta1",
                "kind": "ImageScan",
                "metadata": {"name": format!("req-{i}")},
                "spec": {"registry": {"image": "busybox:1.32.1"}, "scanPolicy": "default"},
            })
        })
        .collect();
    create(cluster, &ns.name, scans);
    cluster.eventually("every scan to be Pending", TIMEOUT, || {
        (in_phase(cluster, &ns.name, "Pending") == SCANS).then_some(())
    });

    // Push the reports as pipelines would (the default policy denies the critical CVEs).
    let report = grype_busybox();
    let out = cluster.kubectl_ok(&["-n", &ns.name, "get", "imagescans", "-o", "json"]);
    let listed: Value = serde_json::from_str(&out).expect("imagescans");
    let config_maps = report_config_maps(&report, &ns.name, &listed);
    create(cluster, &ns.name, config_maps);
    cluster.eventually("every scan to be Failed", TIMEOUT, || {
        (in_phase(cluster, &ns.name, "Failed") == SCANS).then_some(())
    });
    let after = apiserver_requests(cluster);
    let changed = common::prom::increase(&before, &after);
    eprintln!("apiserver requests while {SCANS} scans went Pending then Failed: {changed:#?}");
    let reconciles = controller.metric("scangate_controller_reconciles_total");
    let requests = controller.metric("scangate_controller_api_requests_total");
    eprintln!(
        "controller: {reconciles} reconciles, {requests} apiserver requests ({:.2} per reconcile)",
        requests / reconciles.max(1.0)
    );

    let count = |verb: &str, resource: &str, subresource: &str| {
        changed
            .get(&vec![verb.into(), resource.into(), subresource.into()])
            .copied()
            .unwrap_or_default()
    };
    for resource in READ_BY_CACHES {
        for verb in ["GET", "LIST"] {
            assert_eq!(
                count(verb, resource, ""),
                0.0,
                "{verb} {resource}: reconciles read the caches\n{changed:#?}"
            );
        }
    }
    // Pending, then Failed: two writes per scan, no more.
    assert_eq!(
        count("APPLY", "imagescans", "status") + count("PATCH", "imagescans", "status"),
        (2 * SCANS) as f64,
        "status writes\n{changed:#?}"
    );
    assert_eq!(
        controller.metric("scangate_controller_status_writes_total{result=\"ok\"}"),
        (2 * SCANS) as f64
    );
}
