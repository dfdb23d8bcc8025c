//! `make bench-controller`: the scan controller's figures of issue 14 on a local control plane
//! of its own (tests/controlplane), with `scangate controller` running as its ServiceAccount
//! (impersonation, as the e2e tests do). For each N it creates N ImageScans (no template, the
//! default ScanPolicy), waits until the controller has written each one's first status, then
//! pushes one report ConfigMap per scan (the fixture Grype report, as `scangate report
//! --to-configmap` stores it) and measures:
//!
//! - time from each report (when the bench sent it) to its scan's verdict (Failed, seen by a
//!   watch): p50, p99, max, and from the first report to the last verdict;
//! - apiserver requests per reconcile, from the apiserver's own `apiserver_request_total`
//!   (by verb and resource, before and after) and the controller's reconcile counter;
//! - status writes per scan per state change (PATCH/APPLY/PUT on imagescans/status);
//! - after a ScanPolicy edit, the time until every scan's status shows the new generation;
//! - the controller's resident memory (VmRSS) idle, at steady state, per cached scan, and the
//!   peak while a new controller process re-lists everything (sampled every 50 ms).
//!
//! Prints the figures beside the targets (met, or missed by how much); asserts nothing.
//! Settings (environment): BENCH_SCANGATE (the scangate binary to measure; default: the one
//! cargo built with the bench, in its profile), BENCH_SCANS (`1000,10000`), BENCH_CONTROLPLANE_DIR
//! (target/bench-controlplane: its kubeconfig and bin/kubectl), BENCH_CONCURRENCY (16 requests
//! in flight when creating), BENCH_TIMEOUT (seconds to wait for each phase: 600 + N / 5, so
//! 2,600 s for 10,000 scans: today's controller decides a few scans per second).

mod common;

use common::{Cluster, Requests, Result, env_or, net, prom, repo, scangate_binary};
use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use scangate::api::{ImageScan, ScanPolicy};
use scangate::report::{Limits, Report, ScanRef, to_config_map};
use serde_json::json;

const FIXTURE: &str = "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json";
/// The targets.
const VERDICT_TARGET: Duration = Duration::from_secs(5);
const KIB_PER_SCAN_TARGET: f64 = 4.0;
const RELIST_TARGET: f64 = 2.0;
const WRITES_TARGET: f64 = 1.0;
const REEVALUATION_TARGET: Duration = Duration::from_secs(30);
/// The resources a scan controller reads or writes.
const CONTROLLER_RESOURCES: [&str; 8] = [
    "imagescans",
    "sourcescans",
    "scantemplates",
    "scanpolicies",
    "scanexceptions",
    "jobs",
    "configmaps",
    "events",
];

fn sum(requests: &Requests, keep: impl Fn(&str, &str, &str) -> bool) -> f64 {
    requests
        .iter()
        .filter(|(key, _)| keep(&key[0], &key[1], &key[2]))
        .map(|(_, v)| v)
        .sum()
}

fn is_status_write(verb: &str, resource: &str, sub: &str) -> bool {
    resource == "imagescans" && sub == "status" && matches!(verb, "PATCH" | "APPLY" | "PUT")
}

/// A `scangate controller` process of one namespace, killed when dropped.
struct Controller {
    child: Child,
    admin: String,
}

impl Controller {
    fn start(cluster: &Cluster, ns: &str, log: &Path) -> Result<Controller> {
        let (child, admin) = common::spawn_controller(cluster, Some(ns), log)?;
        Ok(Controller {
            child,
            admin: format!("http://{admin}"),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        net::http_get(&self.admin, path)
    }

    fn ready(&self) -> bool {
        self.get("/readyz").is_some_and(|(code, _)| code == 200)
    }

    /// The sum of the samples of a controller metric whose line starts with `prefix`.
    fn metric(&self, prefix: &str) -> f64 {
        self.get("/metrics")
            .map(|(_, text)| prom::sum(&text, prefix))
            .unwrap_or(0.0)
    }

    /// `scangate_controller_reconciles_total`, all results.
    fn reconciles(&self) -> f64 {
        self.metric("scangate_controller_reconciles_total{")
    }

    /// Seconds spent in reconciles so far (the duration histogram's sum).
    fn reconciling_seconds(&self) -> f64 {
        self.metric("scangate_controller_reconcile_duration_seconds_sum{")
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    fn memory_kib(&self, field: &str) -> u64 {
        common::memory_kib(self.pid(), field)
    }

    /// CPU time used so far, in seconds: the controller's own, its reaped children's.
    fn cpu_seconds(&self) -> (f64, f64) {
        common::cpu_seconds(self.pid())
    }

    /// Waits until the reconcile counter is at least `at_least` and has not moved for 2 s;
    /// samples VmRSS every 50 ms meanwhile and returns the highest sample (KiB).
    async fn settle(&self, at_least: f64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut peak = 0;
        let mut last = (-1.0, Instant::now());
        loop {
            peak = peak.max(self.memory_kib("VmRSS:"));
            let now = self.reconciles();
            if now != last.0 {
                last = (now, Instant::now());
            } else if now >= at_least && last.1.elapsed() >= Duration::from_secs(2) {
                return Ok(peak);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the controller did not settle within {timeout:?} ({now} reconciles)"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When the watch first saw each scan with any phase, and with its verdict.
#[derive(Default)]
struct Seen {
    phase: HashMap<String, Instant>,
    verdict: HashMap<String, Instant>,
}

/// Calls `on` with each ImageScan of `ns` the watch sees, and when it saw it.
fn watch_scans(
    client: Client,
    ns: &str,
    on: impl Fn(ImageScan, Instant) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let api: Api<ImageScan> = Api::namespaced(client, ns);
    tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default());
        let _ = stream
            .try_for_each(|event| {
                if let watcher::Event::Apply(scan) | watcher::Event::InitApply(scan) = event {
                    on(scan, Instant::now());
                }
                futures::future::ready(Ok(()))
            })
            .await;
    })
}

/// Records when each scan first had a phase, and when it was first Failed.
fn watch(client: Client, ns: &str, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    watch_scans(client, ns, move |scan, now| {
        let phase = serde_json::to_value(&scan.status)
            .ok()
            .and_then(|s| s["phase"].as_str().map(String::from));
        if let (Ok(mut seen), Some(phase)) = (seen.lock(), phase) {
            seen.phase.entry(scan.name_any()).or_insert(now);
            if phase == "Failed" {
                seen.verdict.entry(scan.name_any()).or_insert(now);
            }
        }
    })
}

/// Records when each scan's status first shows policy generation `generation`.
fn watch_generation(
    client: Client,
    ns: &str,
    generation: i64,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
) -> tokio::task::JoinHandle<()> {
    watch_scans(client, ns, move |scan, now| {
        if scan
            .status
            .as_ref()
            .and_then(|s| s.observed_policy_generation)
            == Some(generation)
            && let Ok(mut seen) = seen.lock()
        {
            seen.entry(scan.name_any()).or_insert(now);
        }
    })
}

/// Edits the namespace's ScanPolicy (a new generation, the same rules) and waits until every
/// one of the `n` scans shows it: the time from the edit to the last.
async fn reevaluate_all(
    client: &Client,
    ns: &str,
    n: usize,
    timeout: Duration,
) -> Result<Duration> {
    let policies: Api<ScanPolicy> = Api::namespaced(client.clone(), ns);
    let generation = policies
        .get("default")
        .await?
        .metadata
        .generation
        .unwrap_or(1)
        + 1;
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let watching = watch_generation(client.clone(), ns, generation, seen.clone());
    let edited = Instant::now();
    let rego = format!(
        "{}\n# edited by the bench\n",
        scangate::policy::DEFAULT_POLICY
    );
    let patch = json!({"spec": {"regoFile": rego}});
    policies
        .patch("default", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let deadline = edited + timeout;
    let last = loop {
        let (count, last) = seen
            .lock()
            .map(|s| (s.len(), s.values().max().copied()))
            .unwrap_or((0, None));
        if count >= n {
            break last.unwrap_or(edited);
        }
        if Instant::now() > deadline {
            watching.abort();
            return Err(format!("only {count} of {n} scans re-evaluated after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    watching.abort();
    Ok(last.saturating_duration_since(edited))
}

async fn wait_seen(seen: &Mutex<Seen>, n: usize, verdicts: bool, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let count = seen
            .lock()
            .map(|s| {
                if verdicts {
                    s.verdict.len()
                } else {
                    s.phase.len()
                }
            })
            .unwrap_or(0);
        if count >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            let what = if verdicts {
                "verdicts"
            } else {
                "first statuses"
            };
            return Err(format!("only {count} of {n} {what} after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// "met", or "MISSED by X" where `by` says how much.
fn verdict(met: bool, by: String) -> String {
    if met {
        "met".into()
    } else {
        format!("MISSED by {by}")
    }
}

/// The 1-minute load average.
fn load_average() -> String {
    let [one_minute, ..] = common::load::load_averages();
    one_minute
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Measures and prints the figures for `n` scans; returns the steady-state VmRSS (KiB).
async fn run(cluster: &Cluster, client: &Client, n: usize) -> Result<u64> {
    let ns = format!("bench-controller-{n}");
    let concurrency = usize::try_from(env_or("BENCH_CONCURRENCY", 16)).unwrap_or(16);
    let timeout = Duration::from_secs(env_or("BENCH_TIMEOUT", 600 + n as u64 / 5));
    let _ = cluster.kubectl(&["delete", "namespace", &ns, "--ignore-not-found"], None);
    cluster.kubectl(&["create", "namespace", &ns], None)?;
    let policy = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {"regoFile": scangate::policy::DEFAULT_POLICY},
    });
    cluster.kubectl(&["apply", "-f", "-"], Some(&policy.to_string()))?;
    let dir = tempfile::tempdir()?;

    let controller = Controller::start(cluster, &ns, &dir.path().join("controller.log"))?;
    let started = Instant::now();
    while !controller.ready() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the controller is not ready after 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = controller.memory_kib("VmRSS:");

    let seen = Arc::new(Mutex::new(Seen::default()));
    let watching = watch(client.clone(), &ns, seen.clone());
    let m0 = cluster.requests()?;
    let r0 = controller.reconciles();
    let scans: Api<ImageScan> = Api::namespaced(client.clone(), &ns);
    let created: Vec<ImageScan> = futures::stream::iter(0..n)
        .map(|i| {
            let scans = scans.clone();
            async move {
                let scan: ImageScan = serde_json::from_value(json!({
                    "apiVersion": "scanning.scangate.dev/v1beta1",
                    "kind": "ImageScan",
                    "metadata": {"name": format!("scan-{i}")},
                    "spec": {"registry": {"image": "busybox:1.32.1"}, "scanPolicy": "default"},
                }))?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    scans.create(&PostParams::default(), &scan).await?,
                )
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    wait_seen(&seen, n, false, timeout).await?;
    controller.settle(r0 + n as f64, timeout).await?;
    let m1 = cluster.requests()?;
    let r1 = controller.reconciles();

    // One report ConfigMap per scan, built before the clock starts.
    let report = Report::from_path(repo().join(FIXTURE), Limits::default())?;
    let config_maps: Vec<(String, ConfigMap)> = created
        .iter()
        .map(|scan| {
            let owner = ScanRef {
                api_version: "scanning.scangate.dev/v1beta1".into(),
                kind: "ImageScan".into(),
                name: scan.name_any(),
                namespace: ns.clone(),
                uid: scan.uid().unwrap_or_default(),
            };
            Ok((scan.name_any(), to_config_map(&report, &owner)?))
        })
        .collect::<Result<_>>()?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cpu_before = controller.cpu_seconds();
    let busy_before = controller.reconciling_seconds();
    let load_before = load_average();
    let first_report = Instant::now();
    let sent: HashMap<String, Instant> = futures::stream::iter(config_maps)
        .map(|(scan, cm)| {
            let api = api.clone();
            async move {
                let at = Instant::now();
                api.create(&PostParams::default(), &cm).await?;
                Ok::<_, kube::Error>((scan, at))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let pushed = first_report.elapsed();
    wait_seen(&seen, n, true, timeout).await?;
    let steady_peak = controller.settle(r1 + n as f64, timeout).await?;
    let cpu_after = controller.cpu_seconds();
    let busy = controller.reconciling_seconds() - busy_before;
    let load_after = load_average();
    let m2 = cluster.requests()?;
    let r2 = controller.reconciles();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady = controller.memory_kib("VmRSS:");
    watching.abort();

    let (mut latencies, last_verdict) = {
        let seen = seen.lock().map_err(|_| "the watch panicked")?;
        let latencies: Vec<Duration> = sent
            .iter()
            .filter_map(|(scan, at)| Some(seen.verdict.get(scan)?.saturating_duration_since(*at)))
            .collect();
        (latencies, seen.verdict.values().max().copied())
    };
    latencies.sort();
    let total = last_verdict
        .map(|at| at.saturating_duration_since(first_report))
        .unwrap_or_default();

    // A policy edit: every scan is evaluated again.
    let load_before_edit = load_average();
    let control_plane_before_edit = cluster.cpu_seconds();
    let reevaluation = reevaluate_all(client, &ns, n, timeout).await?;
    let control_plane_edit = cluster
        .cpu_seconds()
        .zip(control_plane_before_edit)
        .map(|(after, before)| after - before);
    let m_edited = cluster.requests()?;

    // A full re-list: a new controller process (the old one killed) reads every scan and
    // report again and reconciles each scan; its memory is sampled every 50 ms.
    drop(controller);
    let relist = Controller::start(cluster, &ns, &dir.path().join("relist.log"))?;
    let relist_sampled = relist.settle(n as f64, timeout).await?;
    let relist_peak = relist_sampled.max(relist.memory_kib("VmHWM:"));
    let relisted = relist.memory_kib("VmRSS:");
    let m3 = cluster.requests()?;
    drop(relist);

    let creating = prom::increase(&m0, &m1);
    let reporting = prom::increase(&m1, &m2);
    let relisting = prom::increase(&m_edited, &m3);
    let reconciles = (r2 - r1).max(1.0);
    let ours = |verb: &str, resource: &str, _: &str| {
        CONTROLLER_RESOURCES.contains(&resource)
            // Not the bench's own (the report ConfigMaps it creates, its watch), nor the
            // garbage collector's (it GETs the scan each new report ConfigMap names as owner).
            && !(resource == "configmaps" && verb == "POST")
            && !(resource == "imagescans" && verb == "GET")
            && verb != "WATCH"
    };
    let reads = sum(&reporting, |v, r, s| {
        ours(v, r, s) && matches!(v, "GET" | "LIST")
    });
    let writes = sum(&reporting, |v, r, s| {
        ours(v, r, s) && !matches!(v, "GET" | "LIST")
    });
    let nf = n as f64;
    let first_writes = sum(&creating, is_status_write) / nf;
    let verdict_writes = sum(&reporting, is_status_write) / nf;
    let relist_writes = sum(&relisting, is_status_write) + 0.0;
    let per_scan = (steady.saturating_sub(idle)) as f64 / nf;
    let relist_ratio = relist_peak as f64 / steady.max(1) as f64;
    let max = latencies.last().copied().unwrap_or_default();
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());

    let profile = scangate_binary().1;
    println!("\n== {n} ImageScans, reports pushed ({profile}, controller of one namespace) ==");
    println!(
        "report to verdict      p50 {}  p99 {}  max {}   target: each <= 5 s: {}",
        secs(percentile(&latencies, 50.0)),
        secs(percentile(&latencies, 99.0)),
        secs(max),
        verdict(
            max <= VERDICT_TARGET,
            format!(
                "{:.2} s (max)",
                (max.saturating_sub(VERDICT_TARGET)).as_secs_f64()
            )
        )
    );
    println!(
        "all verdicts           {} after the first report ({} to push the {n} reports)",
        secs(total),
        secs(pushed)
    );
    println!(
        "policy change          all {n} scans re-evaluated {} after the edit (load average {load_before_edit} before)   target: <= 30 s: {}",
        secs(reevaluation),
        verdict(
            reevaluation <= REEVALUATION_TARGET,
            format!(
                "{:.2} s",
                reevaluation
                    .saturating_sub(REEVALUATION_TARGET)
                    .as_secs_f64()
            )
        )
    );
    let edit_writes = sum(&prom::increase(&m2, &m_edited), is_status_write);
    match control_plane_edit {
        Some(seconds) => println!(
            "control plane CPU      {seconds:.1} s while re-evaluating: {:.2} ms per status write ({edit_writes} writes)",
            1000.0 * seconds / edit_writes.max(1.0)
        ),
        None => println!(
            "control plane CPU      unknown: its process_cpu_seconds_total could not be read"
        ),
    }
    println!(
        "controller CPU         {:.1} s own + {:.1} s in policy workers while reporting ({:.1} ms per reconcile)",
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
        1000.0 * (cpu_after.0 - cpu_before.0 + cpu_after.1 - cpu_before.1) / reconciles
    );
    println!(
        "reconcile duration     {:.0} ms on average; machine load average {load_before} when the reports were pushed, {load_after} at the last verdict",
        1000.0 * busy / reconciles
    );
    println!(
        "requests per reconcile {:.2} reads (GET, LIST) and {:.2} writes over {} reconciles ({:.2} per scan)   target: reads from caches: {}",
        // + 0.0 turns a -0.0 (a count that went down by nothing) into 0.0 for printing.
        reads / reconciles + 0.0,
        writes / reconciles,
        reconciles,
        reconciles / nf,
        verdict(
            reads == 0.0,
            format!("{:.2} reads per reconcile", reads / reconciles)
        )
    );
    println!(
        "status writes per scan {first_writes:.2} (new -> first status), {verdict_writes:.2} (-> verdict), {relist_writes} in the re-list   target: <= 1 per state change: {}",
        verdict(
            first_writes <= WRITES_TARGET
                && verdict_writes <= WRITES_TARGET
                && relist_writes == 0.0,
            format!(
                "{:.2} writes per change",
                first_writes.max(verdict_writes) - WRITES_TARGET
            )
        )
    );
    println!(
        "resident memory        idle {:.1} MiB, steady {:.1} MiB (peak while reporting {:.1} MiB): {per_scan:.1} KiB per cached scan   target: <= 4 KiB: {}",
        mib(idle),
        mib(steady),
        mib(steady_peak),
        verdict(
            per_scan <= KIB_PER_SCAN_TARGET,
            format!(
                "{:.1} KiB ({:.1}x)",
                per_scan - KIB_PER_SCAN_TARGET,
                per_scan / KIB_PER_SCAN_TARGET
            )
        )
    );
    println!(
        "re-list                peak {:.1} MiB = {relist_ratio:.2}x steady (settled at {:.1} MiB)   target: <= 2x: {}",
        mib(relist_peak),
        mib(relisted),
        verdict(
            relist_ratio <= RELIST_TARGET,
            format!("{:.2}x", relist_ratio - RELIST_TARGET)
        )
    );
    println!(
        "apiserver requests while the {n} reports were pushed and decided (verb resource/subresource: count, per reconcile):"
    );
    for (key, count) in &reporting {
        let (verb, resource, sub) = (&key[0], &key[1], &key[2]);
        if !CONTROLLER_RESOURCES.contains(&resource.as_str()) {
            continue;
        }
        let name = if sub.is_empty() {
            resource.clone()
        } else {
            format!("{resource}/{sub}")
        };
        println!(
            "  {verb:<7} {name:<22} {count:>8}  {:>6.2}",
            count / reconciles
        );
    }
    // Waited for: the garbage collector deleting this namespace's report ConfigMaps (it GETs
    // each first) would otherwise count among the next size's requests.
    let _ = cluster.kubectl(&["delete", "namespace", &ns, "--timeout=600s"], None);
    Ok(steady)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this bench has no tests.
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::reachable("bench-controller")?;
    let sizes: Vec<usize> = std::env::var("BENCH_SCANS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    cluster.install()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = cluster.client().await?;
        let mut previous: Option<(usize, u64)> = None;
        for n in sizes {
            let steady = run(&cluster, &client, n).await?;
            // The fixed part (runtime, policy cache, connections) cancels out between sizes.
            if let Some((m, before)) = previous
                && n > m
            {
                let marginal = (steady as f64 - before as f64) / (n - m) as f64;
                println!(
                    "\nsteady-state memory per additional scan, {m} -> {n} scans: {marginal:.1} KiB   target: <= 4 KiB: {}",
                    verdict(
                        marginal <= KIB_PER_SCAN_TARGET,
                        format!("{:.1} KiB", marginal - KIB_PER_SCAN_TARGET)
                    )
                );
            }
            previous = Some((n, steady));
        }
        Ok(())
    })
}
