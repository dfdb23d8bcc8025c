//! Digest pinning on a real kube-apiserver: with `pinDigests` on (or a namespace labelled
//! `scangate.dev/pin-digests=true`), an admitted Deployment's stored pod template names the
//! digest its image's trusted result resolved; with it off (or the label `false`), nothing is
//! mutated.

mod common;

use std::time::Duration;

use common::cluster::{TestNamespace, cluster, deployment, stderr};
use common::enforced::Enforced;
use common::fixtures::PASSED;

const WAIT: Duration = Duration::from_secs(30);

const IMAGE: &str = "registry.example/team/app:1.0";
const DIGEST: &str = "sha256:5f0b2a6f1c1e4a0c3f8d1f9e4b8e2a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";

fn pinned() -> String {
    format!("{IMAGE}@{DIGEST}")
}

/// The trusted result of IMAGE: Completed, resolved to DIGEST.
fn trusted(env: &Enforced) {
    env.trusted_scan(
        "app",
        IMAGE,
        &format!("registry.example/team/app@{DIGEST}"),
        PASSED,
    );
}

/// Waits until a server-side dry run of a Deployment in `ns` is admitted and `pins` says
/// whether it was pinned; returns kubectl's stderr (the warnings).
fn wait_dry_run(ns: &TestNamespace, pins: bool) -> String {
    let cluster = cluster().expect("cluster");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = cluster.apply(
            &deployment("probe", IMAGE),
            &["-n", &ns.name, "--dry-run=server"],
        );
        let warnings = stderr(&out);
        // Unscanned images are warned about (onUnscanned): the webhook has not seen the scan.
        let passed = !warnings.contains("has no trusted scan");
        if out.status.success() && passed && warnings.contains("pinned image") == pins {
            return warnings;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dry run in {} {} within {WAIT:?}; the last said: {warnings}",
            ns.name,
            if pins {
                "pinned"
            } else {
                "left the image as it was"
            },
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Applies Deployment `name` of IMAGE in `ns` and returns its stored pod template's image.
fn stored_image(ns: &TestNamespace, name: &str) -> (String, String) {
    let out = ns.apply(&deployment(name, IMAGE));
    assert!(out.status.success(), "{}", stderr(&out));
    let image = ns.kubectl_ok(&[
        "get",
        "deployment",
        name,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    (image, stderr(&out))
}

#[test]
fn pinning_on_stores_the_digest_and_off_mutates_nothing() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::with_config(cluster, "pin", &[], "pinDigests: true");
    trusted(&env);

    let warnings = wait_dry_run(&env.ns, true);
    assert!(
        warnings.contains(&format!(
            "container \"app\": pinned image {IMAGE} to {}",
            pinned()
        )),
        "{warnings}"
    );
    let (image, warnings) = stored_image(&env.ns, "pinned");
    assert_eq!(image, pinned(), "{warnings}");
    assert!(warnings.contains("pinned image"), "{warnings}");

    // An admin's label turns it off in one namespace while the config has it on.
    let off = env.namespace("pin-off");
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        &off.name,
        "scangate.dev/pin-digests=false",
    ]);
    wait_dry_run(&off, false);
    let (image, _) = stored_image(&off, "unpinned");
    assert_eq!(image, IMAGE);

    // Off in the config: nothing is mutated; a namespace labelled `true` still pins.
    env.set_config("pinDigests: false");
    wait_dry_run(&env.ns, false);
    let (image, warnings) = stored_image(&env.ns, "unpinned");
    assert_eq!(image, IMAGE);
    assert!(!warnings.contains("pinned"), "{warnings}");
    let on = env.namespace("pin-on");
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        &on.name,
        "scangate.dev/pin-digests=true",
    ]);
    wait_dry_run(&on, true);
    let (image, _) = stored_image(&on, "pinned");
    assert_eq!(image, pinned());
}

#[test]
fn a_tenant_cannot_turn_pinning_off() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::with_config(cluster, "pin-tenant", &[], "pinDigests: true");
    let tenant = env.tenant();
    let out = env.kubectl_as(
        &tenant,
        &[
            "label",
            "namespace",
            &env.ns.name,
            "scangate.dev/pin-digests=false",
        ],
        None,
    );
    assert!(!out.status.success(), "a tenant labelled its namespace");
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
}
