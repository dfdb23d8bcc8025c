//! End to end, on the real kube-apiserver: the scanner's ServiceAccount writes only its own
//! scan's report, from a pod of that scan's Job, and never the admission config; its token is
//! mounted only into the container that uploads; a scan Job past its deadline makes the scan
//! Error. The attacker is the scanner's identity (`kubectl --as`, with and without the pod a
//! bound token names, `--as-user-extra`). kwok runs the scan Jobs' pods but never ends them:
//! the test plays the uploading container (`scangate report` with the pod's identity) and the
//! Job controller's completion.
//!
//! Run with `SCANGATE_E2E=1 cargo test --test e2e_scanner_identity` after `make controlplane`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::cluster::{Cluster, TestNamespace, cluster, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{GRYPE_BUSYBOX, grype_busybox, grype_template};
use scangate::admission::reporter::{POD_NAME_EXTRA, POD_UID_EXTRA};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// What the report guard says when the scanner writes a ConfigMap that is not a report.
const NOT_A_REPORT: &str = "may write only its own scan's report ConfigMap";

/// The pod a scan Job runs: its name and uid, and its spec.
struct ScanPod {
    name: String,
    uid: String,
    spec: Value,
}

/// The scanner's ServiceAccount in `ns`, with the shipped scanner role bound there, and the
/// webhook's right to read that namespace's scan pods and Jobs (as an admin binds them in a
/// trusted scan namespace).
fn scanner_in(cluster: &Cluster, ns: &str) {
    let rbac = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: scangate-scanner, namespace: {ns}}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: scangate-scanner, namespace: {ns}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: scangate-scanner}}\n\
         subjects: [{{kind: ServiceAccount, name: scangate-scanner, namespace: {ns}}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: scangate-webhook-scan-pods, namespace: {ns}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: scangate-webhook-scan-pods}}\n\
         subjects: [{{kind: ServiceAccount, name: scangate-webhook, namespace: scangate-system}}]\n"
    );
    let out = cluster.apply(&rbac, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn image_scan(ns: &TestNamespace, name: &str, image: &str) {
    let out = ns.apply(&format!(
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {{name: {name}}}\n\
         spec:\n  registry: {{image: \"{image}\"}}\n  scanTemplate: grype\n"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The first Job of scan `scan`, once the controller created it.
fn job_of(cluster: &Cluster, ns: &TestNamespace, scan: &str) -> Value {
    cluster.eventually(&format!("the scan Job of {scan}"), WAIT, || {
        let out = ns.kubectl_ok(&[
            "get",
            "jobs",
            "-l",
            &format!("scanning.scangate.dev/scan={scan}"),
            "-o",
            "json",
        ]);
        serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|list| list["items"].get(0).cloned())
    })
}

/// The pod the Job controller created for Job `job`.
fn pod_of(cluster: &Cluster, ns: &TestNamespace, job: &str) -> ScanPod {
    cluster.eventually(&format!("the pod of Job {job}"), WAIT, || {
        let out = ns.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            &format!("job-name={job}"),
            "-o",
            "json",
        ]);
        let pod = serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|list| list["items"].get(0).cloned())?;
        Some(ScanPod {
            name: pod["metadata"]["name"].as_str()?.to_string(),
            uid: pod["metadata"]["uid"].as_str()?.to_string(),
            spec: pod["spec"].clone(),
        })
    })
}

fn scan_status(ns: &TestNamespace, scan: &str) -> Value {
    let out = ns.kubectl_ok(&["get", "imagescan", scan, "-o", "json"]);
    serde_json::from_str::<Value>(&out)
        .map(|s| s["status"].clone())
        .unwrap_or_default()
}

/// kubectl as the scanner's ServiceAccount of `ns`, its token naming `pod` (name, uid) if
/// given, as a bound token of that pod does.
fn as_scanner(
    cluster: &Cluster,
    ns: &str,
    pod: Option<(&str, &str)>,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut all = vec![
        format!("--as=system:serviceaccount:{ns}:scangate-scanner"),
        "-n".to_string(),
        ns.to_string(),
    ];
    if let Some((name, uid)) = pod {
        all.push(format!("--as-user-extra={POD_NAME_EXTRA}={name}"));
        all.push(format!("--as-user-extra={POD_UID_EXTRA}={uid}"));
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    cluster.kubectl_in(&all, stdin)
}

/// A kubeconfig acting as the scanner's ServiceAccount of `ns` with a bound token of `pod`:
/// what `scangate report` in the uploading container of that pod authenticates as.
fn kubeconfig_of_pod(cluster: &Cluster, ns: &str, pod: &ScanPod) -> PathBuf {
    let path = cluster.kubeconfig_as_in(ns, "scangate-scanner");
    let text = std::fs::read_to_string(&path).expect("read kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    let extra: serde_yaml::Value = serde_yaml::from_str(&format!(
        "{{\"{POD_NAME_EXTRA}\": [\"{}\"], \"{POD_UID_EXTRA}\": [\"{}\"]}}",
        pod.name, pod.uid
    ))
    .expect("extra");
    for entry in config["users"].as_sequence_mut().into_iter().flatten() {
        if let Some(user) = entry.get_mut("user").and_then(|u| u.as_mapping_mut()) {
            user.insert("as-user-extra".into(), extra.clone());
        }
    }
    let pod_path = path.with_file_name(format!("kubeconfig-as-pod-{}", pod.uid));
    std::fs::write(
        &pod_path,
        serde_yaml::to_string(&config).expect("kubeconfig"),
    )
    .expect("write kubeconfig");
    pod_path
}

/// `scangate report` of `report` (a scanner's JSON) for `target` (`NAMESPACE/SCAN`) with
/// `kubeconfig`.
fn report_with(kubeconfig: &PathBuf, target: &str, report: &Value) -> Output {
    let file = tempfile::NamedTempFile::new().expect("report file");
    std::fs::write(file.path(), report.to_string()).expect("write report");
    Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "report",
            &file.path().display().to_string(),
            "--to-configmap",
            target,
        ])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("scangate report")
}

/// The report ConfigMap of scan `scan` (uid `uid`) in `ns`, as `scangate report` builds it.
fn report_config_map(ns: &str, scan: &str, uid: &str) -> String {
    let owner = scangate::report::ScanRef {
        api_version: "scanning.scangate.dev/v1beta1".into(),
        kind: "ImageScan".into(),
        name: scan.into(),
        namespace: ns.into(),
        uid: uid.into(),
    };
    let cm = scangate::report::to_config_map(&grype_busybox(), &owner).expect("ConfigMap");
    serde_json::to_string(&cm).expect("JSON")
}

fn assert_refused(out: &Output, says: &str) {
    assert!(!out.status.success(), "not refused: {}", stderr(out));
    let text = stderr(out);
    assert!(
        text.contains("denied the request") && text.contains(says),
        "{text}"
    );
}

#[test]
fn the_scanner_writes_only_its_own_scans_report_from_its_jobs_pod() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-scanner-id", &[]);
    let system = &env.system;
    let sys = system.name.as_str();
    scanner_in(cluster, sys);
    let out = system.apply(&grype_template(sys).to_string());
    assert!(out.status.success(), "{}", stderr(&out));
    // Declared after the environment: stopped before its namespaces go.
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), sys)
        .config(&env.config)
        .start();
    image_scan(system, "busybox", "busybox:1.32.1");
    image_scan(system, "alpine", "alpine:3.19");

    // The real scan Job: a deadline, and the token only in the container that uploads.
    let job = job_of(cluster, system, "busybox");
    let job_name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 3600, "{job}");
    let pod = pod_of(cluster, system, &job_name);
    assert_eq!(
        pod.spec["automountServiceAccountToken"], false,
        "{}",
        pod.spec
    );
    assert_eq!(pod.spec["serviceAccountName"], "scangate-scanner");
    let mounts_token = |container: &Value| {
        container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
    };
    let containers = pod.spec["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let uploader = containers.last().cloned().unwrap_or_default();
    assert!(mounts_token(&uploader), "{}", pod.spec);
    for other in containers[..containers.len().saturating_sub(1)]
        .iter()
        .chain(pod.spec["initContainers"].as_array().into_iter().flatten())
    {
        assert!(!mounts_token(other), "{}", pod.spec);
    }
    let own_pod = Some((pod.name.as_str(), pod.uid.as_str()));

    // The admission config: neither created nor changed by the scanner, with or without a
    // pod in its token.
    let audit = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "scangate-config"},
        "data": {"config.yaml": "defaultEnforcement: audit\n"}});
    let labelled = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "scangate-config", "labels": {"scanning.scangate.dev/scan": "busybox"}},
        "data": {"config.yaml": "defaultEnforcement: audit\n"}});
    let (audit, labelled) = (audit.to_string(), labelled.to_string());
    for claim in [None, own_pod] {
        let out = as_scanner(cluster, sys, claim, &["create", "-f", "-"], Some(&audit));
        assert_refused(&out, NOT_A_REPORT);
    }
    system.kubectl_ok(&[
        "create",
        "configmap",
        "scangate-config",
        "--from-literal=config.yaml=defaultEnforcement: enforce",
    ]);
    // Changed by server-side apply (a patch: the scanner has no get or update), as it is, or
    // labelled to pass for a report.
    let apply = ["apply", "--server-side", "--force-conflicts", "-f", "-"];
    for claim in [None, own_pod] {
        let out = as_scanner(cluster, sys, claim, &apply, Some(&audit));
        assert_refused(&out, NOT_A_REPORT);
        let out = as_scanner(cluster, sys, claim, &apply, Some(&labelled));
        assert_refused(&out, "reports in namespace");
    }
    let config = system.kubectl_ok(&[
        "get",
        "configmap",
        "scangate-config",
        "-o",
        "jsonpath={.data.config\\.yaml}",
    ]);
    assert_eq!(config, "defaultEnforcement: enforce");

    // Another scan's report, from the busybox Job's pod: refused.
    let alpine_uid = system.kubectl_ok(&[
        "get",
        "imagescan",
        "alpine",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let out = as_scanner(
        cluster,
        sys,
        own_pod,
        &["create", "-f", "-"],
        Some(&report_config_map(sys, "alpine", &alpine_uid)),
    );
    assert_refused(&out, "whose report is ConfigMap busybox-report");
    // Its own scan's report with a plain ServiceAccount token (no pod): refused.
    let busybox_uid = system.kubectl_ok(&[
        "get",
        "imagescan",
        "busybox",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let own_report = report_config_map(sys, "busybox", &busybox_uid);
    let out = as_scanner(
        cluster,
        sys,
        None,
        &["create", "-f", "-"],
        Some(&own_report),
    );
    assert_refused(&out, "its token names no pod");
    // ...from a pod that is not its Job's, or that is not the pod the token was issued for.
    system.kubectl_ok(&[
        "run",
        "decoy",
        "--image=registry.example/decoy:1",
        "--overrides={\"spec\": {\"serviceAccountName\": \"scangate-scanner\"}}",
    ]);
    let decoy_uid = system.kubectl_ok(&["get", "pod", "decoy", "-o", "jsonpath={.metadata.uid}"]);
    let out = as_scanner(
        cluster,
        sys,
        Some(("decoy", &decoy_uid)),
        &["create", "-f", "-"],
        Some(&own_report),
    );
    assert_refused(&out, "pod decoy is not run by a Job");
    let out = as_scanner(
        cluster,
        sys,
        Some((&pod.name, "00000000-0000-0000-0000-000000000000")),
        &["create", "-f", "-"],
        Some(&own_report),
    );
    assert_refused(&out, "its token was issued for pod");
    let out = system.kubectl(&["get", "configmap", "busybox-report"]);
    assert!(!out.status.success(), "a refused report was stored");

    // The real upload, from the Job's pod: stored, with the writer recorded, and judged.
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GRYPE_BUSYBOX),
        )
        .expect("fixture"),
    )
    .expect("fixture JSON");
    let pod_kubeconfig = kubeconfig_of_pod(cluster, sys, &pod);
    let out = report_with(&pod_kubeconfig, &format!("{sys}/busybox"), &report);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        env.webhook.logs()
    );
    let writer = system.kubectl_ok(&[
        "get",
        "configmap",
        "busybox-report",
        "-o",
        "jsonpath={.metadata.annotations.scangate\\.dev/reported-by}",
    ]);
    assert_eq!(
        writer,
        format!("system:serviceaccount:{sys}:scangate-scanner")
    );
    system.complete_job(&job_name);
    cluster.eventually("busybox Failed", WAIT, || {
        (scan_status(system, "busybox")["phase"] == "Failed").then_some(())
    });
    let denied = |name: &str| {
        let out = env.ns.kubectl(&["run", name, "--image=busybox:1.32.1"]);
        (!out.status.success() && stderr(&out).contains("denied the request")).then_some(())
    };
    cluster.eventually("the Failed image denied", WAIT, || denied("first"));

    // The scanner cannot turn it clean: a clean report for its scan without its Job's pod is
    // refused, and the image stays denied.
    let mut clean = report.clone();
    clean["matches"] = json!([]);
    let plain = cluster.kubeconfig_as_in(sys, "scangate-scanner");
    let out = report_with(&plain, &format!("{sys}/busybox"), &clean);
    assert!(
        !out.status.success(),
        "a clean report without a pod was stored"
    );
    assert!(
        stderr(&out).contains("its token names no pod"),
        "{}",
        stderr(&out)
    );
    assert_eq!(scan_status(system, "busybox")["phase"], "Failed");
    assert!(denied("second").is_some(), "the Failed image was admitted");
    drop(controller);
}

#[test]
fn a_scan_job_past_its_deadline_makes_the_scan_error() {
    let Some(cluster) = cluster() else { return };
    let ns = cluster.namespace("e2e-scan-deadline", &[]);
    scanner_in(cluster, &ns.name);
    let out = ns.apply(&grype_template(&ns.name).to_string());
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "templates: {activeDeadline: 5s}\n").expect("write config");
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), &ns.name)
        .config(&config)
        .start();
    image_scan(&ns, "stuck", "busybox:1.32.1");
    let job = job_of(cluster, &ns, "stuck");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 5, "{job}");
    // kwok keeps the pod running, as a hung scanner would: the Job controller stops it at the
    // deadline, and the scan is Error, saying the deadline and the key that sets it.
    let status = cluster.eventually("the scan Error", WAIT, || {
        let status = scan_status(&ns, "stuck");
        (status["phase"] == "Error").then_some(status)
    });
    let succeeded = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Succeeded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(succeeded["status"], "False", "{status}");
    assert_eq!(succeeded["message"], "Failed: DeadlineExceeded", "{status}");
    let error = succeeded["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("deadline of 5s") && error.contains("templates.activeDeadline"),
        "{status}\n{}",
        controller.logs()
    );
}
