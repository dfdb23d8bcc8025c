//! One identity per content (docs/admission.md, *One identity per content*; design: Trust model point 6)
//! on a real kube-apiserver, acting as a tenant bound to the built-in `edit` role: busybox's
//! Failed bytes are denied under every other name and port spelling, each denial naming the
//! trusted scan; a Failed platform manifest of a two-platform image denies its index, the
//! platform nobody scanned is unscanned, and a clean platform's tag is pinned to its index.

mod common;

use std::time::Duration;

use common::cluster::{cluster, deployment, stderr};
use common::enforced::Enforced;
use common::fixtures::{FAILED, PASSED};

const WAIT: Duration = Duration::from_secs(30);

const BUSYBOX_DIGEST: &str =
    "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";

/// A two-platform image: its index, its amd64 manifest and its arm64 manifest.
const INDEX: &str = "sha256:1000000000000000000000000000000000000000000000000000000000000001";
const AMD64: &str = "sha256:2000000000000000000000000000000000000000000000000000000000000002";
const ARM64: &str = "sha256:3000000000000000000000000000000000000000000000000000000000000003";
/// Another two-platform image, whose amd64 manifest passed.
const CLEAN_INDEX: &str = "sha256:4000000000000000000000000000000000000000000000000000000000000004";
const CLEAN_AMD64: &str = "sha256:5000000000000000000000000000000000000000000000000000000000000005";
const CLEAN_ARM64: &str = "sha256:6000000000000000000000000000000000000000000000000000000000000006";

/// An enforced namespace, its tenant, and a trusted Failed scan of busybox:1.32.1 at its real
/// digest (written as the controller), seen by the webhook.
fn setup() -> Option<(Enforced, String)> {
    let cluster = cluster()?;
    let env = Enforced::start(cluster, "e2e-content", &[]);
    let tenant = env.tenant();
    env.trusted_scan(
        "busybox",
        "busybox:1.32.1",
        &format!("docker.io/library/busybox@{BUSYBOX_DIGEST}"),
        FAILED,
    );
    cluster.eventually("the webhook to see the scan", WAIT, || {
        let out = run_as(&env, &tenant, "wait", "busybox:1.32.1");
        (!out.status.success() && stderr(&out).contains("failed trusted scan")).then_some(())
    });
    Some((env, tenant))
}

/// `kubectl run` of a pod of `image`, as `user`, with a server-side dry run.
fn run_as(env: &Enforced, user: &str, name: &str, image: &str) -> std::process::Output {
    env.kubectl_as(
        user,
        &[
            "-n",
            &env.ns.name,
            "run",
            name,
            &format!("--image={image}"),
            "--dry-run=server",
        ],
        None,
    )
}

/// Asserts that `out` is a denial of `image` as the same content as the Failed scan
/// `scan` (its namespace is the test's scangate namespace) judged.
fn assert_denied_by(env: &Enforced, out: &std::process::Output, image: &str, scan: &str) {
    let message = stderr(out);
    assert!(!out.status.success(), "{image} was admitted: {message}");
    for part in [
        "admission webhook \"workloads.scangate.dev\" denied the request".to_string(),
        format!("failed trusted scan {}/{scan}", env.system.name),
    ] {
        assert!(message.contains(&part), "{image}: no {part:?} in {message}");
    }
}

#[test]
fn the_failed_bytes_are_denied_under_every_name_and_port_spelling() {
    let Some((env, tenant)) = setup() else { return };
    let others = [
        // Another registry.
        format!("ghcr.io/anyone/copy@{BUSYBOX_DIGEST}"),
        // Another repository on Docker Hub, with a tag beside the digest.
        format!("docker.io/someone/not-busybox:latest@{BUSYBOX_DIGEST}"),
        // A public mirror's name for Docker Hub that the admin did not declare.
        format!("mirror.gcr.io/library/busybox@{BUSYBOX_DIGEST}"),
        // A private registry's copy, on a port with leading zeros.
        format!("registry.example:05000/team/busybox@{BUSYBOX_DIGEST}"),
    ];
    for (i, image) in others.iter().enumerate() {
        let out = run_as(&env, &tenant, &format!("other-{i}"), image);
        assert_denied_by(&env, &out, image, "busybox");
        assert!(
            stderr(&out).contains("(pulled as "),
            "{image}: the denial says which name was asked for: {}",
            stderr(&out)
        );
    }
    // Docker Hub on its HTTPS port written with leading zeros: the same name and tag.
    for (i, image) in [
        "registry-1.docker.io:0443/library/busybox:1.32.1",
        "index.docker.io:00443/busybox:1.32.1",
    ]
    .iter()
    .enumerate()
    {
        let out = run_as(&env, &tenant, &format!("port-{i}"), image);
        assert_denied_by(&env, &out, image, "busybox");
    }
    // In a Deployment's template, as the tenant, for real (not a dry run): nothing is stored.
    let out = env.cluster.apply(
        &deployment("copy", &others[0]),
        &["-n", &env.ns.name, "--as", &tenant],
    );
    assert_denied_by(&env, &out, &others[0], "busybox");
    assert_eq!(
        env.ns
            .kubectl_ok(&["get", "pods,deployments", "-o", "name"])
            .trim(),
        ""
    );
}

/// The status fields the controller writes for a tag resolved to `index` with amd64 and arm64
/// manifests, scanned as the amd64 one, in addition to `result`.
fn resolved(image: &str, index: &str, amd64: &str, arm64: &str, result: &str) -> String {
    format!(
        r#""resolved": {{"image": "{image}@{index}",
          "mediaType": "application/vnd.oci.image.index.v1+json",
          "platforms": [
            {{"os": "linux", "architecture": "amd64", "digest": "{amd64}"}},
            {{"os": "linux", "architecture": "arm64", "digest": "{arm64}"}}],
          "resolvedAt": "{}"}}, {result}"#,
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_default()
    )
}

#[test]
fn an_index_is_judged_by_its_scanned_platform_and_a_clean_tag_is_pinned_to_the_index() {
    let Some((env, tenant)) = setup() else { return };
    let repo = "registry.example/team/multi";
    env.trusted_scan(
        "multi",
        &format!("{repo}:1"),
        &format!("{repo}@{AMD64}"),
        &resolved(&format!("{repo}:1"), INDEX, AMD64, ARM64, FAILED),
    );
    let clean = "registry.example/team/clean";
    env.trusted_scan(
        "clean",
        &format!("{clean}:1"),
        &format!("{clean}@{CLEAN_AMD64}"),
        &resolved(
            &format!("{clean}:1"),
            CLEAN_INDEX,
            CLEAN_AMD64,
            CLEAN_ARM64,
            PASSED,
        ),
    );
    env.cluster
        .eventually("the webhook to see both scans", WAIT, || {
            let failed = run_as(&env, &tenant, "wait", &format!("{repo}:1"));
            let clean = run_as(&env, &tenant, "wait", &format!("{clean}:1"));
            (!failed.status.success() && clean.status.success() && stderr(&clean).is_empty())
                .then_some(())
        });
    // The Failed amd64 manifest denies itself and the index, by any name.
    for image in [
        format!("{repo}@{AMD64}"),
        format!("{repo}@{INDEX}"),
        format!("{repo}:1@{INDEX}"),
        format!("ghcr.io/anyone/multi@{INDEX}"),
    ] {
        let out = run_as(&env, &tenant, "multi", &image);
        assert_denied_by(&env, &out, &image, "multi");
    }
    // The arm64 manifest nobody scanned is unscanned: a warning (onUnscanned), not a pass.
    let out = run_as(&env, &tenant, "arm", &format!("{repo}@{ARM64}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no trusted scan"),
        "{}",
        stderr(&out)
    );
    // The clean tag is pinned to its index, the digest every node can pull, silently.
    let out = env.cluster.apply(
        &deployment("clean", &format!("{clean}:1")),
        &["-n", &env.ns.name, "--as", &tenant],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
    let stored = env.ns.kubectl_ok(&[
        "get",
        "deployment",
        "clean",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(stored.trim(), format!("{clean}:1@{CLEAN_INDEX}"));
    // And the clean index, pinned, is admitted; its arm64 manifest is unscanned.
    let out = run_as(&env, &tenant, "pinned", &format!("{clean}@{CLEAN_INDEX}"));
    assert!(
        out.status.success() && stderr(&out).is_empty(),
        "{}",
        stderr(&out)
    );
}
