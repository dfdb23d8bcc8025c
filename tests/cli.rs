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
        "failed scan shop/busybox (policy shop/no-critical-or-high)",
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

#[test]
fn commands_not_built_yet_say_so() {
    let out = scangate(&["controller"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not built yet"));
}
