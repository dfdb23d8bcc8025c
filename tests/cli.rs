//! The binary's commands, run as a user runs them.

use std::process::{Command, Output};

fn scangate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run scangate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn crds_prints_the_checked_in_crds() {
    let out = scangate(&["crds"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        include_str!("../deploy/crds/scanning.scangate.dev.yaml")
    );
}

#[test]
fn webhook_config_prints_the_checked_in_configurations() {
    let out = scangate(&["webhook-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out) == include_str!("../deploy/core/webhooks.yaml"),
        "deploy/core/webhooks.yaml is out of date: run `make crds` and commit the result"
    );
}

#[test]
fn check_denies_the_vulnerable_deployment_with_the_design_message() {
    let out = scangate(&[
        "check",
        "-f",
        "examples/workloads/vulnerable-deployment.yaml",
        "--scans",
        "examples/scans",
        "--config",
        "examples/config.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("DENIED Deployment shop/legacy-tools"),
        "{text}"
    );
    for part in [
        "container \"tools\"",
        "image docker.io/library/busybox:1.32.1@sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7",
        "failed trusted scan scangate-system/busybox (policy scangate-system/no-critical-or-high)",
        "CVE-2022-48174 (critical) in busybox 1.32.1, no fix yet",
        "and 6 more",
        "ScanException",
    ] {
        assert!(text.contains(part), "missing {part:?} in {text}");
    }
}

#[test]
fn check_admits_the_clean_deployment() {
    let out = scangate(&[
        "check",
        "-f",
        "examples/workloads/clean-deployment.yaml",
        "--scans",
        "examples/scans",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("ADMITTED Deployment shop/storefront"));
}

#[test]
fn check_reads_directories_like_kubectl() {
    let out = scangate(&[
        "check",
        "-f",
        "examples/workloads",
        "--scans",
        "examples/scans",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("ADMITTED Deployment shop/storefront"));
    assert!(text.contains("DENIED Deployment shop/legacy-tools"));
}

#[test]
fn check_errors_exit_2_with_a_clear_message() {
    let out = scangate(&[
        "check",
        "-f",
        "does-not-exist.yaml",
        "--scans",
        "examples/scans",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "error: cannot read does-not-exist.yaml: No such file or directory (os error 2)"
    );
    let out = scangate(&[
        "check",
        "-f",
        "examples/workloads",
        "--scans",
        "examples/scans",
        "--config",
        "Cargo.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("admission config is not valid YAML"),
        "{}",
        stderr(&out)
    );
}

/// A tree of manifests as a repository holds them: a file with no workload at the top, a
/// workload two directories down, and an empty directory.
fn manifest_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("apps/web")).expect("mkdir");
    std::fs::create_dir_all(root.join("empty")).expect("mkdir");
    std::fs::write(
        root.join("rbac.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: reader}\n",
    )
    .expect("write");
    std::fs::write(root.join("README.md"), "not a manifest\n").expect("write");
    std::fs::write(
        root.join("apps/web/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: nginx:1.27}]\n",
    )
    .expect("write");
    dir
}

fn path(dir: &tempfile::TempDir, rel: &str) -> String {
    dir.path().join(rel).display().to_string()
}

#[test]
fn check_passes_inputs_with_nothing_to_check_with_a_note() {
    let dir = manifest_tree();
    let out = scangate(&["check", "-f", &path(&dir, "rbac.yaml")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "note: {} holds no workload (Pod, Deployment,",
            path(&dir, "rbac.yaml")
        )),
        "{text}"
    );
    assert!(
        text.ends_with(
            "checked 0 workloads in 1 files: 0 admitted, 0 denied; 1 with no workload; 0 errors\n"
        ),
        "{text}"
    );
    let out = scangate(&["check", "-R", "-f", &path(&dir, "empty")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("note: {} holds no workload", path(&dir, "empty"))),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_needs_no_scans() {
    let dir = manifest_tree();
    let deployment = path(&dir, "apps/web/deployment.yaml");
    let out = scangate(&["check", "-f", &deployment]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ADMITTED Deployment shop/web"), "{text}");
    assert!(text.contains("has no trusted scan"), "{text}");
    // Unscanned images follow the config, as at the webhook.
    let config = path(&dir, "config.yaml");
    std::fs::write(&config, "onUnscanned: deny\n").expect("write");
    let out = scangate(&["check", "-f", &deployment, "--config", &config]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("DENIED Deployment shop/web"));
}

#[test]
fn check_recurses_into_directories_only_with_r() {
    let dir = manifest_tree();
    let root = dir.path().display().to_string();
    let config = path(&dir, "config.yaml");
    std::fs::write(&config, "onUnscanned: deny\n").expect("write");
    // Without -R: the directory's own files only (rbac.yaml; config.yaml holds no workload).
    let out = scangate(&["check", "-f", &root, "--config", &config]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("Deployment shop/web"), "{text}");
    assert!(text.contains("checked 0 workloads in 2 files"), "{text}");
    // With -R: the nested Deployment too, and the empty directory is no source of its own.
    let out = scangate(&["check", "-R", "-f", &root, "--config", &config]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("DENIED Deployment shop/web"), "{text}");
    assert!(
        text.ends_with(
            "checked 1 workloads in 3 files: 0 admitted, 1 denied; 2 with no workload; 0 errors\n"
        ),
        "{text}"
    );
    // A file that cannot be read does not stop the others: exit 2, the error on stderr.
    std::fs::write(dir.path().join("apps/broken.yaml"), "kind: [unclosed\n").expect("write");
    let out = scangate(&["check", "-R", "-f", &root, "--config", &config]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("DENIED Deployment shop/web"));
    assert!(
        stderr(&out).contains("broken.yaml: document 1 is not valid YAML or JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_user_lets_a_controllers_pod_of_a_failed_image_pass_with_the_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scans = path(&dir, "scans.yaml");
    std::fs::write(
        &scans,
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {name: bad, namespace: scangate-system}\nspec:\n  registry: {image: bad:1}\nstatus:\n  phase: Failed\n  scannedAt: \"2026-11-20T10:00:00Z\"\n",
    )
    .expect("write");
    let pod = path(&dir, "pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1-abcde\n  namespace: shop\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-1, uid: u, controller: true}]\nspec:\n  containers: [{name: web, image: bad:1}]\n",
    )
    .expect("write");
    let rs = "system:serviceaccount:kube-system:replicaset-controller";
    let out = scangate(&["check", "-f", &pod, "--scans", &scans, "--user", rs]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ADMITTED Pod shop/web-1-abcde"), "{text}");
    assert!(
        text.contains("Warning: admitted: replicaset-controller for ReplicaSet web-1 created it from a template"),
        "{text}"
    );
    assert!(
        text.contains("failed trusted scan scangate-system/bad"),
        "{text}"
    );
    // Anyone else, or no user, gets the denial; so does the controller under recheckControllerPods.
    for user in [&["--user", "alice"][..], &[]] {
        let mut args = vec!["check", "-f", &pod, "--scans", &scans];
        args.extend_from_slice(user);
        let out = scangate(&args);
        assert_eq!(out.status.code(), Some(1), "{user:?}: {}", stdout(&out));
    }
    let config = path(&dir, "config.yaml");
    std::fs::write(&config, "recheckControllerPods: true\n").expect("write");
    let out = scangate(&[
        "check", "-f", &pod, "--scans", &scans, "--user", rs, "--config", &config,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn report_prints_the_normalized_report() {
    let out = scangate(&[
        "report",
        "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["scanner"]["name"], "grype");
    assert_eq!(report["vulnerabilities"].as_array().map(Vec::len), Some(15));
    // A normalized report reads back as itself.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("normalized.json");
    std::fs::write(&path, &out.stdout).expect("write");
    let again = scangate(&["report", &path.display().to_string()]);
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn report_errors_name_the_file() {
    let out = scangate(&["report", "Cargo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Cargo.toml"), "{}", stderr(&out));
}

#[test]
fn policy_eval_exit_codes_and_output() {
    let failed = scangate(&[
        "policy",
        "eval",
        "--policy",
        "src/policy/default.rego",
        "--report",
        "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json",
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let text = stdout(&failed);
    assert!(
        text.contains("CVEs: critical 1 high 10 medium 2 low 2 unknown 0 total 15"),
        "{text}"
    );
    assert!(
        text.contains("deny: CVE-2022-48174 (critical) in busybox 1.32.1"),
        "{text}"
    );
    assert!(
        text.contains("PolicySucceeded=False EvaluationFailed: Policy violated because of 11 CVEs"),
        "{text}"
    );
    assert!(text.ends_with("phase: Failed\n"), "{text}");

    let passed = scangate(&[
        "policy",
        "eval",
        "--policy",
        "src/policy/default.rego",
        "--report",
        "tests/fixtures/reports/sarif/trivy_alpine-3.10_image_golden.sarif",
    ]);
    assert_eq!(passed.status.code(), Some(0), "{}", stderr(&passed));
    assert!(stdout(&passed).contains("No CVEs were found that violated the policy"));

    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.rego");
    std::fs::write(&broken, "package main\ndeny contains x if { x := \n").expect("write");
    let error = scangate(&[
        "policy",
        "eval",
        "--policy",
        &broken.display().to_string(),
        "--report",
        "tests/fixtures/reports/sarif/trivy_alpine-3.10_image_golden.sarif",
    ]);
    assert_eq!(error.status.code(), Some(2));
    assert!(
        stderr(&error).contains("broken.rego:"),
        "{}",
        stderr(&error)
    );
}

#[test]
fn policy_eval_reads_a_scanpolicy_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("policy.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ScanPolicy\nmetadata: {name: any-critical}\nspec:\n  regoFile: |\n    package main\n    import rego.v1\n    deny contains v.id if { some v in input.vulnerabilities; v.severity == \"critical\" }\n",
    )
    .expect("write");
    let out = scangate(&[
        "policy",
        "eval",
        "--policy",
        &manifest.display().to_string(),
        "--report",
        "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("Policy violated because of 1 CVEs"));
}

#[test]
fn cluster_commands_without_a_cluster_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-kubeconfig");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("KUBECONFIG", &missing)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("run scangate")
    };
    let out = run(&["controller", "--admin-listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot connect to the Kubernetes API"),
        "{}",
        stderr(&out)
    );
    let report = "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json";
    let out = run(&["report", report, "--to-configmap", "no-slash"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not NAMESPACE/SCAN"),
        "{}",
        stderr(&out)
    );
    let out = run(&["report", report, "--to-configmap", "ns/scan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot connect to the Kubernetes API"),
        "{}",
        stderr(&out)
    );
}

/// Runs scangate with its standard output (and, with `stderr_too`, its standard error) on a
/// pipe nobody reads any more, as `scangate … | head` leaves it once head has its lines. The
/// reading end is closed before scangate starts, so its first write finds it closed.
fn into_a_closed_pipe(args: &[&str], stderr_too: bool) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let stderr = if stderr_too {
        std::process::Stdio::from(writer.try_clone().expect("pipe"))
    } else {
        std::process::Stdio::piped()
    };
    Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer)
        .stderr(stderr)
        .output()
        .expect("run scangate")
}

/// The status grep and jq end with in a shell when their reader goes (killed by SIGPIPE).
const PIPE_CLOSED: i32 = 141;

#[test]
fn every_printing_command_ends_quietly_when_its_reader_goes() {
    let report = "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json";
    let commands: [&[&str]; 6] = [
        &["report", report],
        &[
            "check",
            "-f",
            "examples/workloads",
            "--scans",
            "examples/scans",
        ],
        &[
            "policy",
            "eval",
            "--policy",
            "src/policy/default.rego",
            "--report",
            report,
        ],
        &["crds"],
        &["webhook-config"],
        &["--help"],
    ];
    for args in commands {
        let out = into_a_closed_pipe(args, false);
        let message = stderr(&out);
        assert!(!message.contains("panicked"), "{args:?}: {message}");
        assert_eq!(message, "", "{args:?}");
        // clap prints --help itself and exits 0, as it always has.
        let expected = if args == ["--help"] { 0 } else { PIPE_CLOSED };
        assert_eq!(out.status.code(), Some(expected), "{args:?}: {message}");
    }
    // `2>&1 | head`: standard error is closed too; nothing panics, and an error still says
    // what the command found (exit 2).
    let out = into_a_closed_pipe(&["report", report], true);
    assert_eq!(out.status.code(), Some(PIPE_CLOSED));
    let out = into_a_closed_pipe(&["report", "Cargo.toml"], true);
    assert_eq!(out.status.code(), Some(2));
    // A command's messages still reach standard error when its output's reader went.
    let out = into_a_closed_pipe(&["check", "-f", "missing.yaml"], false);
    assert_eq!(out.status.code(), Some(PIPE_CLOSED));
    assert_eq!(
        stderr(&out).trim(),
        "error: cannot read missing.yaml: No such file or directory (os error 2)"
    );
}

#[test]
fn report_image_names_the_image_a_scanner_read_from_an_archive() {
    let sarif = "tests/fixtures/reports/sarif/trivy_alpine-3.10_image_golden.sarif";
    let artifact = |out: &Output| {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        report["artifact"].clone()
    };
    // Without it, the report names the tarball, which no scan of an image accepts.
    let out = scangate(&["report", sarif]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        artifact(&out)["name"],
        "testdata/fixtures/images/alpine-310.tar.gz"
    );
    let out = scangate(&["report", sarif, "--image", "docker.io/library/alpine:3.10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let named = artifact(&out);
    assert_eq!(named["name"], "docker.io/library/alpine:3.10");
    assert_eq!(named["type"], "image");
    // The flag's environment variable, as in a scan Job's container.
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(["report", sarif])
        .env("SCANGATE_REPORT_IMAGE", "alpine:3.10")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run scangate");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(artifact(&out)["name"], "alpine:3.10");
}

#[test]
fn report_image_cannot_rename_what_the_scanner_named() {
    let busybox = "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json";
    // The same image in another spelling: the report keeps the scanner's name.
    let out = scangate(&["report", busybox, "--image", "busybox:1.32.1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["artifact"]["name"], "busybox:1.32.1");
    // Another image: refused, before anything is stored.
    for target in [&[][..], &["--to-configmap", "scangate-system/alpine"]] {
        let mut args = vec!["report", busybox, "--image", "alpine:3.10"];
        args.extend_from_slice(target);
        let out = scangate(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
        let message = stderr(&out);
        assert!(
            message.starts_with(
                "error: the report is not of --image alpine:3.10: report is for docker.io/library/busybox:1.32.1@sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7, this scan is for docker.io/library/alpine:3.10"
            ),
            "{args:?}: {message}"
        );
    }
    let out = scangate(&["report", busybox, "--image", "not a reference"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: --image \"not a reference\" is not an image reference"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_says_which_exceptions_do_not_count_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = jiff::Timestamp::now();
    let hours = |h: i64| now + jiff::SignedDuration::from_hours(h);
    let exception = |namespace: &str, name: &str, approved: bool, expires: jiff::Timestamp| {
        let annotations = if approved {
            format!(
                "  annotations: {{scangate.dev/approved-by: alice, scangate.dev/approved-at: \"{}\"}}\n",
                hours(-1)
            )
        } else {
            String::new()
        };
        format!(
            "---\napiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{annotations}spec:\n  images: [bad]\n  reason: r\n  expires: \"{expires}\"\n"
        )
    };
    let scans = path(&dir, "scans.yaml");
    std::fs::write(
        &scans,
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {name: bad, namespace: scangate-system}\nspec:\n  registry: {image: bad:1}\nstatus:\n  phase: Failed\n  scannedAt: \"2026-11-20T10:00:00Z\"\n".to_string()
            + &exception("shop", "unapproved", false, hours(24))
            + &exception("shop", "expired", true, hours(-1))
            + &exception("team-b", "elsewhere", true, hours(24)),
    )
    .expect("write");
    let pod = path(&dir, "pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec:\n  containers: [{name: web, image: bad:1}]\n",
    )
    .expect("write");
    let out = scangate(&["check", "-f", &pod, "--scans", &scans]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "note: ScanException shop/unapproved does not count: not approved: no approver's write is recorded"
        ),
        "{text}"
    );
    assert!(
        lines[1].starts_with("note: ScanException shop/expired does not count: expired at "),
        "{text}"
    );
    assert!(lines[2].starts_with("DENIED Pod shop/web"), "{text}");
    for ignored in [
        "  ignored ScanException shop/unapproved for container \"web\": not approved: ",
        "  ignored ScanException shop/expired for container \"web\": expired at ",
        "  ignored ScanException team-b/elsewhere for container \"web\": it is in namespace team-b, and an exception counts only in its own namespace (those in scangate-system count everywhere)",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(ignored)),
            "missing {ignored:?} in {text}"
        );
    }
    // In team-b, that namespace's exception counts: admitted, and nothing said of it; shop's
    // are told as shop's, whatever else is wrong with them.
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: team-b}\nspec:\n  containers: [{name: web, image: bad:1}]\n",
    )
    .expect("write");
    let out = scangate(&["check", "-f", &pod, "--scans", &scans]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(!text.contains("team-b/elsewhere for"), "{text}");
    assert!(
        text.contains(
            "  ignored ScanException shop/expired for container \"web\": it is in namespace shop, "
        ),
        "{text}"
    );
}

#[test]
fn check_honours_vex_statements_as_admission_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = jiff::Timestamp::now();
    let statement = |name: &str, vex: &str| {
        format!(
            "---\napiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata:\n  name: {name}\n  namespace: shop\n  \
             annotations: {{scangate.dev/approved-by: alice, scangate.dev/approved-at: \"{}\"}}\nspec:\n  images: [bad]\n  \
             cves: [CVE-2024-1]\n  reason: r\n  expires: \"{}\"\n  vex: {vex}\n",
            now - jiff::SignedDuration::from_hours(1),
            now + jiff::SignedDuration::from_hours(24),
        )
    };
    let scan = "apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {name: bad, namespace: scangate-system}\nspec:\n  registry: {image: bad:1}\nstatus:\n  phase: Failed\n  scannedAt: \"2026-11-20T10:00:00Z\"\n  violations: [{id: CVE-2024-1, severity: critical, package: p, version: \"1\"}]\n";
    let scans = path(&dir, "scans.yaml");
    let pod = path(&dir, "pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec:\n  containers: [{name: web, image: bad:1}]\n",
    )
    .expect("write");
    // Under investigation: denied, and said to be under review.
    std::fs::write(
        &scans,
        scan.to_string() + &statement("looking", "{status: under_investigation}"),
    )
    .expect("write");
    let out = scangate(&["check", "-f", &pod, "--scans", &scans]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "under review: CVE-2024-1 (VEX under_investigation in ScanException shop/looking)"
        ),
        "{}",
        stdout(&out)
    );
    // not_affected: admitted by that statement.
    std::fs::write(
        &scans,
        scan.to_string()
            + &statement("looking", "{status: under_investigation}")
            + &statement(
                "fine",
                "{status: not_affected, justification: component_not_present}",
            ),
    )
    .expect("write");
    let out = scangate(&["check", "-f", &pod, "--scans", &scans]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("admitted by ScanException shop/fine, approved by alice"),
        "{}",
        stdout(&out)
    );
}
