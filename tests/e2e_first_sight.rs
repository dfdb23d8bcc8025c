//! Scans on first sight on a real kube-apiserver, from what really runs: the webhook writes
//! nothing (a review anyone can forge to its port costs scangate nothing beyond the answer);
//! the controller scans an image that a Running pod (kwok plays the kubelet) runs with no
//! trusted result, once per image, within a budget per namespace and in its own Job slots;
//! `scangate scan IMAGE` asks for a scan as its caller, whose RBAC decides; a first-sight scan
//! no running pod uses for `firstSight.unusedAfter` is deleted. With no
//! `firstSight.policy`, a first-sight scan is judged by scangate's built-in default policy: a
//! report with critical CVEs makes it Failed, and the image is then denied.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::cluster::{Cluster, TestNamespace, cluster, deployment, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{ALPINE, FAILED, GRYPE_BUSYBOX, PASSED, grype_template};
use common::webhook::client;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The user the built-in ReplicaSet controller acts as.
const REPLICASET_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";

/// An Enforced namespace with first-sight scans on as `config` (admission config lines) says,
/// turned on after the fixture's probe; with the Role that lets the controller's
/// ServiceAccount create and delete ImageScans in the test's scangate namespace (deploy/rbac
/// grants it in scangate-system).
fn first_sight(cluster: &'static Cluster, prefix: &str, config: &str) -> Enforced {
    let env = Enforced::start(cluster, prefix, &[]);
    grant(
        &env,
        &env.system.name,
        "first-sight",
        "{apiGroups: [scanning.scangate.dev], resources: [imagescans], verbs: [create, delete]}",
        "scangate-controller",
    );
    env.set_config(config);
    env
}

/// Grants ServiceAccount `scangate-system/<account>` the rule `rule` in `namespace`.
fn grant(env: &Enforced, namespace: &str, name: &str, rule: &str, account: &str) {
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         rules: [{rule}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {name}}}\n\
         subjects: [{{kind: ServiceAccount, name: {account}, namespace: scangate-system}}]\n"
    );
    let out = env.cluster.apply(&rbac, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A controller of `namespace` as scangate's controller ServiceAccount, with the test's
/// admission config, with `args` added.
fn controller(env: &Enforced, namespace: &str, args: &[&str]) -> Controller {
    Controller::of(env.cluster.kubeconfig_as("scangate-controller"), namespace)
        .config(&env.config)
        .args(args)
        .start()
}

/// The first-sight scans in the test's scangate namespace: (name, image, namespace made for).
fn scans(env: &Enforced) -> Vec<(String, String, String)> {
    let out = env.system.kubectl_ok(&[
        "get",
        "imagescans",
        "-l",
        "scangate.dev/first-sight=true",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.registry.image} {.metadata.labels.scangate\\.dev/first-sight-namespace}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            Some((
                parts.next()?.to_string(),
                parts.next()?.to_string(),
                parts.next().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Every ImageScan in `ns`, by name.
fn all_scans(ns: &TestNamespace) -> Vec<String> {
    ns.kubectl_ok(&[
        "get",
        "imagescans",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// The Events in `ns` that scangate wrote or that say VerdictTurned: `reason kind/name by`.
fn scangate_events(env: &Enforced, ns: &str) -> Vec<String> {
    let out = env.cluster.kubectl_ok(&[
        "-n",
        ns,
        "get",
        "events.events.k8s.io",
        "-o",
        "jsonpath={range .items[*]}{.reason} {.regarding.kind}/{.regarding.name} {.reportingController} {.note}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter(|l| l.contains("scangate") || l.starts_with("VerdictTurned"))
        .map(str::to_string)
        .collect()
}

fn random_tag() -> String {
    common::registry::random_bytes(6)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A one-pod Deployment `name` whose pod runs one container per image.
fn many_images(name: &str, images: &[String]) -> String {
    let containers: Vec<String> = images
        .iter()
        .enumerate()
        .map(|(i, image)| format!("{{name: c{i}, image: \"{image}\"}}"))
        .collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  \
         selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    \
         spec:\n      containers: [{}]\n",
        containers.join(", ")
    )
}

/// Waits until a pod labelled `app=<app>` in `ns` is Running.
fn wait_running(cluster: &Cluster, ns: &TestNamespace, app: &str) {
    cluster.eventually(&format!("a Running pod of {app}"), WAIT, || {
        let phases = ns.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            &format!("app={app}"),
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        phases
            .split_whitespace()
            .any(|p| p == "Running")
            .then_some(())
    });
}

/// A Pod review as the apiserver would send it for the ReplicaSet controller creating a pod of
/// ReplicaSet `owner` (`name`, `uid`) in `namespace`, running `image`.
fn forged_review(namespace: &str, uid: usize, owner: (&str, &str), image: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("00000000-0000-0000-0000-{uid:012}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "", "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": REPLICASET_CONTROLLER, "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": format!("{}-", owner.0), "namespace": namespace,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner.0, "uid": owner.1, "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_reviews_leave_no_event_no_scan_and_no_object() {
    let Some(cluster) = cluster() else { return };
    let env = tokio::task::block_in_place(|| {
        let env = first_sight(cluster, "first-forged", "firstSight: {template: grype}");
        // Alpine's trusted result is Failed: a review claiming the ReplicaSet controller gets
        // the controller's pass (admitted with a warning), which used to write an Event.
        env.trusted_scan("alpine", "alpine:3.10", ALPINE, FAILED);
        env
    });
    // A real ReplicaSet in another namespace, as the attacker would name it.
    let other = env.namespace("first-forged-victim");
    let out = other.apply(&deployment("web", "registry.example/victim/web:1"));
    assert!(out.status.success(), "{}", stderr(&out));
    let rs = tokio::task::block_in_place(|| {
        env.cluster.eventually("the victim's ReplicaSet", WAIT, || {
            let out = other.kubectl_ok(&[
                "get",
                "replicaset",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[0].metadata.name}/{.items[0].metadata.uid}",
            ]);
            out.split_once('/')
                .filter(|(_, uid)| !uid.is_empty())
                .map(|(n, u)| (n.to_string(), u.to_string()))
        })
    });
    // Even if the webhook's identity could write Events and ImageScans, it must not.
    tokio::task::block_in_place(|| {
        grant(
            &env,
            &other.name,
            "forged-events",
            "{apiGroups: [events.k8s.io, \"\"], resources: [events], verbs: [create, patch]}",
            "scangate-webhook",
        );
        grant(
            &env,
            &env.system.name,
            "forged-scans",
            "{apiGroups: [scanning.scangate.dev], resources: [imagescans], verbs: [create]}",
            "scangate-webhook",
        );
    });
    let before = tokio::task::block_in_place(|| all_scans(&env.system));
    let events_before = tokio::task::block_in_place(|| scangate_events(&env, &other.name));

    // Straight to the webhook's port, with no Kubernetes credentials at all.
    let http = client(&[&env.dir.path().join("ca.crt")]);
    let url = format!("{}/validate/workloads", env.webhook.url);
    let mut images = vec!["alpine:3.10".to_string()];
    images.extend((0..50).map(|i| format!("registry.example/forged/app-{i}:{}", random_tag())));
    for (i, image) in images.iter().enumerate() {
        let body = forged_review(&other.name, i, (&rs.0, &rs.1), image);
        let answer: Value = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("an AdmissionReview");
        assert_eq!(
            answer["response"]["uid"], body["request"]["uid"],
            "{answer}"
        );
    }
    // The old webhook wrote within milliseconds; give a slow apiserver time to show anything.
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| {
        assert_eq!(all_scans(&env.system), before, "an ImageScan appeared");
        assert!(scans(&env).is_empty(), "{:?}", scans(&env));
        assert_eq!(
            scangate_events(&env, &other.name),
            events_before,
            "an Event appeared"
        );
        let log = env.webhook.logs();
        assert!(!log.contains("created a scan on first sight"), "{log}");
    });
}

#[test]
fn a_running_pod_of_an_unscanned_image_gets_one_first_sight_scan_from_the_controller() {
    let Some(cluster) = cluster() else { return };
    let env = first_sight(
        cluster,
        "first-running",
        "firstSight: {template: trivy, unusedAfter: 5s}",
    );
    let _controller = controller(&env, &env.ns.name, &[]);
    let image = format!("registry.example/unscanned/app:{}", random_tag());
    // A dry run, and a review that never gets stored, create nothing.
    let out = env.ns.kubectl(&[
        "run",
        "dry",
        &format!("--image={image}"),
        "--dry-run=server",
    ]);
    assert!(
        stderr(&out).contains("has no trusted scan"),
        "{}",
        stderr(&out)
    );
    // Three pods of the image, Running: one scan.
    let out = env
        .ns
        .apply(&deployment("web", &image).replace("replicas: 1", "replicas: 3"));
    assert!(out.status.success(), "{}", stderr(&out));
    wait_running(cluster, &env.ns, "web");
    let found = env.cluster.eventually("the first-sight scan", WAIT, || {
        let found = scans(&env);
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, image);
    assert_eq!(found[0].2, env.ns.name);
    assert!(found[0].0.starts_with("first-sight-app-"), "{found:?}");
    // Still one a while later (the controller rechecks at every pod change).
    env.ns
        .kubectl_ok(&["scale", "deployment", "web", "--replicas=4"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(scans(&env).len(), 1, "{:?}", scans(&env));
    // The scan is pending now: admission says so instead of "no trusted scan".
    env.cluster
        .eventually("admission to see the pending scan", WAIT, || {
            let out = env.ns.kubectl(&[
                "run",
                "later",
                &format!("--image={image}"),
                "--dry-run=server",
            ]);
            stderr(&out).contains("is not scanned yet").then_some(())
        });
    // Used while the pods run (far past unusedAfter); once none runs the image for 5 s, the
    // controller deletes the scan (it rechecks unused scans every minute).
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(scans(&env).len(), 1, "deleted while in use");
    env.ns
        .kubectl_ok(&["scale", "deployment", "web", "--replicas=0"]);
    env.cluster.eventually(
        "the unused first-sight scan to be deleted",
        Duration::from_secs(150),
        || scans(&env).is_empty().then_some(()),
    );
}

#[test]
fn a_controllers_pod_that_runs_a_turned_image_gets_the_event_from_the_controller() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "first-turned", &[]);
    env.trusted_scan("alpine", "alpine:3.10", ALPINE, PASSED);
    let tenant = env.tenant();
    let controller = controller(&env, &env.ns.name, &[]);
    env.cluster.eventually("alpine to be admitted", WAIT, || {
        env.kubectl_as(
            &tenant,
            &["-n", &env.ns.name, "apply", "-f", "-"],
            Some(&deployment("web", "alpine:3.10")),
        )
        .status
        .success()
        .then_some(())
    });
    wait_running(cluster, &env.ns, "web");
    // New CVEs: alpine's trusted result turns Failed while the pod runs.
    let out = env.write_status(&env.system.name, "alpine", FAILED);
    assert!(out.status.success(), "{}", stderr(&out));
    let event = env.cluster.eventually("the VerdictTurned event", WAIT, || {
        scangate_events(&env, &env.ns.name)
            .into_iter()
            .find(|l| l.starts_with("VerdictTurned ReplicaSet/web-"))
    });
    assert!(event.contains("scangate-controller"), "{event}");
    assert!(
        event.contains("failed trusted scan"),
        "{event}\n{}",
        controller.logs()
    );
    // One Event per owner, image and result: a restart of the pod adds none.
    std::thread::sleep(Duration::from_secs(3));
    let turned = scangate_events(&env, &env.ns.name)
        .into_iter()
        .filter(|l| l.starts_with("VerdictTurned"))
        .count();
    assert_eq!(turned, 1);
}

#[test]
fn a_flood_from_one_namespace_leaves_the_others_and_the_admins_scans_running() {
    let Some(cluster) = cluster() else { return };
    // 30 unscanned images running in one namespace stand for the flood (a budget of 3 makes
    // the point that 1,000 would); the quiet namespace and the admin keep theirs.
    let env = first_sight(
        cluster,
        "first-flood",
        "firstSight: {template: grype, perMinute: 600, perNamespace: 3, maxRunning: 1}",
    );
    let system = env.system.name.clone();
    let out = env.system.apply(&grype_template(&system).to_string());
    assert!(out.status.success(), "{}", stderr(&out));
    let quiet = env.namespace("first-quiet");
    // The system's controller runs the Jobs (one shared slot); one controller per workload
    // namespace watches its pods.
    let _system = controller(&env, &system, &["--max-running-jobs", "1"]);
    let _flood = controller(&env, &env.ns.name, &[]);
    let _quiet = controller(&env, &quiet.name, &[]);

    let flood: Vec<String> = (0..30)
        .map(|i| format!("registry.example/flood/app-{i}:{}", random_tag()))
        .collect();
    let out = env.ns.apply(&many_images("flood", &flood));
    assert!(out.status.success(), "{}", stderr(&out));
    wait_running(cluster, &env.ns, "flood");
    let quiet_image = format!("registry.example/quiet/app:{}", random_tag());
    let out = quiet.apply(&deployment("quiet", &quiet_image));
    assert!(out.status.success(), "{}", stderr(&out));
    wait_running(cluster, &quiet, "quiet");

    let for_namespace = |ns: &str| -> Vec<(String, String, String)> {
        scans(&env).into_iter().filter(|s| s.2 == ns).collect()
    };
    env.cluster
        .eventually("the quiet namespace's first-sight scan", WAIT, || {
            let found = for_namespace(&quiet.name);
            (found.len() == 1 && found[0].1 == quiet_image).then_some(())
        });
    env.cluster
        .eventually("the flood's budget of first-sight scans", WAIT, || {
            (for_namespace(&env.ns.name).len() == 3).then_some(())
        });
    // The admin's own scan, meanwhile, gets a Job at once: the first-sight Jobs run in their
    // own slot (kwok keeps scan Jobs' pods Running, so that slot stays taken).
    let admin = "apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {name: admin-rescan}\n\
         spec: {registry: {image: \"registry.example/admin/app:1\"}, scanTemplate: grype}\n";
    let out = env.system.apply(admin);
    assert!(out.status.success(), "{}", stderr(&out));
    let job_of = |scan: &str| -> Option<String> {
        let names = env.system.kubectl_ok(&[
            "get",
            "jobs",
            "-l",
            &format!("scanning.scangate.dev/scan={scan}"),
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        names.split_whitespace().next().map(str::to_string)
    };
    env.cluster
        .eventually("the admin's scan Job", WAIT, || job_of("admin-rescan"));
    let first_sight_jobs = || {
        env.system
            .kubectl_ok(&[
                "get",
                "jobs",
                "-l",
                "scangate.dev/first-sight=true",
                "-o",
                "name",
            ])
            .lines()
            .count()
    };
    env.cluster.eventually("a first-sight scan Job", WAIT, || {
        (first_sight_jobs() == 1).then_some(())
    });
    // Still within budget and pool a while later.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(for_namespace(&env.ns.name).len(), 3);
    assert_eq!(for_namespace(&quiet.name).len(), 1);
    assert_eq!(first_sight_jobs(), 1);
    let queued = env.system.kubectl_ok(&[
        "get",
        "imagescans",
        "-l",
        "scangate.dev/first-sight=true",
        "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Scanning\")].reason}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        queued.lines().filter(|r| *r == "Queued").count(),
        3,
        "{queued}"
    );
}

/// Runs `scangate ARGS` with `kubeconfig`.
fn scangate(kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("scangate")
}

#[test]
fn scangate_scan_creates_the_scan_as_its_caller() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "first-asked", &[]);
    // A tenant: a ServiceAccount of its namespace with the built-in edit role there.
    let kubeconfig = cluster.kubeconfig_as_in(&env.ns.name, "dev");
    let bind = |namespace: &str, role: &str| {
        let yaml = format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: dev-{role}, namespace: {namespace}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n\
             subjects: [{{kind: ServiceAccount, name: dev, namespace: {}}}]\n",
            env.ns.name
        );
        let out = cluster.apply(&yaml, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    bind(&env.ns.name, "edit");
    let image = format!("registry.example/asked/app:{}", random_tag());
    let out = scangate(&kubeconfig, &["scan", "-n", &env.system.name, &image]);
    assert!(!out.status.success(), "a tenant created a trusted scan");
    assert!(
        stderr(&out).contains("you may not create imagescans"),
        "{}",
        stderr(&out)
    );
    assert!(all_scans(&env.system).is_empty());

    // The admin grants the shipped role in scangate's namespace: the scan is created.
    bind(&env.system.name, "scangate-scan-requester");
    let out = env.cluster.eventually("the scan to be created", WAIT, || {
        let out = scangate(&kubeconfig, &["scan", "-n", &env.system.name, &image]);
        out.status.success().then_some(out)
    });
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("created"), "{said}");
    let created = all_scans(&env.system);
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].starts_with("first-sight-app-"), "{created:?}");
    let spec = env.system.kubectl_ok(&[
        "get",
        "imagescan",
        &created[0],
        "-o",
        "jsonpath={.spec.registry.image}",
    ]);
    assert_eq!(spec, image);
    // Asking again meets the same scan.
    let again = scangate(&kubeconfig, &["scan", "-n", &env.system.name, &image]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

#[test]
fn a_first_sight_scan_without_a_policy_is_judged_by_the_default_policy_and_denies() {
    let Some(cluster) = cluster() else { return };
    // No firstSight.policy and no defaultScanPolicy; the admin pushes the report, as a CI
    // pipeline would, in the place of the scan Job's pod (there is no container runtime).
    let env = first_sight(
        cluster,
        "first-judged",
        "firstSight: {template: grype}\ntrustedReporterGroups: [system:masters]",
    );
    let system = env.system.name.clone();
    let out = env.system.apply(&grype_template(&system).to_string());
    assert!(out.status.success(), "{}", stderr(&out));
    // Declared after the environment: stopped before its namespaces go.
    let controller = controller(&env, &system, &[]);
    let _pods = self::controller(&env, &env.ns.name, &[]);

    let repository = format!("registry.example/first-judged/app-{}", random_tag());
    let image = format!("{repository}:1");
    let out = env.ns.kubectl(&[
        "run",
        "first",
        &format!("--image={image}"),
        "-l",
        "app=first",
    ]);
    assert!(
        out.status.success() && stderr(&out).contains("has no trusted scan"),
        "{}",
        stderr(&out)
    );
    let (scan, _, _) = env.cluster.eventually("the first-sight scan", WAIT, || {
        scans(&env).into_iter().find(|(_, i, _)| *i == image)
    });
    let job = env.cluster.eventually("its scan Job", WAIT, || {
        let names = env.system.kubectl_ok(&[
            "get",
            "jobs",
            "-l",
            &format!("scanning.scangate.dev/scan={scan}"),
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        names.split_whitespace().next().map(str::to_string)
    });

    // The scanner's report of the image: busybox's 15 CVEs, critical ones among them.
    let digest = format!("sha256:{}", "5e".repeat(32));
    let mut report: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GRYPE_BUSYBOX),
        )
        .expect("fixture"),
    )
    .expect("fixture JSON");
    report["source"]["target"]["userInput"] = json!(image);
    report["source"]["target"]["tags"] = json!([image]);
    report["source"]["target"]["repoDigests"] = json!([format!("{repository}@{digest}")]);
    report["source"]["target"]["manifestDigest"] = json!(digest);
    cluster.push_report(&format!("{system}/{scan}"), &report);
    env.system.complete_job(&job);

    let status = env.cluster.eventually("the scan to be Failed", WAIT, || {
        let text = env
            .system
            .kubectl_ok(&["get", "imagescan", &scan, "-o", "json"]);
        serde_json::from_str::<Value>(&text)
            .ok()
            .map(|s| s["status"].clone())
            .filter(|s| s["phase"] == "Failed")
    });
    assert_eq!(
        status["policy"],
        json!({"name": "scangate/default.rego", "source": "BuiltIn"}),
        "{status}\n{}",
        controller.logs()
    );
    let judged = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PolicySucceeded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(judged["reason"], "EvaluationFailed", "{status}");
    assert_eq!(status["violations"][0]["severity"], "critical", "{status}");

    // The tenant's next pod of the image is denied in the enforced namespace, by tag and by
    // digest, naming the trusted scan.
    for (name, reference) in [
        ("again", image.clone()),
        ("pinned", format!("{image}@{digest}")),
    ] {
        let denied = env
            .cluster
            .eventually("the webhook to deny the image", WAIT, || {
                let out = env
                    .ns
                    .kubectl(&["run", name, &format!("--image={reference}")]);
                (!out.status.success()).then(|| stderr(&out))
            });
        assert!(denied.contains("failed trusted scan"), "{denied}");
        assert!(denied.contains(&scan), "{denied}");
    }
}
