//! `scangate why` (`kubectl scangate why`) on a real cluster, run as a tenant would run it: a
//! kubeconfig that impersonates a user bound to the built-in `edit` role in its namespace. A
//! Deployment admitted while its image's trusted result passed runs (kwok's fake node); the
//! result turns Failed, and `why` names the trusted scan that denies it now; an approver's
//! exception admits it again, and `why` names the exception. Without the right to read the
//! trusted results (scangate-system's scans are not the tenant's), `why` says so instead of
//! calling the image unscanned. `status` counts what the tenant's namespace runs. (The tenant
//! may read its own Namespace, so its enforcement label: `view`, aggregated into `edit`,
//! grants get on namespaces, and a RoleBinding scopes that to its own.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::cluster::{Cluster, cluster, deployment, stderr};
use common::enforced::Enforced;
use common::fixtures::BUSYBOX;

const WAIT: Duration = Duration::from_secs(60);

const SOURCE: &str = "pushed by system:serviceaccount:ci:pipeline";

/// A trusted result's status members, from a report `SOURCE` pushed.
fn result(phase: &str) -> String {
    let (violations, policy) = match phase {
        "Failed" => (
            r#""violations": [{"id": "CVE-2022-48174", "severity": "critical", "package": "busybox", "version": "1.32.1"}],"#,
            r#"{"type": "PolicySucceeded", "status": "False", "reason": "EvaluationFailed", "message": "Policy violated because of 1 CVEs"}"#,
        ),
        _ => (
            "",
            r#"{"type": "PolicySucceeded", "status": "True", "reason": "EvaluationPassed", "message": "No CVEs were found that violated the policy"}"#,
        ),
    };
    let now = jiff::Timestamp::now();
    format!(
        r#"{violations}
  "lastResult": {{"phase": "{phase}", "scannedAt": "{now}", "source": "{SOURCE}"}},
  "conditions": [
    {{"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"}},
    {{"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"}},
    {policy}]"#
    )
}

/// A kubeconfig that acts as `user` (impersonation), so what runs with it has that user's RBAC.
fn kubeconfig_as_user(cluster: &Cluster, dir: &Path, user: &str) -> PathBuf {
    let text = std::fs::read_to_string(&cluster.kubeconfig).expect("read kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    if let Some(users) = config.get_mut("users").and_then(|u| u.as_sequence_mut()) {
        for entry in users {
            if let Some(map) = entry.get_mut("user").and_then(|u| u.as_mapping_mut()) {
                map.insert("as".into(), user.into());
            }
        }
    }
    let path = dir.join(format!("kubeconfig-{user}"));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("kubeconfig")).expect("write");
    path
}

/// `scangate ARGS` with `kubeconfig`.
fn scangate(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("SCANGATE_CONFIG")
        .env_remove("SCANGATE_NAMESPACE")
        .output()
        .expect("run scangate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn why_names_the_deciding_scan_and_exception_to_a_tenant() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-why", &[]);
    let tenant = env.tenant();
    let ns = env.ns.name.clone();
    let system = env.system.name.clone();
    let approver = format!("approver-{ns}");
    env.bind(&ns, &approver, "scangate-exception-approver");
    let kubeconfig = kubeconfig_as_user(cluster, env.dir.path(), &tenant);
    let config = env.config.display().to_string();
    let why = |target: &str| {
        scangate(
            &kubeconfig,
            &["why", target, "-n", &ns, "--config", &config],
        )
    };

    // Admitted while the trusted result passes; its pod runs on kwok's node.
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, &result("Completed"));
    cluster.eventually("the Deployment admitted", WAIT, || {
        let out = env.kubectl_as(
            &tenant,
            &["-n", &ns, "apply", "-f", "-"],
            Some(&deployment("web", "busybox:1.32.1")),
        );
        out.status.success().then_some(())
    });
    let pod = cluster.eventually("the web pod Running", WAIT, || {
        let out = env.ns.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ]);
        (!out.is_empty()).then_some(out)
    });

    // The tenant may not read the trusted results: `why` says so, and cannot decide (exit 2).
    let out = why("deployment/web");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    assert!(
        text.starts_with(&format!("UNKNOWN deployment/web in namespace {ns}")),
        "{text}"
    );
    assert!(
        text.contains("decided by: a trusted result you cannot read, if there is one"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "a trusted result you cannot read may decide (imagescans in {system}: forbidden)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "admission rules: file {config} (ConfigMap scangate-system/scangate-config: "
        )),
        "{text}"
    );

    // With read access to the trusted results (scangate-view there, the admin's choice).
    env.bind(&system, &tenant, "scangate-view");
    let out = why("deployment/web");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.starts_with("ADMITTED deployment/web"), "{text}");
    assert!(
        text.contains(&format!(
            "decided by: trusted scan {system}/busybox, phase Completed, report: {SOURCE}"
        )),
        "{text}"
    );

    // The result turns Failed: the running pod would be denied now, by that scan.
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, &result("Failed"));
    let text = cluster.eventually("why to see the Failed result", WAIT, || {
        let out = why(&format!("pod/{pod}"));
        (out.status.code() == Some(1)).then(|| stdout(&out))
    });
    assert!(
        text.starts_with(&format!("DENIED pod/{pod} in namespace {ns}: the webhook would deny it now (namespace mode enforce)")),
        "{text}"
    );
    assert!(
        text.contains("container \"app\" docker.io/library/busybox:1.32.1@sha256:"),
        "{text}"
    );
    assert!(
        text.contains("verdict:    denied (rules say deny)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "decided by: trusted scan {system}/busybox, phase Failed, report: {SOURCE}"
        )),
        "{text}"
    );
    assert!(text.contains("exception:  none"), "{text}");
    assert!(text.contains("CVE-2022-48174"), "{text}");

    // An approver's exception for the CVE admits it again; `why` names it.
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .expect("tomorrow");
    let exception = format!(
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata: {{name: legacy}}\nspec:\n  images: [busybox]\n  cves: [CVE-2022-48174]\n  reason: ticket SEC-1\n  expires: \"{expires}\"\n"
    );
    let out = env.kubectl_as(
        &approver,
        &["-n", &ns, "apply", "-f", "-"],
        Some(&exception),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = why("deploy/web");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.starts_with("ADMITTED deployment/web"), "{text}");
    assert!(text.contains(&format!("exception:  {ns}/legacy")), "{text}");
    assert!(
        text.contains(&format!(
            "decided by: trusted scan {system}/busybox, phase Failed, report: {SOURCE}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "admitted by ScanException {ns}/legacy, approved by {approver}"
        )),
        "{text}"
    );

    // `status` in the tenant's namespace: the scans it can read and the running image.
    let out = scangate(&kubeconfig, &["status", "-n", &ns, "--config", &config]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains(&format!("scope: namespace {ns}\n")), "{text}");
    assert!(
        text.contains("imagescans: 1 (trusted results 1, namespace scans 0)"),
        "{text}"
    );
    assert!(
        text.contains("by phase: Pending 0, Scanning 0, Completed 0, Failed 1, Error 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "running pods: 1; their images: 1 (admitted 1, warned 0, denied 0, unknown 0)"
        ),
        "{text}"
    );

    // A name that is no pod: exit 2, and the message says what to check.
    let out = why("pod/nothing-here");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "Pod \"nothing-here\" not found in namespace {ns}; check the name and -n"
        )),
        "{}",
        stderr(&out)
    );
}
