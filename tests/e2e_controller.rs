//! End to end: the real `scangate controller` binary against a real kube-apiserver (the local
//! control plane of `make controlplane`). There is no kubelet, so the test plays the scanner:
//! it waits for the Job the controller creates, stores the report with
//! `scangate report --to-configmap`, and marks the Job complete through its status
//! subresource.
//!
//! Run with `SCANGATE_E2E=1 cargo test --test e2e_controller` after `make controlplane`
//! (KUBECONFIG and CONTROLPLANE_KUBECTL default to target/controlplane/).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fixtures::{GRYPE_BUSYBOX as FIXTURE, grype_busybox, report_config_maps};
use common::webhook::{free_port, http_get};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubeconfig() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/controlplane/kubeconfig"))
}

fn kubectl_path() -> PathBuf {
    std::env::var_os("CONTROLPLANE_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/controlplane/bin/kubectl"))
}

/// Runs kubectl; `Err(stderr)` when it fails.
fn kubectl_result(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", kubectl_path().display()))?;
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(input.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn kubectl(args: &[&str]) -> String {
    kubectl_result(args, None).unwrap_or_else(|e| panic!("{e}"))
}

fn apply(ns: &str, object: &Value) {
    kubectl_result(&["-n", ns, "apply", "-f", "-"], Some(&object.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn get_json(ns: &str, what: &[&str]) -> Option<Value> {
    let mut args = vec!["-n", ns, "get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json"]);
    kubectl_result(&args, None)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

fn wait_for<T>(
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The test's namespace and controller; both go away when it is dropped.
struct Env {
    ns: String,
    controller: Child,
    args: Vec<std::ffi::OsString>,
    log: PathBuf,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Env {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(args: &[std::ffi::OsString], log: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(args)
            .env("KUBECONFIG", kubeconfig())
            .env("SCANGATE_LOG", "info,scangate=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start scangate controller")
    }

    fn wait_ready(&self) {
        wait_for(
            "the controller to be ready",
            || http_get(&self.admin, "/readyz").filter(|(status, _)| *status == 200),
            || self.logs(),
        );
    }

    /// Kills the controller (no graceful shutdown: a crash) and starts it again.
    fn restart(&mut self) {
        let _ = self.controller.kill();
        let _ = self.controller.wait();
        self.controller = Env::spawn(&self.args, &self.log);
        self.wait_ready();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.controller.kill();
        let _ = self.controller.wait();
        if std::thread::panicking() {
            eprintln!("controller log:\n{}", self.logs());
        }
        let _ = kubectl_result(&["delete", "namespace", &self.ns, "--wait=false"], None);
    }
}

/// A metadata store on loopback (HTTPS), answering `{"url": ".../<n>"}` and counting posts.
struct Store {
    url: String,
    ca: PathBuf,
    token: PathBuf,
    posts: Arc<Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

fn start_store(dir: &Path) -> Store {
    use axum::Json;
    use axum::routing::post;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let bundle = scangate::cmd::certs::generate(&["127.0.0.1".to_string()], 2).expect("certs");
    bundle.write(dir).expect("write certs");
    let token = dir.join("token");
    std::fs::write(&token, "e2e-token").expect("token");
    let posts: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = posts.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.block_on(async move {
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            bundle.cert.into_bytes(),
            bundle.key.into_bytes(),
        )
        .await
        .expect("tls");
        let app = axum::Router::new().route(
            "/api/v1/reports",
            post(
                move |headers: axum::http::HeaderMap, Json(body): Json<Value>| {
                    let seen = seen.clone();
                    async move {
                        let ok = headers.get("authorization").and_then(|v| v.to_str().ok())
                            == Some("Bearer e2e-token");
                        let mut posts = seen.lock().expect("lock");
                        posts.push(body);
                        let n = posts.len();
                        if ok {
                            (
                                axum::http::StatusCode::OK,
                                Json(json!({"url": format!("https://store.example/reports/{n}")})),
                            )
                        } else {
                            (axum::http::StatusCode::UNAUTHORIZED, Json(json!({})))
                        }
                    }
                },
            ),
        );
        let server = axum_server::from_tcp_rustls(listener, config).expect("server");
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
    });
    Store {
        url: format!("https://{addr}"),
        ca: dir.join("ca.crt"),
        token,
        posts,
        _runtime: runtime,
    }
}

fn setup(store: Option<&Store>) -> Env {
    if let Err(e) = kubectl_result(&["get", "--raw", "/readyz"], None) {
        panic!(
            "SCANGATE_E2E=1 but the cluster at {} is not reachable (run `make controlplane`): {e}",
            kubeconfig().display()
        );
    }
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &root()
            .join("deploy/crds/scanning.scangate.dev.yaml")
            .display()
            .to_string(),
    ]);
    for crd in [
        "imagescans",
        "sourcescans",
        "scantemplates",
        "scanpolicies",
        "scanexceptions",
    ] {
        kubectl(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{crd}.scanning.scangate.dev"),
            "--timeout=60s",
        ]);
    }
    let suffix = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ std::process::id())
            .unwrap_or_default()
    );
    let ns = format!("scangate-e2e-{suffix}");
    kubectl(&["create", "namespace", &ns]);
    wait_for(
        "the default ServiceAccount",
        || kubectl_result(&["-n", &ns, "get", "serviceaccount", "default"], None).ok(),
        String::new,
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("controller.log");
    let admin = format!("127.0.0.1:{}", free_port());
    let mut args: Vec<std::ffi::OsString> = [
        "controller",
        "--namespace",
        &ns,
        "--leader-election-namespace",
        &ns,
        "--admin-listen",
        &admin,
        "--error-retry",
        "2s",
        // Its images are on no reachable registry: scan the tags as written.
        "--resolve-tags=false",
    ]
    .iter()
    .map(|a| a.into())
    .collect();
    if let Some(store) = store {
        args.extend([
            "--metadata-store-url".into(),
            store.url.clone().into(),
            "--metadata-store-ca-file".into(),
            store.ca.clone().into(),
            "--metadata-store-token-file".into(),
            store.token.clone().into(),
        ]);
    }
    let controller = Env::spawn(&args, &log);
    let env = Env {
        ns,
        controller,
        args,
        log,
        admin,
        _dir: dir,
    };
    env.wait_ready();
    env
}

fn gated() -> bool {
    if std::env::var("SCANGATE_E2E").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set SCANGATE_E2E=1 (after `make controlplane`) to run the controller end to end"
        );
        return false;
    }
    true
}

/// A container security context that Pod Security `restricted` accepts (with the pod's
/// runAsNonRoot and seccomp profile).
fn restricted() -> Value {
    json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
}

fn template(ns: &str) -> Value {
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanTemplate",
        "metadata": {"name": "grype", "namespace": ns},
        "spec": {"template": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "fetch", "image": "busybox", "command": ["true"], "securityContext": restricted()}],
            "containers": [{
                "name": "scan",
                "image": "anchore/grype",
                "command": ["sh", "-c", "grype \"$SCAN_IMAGE\" -o json > /tmp/r.json && scangate report /tmp/r.json --to-configmap \"$SCAN_NAMESPACE/$SCAN_NAME\""],
                "securityContext": restricted(),
            }],
        }},
    })
}

fn policy(ns: &str, not_allowed: &str) -> Value {
    let rego = scangate::policy::DEFAULT_POLICY.replace(
        "notAllowedSeverities := [\"critical\", \"high\"]",
        &format!("notAllowedSeverities := {not_allowed}"),
    );
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {"regoFile": rego},
    })
}

fn image_scan(ns: &str, name: &str, template: Option<&str>) -> Value {
    let mut spec = json!({
        "registry": {"image": "busybox:1.32.1", "imagePullSecret": "registry-creds"},
        "scanPolicy": "default",
    });
    if let Some(t) = template {
        spec["scanTemplate"] = json!(t);
    }
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    })
}

fn status(env: &Env, scan: &str) -> Value {
    get_json(&env.ns, &["imagescan", scan])
        .map(|s| s["status"].clone())
        .unwrap_or(Value::Null)
}

fn wait_phase(env: &Env, scan: &str, phase: &str) -> Value {
    wait_for(
        &format!("ImageScan {scan} to be {phase}"),
        || Some(status(env, scan)).filter(|s| s["phase"] == phase),
        || format!("status: {:#}\nlog:\n{}", status(env, scan), env.logs()),
    )
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn jobs(env: &Env, scan: &str) -> Vec<Value> {
    get_json(
        &env.ns,
        &["jobs", "-l", &format!("scanning.scangate.dev/scan={scan}")],
    )
    .and_then(|l| l["items"].as_array().cloned())
    .unwrap_or_default()
}

fn upload_report(env: &Env, scan: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "report",
            FIXTURE,
            "--to-configmap",
            &format!("{}/{scan}", env.ns),
        ])
        .current_dir(root())
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("run scangate report");
    assert!(
        out.status.success(),
        "scangate report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How a Job ends, as the Job controller writes it in 1.35: the apiserver accepts `Complete`
/// only after `SuccessCriteriaMet`, and `Failed` only after `FailureTarget`.
struct JobEnd {
    conditions: [&'static str; 2],
    reason: &'static str,
    message: String,
    /// `succeeded` or `failed`, set to 1.
    count: &'static str,
    completed: bool,
}

/// Marks a Job complete as the Job controller would: the startTime it set, a completionTime,
/// no active pods.
fn complete_job(env: &Env, job: &str) {
    finish_job(
        env,
        job,
        JobEnd {
            conditions: ["SuccessCriteriaMet", "Complete"],
            reason: "CompletionsReached",
            message: "Reached expected number of succeeded pods".into(),
            count: "succeeded",
            completed: true,
        },
    );
}

/// Marks a Job failed as the Job controller would.
fn fail_job(env: &Env, job: &str) {
    finish_job(
        env,
        job,
        JobEnd {
            conditions: ["FailureTarget", "Failed"],
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit".into(),
            count: "failed",
            completed: false,
        },
    );
}

fn finish_job(env: &Env, job: &str, end: JobEnd) {
    let start = wait_for(
        "the Job controller to set startTime",
        || {
            get_json(&env.ns, &["job", job])
                .and_then(|j| j["status"]["startTime"].as_str().map(String::from))
        },
        || env.logs(),
    );
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .expect("now")
        .to_string();
    let condition = |type_: &str| {
        json!({"type": type_, "status": "True", "reason": end.reason,
               "message": end.message, "lastTransitionTime": now})
    };
    let mut status = json!({
        "startTime": start,
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "conditions": [condition(end.conditions[0]), condition(end.conditions[1])],
    });
    status[end.count] = json!(1);
    if end.completed {
        status["completionTime"] = json!(now);
    }
    kubectl(&[
        "-n",
        &env.ns,
        "patch",
        "job",
        job,
        "--subresource=status",
        "--type=merge",
        "-p",
        &json!({ "status": status }).to_string(),
    ]);
}

#[test]
fn scans_with_a_template_evaluate_the_policy_and_reevaluate_without_rescanning() {
    if !gated() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start_store(dir.path());
    let env = setup(Some(&store));
    let ns = env.ns.clone();
    apply(&ns, &template(&ns));
    apply(&ns, &policy(&ns, "[\"critical\", \"high\"]"));
    apply(&ns, &image_scan(&ns, "busybox", Some("grype")));

    // The controller starts one Job from the template.
    let job = wait_for(
        "the scan Job",
        || jobs(&env, "busybox").into_iter().next(),
        || env.logs(),
    );
    let job_name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(job_name.starts_with("busybox-"), "{job_name}");
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ImageScan");
    assert_eq!(owner["controller"], true);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["serviceAccountName"], "scangate-scanner");
    assert_eq!(pod["imagePullSecrets"][0]["name"], "registry-creds");
    for container in [&pod["containers"][0], &pod["initContainers"][0]] {
        let env_of = |name: &str| {
            container["env"]
                .as_array()
                .and_then(|e| e.iter().find(|v| v["name"] == name))
                .map(|v| v["value"].clone())
        };
        assert_eq!(env_of("SCAN_IMAGE"), Some(json!("busybox:1.32.1")));
        assert_eq!(env_of("SCAN_NAME"), Some(json!("busybox")));
        assert_eq!(env_of("SCAN_NAMESPACE"), Some(json!(ns)));
    }
    let scanning = wait_phase(&env, "busybox", "Scanning");
    assert_eq!(condition(&scanning, "Scanning")["reason"], "JobStarted");

    // Play the scanner: store the report, mark the Job complete.
    upload_report(&env, "busybox");
    complete_job(&env, &job_name);

    let failed = wait_phase(&env, "busybox", "Failed");
    let counts = &failed["cveCount"];
    assert_eq!(
        [
            &counts["critical"],
            &counts["high"],
            &counts["medium"],
            &counts["low"],
            &counts["unknown"],
            &counts["total"]
        ],
        [
            &json!(1),
            &json!(10),
            &json!(2),
            &json!(2),
            &json!(0),
            &json!(15)
        ],
        "{failed:#}"
    );
    assert_eq!(
        condition(&failed, "PolicySucceeded")["message"],
        "Policy violated because of 11 CVEs"
    );
    assert_eq!(
        condition(&failed, "PolicySucceeded")["reason"],
        "EvaluationFailed"
    );
    assert_eq!(condition(&failed, "Scanning")["reason"], "JobFinished");
    assert_eq!(condition(&failed, "Succeeded")["status"], "True");
    assert_eq!(
        condition(&failed, "Succeeded")["message"],
        "Complete: CompletionsReached"
    );
    let image = failed["artifact"]["registry"]["image"]
        .as_str()
        .unwrap_or_default();
    assert!(
        image.starts_with("docker.io/library/busybox:1.32.1@sha256:"),
        "{image}"
    );
    assert_eq!(failed["scannedBy"]["scanner"]["name"], "grype");
    assert_eq!(failed["observedGeneration"], 1);
    assert_eq!(failed["observedPolicyGeneration"], 1);
    assert_eq!(failed["observedTemplateGeneration"], 1);
    assert!(failed["scannedAt"].is_string());
    assert!(failed["compliantArtifact"].is_null());
    assert_eq!(failed["violations"][0]["severity"], "critical");
    assert_eq!(failed["violations"].as_array().map(Vec::len), Some(11));
    assert_eq!(failed["lastResult"]["phase"], "Failed");
    assert_eq!(failed["lastResult"]["scannedAt"], failed["scannedAt"]);
    assert_eq!(
        failed["lastResult"]["source"],
        format!("Job {ns}/{job_name} from ScanTemplate {ns}/grype")
    );

    // The results went to the metadata store, once.
    let sent = wait_for(
        "SendingResults=True",
        || {
            Some(status(&env, "busybox"))
                .filter(|s| condition(s, "SendingResults")["status"] == "True")
        },
        || format!("{:#}\n{}", status(&env, "busybox"), env.logs()),
    );
    assert_eq!(condition(&sent, "SendingResults")["reason"], "Sent");
    let metadata_url = sent["metadataURL"].as_str().unwrap_or_default().to_string();
    assert!(
        metadata_url.starts_with("https://store.example/reports/"),
        "{metadata_url}"
    );
    let posts = store.posts.lock().map(|p| p.clone()).unwrap_or_default();
    assert_eq!(posts.len(), 1, "one report, sent once");
    assert_eq!(posts[0]["scanner"]["name"], "grype");

    // A policy that allows everything: Completed, from the same report, without a new Job.
    apply(&ns, &policy(&ns, "[]"));
    let completed = wait_phase(&env, "busybox", "Completed");
    assert_eq!(
        condition(&completed, "PolicySucceeded")["message"],
        "No CVEs were found that violated the policy"
    );
    assert_eq!(completed["observedPolicyGeneration"], 2);
    assert_eq!(completed["compliantArtifact"], completed["artifact"]);
    assert_eq!(completed["cveCount"]["total"], 15);
    assert_eq!(completed["metadataURL"], json!(metadata_url));
    // And back.
    apply(&ns, &policy(&ns, "[\"critical\", \"high\"]"));
    let again = wait_phase(&env, "busybox", "Failed");
    assert_eq!(again["observedPolicyGeneration"], 3);
    assert_eq!(
        jobs(&env, "busybox").len(),
        1,
        "re-evaluation starts no Job"
    );
    assert_eq!(
        store.posts.lock().map(|p| p.len()).unwrap_or(0),
        1,
        "nothing resent"
    );

    // An exception for the image's CVEs: Completed again. Only approved exceptions count; the
    // webhook (not running here) records the approver, so the test writes what it would.
    let exception = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanException",
        "metadata": {"name": "busybox-reviewed", "namespace": ns, "annotations": {
            scangate::index::APPROVED_BY: "e2e-approver",
            scangate::index::APPROVED_AT: jiff::Timestamp::now().to_string(),
        }},
        "spec": {
            "images": ["busybox:1.32.1"],
            "reason": "e2e: reviewed",
            "expires": "2099-01-01T00:00:00Z",
        },
    });
    apply(&ns, &exception);
    wait_phase(&env, "busybox", "Completed");
    kubectl(&["-n", &ns, "delete", "scanexception", "busybox-reviewed"]);
    wait_phase(&env, "busybox", "Failed");
    assert_eq!(jobs(&env, "busybox").len(), 1, "exceptions start no Job");

    // Events record the phase changes.
    let events = kubectl(&[
        "-n",
        &ns,
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=busybox",
        "-o",
        "json",
    ]);
    for reason in ["Scanning", "Failed", "Completed"] {
        assert!(
            events.contains(&format!("\"reason\": \"{reason}\"")),
            "{reason} event missing: {events}"
        );
    }

    // Metrics.
    let (code, metrics) = http_get(&env.admin, "/metrics").unwrap_or_default();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("scangate_controller_scans{kind=\"ImageScan\",phase=\"Failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scangate_controller_jobs_created_total{kind=\"ImageScan\"} 1"),
        "{metrics}"
    );

    // A new template generation rescans: a second Job.
    let mut changed = template(&ns);
    changed["spec"]["template"]["containers"][0]["image"] = json!("anchore/grype:v0.94.0");
    apply(&ns, &changed);
    wait_for(
        "a second Job after the template changed",
        || Some(jobs(&env, "busybox")).filter(|j| j.len() == 2),
        || env.logs(),
    );
    let rescanning = wait_phase(&env, "busybox", "Scanning");
    assert_eq!(rescanning["observedTemplateGeneration"], 2);
    // While it runs, the verdict it stands in for is kept, with what the denial lists.
    assert_eq!(rescanning["lastResult"]["phase"], "Failed");
    assert_eq!(rescanning["cveCount"]["total"], 15);
    assert_eq!(rescanning["violations"].as_array().map(Vec::len), Some(11));
    assert_eq!(rescanning["artifact"], again["artifact"]);
    assert!(rescanning["compliantArtifact"].is_null());
}

#[test]
fn missing_templates_are_errors_and_pushed_reports_finish_scans() {
    if !gated() {
        return;
    }
    let env = setup(None);
    let ns = env.ns.clone();
    apply(&ns, &policy(&ns, "[\"critical\", \"high\"]"));

    apply(&ns, &image_scan(&ns, "no-template", Some("nope")));
    let error = wait_phase(&env, "no-template", "Error");
    assert_eq!(condition(&error, "Scanning")["status"], "False");
    assert_eq!(condition(&error, "Succeeded")["reason"], "Error");
    assert_eq!(
        condition(&error, "Succeeded")["error"],
        "ScanTemplate nope not found"
    );
    // Creating the template starts the scan.
    let mut nope = template(&ns);
    nope["metadata"]["name"] = json!("nope");
    apply(&ns, &nope);
    wait_phase(&env, "no-template", "Scanning");

    // A template the apiserver refuses as a Job: the scan shows why.
    let mut always = template(&ns);
    always["metadata"]["name"] = json!("always");
    always["spec"]["template"]["restartPolicy"] = json!("Always");
    apply(&ns, &always);
    apply(&ns, &image_scan(&ns, "invalid-job", Some("always")));
    let invalid = wait_phase(&env, "invalid-job", "Error");
    let cause = condition(&invalid, "Succeeded")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        cause.contains("cannot create the scan Job") && cause.contains("restartPolicy"),
        "{cause}"
    );

    // A template that predates the Pod Security rule (no webhook here to refuse it): the
    // controller creates no Job from it, and the scan says which field breaks which control.
    let mut host = template(&ns);
    host["metadata"]["name"] = json!("host");
    host["spec"]["template"]["hostIPC"] = json!(true);
    host["spec"]["template"]["serviceAccountName"] = json!("default");
    apply(&ns, &host);
    apply(&ns, &image_scan(&ns, "escalating", Some("host")));
    let refused = wait_phase(&env, "escalating", "Error");
    let cause = condition(&refused, "Succeeded")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        cause.contains("would run a pod that Pod Security \"restricted\" forbids: spec.template.hostIPC: control \"Host Namespaces\" (baseline)")
            && cause.contains("spec.template.serviceAccountName is \"default\""),
        "{cause}"
    );
    assert!(jobs(&env, "escalating").is_empty());

    // Without a template, a pushed report finishes the scan.
    apply(&ns, &image_scan(&ns, "pushed", None));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(status(&env, "pushed")["phase"], "Pending");
    upload_report(&env, "pushed");
    let failed = wait_phase(&env, "pushed", "Failed");
    assert_eq!(condition(&failed, "Succeeded")["status"], "True");
    assert_eq!(
        condition(&failed, "SendingResults")["reason"],
        "NotConfigured"
    );
    assert_eq!(failed["cveCount"]["total"], 15);
    assert!(jobs(&env, "pushed").is_empty());

    // A report for a scan that does not exist is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "report",
            FIXTURE,
            "--to-configmap",
            &format!("{ns}/missing"),
        ])
        .current_dir(root())
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("run scangate report");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no ImageScan or SourceScan"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn restarts_adopt_the_job_and_failed_jobs_are_errors_then_retried() {
    if !gated() {
        return;
    }
    let mut env = setup(None);
    let ns = env.ns.clone();
    apply(&ns, &template(&ns));
    let mut scan = image_scan(&ns, "flaky", Some("grype"));
    scan["spec"].as_object_mut().map(|s| s.remove("scanPolicy"));
    apply(&ns, &scan);
    let job = wait_for(
        "the scan Job",
        || jobs(&env, "flaky").into_iter().next(),
        || env.logs(),
    );
    let job_name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait_phase(&env, "flaky", "Scanning");

    // A crash and a restart: the same Job, no second one.
    env.restart();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(jobs(&env, "flaky").len(), 1, "{}", env.logs());
    assert_eq!(status(&env, "flaky")["phase"], "Scanning");

    fail_job(&env, &job_name);
    let error = wait_phase(&env, "flaky", "Error");
    let succeeded = condition(&error, "Succeeded");
    assert_eq!(succeeded["reason"], "Error");
    assert_eq!(succeeded["message"], "Failed: BackoffLimitExceeded");
    assert_eq!(
        succeeded["error"],
        "Job has reached the specified backoff limit"
    );
    assert!(condition(&error, "PolicySucceeded").is_null());

    // Retried after --error-retry (2s): a second attempt.
    let retried = wait_for(
        "a retry Job",
        || Some(jobs(&env, "flaky")).filter(|j| j.len() == 2),
        || env.logs(),
    );
    let attempts: Vec<&str> = retried
        .iter()
        .filter_map(|j| j["metadata"]["annotations"]["scanning.scangate.dev/attempt"].as_str())
        .collect();
    assert!(
        attempts.contains(&"0") && attempts.contains(&"1"),
        "{attempts:?}"
    );
    wait_phase(&env, "flaky", "Scanning");

    // The retry succeeds: Completed without a policy.
    let second = retried
        .iter()
        .find(|j| j["metadata"]["annotations"]["scanning.scangate.dev/attempt"] == "1")
        .and_then(|j| j["metadata"]["name"].as_str())
        .unwrap_or_default()
        .to_string();
    upload_report(&env, "flaky");
    complete_job(&env, &second);
    let completed = wait_phase(&env, "flaky", "Completed");
    assert!(condition(&completed, "PolicySucceeded").is_null());
    assert_eq!(completed["cveCount"]["total"], 15);
    assert_eq!(jobs(&env, "flaky").len(), 2);
}

#[test]
fn rescans_on_schedule_and_suspended_scans_start_nothing() {
    if !gated() {
        return;
    }
    let env = setup(None);
    let ns = env.ns.clone();
    apply(&ns, &template(&ns));

    let mut suspended = image_scan(&ns, "suspended", Some("grype"));
    suspended["spec"]["suspend"] = json!(true);
    apply(&ns, &suspended);

    let mut scheduled = image_scan(&ns, "scheduled", Some("grype"));
    scheduled["spec"]["rescanInterval"] = json!("4s");
    scheduled["spec"]
        .as_object_mut()
        .map(|s| s.remove("scanPolicy"));
    apply(&ns, &scheduled);
    let first = wait_for(
        "the first scan Job",
        || jobs(&env, "scheduled").into_iter().next(),
        || env.logs(),
    );
    upload_report(&env, "scheduled");
    complete_job(&env, first["metadata"]["name"].as_str().unwrap_or_default());
    let completed = wait_phase(&env, "scheduled", "Completed");
    let scanned_at = completed["scannedAt"].clone();

    // After the interval: a new Job, the old report gone, scannedAt kept while it runs.
    let both = wait_for(
        "the rescan Job",
        || Some(jobs(&env, "scheduled")).filter(|j| j.len() == 2),
        || format!("{:#}\n{}", status(&env, "scheduled"), env.logs()),
    );
    let rescanning = wait_phase(&env, "scheduled", "Scanning");
    assert_eq!(rescanning["scannedAt"], scanned_at);
    assert!(
        get_json(&ns, &["configmap", "scheduled-report"]).is_none(),
        "the old report is deleted when the rescan starts"
    );
    let second = both
        .iter()
        .map(|j| {
            j["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .find(|n| Some(n.as_str()) != first["metadata"]["name"].as_str())
        .unwrap_or_default();
    std::thread::sleep(Duration::from_secs(1));
    upload_report(&env, "scheduled");
    complete_job(&env, &second);
    let rescanned = wait_phase(&env, "scheduled", "Completed");
    assert_ne!(rescanned["scannedAt"], scanned_at);

    // Suspended from the start: no Job, Pending.
    assert!(jobs(&env, "suspended").is_empty());
    assert_eq!(status(&env, "suspended")["phase"], "Pending");
}

#[test]
fn source_scans_pass_the_repository_to_the_job_and_report_the_revision() {
    if !gated() {
        return;
    }
    let env = setup(None);
    let ns = env.ns.clone();
    apply(&ns, &template(&ns));
    apply(
        &ns,
        &json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "SourceScan",
            "metadata": {"name": "repo", "namespace": ns},
            "spec": {
                "git": {"url": "git@github.com:org/repo.git", "revision": "v1.2.3", "sshKeySecret": "deploy-key"},
                "scanTemplate": "grype",
            },
        }),
    );
    let job = wait_for(
        "the scan Job",
        || jobs(&env, "repo").into_iter().next(),
        || env.logs(),
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "SourceScan");
    let pod = &job["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env_of = |name: &str| {
        container["env"]
            .as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == name))
            .map(|v| v["value"].clone())
    };
    assert_eq!(
        env_of("SCAN_GIT_URL"),
        Some(json!("git@github.com:org/repo.git"))
    );
    assert_eq!(env_of("SCAN_GIT_REVISION"), Some(json!("v1.2.3")));
    assert_eq!(
        env_of("SCAN_GIT_SSH_KEY"),
        Some(json!("/etc/scangate/git/ssh-privatekey"))
    );
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "deploy-key");
    assert_eq!(container["volumeMounts"][0]["readOnly"], true);

    upload_report(&env, "repo");
    complete_job(&env, job["metadata"]["name"].as_str().unwrap_or_default());
    let source_status = || {
        get_json(&ns, &["sourcescan", "repo"])
            .map(|s| s["status"].clone())
            .unwrap_or(Value::Null)
    };
    let completed = wait_for(
        "SourceScan repo to be Completed",
        || Some(source_status()).filter(|s| s["phase"] == "Completed"),
        || format!("{:#}\n{}", source_status(), env.logs()),
    );
    assert_eq!(
        completed["artifact"]["git"],
        json!({"url": "git@github.com:org/repo.git", "revision": "v1.2.3"})
    );
    assert_eq!(completed["cveCount"]["total"], 15);
}

/// 500 scans at once, reports pushed for all of them: every one reaches its verdict. Prints
/// how long that took and the controller's peak memory (run with `--nocapture` to see them).
#[test]
fn five_hundred_scans_at_once_all_reach_a_verdict() {
    if !gated() {
        return;
    }
    const SCANS: usize = 500;
    let env = setup(None);
    apply(&env.ns, &policy(&env.ns, "[\"critical\", \"high\"]"));
    let started = Instant::now();
    let scans: Vec<Value> = (0..SCANS)
        .map(|i| image_scan(&env.ns, &format!("load-{i}"), None))
        .collect();
    apply(
        &env.ns,
        &json!({"apiVersion": "v1", "kind": "List", "items": scans}),
    );
    // Play 500 pipelines pushing the same real report, one ConfigMap per scan.
    let report = grype_busybox();
    let listed = get_json(&env.ns, &["imagescans"]).expect("imagescans");
    let config_maps = report_config_maps(&report, &env.ns, &listed);
    assert_eq!(config_maps.len(), SCANS);
    for chunk in config_maps.chunks(100) {
        apply(
            &env.ns,
            &json!({"apiVersion": "v1", "kind": "List", "items": chunk}),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut failed = 0;
    while Instant::now() < deadline {
        let listed = get_json(&env.ns, &["imagescans"]).unwrap_or(Value::Null);
        let items = listed["items"].as_array().cloned().unwrap_or_default();
        failed = items
            .iter()
            .filter(|s| s["status"]["phase"] == "Failed")
            .count();
        if failed == SCANS {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let took = started.elapsed();
    assert_eq!(
        failed,
        SCANS,
        "only {failed} of {SCANS} scans reached Failed\n{}",
        env.logs()
    );
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", env.controller.id()))
        .unwrap_or_default();
    let peak = proc_status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: unknown");
    println!(
        "{SCANS} scans reached their verdict in {:.1}s; controller peak memory {}",
        took.as_secs_f64(),
        peak.trim_start_matches("VmHWM:").trim()
    );
    let one = status(&env, "load-0");
    assert_eq!(
        condition(&one, "PolicySucceeded")["message"],
        "Policy violated because of 11 CVEs"
    );
}

/// The controller reading reports as a tenant could leave them: a report for another image is
/// refused (the scan is Error, naming both), a report without the scan label does not count
/// and the verdict stays, and a pushed report names its writer.
#[test]
fn reports_for_other_images_or_without_the_scan_label_do_not_count() {
    if !gated() {
        return;
    }
    let env = setup(None);
    let ns = env.ns.clone();
    apply(&ns, &policy(&ns, "[\"critical\", \"high\"]"));

    // Issue 10, attack 5: busybox's report pushed to the scan of another image.
    let mut app = image_scan(&ns, "app", None);
    app["spec"]["registry"] = json!({"image": "registry.example.invalid/team/app:1.0"});
    apply(&ns, &app);
    // `scangate report` refuses to store it...
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(["report", FIXTURE, "--to-configmap", &format!("{ns}/app")])
        .current_dir(root())
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("run scangate report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("not storing the report for scan {ns}/app: report is for docker.io/library/busybox:1.32.1@sha256:")),
        "{stderr}"
    );
    // ...and when stored anyway (labelled and owned, as a tenant with `edit` can), the
    // controller refuses it.
    let uid = get_json(&ns, &["imagescan", "app"])
        .and_then(|s| s["metadata"]["uid"].as_str().map(String::from))
        .unwrap_or_default();
    let report = grype_busybox();
    let forged = scangate::report::to_config_map(
        &report,
        &scangate::report::ScanRef {
            api_version: "scanning.scangate.dev/v1beta1".into(),
            kind: "ImageScan".into(),
            name: "app".into(),
            namespace: ns.clone(),
            uid,
        },
    )
    .expect("config map");
    let forged = serde_json::to_value(&forged).expect("json");
    kubectl_result(&["apply", "-f", "-"], Some(&forged.to_string())).expect("store the report");
    let error = wait_phase(&env, "app", "Error");
    let cause = condition(&error, "Succeeded")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        cause.starts_with("report is for docker.io/library/busybox:1.32.1@sha256:")
            && cause.ends_with(", this scan is for registry.example.invalid/team/app:1.0"),
        "{cause}"
    );
    assert!(error["cveCount"].is_null(), "{error:#}");
    assert!(error["artifact"].is_null(), "{error:#}");
    assert!(error["lastResult"].is_null(), "{error:#}");

    // A pushed report of the right image: Failed, the writer not recorded (no webhook here).
    apply(&ns, &image_scan(&ns, "pushed", None));
    upload_report(&env, "pushed");
    let failed = wait_phase(&env, "pushed", "Failed");
    assert_eq!(failed["lastResult"]["phase"], "Failed");
    assert_eq!(
        failed["lastResult"]["source"],
        "pushed (writer not recorded)"
    );
    // The webhook stamps the writer; the controller shows it.
    kubectl(&[
        "-n",
        &ns,
        "annotate",
        "configmap",
        "pushed-report",
        "scangate.dev/reported-by=system:serviceaccount:ci:pusher",
    ]);
    wait_for(
        "the writer in lastResult.source",
        || {
            Some(status(&env, "pushed")).filter(|s| {
                s["lastResult"]["source"] == "pushed by system:serviceaccount:ci:pusher"
            })
        },
        || format!("{:#}\n{}", status(&env, "pushed"), env.logs()),
    );

    // Without the scan label the report is not the scan's (an ownerReference alone is not
    // enough): no report, and the verdict stays while the scan waits for one.
    kubectl(&[
        "-n",
        &ns,
        "label",
        "configmap",
        "pushed-report",
        "scanning.scangate.dev/scan-",
    ]);
    let pending = wait_phase(&env, "pushed", "Pending");
    assert_eq!(pending["lastResult"]["phase"], "Failed", "{pending:#}");
    assert_eq!(
        pending["lastResult"]["source"],
        "pushed by system:serviceaccount:ci:pusher"
    );
    assert_eq!(pending["cveCount"]["total"], 15);
    assert_eq!(pending["violations"].as_array().map(Vec::len), Some(11));
}

/// A status write the apiserver refuses (here a ValidatingAdmissionPolicy, as scangate's own
/// status webhook would for another identity) is counted and retried with backoff until it
/// goes through.
/// A report of an image read from a tarball names the file, so a scan of the image refuses
/// it until its pusher says which image it was (`scangate report --image`); the flag cannot
/// make busybox's report speak for alpine.
#[test]
fn a_report_of_an_archive_counts_once_its_pusher_names_the_image() {
    if !gated() {
        return;
    }
    let env = setup(None);
    let ns = env.ns.clone();
    apply(&ns, &policy(&ns, "[\"critical\", \"high\"]"));
    let mut alpine = image_scan(&ns, "alpine", None);
    alpine["spec"]["registry"] = json!({"image": "alpine:3.10"});
    apply(&ns, &alpine);
    let sarif = "tests/fixtures/reports/sarif/trivy_alpine-3.10_image_golden.sarif";
    let push = |report: &str, image: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_scangate"));
        command
            .args(["report", report, "--to-configmap", &format!("{ns}/alpine")])
            .current_dir(root())
            .env("KUBECONFIG", kubeconfig());
        if let Some(image) = image {
            command.args(["--image", image]);
        }
        let out = command.output().expect("run scangate report");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (stored, stderr) = push(sarif, None);
    assert!(!stored, "{stderr}");
    assert!(
        stderr.contains("the report is for the archive \"testdata/fixtures/images/alpine-310.tar.gz\", which names no image; this scan is for docker.io/library/alpine:3.10"),
        "{stderr}"
    );
    let (stored, stderr) = push(FIXTURE, Some("alpine:3.10"));
    assert!(!stored, "{stderr}");
    assert!(
        stderr.contains("the report is not of --image alpine:3.10: report is for docker.io/library/busybox:1.32.1@sha256:"),
        "{stderr}"
    );
    assert!(get_json(&ns, &["configmap", "alpine-report"]).is_none());

    let (stored, stderr) = push(sarif, Some("docker.io/library/alpine:3.10"));
    assert!(stored, "{stderr}");
    let completed = wait_phase(&env, "alpine", "Completed");
    assert_eq!(condition(&completed, "Succeeded")["status"], "True");
    assert_eq!(completed["scannedBy"]["scanner"]["name"], "trivy");
    assert!(
        completed["cveCount"]["total"].as_u64().unwrap_or_default() > 0,
        "{completed:#}"
    );
}

#[test]
fn refused_status_writes_are_counted_and_retried() {
    if !gated() {
        return;
    }
    let env = setup(None);
    let ns = env.ns.clone();
    let name = format!("{ns}-refuse-status");
    let refusal = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["scanning.scangate.dev"],
                "apiVersions": ["*"],
                "operations": ["UPDATE"],
                "resources": ["imagescans/status"],
            }]},
            "validations": [{
                "expression": "object.metadata.name != 'blocked'",
                "message": "e2e: status writes to this scan are refused",
            }],
        },
    });
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
        },
    });
    kubectl_result(&["apply", "-f", "-"], Some(&refusal.to_string())).expect("apply policy");
    kubectl_result(&["apply", "-f", "-"], Some(&binding.to_string())).expect("apply binding");
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = kubectl_result(
                &[
                    "delete",
                    "validatingadmissionpolicybinding",
                    &self.0,
                    "--ignore-not-found",
                ],
                None,
            );
            let _ = kubectl_result(
                &[
                    "delete",
                    "validatingadmissionpolicy",
                    &self.0,
                    "--ignore-not-found",
                ],
                None,
            );
        }
    }
    let _cleanup = Cleanup(name.clone());

    apply(&ns, &policy(&ns, "[\"critical\", \"high\"]"));
    apply(&ns, &image_scan(&ns, "blocked", None));
    // The policy is in force once a status write of ours is refused too.
    wait_for(
        "the policy to refuse status writes",
        || {
            kubectl_result(
                &[
                    "-n",
                    &ns,
                    "patch",
                    "imagescan",
                    "blocked",
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    r#"{"status":{"observedGeneration":0}}"#,
                ],
                None,
            )
            .err()
            .filter(|e| e.contains("e2e: status writes to this scan are refused"))
        },
        String::new,
    );
    upload_report(&env, "blocked");
    let refused = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("scangate_controller_status_writes_total{result=\"refused\"} ")
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for(
        "a refused status write, retried",
        || {
            let (_, metrics) = http_get(&env.admin, "/metrics")?;
            (refused(&metrics) >= 2).then_some(())
        },
        || env.logs(),
    );
    assert!(
        env.logs()
            .contains("the apiserver refused the status write"),
        "{}",
        env.logs()
    );
    assert_ne!(status(&env, "blocked")["phase"], "Failed");

    kubectl(&["delete", "validatingadmissionpolicybinding", &name]);
    let failed = wait_phase(&env, "blocked", "Failed");
    assert_eq!(failed["lastResult"]["phase"], "Failed");
    let (_, metrics) = http_get(&env.admin, "/metrics").unwrap_or_default();
    assert!(
        metrics.contains("scangate_controller_status_writes_total{result=\"ok\"}"),
        "{metrics}"
    );
}

/// A note over the Event API's 1024 characters is summarised, not dropped: a Job that failed
/// with a 5 KB message still gets its Error event.
#[test]
fn long_event_notes_are_summarised_not_dropped() {
    if !gated() {
        return;
    }
    let env = setup(None);
    let ns = env.ns.clone();
    apply(&ns, &template(&ns));
    apply(&ns, &image_scan(&ns, "long", Some("grype")));
    let job = wait_for(
        "the scan Job",
        || jobs(&env, "long").into_iter().next(),
        || env.logs(),
    );
    let long = format!(
        "the scanner says: {}",
        "CVE-2024-0001 is critical. ".repeat(200)
    );
    assert!(long.len() > 5000);
    finish_job(
        &env,
        job["metadata"]["name"].as_str().unwrap_or_default(),
        JobEnd {
            conditions: ["FailureTarget", "Failed"],
            reason: "BackoffLimitExceeded",
            message: long,
            count: "failed",
            completed: false,
        },
    );
    wait_phase(&env, "long", "Error");
    let note = wait_for(
        "the Error event",
        || {
            let events = get_json(
                &ns,
                &["events", "--field-selector", "involvedObject.name=long"],
            )?;
            events["items"].as_array()?.iter().find_map(|e| {
                (e["reason"] == "Error")
                    .then(|| e["message"].as_str().map(String::from))
                    .flatten()
            })
        },
        || env.logs(),
    );
    assert!(note.len() <= 1024, "{} bytes: {note}", note.len());
    assert!(
        note.starts_with("The scan is Error: Succeeded: Failed: BackoffLimitExceeded (the scanner says: CVE-2024-0001"),
        "{note}"
    );
    assert!(note.ends_with('…'), "{note}");
    assert!(
        !env.logs().contains("cannot publish an event"),
        "{}",
        env.logs()
    );
}

#[test]
fn sigterm_lets_the_reconciles_under_way_finish_and_releases_the_lease() {
    if !gated() {
        return;
    }
    const SCANS: usize = 50;
    let mut env = setup(None);
    apply(&env.ns, &policy(&env.ns, "[\"critical\", \"high\"]"));
    let scans: Vec<Value> = (0..SCANS)
        .map(|i| image_scan(&env.ns, &format!("stop-{i}"), None))
        .collect();
    apply(
        &env.ns,
        &json!({"apiVersion": "v1", "kind": "List", "items": scans}),
    );
    // Stop while the scans are being reconciled.
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", env.controller.id())])
        .status();
    let log = env.log.clone();
    let exited = wait_for(
        "the controller to stop after SIGTERM",
        || env.controller.try_wait().ok().flatten(),
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    let logs = env.logs();
    assert!(exited.success(), "{exited:?}\n{logs}");
    assert!(
        logs.contains("stopping: finishing the reconciles under way")
            && logs.contains("released the leader lease")
            && logs.contains("scangate controller stopped"),
        "{logs}"
    );
    let lease = get_json(&env.ns, &["lease", "scangate-controller"]).unwrap_or(Value::Null);
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "the lease is released: {lease:#}"
    );

    // The next controller takes the lease at once and every scan gets its status.
    env.controller = Env::spawn(&env.args, &env.log);
    env.wait_ready();
    wait_for(
        "every scan to be Pending",
        || {
            let listed = get_json(&env.ns, &["imagescans"])?;
            let pending = listed["items"]
                .as_array()?
                .iter()
                .filter(|s| s["status"]["phase"] == "Pending")
                .count();
            (pending == SCANS).then_some(())
        },
        || env.logs(),
    );
}
