//! The controller under faults, on the real apiserver (issue 14): two controllers with leader
//! election whose leader is SIGKILLed mid-work, and a controller killed at each step of a scan.
//! Both run as scangate's controller ServiceAccount (deploy/rbac/rbac.yaml, by impersonation).
//! There is no kubelet: the test plays the scanner, storing each started Job's report as
//! `scangate report --to-configmap` does and completing the Job as the Job controller does.
//! Only the controller's external behaviour is checked (Jobs, report ConfigMaps, scan status,
//! its Lease and its metrics), so these tests hold whatever the controller's insides.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, TestNamespace, cluster, stderr};
use common::webhook::{free_port, http_get};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use scangate::api::ImageScan;
use scangate::report::{Limits, Report, SCAN_LABEL, ScanRef, to_config_map};
use serde_json::{Value, json};

const FIXTURE: &str = "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json";
/// The controller's lease duration (src/controller/mod.rs): a lease not renewed for this long
/// may be taken over.
const LEASE: Duration = Duration::from_secs(15);
const WAIT: Duration = Duration::from_secs(60);

/// A `scangate controller` process, killed (SIGKILL) when dropped.
struct Controller {
    child: Child,
    admin: String,
    log: PathBuf,
}

impl Controller {
    /// Starts a controller of `ns` as scangate's controller ServiceAccount. With a `lease`, it
    /// runs only while holding that Lease in scangate-system, as `identity`.
    fn start(cluster: &Cluster, ns: &str, lease: Option<&str>, identity: &str, dir: &Path) -> Self {
        let admin = format!("127.0.0.1:{}", free_port());
        let log = dir.join(format!("controller-{identity}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut args = vec![
            "controller".to_string(),
            "--namespace".into(),
            ns.into(),
            "--admin-listen".into(),
            admin.clone(),
            "--error-retry".into(),
            "2s".into(),
            // Its images are on no reachable registry: scan the tags as written.
            "--resolve-tags=false".into(),
        ];
        match lease {
            Some(lease) => args.extend([
                "--leader-election-namespace".into(),
                "scangate-system".into(),
                "--leader-election-lease".into(),
                lease.into(),
                "--leader-election-identity".into(),
                identity.into(),
            ]),
            None => args.push("--leader-election=false".into()),
        }
        let child = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(&args)
            .env("KUBECONFIG", cluster.kubeconfig_as("scangate-controller"))
            .env("SCANGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start scangate controller");
        let controller = Controller {
            child,
            admin: format!("http://{admin}"),
            log,
        };
        cluster.eventually("the controller to be ready", WAIT, || {
            http_get(&controller.admin, "/readyz").filter(|(code, _)| *code == 200)
        });
        controller
    }

    /// SIGKILL: no graceful shutdown, no lease release.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The sum of a metric's samples whose line starts with `prefix` (0 when it cannot be read).
    fn metric(&self, prefix: &str) -> f64 {
        http_get(&self.admin, "/metrics")
            .map(|(_, text)| {
                text.lines()
                    .filter(|l| l.starts_with(prefix))
                    .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
                    .sum()
            })
            .unwrap_or(0.0)
    }

    /// Status writes the apiserver refused or that failed, since this process started.
    fn failed_status_writes(&self) -> f64 {
        self.metric("scangate_controller_status_writes_total{result=\"refused\"}")
            + self.metric("scangate_controller_status_writes_total{result=\"error\"}")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("controller log {}:\n{}", self.log.display(), self.logs());
        }
    }
}

/// A kube client acting as the cluster admin (the test itself, the scanner, the Job controller).
async fn admin_client(cluster: &Cluster) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

fn fixture_report() -> Report {
    Report::from_path(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE),
        Limits::default(),
    )
    .expect("fixture report")
}

fn apply(ns: &TestNamespace, object: &Value) {
    let out = ns.apply(&object.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The template of the scan Jobs, with a pod Pod Security `restricted` accepts.
fn template(ns: &str) -> Value {
    let restricted = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanTemplate",
        "metadata": {"name": "grype", "namespace": ns},
        "spec": {"template": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "scan",
                "image": "anchore/grype",
                "command": ["sh", "-c", "grype \"$SCAN_IMAGE\" -o json > /tmp/r.json && scangate report /tmp/r.json --to-configmap \"$SCAN_NAMESPACE/$SCAN_NAME\""],
                "securityContext": restricted,
            }],
        }},
    })
}

/// Policy `strict` fails the fixture (11 critical or high CVEs); `lenient` passes it.
fn policies(ns: &TestNamespace) {
    for (name, not_allowed) in [("strict", "[\"critical\", \"high\"]"), ("lenient", "[]")] {
        let rego = scangate::policy::DEFAULT_POLICY.replace(
            "notAllowedSeverities := [\"critical\", \"high\"]",
            &format!("notAllowedSeverities := {not_allowed}"),
        );
        apply(
            ns,
            &json!({
                "apiVersion": "scanning.scangate.dev/v1beta1",
                "kind": "ScanPolicy",
                "metadata": {"name": name, "namespace": ns.name},
                "spec": {"regoFile": rego},
            }),
        );
    }
}

fn image_scan(ns: &str, name: &str, policy: &str) -> Value {
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"registry": {"image": "busybox:1.32.1"}, "scanTemplate": "grype", "scanPolicy": policy},
    })
}

/// Why a scan's status is not the one its report (the fixture) and its policy give, if it is not.
fn wrong_status(scan: &Value) -> Option<String> {
    let status = &scan["status"];
    let strict = scan["spec"]["scanPolicy"] == "strict";
    let phase = if strict { "Failed" } else { "Completed" };
    let policy = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PolicySucceeded"))
        .map(|c| c["message"].clone())
        .unwrap_or(Value::Null);
    let ok = status["phase"] == phase
        && status["cveCount"]["total"] == 15
        && (!strict || policy == "Policy violated because of 11 CVEs");
    (!ok).then(|| {
        format!(
            "{}: expected {phase} with 15 CVEs, got {status}",
            scan["metadata"]["name"]
        )
    })
}

async fn scans(client: &Client, ns: &str) -> Vec<Value> {
    let api: Api<ImageScan> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect()
}

async fn scan(client: &Client, ns: &str, name: &str) -> Value {
    let api: Api<ImageScan> = Api::namespaced(client.clone(), ns);
    api.get(name)
        .await
        .ok()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// The scan Jobs of `ns`.
async fn jobs(client: &Client, ns: &str) -> Vec<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(SCAN_LABEL))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// How many Jobs each scan has (by the scan label).
fn jobs_per_scan(jobs: &[Job]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for job in jobs {
        if let Some(scan) = job.labels().get(SCAN_LABEL) {
            *count.entry(scan.clone()).or_insert(0) += 1;
        }
    }
    count
}

/// How many Jobs scan `name` of `ns` has.
async fn jobs_of_scan(client: &Client, ns: &str, name: &str) -> usize {
    jobs_per_scan(&jobs(client, ns).await)
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// Plays the scanner for every scan Job of `ns` the Job controller has started and that is not
/// in `finished`: stores the report ConfigMap for the Job's scan, then marks the Job complete as
/// the Job controller of 1.35 writes it. Returns how many Jobs it finished.
async fn play_scanner(
    client: &Client,
    ns: &str,
    report: &Report,
    finished: &mut HashSet<String>,
) -> usize {
    let job_api: Api<Job> = Api::namespaced(client.clone(), ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut done = 0;
    for job in jobs(client, ns).await {
        let name = job.name_any();
        let started = job.status.as_ref().and_then(|s| s.start_time.clone());
        let owner = job
            .owner_references()
            .iter()
            .find(|o| o.kind == "ImageScan")
            .cloned();
        let (Some(started), Some(owner)) = (started, owner) else {
            continue;
        };
        if finished.contains(&name) {
            continue;
        }
        let scan = ScanRef {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            namespace: ns.to_string(),
            uid: owner.uid.clone(),
        };
        let cm = to_config_map(report, &scan).expect("report ConfigMap");
        match config_maps.create(&PostParams::default(), &cm).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.is_already_exists() => {}
            Err(e) => panic!("store the report of {}: {e}", owner.name),
        }
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .expect("now")
            .to_string();
        let condition = |type_: &str| {
            json!({"type": type_, "status": "True", "reason": "CompletionsReached",
                   "message": "Reached expected number of succeeded pods", "lastTransitionTime": now})
        };
        let status = json!({"status": {
            "startTime": started, "completionTime": now, "active": 0, "ready": 0,
            "terminating": 0, "succeeded": 1,
            "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
        }});
        job_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap_or_else(|e| panic!("complete Job {name}: {e}"));
        finished.insert(name);
        done += 1;
    }
    done
}

async fn lease_holder(client: &Client, lease: &str) -> Option<(String, i32)> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "scangate-system");
    let spec = api.get_opt(lease).await.ok().flatten()?.spec?;
    Some((spec.holder_identity?, spec.lease_transitions.unwrap_or(0)))
}

/// Fails the test with `what` once `deadline` has passed.
fn before(deadline: Instant, what: &str) {
    assert!(Instant::now() < deadline, "timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_from_a_killed_leader_and_every_scan_gets_one_job_and_its_verdict() {
    let Some(cluster) = cluster() else { return };
    const SCANS: usize = 200;
    let client = admin_client(cluster).await;
    let report = fixture_report();
    let ns = cluster.namespace("e2e-faults-leader", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let lease = format!("scangate-e2e-{}", ns.name);
    apply(&ns, &template(&ns.name));
    policies(&ns);

    let mut first = Controller::start(cluster, &ns.name, Some(&lease), "first", dir.path());
    let deadline = Instant::now() + WAIT;
    while lease_holder(&client, &lease)
        .await
        .map(|(holder, _)| holder)
        != Some("first".into())
    {
        before(deadline, "the first controller to hold the lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = Controller::start(cluster, &ns.name, Some(&lease), "second", dir.path());

    let items: Vec<Value> = (0..SCANS)
        .map(|i| {
            let policy = if i % 2 == 0 { "strict" } else { "lenient" };
            image_scan(&ns.name, &format!("scan-{i}"), policy)
        })
        .collect();
    apply(
        &ns,
        &json!({"apiVersion": "v1", "kind": "List", "items": items}),
    );

    // Play the scanner throughout; SIGKILL the leader once it has started a third of the Jobs.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let mut finished = HashSet::new();
    let mut killed_at = None;
    let mut taken_over = None;
    loop {
        play_scanner(&client, &ns.name, &report, &mut finished).await;
        if killed_at.is_none() && jobs(&client, &ns.name).await.len() >= SCANS / 3 {
            first.kill();
            killed_at = Some(Instant::now());
        }
        if let Some(killed) = killed_at
            && taken_over.is_none()
        {
            if let Some((holder, transitions)) = lease_holder(&client, &lease).await
                && holder == "second"
            {
                taken_over = Some((killed.elapsed(), transitions));
            }
            assert!(
                killed.elapsed() < 4 * LEASE,
                "the standby did not take the lease over within {:?} of the leader's death\n{}",
                4 * LEASE,
                second.logs()
            );
        }
        let all = scans(&client, &ns.name).await;
        let wrong: Vec<String> = all.iter().filter_map(wrong_status).collect();
        if taken_over.is_some() && all.len() == SCANS && wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {:?}, {} of {SCANS} scans are stuck or wrong, e.g. {:?}\nsecond controller:\n{}",
            started.elapsed(),
            wrong.len(),
            wrong.first(),
            second.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (takeover, transitions) = taken_over.unwrap_or_default();
    assert!(transitions >= 1, "the lease records no transition");
    println!(
        "{SCANS} scans reached their verdict in {:.1}s; the standby held the lease {:.1}s after the leader was killed (lease {}s)",
        started.elapsed().as_secs_f64(),
        takeover.as_secs_f64(),
        LEASE.as_secs()
    );

    // No Job duplicated, no report lost.
    let per_scan = jobs_per_scan(&jobs(&client, &ns.name).await);
    assert_eq!(per_scan.len(), SCANS, "{per_scan:?}");
    let duplicated: Vec<_> = per_scan.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        duplicated.is_empty(),
        "scans with more than one Job: {duplicated:?}"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let reports = config_maps
        .list(&ListParams::default().labels(SCAN_LABEL))
        .await
        .expect("report ConfigMaps");
    assert_eq!(reports.items.len(), SCANS);
    // Settled: the statuses stay the ones their reports and policies give.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let wrong: Vec<String> = scans(&client, &ns.name)
        .await
        .iter()
        .filter_map(wrong_status)
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
    drop(second);
    let _ = cluster.kubectl(&["-n", "scangate-system", "delete", "lease", &lease]);
}

/// Refuses every write of ImageScan status in one namespace with a ValidatingAdmissionPolicy,
/// standing for a status write that never happens; removed on drop.
struct FrozenStatus {
    cluster: &'static Cluster,
    name: String,
}

impl FrozenStatus {
    fn new(cluster: &'static Cluster, ns: &str, probe: &str) -> FrozenStatus {
        let name = format!("scangate-e2e-freeze-{ns}");
        let yaml = format!(
            "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [scanning.scangate.dev]
      apiVersions: [\"*\"]
      operations: [UPDATE]
      resources: [imagescans/status]
  validations:
  - expression: \"false\"
    message: status writes frozen by the fault test
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
"
        );
        let out = cluster.apply(&yaml, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let frozen = FrozenStatus { cluster, name };
        cluster.eventually("status writes to be refused", WAIT, || {
            (!frozen.probe(ns, probe)).then_some(())
        });
        frozen
    }

    /// Whether a status write (dry run) to scan `probe` is admitted.
    fn probe(&self, ns: &str, probe: &str) -> bool {
        let out = self.cluster.kubectl(&[
            "-n",
            ns,
            "patch",
            "imagescan",
            probe,
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\": {}}",
            "--dry-run=server",
        ]);
        out.status.success()
    }

    fn thaw(self, ns: &str, probe: &str) {
        self.remove();
        self.cluster
            .eventually("status writes to be admitted again", WAIT, || {
                self.probe(ns, probe).then_some(())
            });
    }

    fn remove(&self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = self
                .cluster
                .kubectl(&["delete", kind, &self.name, "--ignore-not-found"]);
        }
    }
}

impl Drop for FrozenStatus {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Where the controller is killed in a scan's life.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// As soon as the scan's Job exists.
    AfterJobCreate,
    /// The Job created, the status write that says so refused (and so never made).
    BeforeStatusWrite,
    /// The Job complete and the report stored; the controller read them and its verdict write
    /// was refused (and so never made).
    AfterReportRead,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_at_each_step_of_a_scan_converges_with_one_job() {
    let Some(cluster) = cluster() else { return };
    let client = admin_client(cluster).await;
    let report = fixture_report();
    let ns = cluster.namespace("e2e-faults-steps", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    apply(&ns, &template(&ns.name));
    policies(&ns);
    let mut controller = Controller::start(cluster, &ns.name, None, "steps", dir.path());
    let mut finished = HashSet::new();

    for step in [
        Step::AfterJobCreate,
        Step::BeforeStatusWrite,
        Step::AfterReportRead,
    ] {
        let name = format!("{step:?}").to_lowercase();
        let mut frozen = None;
        if let Step::BeforeStatusWrite = step {
            // A scan without a template to probe the freeze with, settled before it.
            apply(
                &ns,
                &json!({
                    "apiVersion": "scanning.scangate.dev/v1beta1",
                    "kind": "ImageScan",
                    "metadata": {"name": "probe", "namespace": ns.name},
                    "spec": {"registry": {"image": "busybox:1.32.1"}},
                }),
            );
            let deadline = Instant::now() + WAIT;
            while scan(&client, &ns.name, "probe").await["status"]["phase"].is_null() {
                before(deadline, "the probe scan's status");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            frozen = Some(FrozenStatus::new(cluster, &ns.name, "probe"));
        }
        apply(&ns, &image_scan(&ns.name, &name, "strict"));
        match step {
            Step::AfterJobCreate => {
                let deadline = Instant::now() + WAIT;
                while jobs_of_scan(&client, &ns.name, &name).await == 0 {
                    assert!(Instant::now() < deadline, "no Job for {name}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Step::BeforeStatusWrite => {
                // The freeze is in place before the scan exists: every write of its status fails.
                let deadline = Instant::now() + WAIT;
                while jobs_of_scan(&client, &ns.name, &name).await != 1
                    || controller.failed_status_writes() == 0.0
                {
                    before(deadline, "the Job, and a refused status write");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Step::AfterReportRead => {
                let deadline = Instant::now() + WAIT;
                while scan(&client, &ns.name, &name).await["status"]["phase"] != "Scanning" {
                    before(deadline, "the scan to be Scanning");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                frozen = Some(FrozenStatus::new(cluster, &ns.name, &name));
                let failed_before = controller.failed_status_writes();
                let deadline = Instant::now() + WAIT;
                loop {
                    play_scanner(&client, &ns.name, &report, &mut finished).await;
                    if controller.failed_status_writes() > failed_before {
                        break;
                    }
                    before(deadline, "the verdict's status write to be refused");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        controller.kill();
        let at_kill = scan(&client, &ns.name, &name).await["status"]["phase"].clone();
        match step {
            Step::AfterJobCreate => {}
            Step::BeforeStatusWrite => assert_ne!(at_kill, "Scanning", "{step:?}"),
            Step::AfterReportRead => assert_eq!(at_kill, "Scanning", "{step:?}"),
        }
        if let Some(frozen) = frozen.take() {
            let probe = if let Step::BeforeStatusWrite = step {
                "probe"
            } else {
                name.as_str()
            };
            frozen.thaw(&ns.name, probe);
        }

        controller = Controller::start(cluster, &ns.name, None, "steps", dir.path());
        let deadline = Instant::now() + WAIT;
        let verdict = loop {
            play_scanner(&client, &ns.name, &report, &mut finished).await;
            let scan = scan(&client, &ns.name, &name).await;
            if wrong_status(&scan).is_none() {
                break scan;
            }
            before(
                deadline,
                &format!("{name} to reach its verdict, now {scan}"),
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            jobs_of_scan(&client, &ns.name, &name).await,
            1,
            "{step:?}: {verdict}"
        );
        println!(
            "{step:?}: killed with phase {at_kill}, converged to {}",
            verdict["status"]["phase"]
        );
    }
    // Settled: the restarts created no second Job for any scan.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per_scan = jobs_per_scan(&jobs(&client, &ns.name).await);
    assert!(per_scan.values().all(|n| *n == 1), "{per_scan:?}");
}
