//! `make bench-mirror`: the verdict mirror's figures (issue 22) on a local control plane of its
//! own (tests/controlplane), with the real webhook (this build's binary, as its ServiceAccount,
//! registered for one namespace) and `scangate controller --mirror` (as its ServiceAccount; its
//! scan reconciler watches an empty namespace, so only the mirror works).
//!
//! 1. **Admission latency through the apiserver**, in one run: Pods created (server-side dry
//!    run, so nothing is stored but every admission step runs) at a fixed rate, open loop (each
//!    request timed from when it was due), with no policy, with the mirror alone, with the
//!    webhook alone and with both, at the first size's denied digests. The Pod is one the
//!    webhook and the mirror admit (a digest whose trusted scan Completed): the common case.
//! 2. **The mirror at each size** (1,000 / 10,000 / 100,000 denied digests, each a trusted
//!    Failed ImageScan, its status written as the controller's; after step 1 without the
//!    webhook's reviews, which would only slow the writing): its parameter objects (count,
//!    bytes, the largest), the time to hold a bulk of new verdicts, the time from one new Failed
//!    verdict (its status written) to the apiserver holding it and from a deleted scan to its
//!    digest leaving, the latency of admitted and of denied Pods with the mirror alone, the
//!    apiserver's own mean time per denying policy check
//!    (`apiserver_validating_admission_policy_check_duration_seconds`, which times admitting
//!    checks only when they fail), whether a Pod of a denied digest is denied with the policy's
//!    message (a CEL cost over the apiserver's limit would answer with a cost error instead),
//!    and the controller's resident memory.
//!
//! Prints the figures and the load average at the start; asserts nothing. Settings
//! (environment): BENCH_MIRROR_SIZES (`1000,10000,100000`), BENCH_RATE (requests per second,
//! 100), BENCH_SECONDS (per latency figure, 20), BENCH_UPDATES (single verdicts timed per size,
//! 5), BENCH_CONTROLPLANE_DIR (target/bench-controlplane).

#[path = "../tests/common/mod.rs"]
mod e2e;
#[path = "common/load.rs"]
mod load;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::cluster::{Cluster, stderr};
use e2e::controller::Controller;
use e2e::enforced::Enforced;
use e2e::fixtures::{FAILED, PASSED};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use scangate::api::{DeniedDigests, ImageScan};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const ALPINE: &str = "sha256:451eee8bedcb2f029756dc3e9d73bab0e7943c1ac55cff3a4861c52a0fdd3e98";
/// How long to wait for the mirror to hold a bulk of verdicts, per 1,000.
const BULK_WAIT_PER_1000: Duration = Duration::from_secs(30);
/// How long to wait for one verdict to reach the mirror.
const ONE_WAIT: Duration = Duration::from_secs(60);
/// Requests in flight while creating scans.
const CREATORS: usize = 32;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    load::load_averages().join(" ")
}

/// The digest of denied scan `i`.
fn digest(i: usize) -> String {
    format!("sha256:{i:064x}")
}

async fn client(kubeconfig: &std::path::Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// The status members of [`FAILED`] or [`PASSED`] as JSON, with the phase they give (which
/// the webhook derives when it is registered, and checks).
fn status(members: &str, phase: &str, resolved: &str) -> Result<Value> {
    let mut status: Value = serde_json::from_str(&format!("{{{members}}}"))?;
    status["artifact"] = json!({"registry": {"image": resolved}});
    status["phase"] = json!(phase);
    Ok(status)
}

/// Creates trusted scan `name` of `image` in `namespace` and writes its status as the
/// controller would.
async fn scan(
    admin: &Api<ImageScan>,
    controller: &Api<ImageScan>,
    name: &str,
    image: &str,
    status: &Value,
) -> Result<()> {
    let object: ImageScan = serde_json::from_value(json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": name},
        "spec": {"registry": {"image": image}},
    }))?;
    admin.create(&PostParams::default(), &object).await?;
    controller
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    Ok(())
}

/// The denied scan `i`.
async fn denied_scan(admin: &Api<ImageScan>, controller: &Api<ImageScan>, i: usize) -> Result<()> {
    let repo = format!("registry.example/bench/app-{i}");
    scan(
        admin,
        controller,
        &format!("d-{i}"),
        &format!("{repo}:1"),
        &status(FAILED, "Failed", &format!("{repo}@{}", digest(i)))?,
    )
    .await
}

/// Percentile `p` (0..=100) of sorted `samples`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Latency figures of one fixed-rate run.
struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
    requests: usize,
    errors: usize,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} | p99 {} | max {} | {} requests, {} not admitted",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.requests,
            self.errors
        )
    }
}

/// Dry-run Pod creates of `image` in `namespace` at `rate` per second for `seconds` (after one
/// second of warm-up, not counted), each timed from when it was due.
async fn latency(
    client: &kube::Client,
    namespace: &str,
    image: &str,
    rate: u64,
    seconds: u64,
) -> Latency {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let warm = rate;
    let total = warm + rate * seconds;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for i in 0..total {
        let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let api = api.clone();
        let pod: Pod = match serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": format!("bench-{i}")},
            "spec": {"containers": [{"name": "app", "image": image}]},
        })) {
            Ok(pod) => pod,
            Err(error) => panic!("the bench's Pod: {error}"),
        };
        tasks.push(tokio::spawn(async move {
            let params = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let answer = api.create(&params, &pod).await;
            (i >= warm, due.elapsed(), answer.is_ok())
        }));
    }
    let mut samples = vec![];
    let mut errors = 0;
    for task in tasks {
        if let Ok((counted, took, ok)) = task.await
            && counted
        {
            samples.push(took);
            errors += usize::from(!ok);
        }
    }
    samples.sort();
    Latency {
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        max: samples.last().copied().unwrap_or_default(),
        requests: samples.len(),
        errors,
    }
}

/// Cluster-wide objects saved when deleted, to be created again: a switch for the webhook's
/// configurations or the mirror's bindings.
struct Switch {
    cluster: &'static Cluster,
    objects: Vec<(String, String)>,
    saved: Vec<Value>,
    on: std::cell::Cell<bool>,
}

impl Switch {
    /// The objects of `kind` whose names start with `prefix`.
    fn of(cluster: &'static Cluster, kinds: &[&str], prefix: &str) -> Result<Switch> {
        let mut objects = vec![];
        for kind in kinds {
            let names = cluster.kubectl_ok(&["get", kind, "-o", "name"]);
            for name in names.lines() {
                if name
                    .split_once('/')
                    .is_some_and(|(_, n)| n.starts_with(prefix))
                {
                    objects.push((kind.to_string(), name.to_string()));
                }
            }
        }
        if objects.is_empty() {
            return Err(format!("no {kinds:?} named {prefix}*").into());
        }
        let mut saved = vec![];
        for (_, name) in &objects {
            let mut object: Value =
                serde_json::from_str(&cluster.kubectl_ok(&["get", name, "-o", "json"]))?;
            if let Some(meta) = object["metadata"].as_object_mut() {
                for field in [
                    "resourceVersion",
                    "uid",
                    "creationTimestamp",
                    "managedFields",
                    "generation",
                ] {
                    meta.remove(field);
                }
            }
            if let Some(object) = object.as_object_mut() {
                object.remove("status");
            }
            saved.push(object);
        }
        Ok(Switch {
            cluster,
            objects,
            saved,
            on: std::cell::Cell::new(true),
        })
    }

    fn off(&self) {
        if !self.on.replace(false) {
            return;
        }
        for (_, name) in &self.objects {
            self.cluster
                .kubectl_ok(&["delete", name, "--ignore-not-found"]);
        }
    }

    fn on(&self) {
        if self.on.replace(true) {
            return;
        }
        for object in &self.saved {
            let out = self
                .cluster
                .kubectl_in(&["create", "-f", "-"], Some(&object.to_string()));
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
}

/// What a dry-run Pod of `image` in the enforced namespace is answered: admitted or not, and
/// what the apiserver said (its error or the webhooks' warnings).
fn probe(env: &Enforced, image: &str) -> (bool, String) {
    let out = env.ns.kubectl(&[
        "run",
        "probe",
        &format!("--image={image}"),
        "--dry-run=server",
    ]);
    (out.status.success(), stderr(&out))
}

/// Waits until the apiserver answers as `on` says for the mirror (a denied digest denied by the
/// policy) and the webhook (an unscanned image denied by it).
fn settle(env: &Enforced, policy: &str, mirror: bool, webhook: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let denied = probe(env, &format!("registry.example/bench/app-0@{}", digest(0)));
        let unscanned = probe(env, "registry.example/bench/unscanned:1");
        let by_mirror = !denied.0
            && denied
                .1
                .contains(&format!("ValidatingAdmissionPolicy '{policy}'"));
        // An unscanned image is admitted with the webhook's warning.
        let by_webhook = unscanned.1.contains("has no trusted scan");
        if by_mirror == mirror && by_webhook == webhook {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the apiserver did not apply the switch (mirror {mirror}, webhook {webhook}) in 60 s: \
             a denied digest was answered {denied:?}, an unscanned image {unscanned:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The apiserver's other replicas of the same informers settle too.
    std::thread::sleep(Duration::from_secs(2));
}

/// The mirror's parameter objects as the apiserver holds them, kept by a watch.
struct Params {
    store: reflector::Store<DeniedDigests>,
    _task: tokio::task::JoinHandle<()>,
}

impl Params {
    fn watch(client: &kube::Client, namespace: &str, policy: &str) -> Params {
        let (store, writer) = reflector::store::<DeniedDigests>();
        let api: Api<DeniedDigests> = Api::namespaced(client.clone(), namespace);
        let stream = watcher(
            api,
            watcher::Config::default().labels(&format!("scangate.dev/mirror={policy}")),
        )
        .default_backoff()
        .reflect(writer);
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while stream.next().await.is_some() {}
        });
        Params { store, _task: task }
    }

    fn holds(&self, digest: &str) -> bool {
        self.store
            .state()
            .iter()
            .any(|p| p.spec.digests.contains_key(digest))
    }

    fn count(&self) -> usize {
        self.store
            .state()
            .iter()
            .map(|p| p.spec.digests.len())
            .sum()
    }

    /// Objects, bytes of their specs as JSON, the largest.
    fn size(&self) -> (usize, usize, usize) {
        let sizes: Vec<usize> = self
            .store
            .state()
            .iter()
            .map(|p| serde_json::to_vec(&p.spec).map_or(0, |v| v.len()))
            .collect();
        (
            sizes.len(),
            sizes.iter().sum(),
            sizes.iter().copied().max().unwrap_or(0),
        )
    }

    /// Waits until `done` holds; how long it took, or `None` past `limit`.
    async fn until(&self, limit: Duration, done: impl Fn(&Params) -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(self) {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

/// The apiserver's denying checks of `policy` so far: (seconds, checks).
fn checks(cluster: &Cluster, policy: &str) -> (f64, f64) {
    let text = cluster.kubectl_ok(&["get", "--raw", "/metrics"]);
    let metric = "apiserver_validating_admission_policy_check_duration_seconds";
    let needle = format!("policy=\"{policy}\"");
    let sum = |suffix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}_{suffix}{{")) && l.contains(&needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (sum("sum"), sum("count"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn max(v: &[Duration]) -> Duration {
    v.iter().copied().max().unwrap_or_default()
}

fn main() -> Result<()> {
    let dir = std::env::var_os("BENCH_CONTROLPLANE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-controlplane")
        });
    println!("load average at the start: {}", load_average());
    let cluster: &'static Cluster = Box::leak(Box::new(Cluster::at(&dir)));
    let sizes: Vec<usize> = std::env::var("BENCH_MIRROR_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rate = env_or("BENCH_RATE", 100);
    let seconds = env_or("BENCH_SECONDS", 20);
    let updates = usize::try_from(env_or("BENCH_UPDATES", 5)).unwrap_or(5);
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!(
        "scangate {profile} build; Pods at {rate}/s for {seconds} s per figure (open loop, server-side dry run)"
    );

    let env = Enforced::start(cluster, "bench-mirror", &[]);
    let system = env.system.name.clone();
    e2e::mirror::grant(cluster, &system);
    let (key, value) = env.label();
    let policy = format!("scangate-bench-mirror-{value}");
    // Dropped last: the policy and bindings go after the controller stopped.
    let _objects = e2e::mirror::Objects {
        cluster,
        name: policy.clone(),
    };
    let idle = cluster.namespace("bench-mirror-idle", &[]);
    // The controller's scan reconciler watches an idle namespace: only its mirror works.
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), &idle.name)
        .config(&env.config)
        .args(&[
            "--mirror",
            "--mirror-name",
            &policy,
            "--mirror-namespace-label",
            &format!("{key}={value}"),
        ])
        .start();

    let runtime = tokio::runtime::Runtime::new()?;
    let admin_client = runtime.block_on(client(&cluster.kubeconfig))?;
    let controller_client =
        runtime.block_on(client(&cluster.kubeconfig_as("scangate-controller")))?;
    let admin: Api<ImageScan> = Api::namespaced(admin_client.clone(), &system);
    let as_controller: Api<ImageScan> = Api::namespaced(controller_client, &system);
    let params = runtime.block_on(async { Params::watch(&admin_client, &system, &policy) });

    // The admitted image, and the policy's bindings.
    let admitted = format!("docker.io/library/alpine:3.10@{ALPINE}");
    runtime.block_on(scan(
        &admin,
        &as_controller,
        "alpine",
        "alpine:3.10",
        &status(
            PASSED,
            "Completed",
            &format!("docker.io/library/alpine@{ALPINE}"),
        )?,
    ))?;
    cluster.eventually("the mirror's bindings", Duration::from_secs(60), || {
        Switch::of(cluster, &["validatingadmissionpolicybinding"], &policy).ok()
    });
    let bindings = Switch::of(cluster, &["validatingadmissionpolicybinding"], &policy)?;
    let webhooks = Switch::of(
        cluster,
        &[
            "validatingwebhookconfiguration",
            "mutatingwebhookconfiguration",
        ],
        "scangate-e2e-",
    )?;

    let mut created = 0;
    let mut next_single = 10_000_000;
    for (n, &size) in sizes.iter().enumerate() {
        // The bulk: scans up to `size`, then until the mirror holds them all.
        let started = Instant::now();
        runtime.block_on(async {
            futures::stream::iter(created..size)
                .map(|i| denied_scan(&admin, &as_controller, i))
                .buffer_unordered(CREATORS)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<()>>>()
        })?;
        let written = started.elapsed();
        let limit = BULK_WAIT_PER_1000 * u32::try_from(size / 1000 + 1).unwrap_or(u32::MAX);
        let held = runtime
            .block_on(params.until(limit, |p| p.count() == size))
            .map(|d| d + written);
        created = size;
        println!("\n## {size} denied digests");
        println!(
            "bulk: {} scans written in {:.1} s; the mirror held all {} s after the first was written",
            size - if n == 0 { 0 } else { sizes[n - 1] },
            written.as_secs_f64(),
            held.map_or("(not within the limit)".into(), |d| format!(
                "{:.1}",
                d.as_secs_f64()
            ))
        );
        let (objects, bytes, largest) = params.size();
        println!(
            "size: {objects} DeniedDigests objects, {:.1} KiB in all, the largest {:.1} KiB (bound 256 KiB; the apiserver's limit 1 MiB)",
            bytes as f64 / 1024.0,
            largest as f64 / 1024.0
        );
        // Single verdicts: one new Failed scan, then its deletion.
        let (mut added, mut removed) = (vec![], vec![]);
        for _ in 0..updates {
            let i = next_single;
            next_single += 1;
            let d = digest(i);
            let start = Instant::now();
            runtime.block_on(denied_scan(&admin, &as_controller, i))?;
            let after_status = start.elapsed();
            if let Some(t) = runtime.block_on(params.until(ONE_WAIT, |p| p.holds(&d))) {
                added.push(t);
            } else {
                let logs = controller.logs();
                let tail: Vec<&str> = logs.lines().rev().take(20).collect();
                println!(
                    "a new verdict was not in the mirror within {ONE_WAIT:?} (written in {after_status:?}); the controller's log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            runtime.block_on(admin.delete(&format!("d-{i}"), &DeleteParams::default()))?;
            if let Some(t) = runtime.block_on(params.until(ONE_WAIT, |p| !p.holds(&d))) {
                removed.push(t);
            }
        }
        println!(
            "update: a new Failed verdict in the apiserver's parameters after median {} (max {}); a deleted scan gone after median {} (max {}), {} each",
            ms(median(added.clone())),
            ms(max(&added)),
            ms(median(removed.clone())),
            ms(max(&removed)),
            updates
        );
        let rss = std::fs::read_to_string(format!("/proc/{}/status", controller.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        println!("controller resident memory: {rss}");

        // The latency table, at the first size.
        if n == 0 {
            println!(
                "\n### Admission latency, {size} denied digests (load average {})",
                load_average()
            );
            for (label, mirror, webhook) in [
                ("no policy", false, false),
                ("mirror alone", true, false),
                ("webhook alone", false, true),
                ("mirror and webhook", true, true),
            ] {
                if mirror {
                    bindings.on()
                } else {
                    bindings.off()
                }
                if webhook {
                    webhooks.on()
                } else {
                    webhooks.off()
                }
                settle(&env, &policy, mirror, webhook);
                let figure = runtime.block_on(latency(
                    &admin_client,
                    &env.ns.name,
                    &admitted,
                    rate,
                    seconds,
                ));
                println!("| {label} | {figure} |");
            }
            // From here on the mirror alone; scans are written without the webhook's reviews.
            bindings.on();
            webhooks.off();
            settle(&env, &policy, true, false);
        }
        // The mirror alone at this size: latency, the apiserver's time per check, the cost.
        let figure = runtime.block_on(latency(
            &admin_client,
            &env.ns.name,
            &admitted,
            rate,
            seconds,
        ));
        println!("latency, mirror alone, an admitted Pod: {figure}");
        // Denials: the apiserver times each denying check (admitting ones only on errors).
        let denied_image = format!(
            "registry.example/bench/app-{}@{}",
            size / 2,
            digest(size / 2)
        );
        let before = checks(cluster, &policy);
        let figure = runtime.block_on(latency(
            &admin_client,
            &env.ns.name,
            &denied_image,
            rate,
            seconds,
        ));
        let after = checks(cluster, &policy);
        let per_check = if after.1 > before.1 {
            format!(
                "{:.3} ms",
                (after.0 - before.0) / (after.1 - before.1) * 1e3
            )
        } else {
            "n/a (no checks counted)".into()
        };
        println!(
            "latency, mirror alone, a Pod of a denied digest: {figure}; the apiserver's mean time per denying policy check {per_check}"
        );
        let bad = format!(
            "registry.example/bench/app-{}@{}",
            size - 1,
            digest(size - 1)
        );
        match probe(&env, &bad) {
            (false, said)
                if said.contains(&format!("ValidatingAdmissionPolicy '{policy}'"))
                    && said.contains("failed trusted scan") =>
            {
                println!(
                    "CEL cost: within the apiserver's limits (a Pod of a denied digest is denied with the policy's message)"
                );
            }
            other => println!("CEL: a Pod of a denied digest was answered {other:?}"),
        }
    }
    Ok(())
}
