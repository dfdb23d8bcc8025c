//! One identity per image, every image in a pod (design: Trust model point 6), on a real
//! kube-apiserver, acting as a tenant bound to the built-in `edit` role: every spelling of the
//! Failed image is denied like it, and so are an image volume and an ephemeral container of it.

mod common;

use std::time::Duration;

use common::cluster::{cluster, deployment, stderr};
use common::enforced::Enforced;

/// The tenant: a user bound to `edit` in the test's namespace.
const TENANT: &str = "--as=e2e-tenant";

const BUSYBOX_DIGEST: &str =
    "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";
const ALPINE_DIGEST: &str =
    "sha256:451eee8bedcb2f029756dc3e9d73bab0e7943c1ac55cff3a4861c52a0fdd3e98";

const FAILED: &str = r#""cveCount": {"critical": 1},
  "violations": [{"id": "CVE-2022-48174", "severity": "critical", "package": "busybox", "version": "1.32.1"}],
  "conditions": [
    {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
    {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"},
    {"type": "PolicySucceeded", "status": "False", "reason": "EvaluationFailed", "message": "Policy violated because of 1 CVE"}]"#;

const PASSED: &str = r#""cveCount": {"medium": 2},
  "conditions": [
    {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
    {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"},
    {"type": "PolicySucceeded", "status": "True", "reason": "EvaluationPassed", "message": "No CVEs were found that violated the policy"}]"#;

/// An enforced namespace with the tenant bound to `edit`, a Failed scan of busybox:1.32.1 and
/// a Completed one of alpine:3.10 (trusted results, written as the controller), seen by the webhook.
fn setup(config: Option<&str>) -> Option<Enforced> {
    let cluster = cluster()?;
    let env = Enforced::with_config(cluster, "e2e-identity", &[], config.unwrap_or_default());
    env.ns.kubectl_ok(&[
        "create",
        "rolebinding",
        "tenant-edit",
        "--clusterrole=edit",
        "--user=e2e-tenant",
    ]);
    scan(&env, "busybox", "busybox:1.32.1", BUSYBOX_DIGEST, FAILED);
    scan(&env, "alpine", "alpine:3.10", ALPINE_DIGEST, PASSED);
    env.cluster.eventually(
        "the webhook to see both scans",
        Duration::from_secs(30),
        || {
            let failed = tenant(
                &env,
                &[
                    "run",
                    "wait-failed",
                    "--image=busybox:1.32.1",
                    "--dry-run=server",
                ],
            );
            let clean = tenant(
                &env,
                &[
                    "run",
                    "wait-clean",
                    "--image=alpine:3.10",
                    "--dry-run=server",
                ],
            );
            (!failed.status.success() && clean.status.success() && stderr(&clean).is_empty())
                .then_some(())
        },
    );
    Some(env)
}

/// A trusted scan of `image` resolved to `digest`.
fn scan(env: &Enforced, name: &str, image: &str, digest: &str, status: &str) {
    let resolved = format!("{}@{digest}", image.split(':').next().unwrap_or_default());
    env.trusted_scan(name, image, &resolved, status);
}

/// kubectl in the namespace, as the tenant.
fn tenant(env: &Enforced, args: &[&str]) -> std::process::Output {
    let mut all = vec![TENANT];
    all.extend_from_slice(args);
    env.ns.kubectl(&all)
}

/// kubectl apply of `yaml` in the namespace, as the tenant.
fn tenant_apply(env: &Enforced, yaml: &str) -> std::process::Output {
    env.cluster.apply(yaml, &["-n", &env.ns.name, TENANT])
}

/// Asserts a denial by the workload webhook for the Failed busybox scan, naming `who`.
fn assert_denied_as_failed(env: &Enforced, out: &std::process::Output, who: &str, what: &str) {
    let message = stderr(out);
    assert!(!out.status.success(), "{what} was admitted: {message}");
    for part in [
        "admission webhook \"workloads.scangate.dev\" denied the request",
        who,
        &format!(
            "image docker.io/library/busybox:1.32.1@{BUSYBOX_DIGEST} failed trusted scan {}/busybox",
            env.system.name
        ),
        "CVE-2022-48174",
    ] {
        assert!(
            message.contains(part),
            "{what}: missing {part:?} in {message}"
        );
    }
}

#[test]
fn every_spelling_of_the_failed_image_is_denied() {
    let Some(env) = setup(Some("registryAliases: {mirror.example:5000: docker.io}\n")) else {
        return;
    };
    let spellings = [
        "registry-1.docker.io/library/busybox:1.32.1".to_string(),
        "DOCKER.IO/library/busybox:1.32.1".into(),
        "docker.io:443/library/busybox:1.32.1".into(),
        "index.docker.io/busybox:1.32.1".into(),
        "Registry-1.Docker.IO:443/busybox:1.32.1".into(),
        format!("registry-1.docker.io/library/busybox@{BUSYBOX_DIGEST}"),
        format!("index.docker.io/library/busybox:latest@{BUSYBOX_DIGEST}"),
        "mirror.example:5000/library/busybox:1.32.1".into(),
        format!("Mirror.Example:5000/busybox@{BUSYBOX_DIGEST}"),
    ];
    for (i, image) in spellings.iter().enumerate() {
        let out = tenant(
            &env,
            &["run", &format!("p{i}"), &format!("--image={image}")],
        );
        assert_denied_as_failed(&env, &out, "container \"p", image);
    }
    // In a Deployment's template, as an init container, too.
    let manifest = deployment("legacy", "alpine:3.10").replace(
        "      containers:",
        "      initContainers: [{name: setup, image: \"registry-1.docker.io/library/busybox:1.32.1\"}]\n      containers:",
    );
    let out = tenant_apply(&env, &manifest);
    assert_denied_as_failed(&env, &out, "init container \"setup\"", "init container");
    // Nothing was created.
    assert_eq!(
        env.ns
            .kubectl_ok(&["get", "pods,deployments", "-o", "name"])
            .trim(),
        ""
    );
    // The clean image, under another spelling of its registry, is admitted silently.
    let out = tenant(
        &env,
        &[
            "run",
            "clean",
            "--image=REGISTRY-1.docker.io:443/alpine:3.10",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
}

#[test]
fn an_image_volume_of_the_failed_image_is_denied() {
    let Some(env) = setup(None) else { return };
    let pod = "apiVersion: v1
kind: Pod
metadata: {name: mounts-busybox}
spec:
  containers: [{name: app, image: \"alpine:3.10\"}]
  volumes: [{name: v, image: {reference: \"docker.io/library/busybox:1.32.1\"}}]
";
    let out = tenant_apply(&env, pod);
    assert_denied_as_failed(&env, &out, "image volume \"v\"", "a Pod's image volume");
    // In a Deployment, under an alias of Docker Hub.
    let manifest = deployment("mounts", "alpine:3.10").replace(
        "      containers:",
        "      volumes: [{name: data, image: {reference: \"registry-1.docker.io/library/busybox:1.32.1\"}}]\n      containers:",
    );
    let out = tenant_apply(&env, &manifest);
    assert_denied_as_failed(
        &env,
        &out,
        "image volume \"data\"",
        "a Deployment's image volume",
    );
    assert_eq!(
        env.ns
            .kubectl_ok(&["get", "pods,deployments", "-o", "name"])
            .trim(),
        ""
    );
}

#[test]
fn an_ephemeral_container_of_the_failed_image_is_denied() {
    let Some(env) = setup(None) else { return };
    // The built-in `edit` does not let a tenant debug; clusters that do grant this as well.
    env.ns.kubectl_ok(&[
        "create",
        "role",
        "debugger",
        "--verb=get,patch,update",
        "--resource=pods/ephemeralcontainers",
    ]);
    env.ns.kubectl_ok(&[
        "create",
        "rolebinding",
        "tenant-debug",
        "--role=debugger",
        "--user=e2e-tenant",
    ]);
    let out = tenant(&env, &["run", "app", "--image=alpine:3.10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (name, image) in [
        ("debugger", "busybox:1.32.1"),
        ("debugger2", "registry-1.docker.io/library/busybox:1.32.1"),
    ] {
        let out = tenant(
            &env,
            &["debug", "app", &format!("--image={image}"), "-c", name],
        );
        assert_denied_as_failed(
            &env,
            &out,
            &format!("ephemeral container \"{name}\""),
            &format!("kubectl debug with {image}"),
        );
    }
    let ephemeral = env.ns.kubectl_ok(&[
        "get",
        "pod",
        "app",
        "-o",
        "jsonpath={.spec.ephemeralContainers}",
    ]);
    assert_eq!(ephemeral.trim(), "", "an ephemeral container was added");
    // A clean debug image is admitted.
    let out = tenant(
        &env,
        &["debug", "app", "--image=alpine:3.10", "-c", "clean"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}
