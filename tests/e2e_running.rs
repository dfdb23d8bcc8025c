//! Running pods in the test cluster: `make controlplane` starts kube-scheduler and kwok, whose
//! fake Nodes play the kubelet (tests/controlplane/nodes.sh), so a Deployment's pods are
//! scheduled and reach Running with no container runtime. kwok's stages set status imageID
//! only for digest-pinned images (the image as written; empty for a tag:
//! tests/controlplane/kwok-stages.yaml).

mod common;

use std::time::Duration;

use common::cluster::{cluster, deployment};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

const PINNED: &str = "docker.io/library/alpine@sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4";

fn pods(ns: &common::cluster::TestNamespace, app: &str) -> Vec<Value> {
    let out = ns.kubectl_ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"]);
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|list| list["items"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn a_deployments_pods_are_scheduled_and_run() {
    let Some(cluster) = cluster() else { return };
    let nodes = cluster.kubectl_ok(&["get", "nodes", "-l", "type=kwok", "-o", "name"]);
    assert!(
        nodes.contains("node/kwok-node-"),
        "no fake node: was the cluster started with `make controlplane`? {nodes}"
    );
    let ns = cluster.namespace("e2e-running", &[]);
    let out = ns.apply(&deployment("pinned", PINNED).replace("replicas: 1", "replicas: 2"));
    assert!(out.status.success(), "{}", common::cluster::stderr(&out));
    let out = ns.apply(&deployment("tagged", "registry.example/app:1"));
    assert!(out.status.success(), "{}", common::cluster::stderr(&out));

    let running = cluster.eventually("2 pinned pods Running", WAIT, || {
        let pods = pods(&ns, "pinned");
        (pods.len() == 2 && pods.iter().all(|p| p["status"]["phase"] == "Running")).then_some(pods)
    });
    for pod in &running {
        assert!(
            pod["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| n.starts_with("kwok-node-")),
            "{pod}"
        );
        let status = &pod["status"]["containerStatuses"][0];
        assert_eq!(status["ready"], true, "{pod}");
        assert!(status["state"]["running"]["startedAt"].is_string(), "{pod}");
        // kwok reports the digest-pinned image as the running image's ID.
        assert_eq!(status["imageID"], PINNED, "{pod}");
    }
    let tagged = cluster.eventually("the tagged pod Running", WAIT, || {
        pods(&ns, "tagged")
            .into_iter()
            .find(|p| p["status"]["phase"] == "Running")
    });
    // No digest to report for a tag: imageID is empty (a kubelet would report the pulled
    // digest).
    assert_eq!(
        tagged["status"]["containerStatuses"][0]["imageID"], "",
        "{tagged}"
    );
    let ready = ns.kubectl_ok(&[
        "get",
        "deployment",
        "pinned",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(ready, "2");

    // Scaled down: the pods go away (kwok plays the kubelet's graceful deletion).
    ns.kubectl_ok(&["scale", "deployment", "pinned", "--replicas=0"]);
    cluster.eventually("the pinned pods deleted", WAIT, || {
        pods(&ns, "pinned").is_empty().then_some(())
    });
}

#[test]
fn a_plain_jobs_pod_completes_and_a_scan_jobs_pod_keeps_running() {
    let Some(cluster) = cluster() else { return };
    let ns = cluster.namespace("e2e-running-job", &[]);
    let job = |name: &str, labels: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  template:\n    metadata: {{labels: {{{labels}}}}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: \"{PINNED}\"}}]\n"
        )
    };
    for (name, labels) in [
        ("plain", "app: plain"),
        ("scan", "app: scan, scanning.scangate.dev/scan: busybox"),
    ] {
        let out = ns.apply(&job(name, labels));
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
    }
    cluster.eventually("the plain Job complete", WAIT, || {
        let out = ns.kubectl_ok(&["get", "job", "plain", "-o", "jsonpath={.status.succeeded}"]);
        (out == "1").then_some(())
    });
    // A scan Job's pod stays Running: tests play the scanner (store a report, complete the Job).
    let scan = cluster.eventually("the scan Job's pod Running", WAIT, || {
        pods(&ns, "scan")
            .into_iter()
            .find(|p| p["status"]["phase"] == "Running")
    });
    assert_eq!(
        scan["metadata"]["labels"]["scanning.scangate.dev/scan"],
        "busybox"
    );
    let active = ns.kubectl_ok(&["get", "job", "scan", "-o", "jsonpath={.status.active}"]);
    assert_eq!(active, "1");
}

/// `make controlplane-stop` stops every process `make controlplane` started: a second, private
/// control plane (same binaries, its own directory and free ports) is started, then stopped.
#[test]
fn controlplane_stop_stops_everything_it_started() {
    let Some(cluster) = cluster() else { return };
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let binaries = cluster
        .kubectl
        .parent()
        .expect("the control plane's bin directory");
    for name in ["controlplane", "kubectl", "kube-scheduler"] {
        std::os::unix::fs::symlink(binaries.join(name), bin.join(name)).expect("symlink");
    }
    let run = |script: &str, args: &[&str]| {
        let out = std::process::Command::new("bash")
            .arg(repo.join("tests/controlplane").join(script))
            .args(args)
            .current_dir(repo)
            .env("CONTROLPLANE_DIR", dir.path())
            .env("CONTROLPLANE_APISERVER_PORT", "0")
            .env("CONTROLPLANE_ETCD_CLIENT_PORT", "0")
            .env("CONTROLPLANE_ETCD_PEER_PORT", "0")
            .output()
            .expect("run a control plane script");
        assert!(
            out.status.success(),
            "{script} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("start.sh", &[]);
    run("nodes.sh", &["start"]);
    let pid_files = [
        "controlplane.pid",
        "controller-manager.pid",
        "kube-scheduler.pid",
        "kwok.pid",
    ];
    let pids: Vec<(&str, String)> = pid_files
        .iter()
        .map(|f| {
            let pid = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
            (*f, pid.trim().to_string())
        })
        .collect();
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) != Some("Z"))
    };
    for (file, pid) in &pids {
        assert!(!pid.is_empty() && alive(pid), "{file}: {pid:?} not running");
    }
    let out = std::process::Command::new("make")
        .args(["--no-print-directory", "controlplane-stop"])
        .arg(format!("CONTROLPLANE_DIR={}", dir.path().display()))
        .current_dir(repo)
        .output()
        .expect("make controlplane-stop");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        common::cluster::stderr(&out)
    );
    for (file, pid) in &pids {
        assert!(
            !alive(pid),
            "{file}: pid {pid} still runs after controlplane-stop: {said}"
        );
        assert!(!dir.path().join(file).exists(), "{file} left behind");
    }
    for name in ["kube-scheduler", "kwok", "controlplane"] {
        assert!(said.contains(&format!("stopped {name}")), "{said}");
    }
}
