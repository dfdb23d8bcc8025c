//! The verdict mirror on a real kube-apiserver: `scangate controller --mirror` (as its
//! ServiceAccount, deploy/rbac) keeps a ValidatingAdmissionPolicy whose parameters are the
//! digests trusted results deny. With the workload webhooks failing open and the webhook
//! process killed, the apiserver itself denies busybox's Failed digest, naming scangate's
//! policy, and admits a Completed digest and an unscanned image; a verdict that turns Failed is
//! in the mirror within seconds and a deleted scan leaves it; an admitted Deployment of a digest
//! that turned Failed can be labelled and scaled down but not changed or woken; a warn-mode
//! namespace gets a warning; an excluded namespace is not touched.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, cluster, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{FAILED, PASSED};

const WAIT: Duration = Duration::from_secs(30);

const BUSYBOX: &str = "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";
const ALPINE: &str = "sha256:451eee8bedcb2f029756dc3e9d73bab0e7943c1ac55cff3a4861c52a0fdd3e98";
const LATER: &str = "sha256:7000000000000000000000000000000000000000000000000000000000000007";
const KEPT: &str = "sha256:6000000000000000000000000000000000000000000000000000000000000006";

/// The mirror of one test: its controller, then its cluster-wide objects, deleted when it
/// ends.
struct Mirror {
    name: String,
    _controller: Controller,
    _objects: common::mirror::Objects,
}

/// An enforced namespace and a controller keeping the mirror of the test's trusted scans for
/// the test's namespaces; the controller may write DeniedDigests in the test's scangate namespace
/// (deploy/rbac grants it in scangate-system).
fn start(cluster: &'static Cluster) -> (Enforced, Mirror) {
    let env = Enforced::start(cluster, "e2e-mirror", &[]);
    common::mirror::grant(cluster, &env.system.name);
    let (key, value) = env.label();
    let name = format!("scangate-e2e-mirror-{value}");
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), &env.ns.name)
        .config(&env.config)
        .args(&[
            "--mirror",
            "--mirror-name",
            &name,
            "--mirror-namespace-label",
            &format!("{key}={value}"),
        ])
        .start();
    let mirror = Mirror {
        name: name.clone(),
        _controller: controller,
        _objects: common::mirror::Objects { cluster, name },
    };
    (env, mirror)
}

/// `kubectl run` of `image` in `namespace`, for real; the output.
fn run(env: &Enforced, namespace: &str, name: &str, image: &str) -> std::process::Output {
    env.cluster
        .kubectl(&["-n", namespace, "run", name, &format!("--image={image}")])
}

/// The keys of the mirror's parameters.
fn mirrored(env: &Enforced, mirror: &Mirror) -> String {
    env.system.kubectl_ok(&[
        "get",
        "denieddigests",
        "-l",
        &format!("scangate.dev/mirror={}", mirror.name),
        "-o",
        "jsonpath={.items[*].spec}",
    ])
}

#[test]
fn the_apiserver_denies_known_bad_digests_while_the_webhook_is_down() {
    let Some(cluster) = cluster() else { return };
    let (mut env, mirror) = start(cluster);
    // A Deployment admitted before its image's verdict turns Failed.
    let kept_image = format!("registry.example/team/kept@{KEPT}");
    let out = env.cluster.apply(
        &common::cluster::deployment("kept", &kept_image),
        &["-n", &env.ns.name],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    env.trusted_scan("kept", "registry.example/team/kept:1", &kept_image, FAILED);
    env.trusted_scan(
        "busybox",
        "busybox:1.32.1",
        &format!("docker.io/library/busybox@{BUSYBOX}"),
        FAILED,
    );
    env.trusted_scan(
        "alpine",
        "alpine:3.10",
        &format!("docker.io/library/alpine@{ALPINE}"),
        PASSED,
    );
    cluster.eventually("the mirror to hold busybox's digest", WAIT, || {
        let data = mirrored(&env, &mirror);
        (data.contains(BUSYBOX) && data.contains(KEPT) && !data.contains(ALPINE)).then_some(())
    });
    // A verdict that turns Failed reaches the mirror's parameters in the apiserver.
    let turned = Instant::now();
    env.trusted_scan(
        "later",
        "registry.example/team/later:1",
        &format!("registry.example/team/later@{LATER}"),
        FAILED,
    );
    cluster.eventually("the new denial to reach the mirror", WAIT, || {
        mirrored(&env, &mirror).contains(LATER).then_some(())
    });
    eprintln!(
        "a new Failed verdict was in the mirror {:?} after its status was written",
        turned.elapsed()
    );

    // The workload webhooks fail open; then the webhook process dies.
    env.fail_open();
    let warn = env.namespace("e2e-mirror-warn");
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        &warn.name,
        "scangate.dev/enforcement=warn",
    ]);
    env.webhook.sigterm();
    let _ = env.webhook.wait();
    // What the apiserver admits now, it admits without the webhook: an unscanned image and
    // the Completed digest.
    cluster.eventually("the workload webhook to fail open", WAIT, || {
        let out = run(
            &env,
            &env.ns.name,
            "unscanned",
            "registry.example/new/app:1",
        );
        out.status.success().then_some(())
    });
    let out = run(
        &env,
        &env.ns.name,
        "clean",
        &format!("docker.io/library/alpine:3.10@{ALPINE}"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Busybox's Failed bytes, under another name, are denied by the apiserver itself.
    let busybox = format!("ghcr.io/anyone/copy@{BUSYBOX}");
    // (The apiserver reads policies, bindings and parameters through its own watches.)
    let denied = cluster.eventually("the apiserver to deny busybox's digest", WAIT, || {
        let out = run(&env, &env.ns.name, "bad", &busybox);
        if out.status.success() {
            // Admitted before the apiserver saw the policy: try again with a new pod.
            env.ns.kubectl_ok(&["delete", "pod", "bad", "--wait=false"]);
            return None;
        }
        Some(stderr(&out))
    });
    for part in [
        format!("ValidatingAdmissionPolicy '{}'", mirror.name),
        format!("{BUSYBOX} failed trusted scan {}/busybox", env.system.name),
    ] {
        assert!(denied.contains(&part), "no {part:?} in {denied}");
    }
    let out = run(
        &env,
        &env.ns.name,
        "later",
        &format!("registry.example/team/later@{LATER}"),
    );
    assert!(!out.status.success(), "admitted: {}", stderr(&out));
    // In a Deployment's template, as an init container.
    let deployment = common::cluster::deployment("web", "registry.example/new/app:1").replace(
        "      containers:",
        &format!(
            "      initContainers: [{{name: setup, image: \"{busybox}\"}}]\n      containers:"
        ),
    );
    let out = env.cluster.apply(&deployment, &["-n", &env.ns.name]);
    assert!(!out.status.success(), "the Deployment was admitted");
    assert!(stderr(&out).contains(&mirror.name), "{}", stderr(&out));
    // What runs stays available: a label, a scale-down of the admitted Deployment are
    // admitted; a change to its pod template is decided like a new workload.
    env.ns
        .kubectl_ok(&["label", "deployment", "kept", "team=a"]);
    env.ns.kubectl_ok(&[
        "patch",
        "deployment",
        "kept",
        "-p",
        r#"{"spec":{"replicas":0}}"#,
    ]);
    let out = env.ns.kubectl(&["set", "env", "deployment/kept", "A=B"]);
    assert!(!out.status.success(), "set env was admitted");
    assert!(stderr(&out).contains(&mirror.name), "{}", stderr(&out));
    // Woken from zero replicas: decided too.
    let out = env.ns.kubectl(&[
        "patch",
        "deployment",
        "kept",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    assert!(!out.status.success(), "woken from zero was admitted");
    // A warn-mode namespace gets a warning from the mirror, not a denial.
    let out = run(&env, &warn.name, "bad", &busybox);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{BUSYBOX} failed trusted scan")),
        "{}",
        stderr(&out)
    );
    // A namespace the mirror does not select is not touched.
    let other = cluster.namespace("e2e-mirror-other", &[]);
    let out = run(&env, &other.name, "bad", &busybox);
    assert!(out.status.success(), "{}", stderr(&out));

    // A deleted scan leaves the mirror.
    env.system.kubectl_ok(&["delete", "imagescan", "busybox"]);
    cluster.eventually("the deleted scan to leave the mirror", WAIT, || {
        let out = run(&env, &env.ns.name, "released", &busybox);
        out.status.success().then_some(())
    });
    assert!(!mirrored(&env, &mirror).contains(BUSYBOX));
}
