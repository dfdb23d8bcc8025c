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
        let seen = api.get(name).await;
        if let Ok(scan) = &seen
            && check(scan)
        {
            return scan.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}: {what}; last seen status: {}",
            seen.map_or_else(
                |e| e.to_string(),
                |s| serde_json::to_string(&s.status).unwrap_or_default()
            )
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

/// A finished scan rescanned with `scangate rescan` (the annotation) gets a new Job; paused
/// (`scangate pause`, spec.suspend) while that Job runs, the Job is suspended, not deleted, and
/// the scan says Paused with its progress greyed (the last result kept); resumed (`scangate
/// resume`), the same Job goes on and the scan reaches a new verdict with a new scannedAt.
#[test]
fn rescan_then_pause_suspends_the_job_and_resuming_finishes_the_scan_with_it() {
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

        // Pause while it runs: the Job is suspended and kept, the scan says Paused, the result
        // stays.
        let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(["pause", "web", "-n", &ns.name])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output()
            .expect("scangate pause");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let paused = wait_scan(&api, "web", "Paused", |s| {
            scanning_condition(s).is_some_and(|(reason, _)| reason == "Paused")
        })
        .await;
        assert_eq!(phase(&paused), Some(Phase::Pending));
        let status = paused.status.as_ref().expect("status");
        assert_eq!(
            status.last_result.as_ref().map(|l| l.phase),
            Some(Phase::Completed)
        );
        assert!(status.paused_at.is_some());
        let states: Vec<_> = status.progress.iter().map(|p| p.state).collect();
        use scangate::api::StageState::{Done, Paused};
        assert_eq!(states, [Done, Done, Paused, Paused, Paused]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = jobs
                .get(&second.name_any())
                .await
                .expect("the paused Job is kept");
            if job.spec.as_ref().and_then(|s| s.suspend) == Some(true) {
                break;
            }
            assert!(Instant::now() < deadline, "the Job was not suspended");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Resume: the same Job goes on, then a verdict with a new scannedAt.
        let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(["resume", "web", "-n", &ns.name])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output()
            .expect("scangate resume");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let resumed_job = wait_resumed_job(&jobs, &second.name_any()).await;
        wait_scan(&api, "web", "Scanning again", |s| {
            phase(s) == Some(Phase::Scanning)
        })
        .await;
        // A report is told from the previous round's by when it was stored, to the second (as
        // the apiserver records it); a real scan takes longer than that, this harness does not.
        while jiff::Timestamp::now().as_second() <= first_scanned.as_second() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(finish(&client, &ns.name, &resumed_job, &report).await);
        let resumed = wait_scan(&api, "web", "Completed again", |s| {
            phase(s) == Some(Phase::Completed) && scanned_at(s) != Some(first_scanned)
        })
        .await;
        assert!(scanned_at(&resumed) > Some(first_scanned));
        let label = format!("{SCAN_LABEL}=web");
        assert_eq!(
            job_names(&jobs, &label).await.len(),
            2,
            "no Job but the first and the resumed one"
        );
    });
}

/// The Job `name` once resumed (not suspended) and started again by the Job controller.
async fn wait_resumed_job(jobs: &Api<Job>, name: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = jobs.get(name).await.expect("the resumed Job");
        // The Job controller has seen the resume: its Suspended condition is False and it set
        // a new startTime (patching the status before would race with it).
        let resumed = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Suspended" && c.status == "False");
        if job.spec.as_ref().and_then(|s| s.suspend) != Some(true)
            && resumed
            && job.status.as_ref().is_some_and(|s| s.start_time.is_some())
        {
            return job;
        }
        assert!(Instant::now() < deadline, "the Job {name} was not resumed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

/// A user bound to the built-in `edit` role in `ns` (which aggregates `scangate-edit`): the
/// tenant of the trust model. Returns the user name for `kubectl --as`.
fn tenant(ns: &TestNamespace) -> String {
    let user = format!("tenant-{}", ns.name);
    ns.kubectl_ok(&[
        "create",
        "rolebinding",
        "tenant-edit",
        "--clusterrole=edit",
        &format!("--user={user}"),
    ]);
    user
}

fn reason_of(scan: &ImageScan) -> Option<String> {
    scanning_condition(scan).map(|(reason, _)| reason)
}

/// Runs `scangate ARGS` with the admin's kubeconfig; returns its standard output.
fn scangate(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("scangate");
    assert!(
        out.status.success(),
        "scangate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the Job `name` is gone.
async fn wait_job_deleted(jobs: &Api<Job>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while jobs.get_opt(name).await.expect("get job").is_some() {
        assert!(Instant::now() < deadline, "the Job {name} was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One slot: a running scan paused by a tenant (`edit` in its namespace, `kubectl --as`)
/// keeps its Job (suspended) and its slot, so a scan created after it waits, Queued; the tenant
/// cannot write the time its pause began (status is scangate's); resumed by the tenant, the
/// paused scan completes with the same Job, and only then the next one runs.
#[test]
fn a_paused_scan_keeps_its_place_and_a_tenant_can_pause_but_not_date_the_pause() {
    use scangate::api::Phase;
    let Some(ns) = setup("scangate-pause") else {
        return;
    };
    let Some(cluster) = cluster() else { return };
    let _controller = Controller::of(&cluster.kubeconfig, &ns.name)
        .args(&[
            "--max-running-jobs",
            "1",
            "--max-running-jobs-per-namespace",
            "1",
        ])
        .start();
    let user = tenant(&ns);
    let as_tenant = format!("--as={user}");
    let rt = runtime();
    rt.block_on(async {
        let client = cluster.client().await;
        let api: Api<ImageScan> = Api::namespaced(client.clone(), &ns.name);
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
        let report = grype_busybox();
        let out = ns.apply(&image_scan(&ns.name, "first").to_string());
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
        let job = wait_running_job(&jobs, &ns.name, "first").await;

        // The tenant pauses its scan: it may edit the spec.
        let out = ns.kubectl(&[
            &as_tenant,
            "patch",
            "imagescan",
            "first",
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":true}}"#,
        ]);
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
        let paused = wait_scan(&api, "first", "Paused", |s| {
            reason_of(s).as_deref() == Some("Paused")
        })
        .await;
        let paused_at = paused
            .status
            .as_ref()
            .and_then(|s| s.paused_at.clone())
            .expect("pausedAt");

        // It cannot move the start of its pause (to be canceled sooner or never).
        let out = ns.kubectl(&[
            &as_tenant,
            "patch",
            "imagescan",
            "first",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"pausedAt":"2000-01-01T00:00:00Z"}}"#,
        ]);
        assert!(!out.status.success(), "the tenant wrote the scan's status");
        assert!(
            common::cluster::stderr(&out).contains("forbidden"),
            "{}",
            common::cluster::stderr(&out)
        );

        // A scan created now waits: the paused one holds the only slot.
        let out = ns.apply(&image_scan(&ns.name, "second").to_string());
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
        wait_scan(&api, "second", "Queued", |s| {
            reason_of(s).as_deref() == Some("Queued")
        })
        .await;
        let label = format!("{SCAN_LABEL}=second");
        assert!(job_names(&jobs, &label).await.is_empty());
        let still = api.get("first").await.expect("get first");
        assert_eq!(
            still.status.as_ref().and_then(|s| s.paused_at.clone()),
            Some(paused_at),
            "the pause keeps its start"
        );

        // The tenant resumes: the same Job goes on and the scan completes.
        let out = ns.kubectl(&[
            &as_tenant,
            "patch",
            "imagescan",
            "first",
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":false}}"#,
        ]);
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
        let resumed = wait_resumed_job(&jobs, &job.name_any()).await;
        wait_scan(&api, "first", "Scanning again", |s| {
            phase(s) == Some(Phase::Scanning)
        })
        .await;
        assert!(finish(&client, &ns.name, &resumed, &report).await);
        let done = wait_scan(&api, "first", "Completed", |s| {
            phase(s) == Some(Phase::Completed)
        })
        .await;
        use scangate::api::StageState::Done;
        let states: Vec<_> = done
            .status
            .as_ref()
            .map(|s| s.progress.iter().map(|p| p.state).collect())
            .unwrap_or_default();
        assert_eq!(states, [Done; 5]);

        // Then the next scan gets the slot.
        let next = wait_running_job(&jobs, &ns.name, "second").await;
        assert!(finish(&client, &ns.name, &next, &report).await);
        wait_scan(&api, "second", "Completed", |s| {
            phase(s) == Some(Phase::Completed)
        })
        .await;
    });
}

/// With `--pause-limit 3s`, a paused scan is canceled for good: its Job deleted, reason
/// Canceled naming the limit, progress canceled; unsuspending does not restart it; only a new
/// rescan value starts a new round.
#[test]
fn a_scan_paused_past_the_limit_is_canceled_and_unsuspending_does_not_restart_it() {
    use scangate::api::Phase;
    let Some(ns) = setup("scangate-pause-limit") else {
        return;
    };
    let Some(cluster) = cluster() else { return };
    let _controller = Controller::of(&cluster.kubeconfig, &ns.name)
        .args(&["--pause-limit", "3s"])
        .start();
    let rt = runtime();
    rt.block_on(async {
        let client = cluster.client().await;
        let api: Api<ImageScan> = Api::namespaced(client.clone(), &ns.name);
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
        let out = ns.apply(&image_scan(&ns.name, "web").to_string());
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
        let job = wait_running_job(&jobs, &ns.name, "web").await;
        scangate(&cluster.kubeconfig, &["pause", "web", "-n", &ns.name]);
        wait_scan(&api, "web", "Paused", |s| {
            reason_of(s).as_deref() == Some("Paused")
        })
        .await;
        let canceled = wait_scan(&api, "web", "Canceled by the pause limit", |s| {
            reason_of(s).as_deref() == Some("Canceled")
        })
        .await;
        let (_, message) = scanning_condition(&canceled).expect("Scanning");
        assert!(message.contains("pause limit"), "{message}");
        assert_eq!(phase(&canceled), Some(Phase::Pending), "it never decided");
        use scangate::api::StageState::{Canceled, Done};
        let states: Vec<_> = canceled
            .status
            .as_ref()
            .map(|s| s.progress.iter().map(|p| p.state).collect())
            .unwrap_or_default();
        assert_eq!(states, [Done, Done, Canceled, Canceled, Canceled]);
        wait_job_deleted(&jobs, &job.name_any()).await;

        // Unsuspended: still canceled, no Job, now or a moment later.
        scangate(&cluster.kubeconfig, &["resume", "web", "-n", &ns.name]);
        wait_scan(&api, "web", "the resume seen", |s| {
            s.status.as_ref().and_then(|st| st.observed_generation) == s.metadata.generation
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let label = format!("{SCAN_LABEL}=web");
        assert!(job_names(&jobs, &label).await.is_empty(), "restarted");
        let still = api.get("web").await.expect("get scan");
        assert_eq!(reason_of(&still).as_deref(), Some("Canceled"));

        // A rescan starts a new round.
        scangate(&cluster.kubeconfig, &["rescan", "web", "-n", &ns.name]);
        let again = wait_running_job(&jobs, &ns.name, "web").await;
        assert_ne!(again.name_any(), job.name_any());
    });
}

/// `scangate cancel` on a running scan: the annotation's value is handled once, the Job
/// deleted, the scan Canceled for good; `scangate resume` does not restart it.
#[test]
fn cancel_by_annotation_deletes_the_job_for_good() {
    let Some(ns) = setup("scangate-cancel") else {
        return;
    };
    let Some(cluster) = cluster() else { return };
    let _controller = Controller::of(&cluster.kubeconfig, &ns.name).start();
    let rt = runtime();
    rt.block_on(async {
        let client = cluster.client().await;
        let api: Api<ImageScan> = Api::namespaced(client.clone(), &ns.name);
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
        let out = ns.apply(&image_scan(&ns.name, "web").to_string());
        assert!(out.status.success(), "{}", common::cluster::stderr(&out));
        let job = wait_running_job(&jobs, &ns.name, "web").await;
        let stdout = scangate(&cluster.kubeconfig, &["cancel", "web", "-n", &ns.name]);
        assert!(stdout.contains("cancel requested"), "{stdout}");
        let canceled = wait_scan(&api, "web", "Canceled", |s| {
            reason_of(s).as_deref() == Some("Canceled")
                && s.status.as_ref().and_then(|st| st.handled_cancel.as_ref())
                    == s.annotations().get("scangate.dev/cancel")
        })
        .await;
        let (_, message) = scanning_condition(&canceled).expect("Scanning");
        assert!(message.contains("scangate.dev/cancel"), "{message}");
        wait_job_deleted(&jobs, &job.name_any()).await;
        scangate(&cluster.kubeconfig, &["resume", "web", "-n", &ns.name]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let label = format!("{SCAN_LABEL}=web");
        assert!(job_names(&jobs, &label).await.is_empty(), "restarted");
        let still = api.get("web").await.expect("get scan");
        assert_eq!(reason_of(&still).as_deref(), Some("Canceled"));
    });
}

/// A SARIF report whose run says the scanner could not read part of the image (an error-level
/// `toolExecutionNotifications` entry): the scan is Completed, `Succeeded=True` with reason
/// `CompletedWithErrors` and a message naming what was not read, `status.scanErrors` lists it,
/// and its Scan and Report stages are done with issues.
#[test]
fn a_report_that_could_not_read_everything_completes_with_errors() {
    use scangate::api::StageState::{Done, DoneWithIssues};
    let Some(cluster) = cluster() else { return };
    let ns = cluster.namespace("scangate-scan-errors", &[]);
    let _controller = Controller::of(&cluster.kubeconfig, &ns.name).start();
    let mut sarif: Value = serde_json::from_str(
        &std::fs::read_to_string(
            "tests/fixtures/reports/sarif/trivy_alpine-3.10_image_golden.sarif",
        )
        .expect("SARIF fixture"),
    )
    .expect("SARIF");
    sarif["runs"][0]["properties"]["imageName"] = json!("docker.io/library/alpine:3.10");
    sarif["runs"][0]["invocations"] = json!([{
        "executionSuccessful": true,
        "toolExecutionNotifications": [{
            "level": "error",
            "message": {"text": "layer sha256:0f1e could not be read: unexpected EOF"}
        }]
    }]);
    let scan = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": "alpine", "namespace": ns.name},
        "spec": {"registry": {"image": "alpine:3.10"}},
    });
    let out = ns.apply(&scan.to_string());
    assert!(out.status.success(), "{}", common::cluster::stderr(&out));
    cluster.push_report(&format!("{}/alpine", ns.name), &sarif);
    let rt = runtime();
    rt.block_on(async {
        let client = cluster.client().await;
        let api: Api<ImageScan> = Api::namespaced(client.clone(), &ns.name);
        let done = wait_scan(&api, "alpine", "Succeeded", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == scangate::api::ConditionType::Succeeded)
            })
        })
        .await;
        let status = done.status.as_ref().expect("status");
        let succeeded = status
            .conditions
            .iter()
            .find(|c| c.type_ == scangate::api::ConditionType::Succeeded)
            .expect("Succeeded");
        assert_eq!(succeeded.status, scangate::api::ConditionStatus::True);
        assert_eq!(succeeded.reason, "CompletedWithErrors");
        assert!(
            succeeded
                .message
                .contains("layer sha256:0f1e could not be read"),
            "{}",
            succeeded.message
        );
        assert_eq!(
            status.scan_errors,
            ["layer sha256:0f1e could not be read: unexpected EOF"]
        );
        let states: Vec<_> = status.progress.iter().map(|p| p.state).collect();
        assert_eq!(
            &states[..4],
            [Done, Done, DoneWithIssues, DoneWithIssues],
            "{:?}",
            status.progress
        );
    });
}
