//! Digest pinning on a real kube-apiserver: in enforced namespaces by default (`pinDigests`
//! unset), in every namespace with `pinDigests: true` or the label
//! `scangate.dev/pin-digests=true`, an admitted Deployment's stored pod template names the
//! digest that was judged; in warn-mode namespaces by default, with `pinDigests: false` or the
//! label `false`, nothing is mutated.

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
/// whether its image came back pinned; returns kubectl's stderr (the warnings).
fn wait_dry_run(ns: &TestNamespace, pins: bool) -> String {
    let cluster = cluster().expect("cluster");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = cluster.apply(
            &deployment("probe", IMAGE),
            &[
                "-n",
                &ns.name,
                "--dry-run=server",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        );
        let warnings = stderr(&out);
        let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // Unscanned images are warned about (onUnscanned): the webhook has not seen the scan.
        let passed = !warnings.contains("has no trusted scan");
        if out.status.success() && passed && (image == pinned()) == pins {
            return warnings;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dry run in {} {} within {WAIT:?}; the last gave {image:?} and said: {warnings}",
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

/// Applies Deployment `name` of IMAGE in `ns` and returns its stored pod template's image and
/// kubectl's stderr.
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

/// A namespace of `env` labelled `label`.
fn labelled(env: &Enforced, prefix: &str, label: &str) -> TestNamespace {
    let ns = env.namespace(prefix);
    env.cluster
        .kubectl_ok(&["label", "namespace", &ns.name, label]);
    ns
}

#[test]
fn enforced_namespaces_pin_by_default_and_admins_choose_elsewhere() {
    let Some(cluster) = cluster() else { return };
    // No `pinDigests`: the default.
    let env = Enforced::start(cluster, "pin", &[]);
    trusted(&env);

    // Enforced: pinned, silently (a pin is no problem to warn about).
    let warnings = wait_dry_run(&env.ns, true);
    assert!(!warnings.contains("Warning"), "{warnings}");
    let (image, warnings) = stored_image(&env.ns, "pinned");
    assert_eq!(image, pinned(), "{warnings}");
    assert!(!warnings.contains("Warning"), "{warnings}");
    // A later update that keeps the (pinned) image is left as it is.
    let out = env.ns.kubectl(&["set", "env", "deployment/pinned", "A=1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (image, _) = stored_image(&env.ns, "pinned");
    assert_eq!(image, pinned());

    // A warn-mode namespace is not pinned by default; an admin's label turns pinning off in
    // an enforced one.
    let warn = labelled(&env, "pin-warn", "scangate.dev/enforcement=warn");
    wait_dry_run(&warn, false);
    let (image, _) = stored_image(&warn, "unpinned");
    assert_eq!(image, IMAGE);
    let off = labelled(&env, "pin-off", "scangate.dev/pin-digests=false");
    wait_dry_run(&off, false);
    let (image, _) = stored_image(&off, "unpinned");
    assert_eq!(image, IMAGE);

    // `pinDigests: true`: every namespace, the warn-mode one too.
    env.set_config("pinDigests: true");
    wait_dry_run(&warn, true);
    // `pinDigests: false`: none, but a namespace labelled `true`.
    env.set_config("pinDigests: false");
    wait_dry_run(&env.ns, false);
    let (image, warnings) = stored_image(&env.ns, "unpinned");
    assert_eq!(image, IMAGE, "{warnings}");
    let on = labelled(&env, "pin-on", "scangate.dev/pin-digests=true");
    wait_dry_run(&on, true);
    let (image, _) = stored_image(&on, "pinned");
    assert_eq!(image, pinned());
}

#[test]
fn a_tenant_cannot_turn_pinning_off() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "pin-tenant", &[]);
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
