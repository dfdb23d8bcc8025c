//! Faults under load, on a real kube-apiserver: two webhook replicas behind a round-robin TCP
//! front (tests/common/front.rs, as kube-proxy is for the Service), admissions at a steady
//! rate through the apiserver, and during them a certificate rotation as cert-manager does it
//! and a SIGTERM and restart of each replica in turn. Every admission is counted: a failed
//! call and a wrong verdict are both failures, and there must be none. The apiserver keeps a
//! few connections open and moves to another one on a GOAWAY, so a second client sends reviews
//! straight to the front on a new connection each time (as a new apiserver instance or a
//! rescheduled one would): it is what a replica's `--shutdown-delay` protects.
//!
//! And the apiserver restarted (on the same data) under a running webhook and controller, on a
//! control plane of the test's own: both must recover without a restart of their own, the
//! webhook saying not-ready while its watches resync, then giving the same verdicts, and a
//! report pushed after the restart must reach its scan's status.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::cluster::{Cluster, cluster};
use common::controller::Controller;
use common::controlplane::ControlPlane;
use common::enforced::Enforced;
use common::fixtures::{ALPINE, BUSYBOX, FAILED, GRYPE_BUSYBOX, PASSED, grype_template};
use common::front::{Backend, Front};
use common::webhook::{Webhook, certs, mount_secret};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// Each replica's flags: a short --shutdown-delay, still ten times the front's poll interval.
const REPLICA_ARGS: &[&str] = &["--shutdown-delay", "1s", "--shutdown-grace", "5s"];

const WAIT: Duration = Duration::from_secs(30);

/// What the admission loop saw.
#[derive(Debug, Default)]
struct Tally {
    admissions: usize,
    /// Calls that got no verdict (the webhook could not be called, timed out, ...).
    failures: Vec<String>,
    /// Verdicts that were not the expected one.
    wrong: Vec<String>,
}

impl Tally {
    fn print(&self) {
        eprintln!(
            "admissions: {}, failures: {}, wrong answers: {}",
            self.admissions,
            self.failures.len(),
            self.wrong.len()
        );
    }

    fn assert_clean(&self) {
        self.print();
        self.check();
    }

    /// Fails on any failure or wrong answer.
    fn check(&self) {
        assert!(
            self.failures.is_empty() && self.wrong.is_empty(),
            "failures: {:?}\nwrong answers: {:?}",
            &self.failures[..self.failures.len().min(5)],
            &self.wrong[..self.wrong.len().min(5)]
        );
    }
}

fn pod(image: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }))
    .expect("a Pod")
}

/// A kube client with the cluster's admin kubeconfig.
async fn admin_client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client config");
    kube::Client::try_from(config).expect("client")
}

/// One dry-run create of a busybox Pod (Failed: must be denied) and of an alpine Pod (clean:
/// must be admitted), counted into `tally`.
async fn admit_both(pods: &Api<Pod>, tally: &mut Tally) {
    let dry_run = PostParams {
        dry_run: true,
        field_manager: None,
    };
    for (image, deny) in [("busybox:1.32.1", true), ("alpine:3.10", false)] {
        let result = pods.create(&dry_run, &pod(image)).await;
        tally.admissions += 1;
        let at = tally.admissions;
        match (result, deny) {
            (Ok(_), false) => {}
            (Ok(_), true) => tally.wrong.push(format!("#{at}: {image} admitted")),
            (Err(kube::Error::Api(status)), _) if status.message.contains("denied the request") => {
                if !deny || !status.message.contains("failed trusted scan") {
                    tally
                        .wrong
                        .push(format!("#{at}: {image} denied: {}", status.message));
                }
            }
            (Err(e), _) => tally.failures.push(format!("#{at}: {image}: {e}")),
        }
    }
}

/// Admissions at a steady 20/s (10 pairs) until `stop`.
async fn admission_loop(pods: Api<Pod>, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        admit_both(&pods, &mut tally).await;
    }
    tally
}

/// An AdmissionReview of a busybox Pod (Failed: denied) in `namespace`.
fn busybox_review(namespace: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b6f1c55-8a43-4c7e-9d1e-3f1a5a9d2c01",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "probe", "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "probe", "namespace": namespace},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.32.1"}]}
            }
        }
    }))
    .expect("json")
}

/// Reviews sent straight to the front at a steady 20/s, each on a new connection, until `stop`.
async fn fresh_connection_loop(
    client: reqwest::Client,
    url: String,
    body: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        tally.admissions += 1;
        let at = tally.admissions;
        let answer = match client.post(&url).body(body.clone()).send().await {
            Ok(response) => response.json::<serde_json::Value>().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(review) if review["response"]["allowed"] == false => {}
            Ok(review) => tally.wrong.push(format!("#{at}: {review}")),
            Err(e) => tally.failures.push(format!("#{at}: {e}")),
        }
    }
    tally
}

/// Waits until the apiserver opened a connection through the front after `before` had been
/// opened: it builds a new client for a webhook configuration whose caBundle changed.
fn wait_new_connection(cluster: &Cluster, front: &Front, before: usize, what: &str) {
    cluster.eventually(what, WAIT, || {
        (front.connections().iter().sum::<usize>() > before).then_some(())
    });
}

/// Waits until `replica` serves a certificate that `ca` (only) verifies.
fn wait_serving(rt: &tokio::runtime::Runtime, replica: &Webhook, ca: &Path) {
    let client = common::webhook::client(&[ca]);
    let url = format!("{}/validate/workloads", replica.url);
    let deadline = std::time::Instant::now() + WAIT;
    while rt
        .block_on(async { client.post(&url).body("{}").send().await })
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{} does not serve the new certificate; log:\n{}",
            replica.url,
            replica.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to replica `i`, which the front must take out before it stops; then a new process in
/// its place, which the front takes in once ready.
fn restart(env: &Enforced, front: &Front, replicas: &mut [Webhook], i: usize, mount: &Path) {
    replicas[i].sigterm();
    front.wait_until(|ready| !ready[i], "the terminating replica to be taken out");
    let status = replicas[i].wait();
    assert!(status.success(), "replica {i} exited with {status:?}");
    let new = env.start_replica(mount, REPLICA_ARGS);
    front.set_backend(i, Backend::of(&new));
    front.wait_until(|ready| ready[i], "the restarted replica to be taken in");
    replicas[i] = new;
}

#[test]
fn rotation_and_replica_restarts_under_load_fail_no_admission() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-faults", &[]);
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, FAILED);
    env.trusted_scan("alpine", "alpine:3.10", ALPINE, PASSED);

    // Two replicas reading the certificate from one Secret-like mount, behind the front.
    let dir = env.dir.path();
    let (old, new, mount) = (dir.to_path_buf(), dir.join("new"), dir.join("mount"));
    std::fs::create_dir_all(&mount).expect("mkdir");
    mount_secret(&mount, "..v1", &old);
    let mut replicas = vec![
        env.start_replica(&mount, REPLICA_ARGS),
        env.start_replica(&mount, REPLICA_ARGS),
    ];
    let front = Front::start(replicas.iter().map(Backend::of).collect());
    let old_ca = std::fs::read(old.join("ca.crt")).expect("CA");
    env.point_at(&front.url(), &old_ca);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pods: Api<Pod> =
        Api::namespaced(rt.block_on(admin_client(&cluster.kubeconfig)), &env.ns.name);
    // The apiserver picks the configuration up asynchronously: wait until it goes through the
    // front and the replicas have seen the scans.
    cluster.eventually("admissions through the front", WAIT, || {
        let mut tally = Tally::default();
        rt.block_on(admit_both(&pods, &mut tally));
        (front.connections().iter().sum::<usize>() > 0
            && tally.failures.is_empty()
            && tally.wrong.is_empty())
        .then_some(())
    });

    // The certificate the rotation will bring, made now so the direct client trusts it.
    certs(&new);
    let stop = Arc::new(AtomicBool::new(false));
    let load = rt.spawn(admission_loop(pods, stop.clone()));
    let direct = {
        let _guard = rt.enter();
        let client = common::webhook::client_builder(&[&old.join("ca.crt"), &new.join("ca.crt")])
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let url = format!("{}/validate/workloads", front.url());
        rt.spawn(fresh_connection_loop(
            client,
            url,
            busybox_review(&env.ns.name),
            stop.clone(),
        ))
    };
    let settle = || std::thread::sleep(Duration::from_secs(1));
    settle();

    // Rotation, as cert-manager does it: a new CA and serving certificate; the caBundle holds
    // both CAs first, then the Secret (the mounted files) changes, then the old CA goes.
    let new_ca = std::fs::read(new.join("ca.crt")).expect("CA");
    let both: Vec<u8> = [old_ca.as_slice(), new_ca.as_slice()].concat();
    let before = front.connections().iter().sum();
    env.point_at(&front.url(), &both);
    wait_new_connection(cluster, &front, before, "the apiserver to trust both CAs");
    settle();
    mount_secret(&mount, "..v2", &new);
    for replica in &replicas {
        wait_serving(&rt, replica, &new.join("ca.crt"));
    }
    settle();
    let before = front.connections().iter().sum();
    env.point_at(&front.url(), &new_ca);
    wait_new_connection(
        cluster,
        &front,
        before,
        "the apiserver to trust only the new CA",
    );
    settle();

    // SIGTERM and restart of one replica, then of the other.
    restart(&env, &front, &mut replicas, 0, &mount);
    settle();
    restart(&env, &front, &mut replicas, 1, &mount);
    settle();

    stop.store(true, Ordering::Relaxed);
    let tally = rt.block_on(load).expect("admission loop");
    let direct = rt.block_on(direct).expect("fresh connection loop");
    eprintln!(
        "front: connections per replica slot {:?}, refused {}",
        front.connections(),
        front.refused()
    );
    assert!(
        tally.admissions >= 100,
        "only {} admissions",
        tally.admissions
    );
    let clean = |t: &Tally| t.failures.is_empty() && t.wrong.is_empty();
    if !clean(&tally) || !clean(&direct) {
        for (i, replica) in replicas.iter().enumerate() {
            eprintln!("replica {i} log:\n{}", replica.logs());
        }
    }
    eprint!("through the apiserver: ");
    tally.print();
    eprint!("straight to the front, a new connection each: ");
    direct.print();
    tally.check();
    direct.check();
}

fn ready(admin: &str) -> Option<(u16, String)> {
    common::webhook::http_get(admin, "/readyz")
}

fn phase(env: &Enforced, scan: &str) -> String {
    env.ns
        .kubectl_ok(&["get", "imagescan", scan, "-o", "jsonpath={.status.phase}"])
}

/// The test plays the scanner: pushes the report of the scan's Job and marks the Job complete.
fn finish_scan(env: &Enforced, scan: &str) {
    let ns = &env.ns.name;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "report",
            GRYPE_BUSYBOX,
            "--to-configmap",
            &format!("{ns}/{scan}"),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", &env.cluster.kubeconfig)
        .output()
        .expect("scangate report");
    assert!(out.status.success(), "{}", common::cluster::stderr(&out));
    let job = env.ns.kubectl_ok(&[
        "get",
        "jobs",
        "-l",
        &format!("scanning.scangate.dev/scan={scan}"),
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    env.ns.complete_job(&job);
}

#[test]
fn the_webhook_and_the_controller_recover_from_an_apiserver_restart() {
    // Gated like every e2e test; the restarted cluster is this test's own.
    if cluster().is_none() {
        return;
    }
    let plane = ControlPlane::start();
    let cluster: &'static Cluster = Box::leak(Box::new(Cluster::at(plane.dir())));
    let env = Enforced::with_config(cluster, "e2e-restart", &[], "trustNamespaceScans: true");
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, FAILED);
    env.trusted_scan("alpine", "alpine:3.10", ALPINE, PASSED);
    let mut controller = Controller::of_enforced(&env, "restart").start();
    cluster.eventually("the controller to be ready", WAIT, || {
        ready(&controller.admin).filter(|(code, _)| *code == 200)
    });
    let ns = env.ns.name.clone();
    let template = grype_template(&ns);
    let policy = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1", "kind": "ScanPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {"regoFile": scangate::policy::DEFAULT_POLICY},
    });
    let scan = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1", "kind": "ImageScan",
        "metadata": {"name": "app", "namespace": ns},
        "spec": {"registry": {"image": "busybox:1.32.1"}, "scanTemplate": "grype", "scanPolicy": "default"},
    });
    for object in [&template, &policy, &scan] {
        let out = env.ns.apply(&object.to_string());
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
    }
    cluster.eventually("the scan to be Scanning", WAIT, || {
        (phase(&env, "app") == "Scanning").then_some(())
    });

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pods: Api<Pod> = Api::namespaced(rt.block_on(admin_client(&cluster.kubeconfig)), &ns);
    let verdicts = |rounds: usize| {
        let mut tally = Tally::default();
        for _ in 0..rounds {
            rt.block_on(admit_both(&pods, &mut tally));
        }
        tally
    };
    verdicts(5).assert_clean();

    // The apiserver goes away: the webhook's watches fail, and it says so.
    plane.stop();
    let (_, lost) = cluster.eventually("the webhook to be not ready", WAIT, || {
        ready(&env.webhook.admin).filter(|(code, _)| *code == 503)
    });
    eprintln!("webhook /readyz with the apiserver down: {}", lost.trim());
    assert!(lost.contains("waiting for"), "{lost}");
    plane.restart();
    cluster.eventually("the webhook to be ready again", WAIT, || {
        ready(&env.webhook.admin).filter(|(code, _)| *code == 200)
    });

    // The same verdicts as before, from the same processes.
    let tally = cluster.eventually("admissions after the restart", WAIT, || {
        Some(verdicts(1)).filter(|t| t.failures.is_empty())
    });
    tally.assert_clean();
    verdicts(10).assert_clean();

    // The controller's watches resumed: a report pushed now reaches its scan's status.
    finish_scan(&env, "app");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while phase(&env, "app") != "Failed" {
        if let Some(status) = controller.exited() {
            let logs = controller.logs();
            panic!(
                "the controller did not survive the apiserver restart: it exited ({status}); its \
                 last log line: {}",
                logs.lines().last().unwrap_or_default()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the controller did not recover from the apiserver restart: a report pushed after it \
             did not reach the scan's status in 60s (phase {:?}, controller /readyz {:?})",
            phase(&env, "app"),
            ready(&controller.admin)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Reconciles start as soon as the caches are listed again; /readyz turns 200 at the next
    // check that both stores are ready (every 500 ms), so it may come just after the verdict.
    cluster.eventually("the controller to be ready after the restart", WAIT, || {
        ready(&controller.admin).filter(|(code, _)| *code == 200)
    });
    assert!(controller.exited().is_none(), "the controller exited");
    let mut env = env;
    assert!(env.webhook.exited().is_none(), "the webhook exited");
}
