//! `make bench-inventory`: the runtime inventory of issue 13 at scale, on a local control plane
//! of its own with kube-scheduler and kwok's fake nodes (tests/controlplane), `scangate
//! controller` running cluster-wide as its ServiceAccount (impersonation, as the e2e tests do).
//!
//! It creates BENCH_NAMESPACES namespaces (50) with BENCH_DEPLOYMENTS Deployments each (5),
//! BENCH_PODS pods in all (5,000; kwok makes them Running), running BENCH_IMAGES images (10);
//! each image has a trusted ImageScan in scangate-system (no template, the default ScanPolicy)
//! with a clean report pushed (the fixture Grype report without its matches). Once every pod
//! runs, it starts the controller and measures:
//!
//! - time from the controller's start until every namespace's PolicyReport holds all its
//!   results (one per workload and image), all `pass`;
//! - after a new report with the fixture's CVEs for one image (its result turns Failed), time
//!   until every PolicyReport that runs it says `fail` for each of its workloads;
//! - the controller's resident memory (VmRSS, VmHWM) at steady state, its CPU time;
//! - the apiserver requests on PolicyReports, pods, scans and report ConfigMaps in each phase
//!   (from the apiserver's `apiserver_request_total`; the bench's own reads of PolicyReports
//!   are LISTs and are left out).
//!
//! Prints the figures; asserts nothing. Settings (environment): BENCH_SCANGATE (the scangate
//! binary to measure; default: the one cargo built with the bench), BENCH_CONTROLPLANE_DIR
//! (target/bench-controlplane), BENCH_PODS, BENCH_NAMESPACES, BENCH_DEPLOYMENTS, BENCH_IMAGES,
//! BENCH_TIMEOUT (seconds to wait for each phase: 900).

mod common;

use common::{Cluster, Requests, Result, SYSTEM, env_or, prom, repo, scangate_binary};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use scangate::api::ImageScan;
use scangate::report::{Limits, Report, ScanRef, to_config_map};
use serde_json::json;

const FIXTURE: &str = "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json";
const PART_OF: &str = "app.kubernetes.io/part-of=bench-inventory";
/// The resources whose requests are printed.
const RESOURCES: [&str; 4] = ["policyreports", "pods", "imagescans", "configmaps"];

fn image(k: usize) -> String {
    format!("registry.bench.invalid/team/app-{k}:1")
}

/// `scangate controller`, cluster-wide, killed when dropped.
struct Controller {
    child: Child,
}

impl Controller {
    fn start(cluster: &Cluster, log: &Path) -> Result<(Controller, String)> {
        let (child, admin) = common::spawn_controller(cluster, None, log)?;
        Ok((Controller { child }, admin))
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    fn memory_kib(&self, field: &str) -> u64 {
        common::memory_kib(self.child.id(), field)
    }

    /// CPU time used so far (its own and its reaped children's), in seconds.
    fn cpu_seconds(&self) -> f64 {
        let (own, children) = common::cpu_seconds(self.child.id());
        own + children
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workloads: (namespace, deployment, image index, replicas).
fn workloads(namespaces: usize, deployments: usize, pods: usize, images: usize) -> Vec<Workload> {
    let total = namespaces * deployments;
    (0..total)
        .map(|w| Workload {
            namespace: format!("bench-inv-{}", w / deployments),
            name: format!("app-{}", w % deployments),
            image: w % images,
            // Spread the pods evenly, the first ones taking the remainder.
            replicas: pods / total + usize::from(w < pods % total),
        })
        .collect()
}

struct Workload {
    namespace: String,
    name: String,
    image: usize,
    replicas: usize,
}

/// The scan's report: the fixture for `image`, with its CVEs or without (clean).
fn report(fixture: &Report, image: &str, vulnerable: bool) -> Report {
    let mut report = fixture.clone();
    report.artifact.name = image.to_string();
    report.artifact.digest = None;
    if !vulnerable {
        report.vulnerabilities.clear();
    }
    report
}

/// Stores (creates or replaces) the report ConfigMap of trusted scan `scan`.
async fn push(client: &Client, scan: &ImageScan, report: &Report) -> Result<()> {
    let owner = ScanRef {
        api_version: "scanning.scangate.dev/v1beta1".into(),
        kind: "ImageScan".into(),
        name: scan.name_any(),
        namespace: SYSTEM.into(),
        uid: scan.uid().unwrap_or_default(),
    };
    let cm = to_config_map(report, &owner)?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), SYSTEM);
    let name = cm.name_any();
    api.patch(
        &name,
        &PatchParams::apply("bench-inventory").force(),
        &Patch::Apply(&cm),
    )
    .await?;
    Ok(())
}

/// Results of each bench namespace's PolicyReport: namespace -> (workload name, image) -> result.
type Seen = BTreeMap<String, BTreeMap<(String, String), String>>;

async fn policy_reports(client: &Client) -> Result<Seen> {
    let gvk = GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let mut seen = Seen::new();
    for report in api.list(&ListParams::default()).await? {
        let namespace = report.namespace().unwrap_or_default();
        if !namespace.starts_with("bench-inv-") {
            continue;
        }
        let results = report.data["results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let entry = seen.entry(namespace).or_default();
        for r in results {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            entry.insert(
                (s(&r["resources"][0]["name"]), s(&r["properties"]["image"])),
                s(&r["result"]),
            );
        }
    }
    Ok(seen)
}

/// Polls the PolicyReports (every 200 ms) until `done` holds; returns how long it took.
async fn wait_reports(
    client: &Client,
    controller: &mut Controller,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Seen) -> bool,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let seen = policy_reports(client).await?;
        if done(&seen) {
            return Ok(started.elapsed());
        }
        if controller.exited() {
            return Err(format!("the controller exited while waiting for {what}").into());
        }
        if started.elapsed() > timeout {
            let results: usize = seen.values().map(BTreeMap::len).sum();
            return Err(format!(
                "{what}: not after {timeout:?} ({} reports, {results} results)",
                seen.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `n` bench pods are Running; returns how long it took.
async fn wait_running(client: &Client, n: usize, timeout: Duration) -> Result<Duration> {
    let pods: Api<Pod> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let running = pods
            .list_metadata(
                &ListParams::default()
                    .labels(PART_OF)
                    .fields("status.phase=Running"),
            )
            .await?
            .items
            .len();
        if running >= n {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            return Err(format!("only {running} of {n} pods Running after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_requests(title: &str, requests: &Requests) {
    println!("apiserver requests {title} (verb resource/subresource: count):");
    for (key, count) in requests {
        let (verb, resource, sub) = (&key[0], &key[1], &key[2]);
        if !RESOURCES.contains(&resource.as_str()) || verb == "WATCH" {
            continue;
        }
        // The bench's own polls of the PolicyReports.
        if resource == "policyreports" && verb == "LIST" {
            continue;
        }
        let name = if sub.is_empty() {
            resource.clone()
        } else {
            format!("{resource}/{sub}")
        };
        println!("  {verb:<7} {name:<24} {count:>8}");
    }
}

async fn run(cluster: &Cluster, client: &Client) -> Result<()> {
    let namespaces = usize::try_from(env_or("BENCH_NAMESPACES", 50))?;
    let deployments = usize::try_from(env_or("BENCH_DEPLOYMENTS", 5))?;
    let pods = usize::try_from(env_or("BENCH_PODS", 5000))?;
    let images = usize::try_from(env_or("BENCH_IMAGES", 10))?.max(1);
    let timeout = Duration::from_secs(env_or("BENCH_TIMEOUT", 900));
    let workloads = workloads(namespaces, deployments, pods, images);
    let dir = tempfile::tempdir()?;
    let pp = PostParams::default();

    // The trusted scans and their clean reports.
    let policy = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": "bench-inventory", "namespace": SYSTEM},
        "spec": {"regoFile": scangate::policy::DEFAULT_POLICY},
    });
    cluster.kubectl(&["apply", "-f", "-"], Some(&policy.to_string()))?;
    let fixture = Report::from_path(repo().join(FIXTURE), Limits::default())?;
    let scans_api: Api<ImageScan> = Api::namespaced(client.clone(), SYSTEM);
    let mut scans = vec![];
    for k in 0..images {
        let name = format!("bench-inventory-app-{k}");
        let _ = scans_api.delete(&name, &Default::default()).await;
        let scan: ImageScan = serde_json::from_value(json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": name},
            "spec": {"registry": {"image": image(k)}, "scanPolicy": "bench-inventory"},
        }))?;
        let mut created = None;
        for _ in 0..50 {
            // A scan of the same name being deleted: wait for it to go.
            match scans_api.create(&pp, &scan).await {
                Ok(s) => {
                    created = Some(s);
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let created = created.ok_or("a previous run's scan is not deleted")?;
        push(client, &created, &report(&fixture, &image(k), false)).await?;
        scans.push(created);
    }

    // The workloads; kwok runs their pods.
    let created_at = Instant::now();
    let mut made = BTreeSet::new();
    for w in &workloads {
        if made.insert(w.namespace.clone()) {
            let _ = cluster.kubectl(&["create", "namespace", &w.namespace], None);
        }
    }
    futures::stream::iter(&workloads)
        .map(|w| {
            let client = client.clone();
            async move {
                let api: Api<Deployment> = Api::namespaced(client, &w.namespace);
                let deployment: Deployment = serde_json::from_value(json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": w.name},
                    "spec": {
                        "replicas": w.replicas,
                        "selector": {"matchLabels": {"app": w.name}},
                        "template": {
                            "metadata": {"labels": {"app": w.name, "app.kubernetes.io/part-of": "bench-inventory"}},
                            "spec": {
                                "containers": [{"name": "app", "image": image(w.image)}],
                            },
                        },
                    },
                }))?;
                api.patch(
                    &w.name,
                    &PatchParams::apply("bench-inventory").force(),
                    &Patch::Apply(&deployment),
                )
                .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    wait_running(client, pods, timeout).await?;
    println!(
        "\n{pods} pods Running in {namespaces} namespaces ({} Deployments, {images} images) {:.1} s after the Deployments were applied",
        workloads.len(),
        created_at.elapsed().as_secs_f64()
    );

    // The controller, from nothing to every report complete.
    let expected: BTreeMap<String, BTreeSet<(String, String)>> =
        workloads.iter().fold(BTreeMap::new(), |mut map, w| {
            map.entry(w.namespace.clone())
                .or_default()
                .insert((w.name.clone(), image(w.image)));
            map
        });
    let all = |want: &str, only: Option<usize>| {
        let expected = &expected;
        let workloads = &workloads;
        let want = want.to_string();
        move |seen: &Seen| {
            expected.iter().all(|(ns, keys)| {
                seen.get(ns).is_some_and(|results| {
                    results.len() == keys.len()
                        && keys.iter().all(|key| {
                            let image_of = workloads
                                .iter()
                                .find(|w| w.namespace == *ns && w.name == key.0)
                                .map(|w| w.image);
                            let expect = match only {
                                Some(k) if image_of == Some(k) => want.as_str(),
                                Some(_) => "pass",
                                None => want.as_str(),
                            };
                            results.get(key).map(String::as_str) == Some(expect)
                        })
                })
            })
        }
    };
    let m0 = cluster.requests()?;
    let (mut controller, _admin) = Controller::start(cluster, &dir.path().join("controller.log"))?;
    let complete = wait_reports(
        client,
        &mut controller,
        "every PolicyReport complete and passing",
        timeout,
        all("pass", None),
    )
    .await;
    if complete.is_err() {
        let log = std::fs::read_to_string(dir.path().join("controller.log")).unwrap_or_default();
        eprintln!(
            "controller log (last 40 lines):\n{}",
            log.lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let complete = complete?;
    let m1 = cluster.requests()?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let steady_rss = controller.memory_kib("VmRSS:");
    let steady_hwm = controller.memory_kib("VmHWM:");
    let cpu_start = controller.cpu_seconds();

    // One image's result turns Failed: a new report with the fixture's CVEs.
    let turned = 0;
    let affected = workloads.iter().filter(|w| w.image == turned).count();
    let affected_ns = workloads
        .iter()
        .filter(|w| w.image == turned)
        .map(|w| w.namespace.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    let m2 = cluster.requests()?;
    let cpu_before = controller.cpu_seconds();
    push(
        client,
        &scans[turned],
        &report(&fixture, &image(turned), true),
    )
    .await?;
    let failed = wait_reports(
        client,
        &mut controller,
        "the affected PolicyReports failing",
        timeout,
        all("fail", Some(turned)),
    )
    .await?;
    let cpu_after = controller.cpu_seconds();
    let m3 = cluster.requests()?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_rss = controller.memory_kib("VmRSS:");
    let after_hwm = controller.memory_kib("VmHWM:");

    let profile = scangate_binary().1;
    let results: usize = expected.values().map(BTreeSet::len).sum();
    println!(
        "\n== {pods} running pods, {namespaces} namespaces, {results} PolicyReport results ({profile}, controller cluster-wide) =="
    );
    println!(
        "all PolicyReports complete  {:.2} s after the controller started ({results} results, all pass)",
        complete.as_secs_f64()
    );
    println!(
        "one image turned Failed     {:.2} s from its new report until the {affected_ns} PolicyReports running it say fail ({affected} workloads)",
        failed.as_secs_f64()
    );
    println!(
        "controller CPU              {:.1} s until every report was complete, {:.1} s for the turn",
        cpu_start,
        cpu_after - cpu_before
    );
    println!(
        "resident memory             steady {:.1} MiB (VmRSS), peak {:.1} MiB (VmHWM); after the turn {:.1} MiB, peak {:.1} MiB",
        mib(steady_rss),
        mib(steady_hwm),
        mib(after_rss),
        mib(after_hwm)
    );
    print_requests(
        "from the controller's start until every report was complete",
        &prom::increase(&m0, &m1),
    );
    print_requests("during the turn", &prom::increase(&m2, &m3));
    drop(controller);
    for ns in expected.keys() {
        let _ = cluster.kubectl(&["delete", "namespace", ns, "--wait=false"], None);
    }
    for scan in &scans {
        let _ = scans_api
            .delete(&scan.name_any(), &Default::default())
            .await;
    }
    Ok(())
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this bench has no tests.
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::reachable("bench-inventory")?;
    cluster.install()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = cluster.client().await?;
        run(&cluster, &client).await
    })
}
