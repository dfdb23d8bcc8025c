//! End to end: the scan queue of the real `scangate controller` on a real kube-apiserver (the
//! local control plane of `make controlplane`). kwok runs the scan Jobs' pods but never ends
//! them, so the test plays the scanner: it stores each scan's report and marks its Job
//! complete through the status subresource, as the Job controller would.
//!
//! Run with `SCANGATE_E2E=1 cargo test --test e2e_queue` after `make controlplane`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{TestNamespace, cluster};
use common::controller::Controller;
use common::fixtures::{grype_busybox, grype_template};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use scangate::api::ImageScan;
use serde_json::{Value, json};

const SCAN_LABEL: &str = "scanning.scangate.dev/scan";
const LIMIT: usize = 5;

/// Waits until the controller's metrics have the line `sample`.
async fn wait_metric(controller: &Controller, sample: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = controller.metrics();
        if metrics.lines().any(|l| l == sample) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {sample:?} in the controller's metrics:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The status writes the controller made, from its metrics.
fn status_writes(controller: &Controller) -> String {
    controller
        .metrics()
        .lines()
        .filter(|l| l.starts_with("scangate_controller_status_writes_total"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn image_scan(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"registry": {"image": "busybox:1.32.1"}, "scanTemplate": "grype"},
    })
}

fn setup(prefix: &str) -> Option<TestNamespace> {
    let cluster = cluster()?;
    let ns = cluster.namespace(prefix, &[]);
    let out = ns.apply(&grype_template(&ns.name).to_string());
    assert!(out.status.success(), "{}", common::cluster::stderr(&out));
    Some(ns)
}

/// The names of the Jobs with label selector `label`.
async fn job_names(jobs: &Api<Job>, label: &str) -> Vec<String> {
    jobs.list(&ListParams::default().labels(label))
        .await
        .expect("list jobs")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect()
}

/// Whether a Job has ended (a Complete or Failed condition).
fn ended(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
}

/// Plays the scanner for a running Job the Job controller has started: stores the report of
/// the scan that owns it, then marks it complete. `false` when it is not started yet.
async fn finish(client: &Client, ns: &str, job: &Job, report: &scangate::report::Report) -> bool {
    let Some(start) = job.status.as_ref().and_then(|s| s.start_time.clone()) else {
        return false;
    };
    let Some(owner) = job.owner_references().first().cloned() else {
        return false;
    };
    let scan = scangate::report::ScanRef {
        api_version: owner.api_version,
        kind: owner.kind,
        name: owner.name,
        namespace: ns.into(),
        uid: owner.uid,
    };
    let config_map = scangate::report::to_config_map(report, &scan).expect("ConfigMap");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    config_maps
        .patch(
            &config_map.name_any(),
            &PatchParams::apply("e2e-scanner").force(),
            &Patch::Apply(&config_map),
        )
        .await
        .expect("store the report");
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .expect("now")
        .to_string();
    let condition = |type_: &str| {
        json!({"type": type_, "status": "True", "reason": "CompletionsReached",
               "message": "Reached expected number of succeeded pods", "lastTransitionTime": now})
    };
    let status = json!({"status": {
        "startTime": start,
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "succeeded": 1,
        "completionTime": now,
        "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
    }});
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    jobs.patch_status(
        &job.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .expect("complete the Job");
    true
}

/// Counts the running scan Jobs of `ns` at every change a watch shows, keeping the peak and
/// every moment it was over `LIMIT`.
#[derive(Default)]
struct Peak {
    max: usize,
    over: Vec<Vec<String>>,
}

fn watch_running(client: &Client, ns: &str, peak: Arc<Mutex<Peak>>) -> tokio::task::JoinHandle<()> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut running: BTreeMap<String, bool> = BTreeMap::new();
        let stream = watcher(jobs, watcher::Config::default().labels(SCAN_LABEL));
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) => {
                    running.insert(job.name_any(), !ended(&job));
                }
                Ok(watcher::Event::Delete(job)) => {
                    running.remove(&job.name_any());
                }
                Ok(_) | Err(_) => continue,
            }
            let now: Vec<String> = running
                .iter()
                .filter(|(_, r)| **r)
                .map(|(n, _)| n.clone())
                .collect();
            let mut peak = peak.lock().expect("lock");
            peak.max = peak.max.max(now.len());
            if now.len() > LIMIT {
                peak.over.push(now);
            }
        }
    })
}

fn scanning_condition(scan: &ImageScan) -> Option<(String, String)> {
    scan.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == scangate::api::ConditionType::Scanning)
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// 200 scans with a limit of 5 running Jobs: a watch counts the running scan Jobs at every
/// change and they are never more than 5; the scans waiting show phase Pending with reason
/// Queued and their place; every scan reaches its verdict.
#[test]
fn two_hundred_scans_never_run_more_than_five_jobs_and_all_finish() {
    const SCANS: usize = 200;
    let Some(ns) = setup("scangate-queue") else {
        return;
    };
    let Some(cluster) = cluster() else { return };
    let limit = LIMIT.to_string();
    let controller = Controller::of(&cluster.kubeconfig, &ns.name)
        .args(&[
            "--max-running-jobs",
            &limit,
            "--max-running-jobs-per-namespace",
            &limit,
        ])
        .start();
    let rt = runtime();
    rt.block_on(async {
        let client = cluster.client().await;
        let peak = Arc::new(Mutex::new(Peak::default()));
        let watch = watch_running(&client, &ns.name, peak.clone());
        let started = Instant::now();
        let scans: Vec<Value> = (0..SCANS)
            .map(|i| image_scan(&ns.name, &format!("q-{i:03}")))
            .collect();
        let out =
            ns.apply(&json!({"apiVersion": "v1", "kind": "List", "items": scans}).to_string());
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));

        let api: Api<ImageScan> = Api::namespaced(client.clone(), &ns.name);
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
        let report = grype_busybox();
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut finished: HashSet<String> = HashSet::new();
        let mut queued_seen: Option<(String, String)> = None;
        loop {
            let listed = api.list(&ListParams::default()).await.expect("list scans");
            let completed = listed
                .items
                .iter()
                .filter(|s| {
                    s.status.as_ref().and_then(|st| st.phase)
                        == Some(scangate::api::Phase::Completed)
                })
                .count();
            if queued_seen.is_none() {
                queued_seen = listed.items.iter().find_map(|s| {
                    let (reason, message) = scanning_condition(s)?;
                    let pending = s.status.as_ref().and_then(|st| st.phase)
                        == Some(scangate::api::Phase::Pending);
                    (reason == "Queued" && pending).then(|| (s.name_any(), message))
                });
            }
            if completed == SCANS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {completed} of {SCANS} scans Completed after 300s\n{}",
                controller
                    .logs()
                    .lines()
                    .rev()
                    .take(50)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let running = jobs
                .list(&ListParams::default().labels(SCAN_LABEL))
                .await
                .expect("list jobs");
            for job in running.items.iter().filter(|j| !ended(j)) {
                if !finished.contains(&job.name_any())
                    && finish(&client, &ns.name, job, &report).await
                {
                    finished.insert(job.name_any());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = started.elapsed();
        // Let the watch see the last changes.
        tokio::time::sleep(Duration::from_secs(1)).await;
        watch.abort();
        let peak = peak.lock().expect("lock");
        assert!(
            peak.over.is_empty(),
            "more than {LIMIT} scan Jobs ran at once: {:?}",
            peak.over.first()
        );
        assert_eq!(peak.max, LIMIT, "the limit is used");
        assert_eq!(finished.len(), SCANS, "one Job per scan");
        let (name, message) = queued_seen.expect("a scan waiting showed reason Queued");
        let place = message
            .strip_prefix("queued: ")
            .and_then(|m| m.strip_suffix(" waiting; limit 5 running, 5 per namespace"))
            .and_then(|m| m.split_once(" of "))
            .unwrap_or_else(|| panic!("{name}: {message:?}"));
        let (position, waiting): (usize, usize) = (
            place.0.parse().expect("position"),
            place.1.parse().expect("waiting"),
        );
        assert!(
            position >= 1 && position <= waiting && waiting <= SCANS,
            "{message}"
        );
        println!(
            "{SCANS} scans with at most {LIMIT} Jobs running reached their verdict in {:.1}s; {}",
            took.as_secs_f64(),
            status_writes(&controller)
        );
    });
}

async fn wait_scan(
    api: &Api<ImageScan>,
    name: &str,
    what: &str,
    check: impl Fn(&ImageScan) -> bool,
) -> ImageScan {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(scan) = api.get(name).await
            && check(&scan)
        {
            return scan;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn running_jobs(jobs: &Api<Job>, scan: &str) -> Vec<Job> {
    jobs.list(&ListParams::default().labels(&format!("{SCAN_LABEL}={scan}")))
        .await
        .expect("list jobs")
        .items
        .into_iter()
        .filter(|j| !ended(j))
        .collect()
}

async fn wait_running_job(jobs: &Api<Job>, ns: &str, scan: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(job) = running_jobs(jobs, scan).await.into_iter().next()
            && job.status.as_ref().is_some_and(|s| s.start_time.is_some())
        {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a running Job of {ns}/{scan}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn phase(scan: &ImageScan) -> Option<scangate::api::Phase> {
    scan.status.as_ref().and_then(|s| s.phase)
}

fn scanned_at(scan: &ImageScan) -> Option<jiff::Timestamp> {
    scan.status
        .as_ref()
        .and_then(|s| s.scanned_at.as_ref())
        .map(|t| t.0)
}

/// A finished scan rescanned with `scangate rescan` (the annotation) gets a new Job;
/// suspended while that Job runs, the Job is deleted and the scan says Canceled (the last
/// result kept); resumed, it scans again and reaches a new verdict with a new scannedAt.
#[test]
fn rescan_then_suspend_cancels_the_job_and_resuming_finishes_the_scan() {
    use scangate::api::Phase;
    let Some(ns) = setup("scangate-suspend") else {
        return;
    };
    let Some(cluster) = cluster() else { return };
    let _controller = Controller::of(&cluster.kubeconfig, &ns.name).start();
    let rt = runtime();
    rt.block_on(async {
        let client = cluster.client().await;
        let api: Api<ImageScan> = Api::namespaced(client.clone(), &ns.name);
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
        let report = grype_busybox();
        let out = ns.apply(&image_scan(&ns.name, "web").to_string());
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));

        let first = wait_running_job(&jobs, &ns.name, "web").await;
        assert!(finish(&client, &ns.name, &first, &report).await);
        let done = wait_scan(&api, "web", "Completed", |s| {
            phase(s) == Some(Phase::Completed)
        })
        .await;
        let first_scanned = scanned_at(&done).expect("scannedAt");

        // Rescan with the CLI: a new Job, the request recorded once.
        let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(["rescan", "web", "-n", &ns.name])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output()
            .expect("scangate rescan");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("rescan requested"));
        let second = wait_running_job(&jobs, &ns.name, "web").await;
        assert_ne!(second.name_any(), first.name_any());
        let rescanning = wait_scan(&api, "web", "Scanning with the request handled", |s| {
            phase(s) == Some(Phase::Scanning)
                && s.status.as_ref().and_then(|st| st.handled_rescan.as_ref())
                    == s.annotations().get("scangate.dev/rescan")
        })
        .await;
        assert_eq!(scanned_at(&rescanning), Some(first_scanned));

        // Suspend while it runs: the Job is deleted, the scan says Canceled, the result stays.
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspend");
        let canceled = wait_scan(&api, "web", "Canceled", |s| {
            scanning_condition(s).is_some_and(|(reason, _)| reason == "Canceled")
        })
        .await;
        assert_eq!(phase(&canceled), Some(Phase::Pending));
        assert_eq!(
            canceled
                .status
                .as_ref()
                .and_then(|s| s.last_result.as_ref())
                .map(|l| l.phase),
            Some(Phase::Completed)
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while jobs
            .get_opt(&second.name_any())
            .await
            .expect("get job")
            .is_some()
        {
            assert!(
                Instant::now() < deadline,
                "the canceled Job was not deleted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Resume: a new Job, then a verdict with a new scannedAt.
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .expect("resume");
        let third = wait_running_job(&jobs, &ns.name, "web").await;
        assert_ne!(third.name_any(), second.name_any());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(finish(&client, &ns.name, &third, &report).await);
        let resumed = wait_scan(&api, "web", "Completed again", |s| {
            phase(s) == Some(Phase::Completed) && scanned_at(s) != Some(first_scanned)
        })
        .await;
        assert!(scanned_at(&resumed) > Some(first_scanned));
    });
}

/// `scangate reevaluate -n NS` on a finished scan: the controller runs its policy again on
/// the stored report (`status.reevaluatedAt`, the annotation's value in
/// `status.handledReevaluate`), with no new Job and the same `scannedAt`.
#[test]
fn reevaluate_runs_the_policy_on_the_stored_report_without_a_new_job() {
    use scangate::api::Phase;
    let Some(ns) = setup("scangate-reevaluate") else {
        return;
    };
    let Some(cluster) = cluster() else { return };
    let rego = scangate::policy::DEFAULT_POLICY.replace(
        "notAllowedSeverities := [\"critical\", \"high\"]",
        "notAllowedSeverities := []",
    );
    let policy = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": "lenient", "namespace": ns.name},
        "spec": {"regoFile": rego},
    });
    let out = ns.apply(&policy.to_string());
    assert!(out.status.success(), "{}", common::cluster::stderr(&out));
    let controller = Controller::of(&cluster.kubeconfig, &ns.name).start();
    let rt = runtime();
    rt.block_on(async {
        let client = cluster.client().await;
        let api: Api<ImageScan> = Api::namespaced(client.clone(), &ns.name);
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
        let mut scan = image_scan(&ns.name, "web");
        scan["spec"]["scanPolicy"] = json!("lenient");
        let out = ns.apply(&scan.to_string());
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
        let job = wait_running_job(&jobs, &ns.name, "web").await;
        // The queue's gauges: its Job runs, nothing waits.
        wait_metric(&controller, "scangate_scan_jobs_running 1").await;
        wait_metric(&controller, "scangate_scans_queued{kind=\"ImageScan\"} 0").await;
        assert!(finish(&client, &ns.name, &job, &grype_busybox()).await);
        wait_metric(&controller, "scangate_scan_jobs_running 0").await;
        let done = wait_scan(&api, "web", "Completed with the policy evaluated", |s| {
            phase(s) == Some(Phase::Completed)
                && s.status
                    .as_ref()
                    .is_some_and(|st| st.observed_policy_generation.is_some())
        })
        .await;
        let scanned = scanned_at(&done).expect("scannedAt");
        assert_eq!(
            done.status
                .as_ref()
                .and_then(|s| s.handled_reevaluate.clone()),
            None
        );
        let label = format!("{SCAN_LABEL}=web");
        let jobs_before = job_names(&jobs, &label).await;

        // Every scan of the namespace, with the CLI.
        let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(["reevaluate", "-n", &ns.name])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output()
            .expect("scangate reevaluate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!(
                "ImageScan {}/web: re-evaluation requested",
                ns.name
            )),
            "{stdout}"
        );
        let reevaluated = wait_scan(&api, "web", "the re-evaluation handled", |s| {
            let requested = s.annotations().get("scangate.dev/reevaluate");
            requested.is_some()
                && s.status
                    .as_ref()
                    .and_then(|st| st.handled_reevaluate.as_ref())
                    == requested
        })
        .await;
        let status = reevaluated.status.as_ref().expect("status");
        let at = status
            .reevaluated_at
            .as_ref()
            .map(|t| t.0)
            .expect("reevaluatedAt");
        assert!(
            at >= scanned,
            "reevaluatedAt {at} before scannedAt {scanned}"
        );
        assert_eq!(status.phase, Some(Phase::Completed));
        assert_eq!(scanned_at(&reevaluated), Some(scanned));

        // No new Job, now or a moment later.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let jobs_after = job_names(&jobs, &label).await;
        assert_eq!(jobs_after, jobs_before);
        let later = api.get("web").await.expect("get scan");
        assert_eq!(scanned_at(&later), Some(scanned));
    });
}
