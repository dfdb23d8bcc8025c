//! Scans on first sight on a real kube-apiserver: admission of an image nobody scanned creates
//! one ImageScan of it in scangate's namespace (labelled `scangate.dev/first-sight=true`),
//! however many requests ask at once; a flood of distinct random images creates at most the
//! rate limit; a dry run creates none (dry runs have no side effects). The requests themselves
//! get `onUnscanned` (a warning here). With no `firstSight.policy`, the controller judges a
//! first-sight scan by scangate's built-in default policy: a report with critical CVEs makes
//! it Failed, and the image is then denied.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, cluster, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{GRYPE_BUSYBOX, grype_template};
use common::webhook::{client, http_get};
use futures::StreamExt;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const PER_MINUTE: u64 = 10;

/// An Enforced namespace whose webhook creates first-sight scans with template `trivy`.
fn first_sight(cluster: &'static Cluster, prefix: &str) -> Enforced {
    first_sight_with(
        cluster,
        prefix,
        &format!("firstSight: {{template: trivy, perMinute: {PER_MINUTE}}}"),
    )
}

/// An Enforced namespace whose webhook creates first-sight scans as `config` (admission config
/// lines) says, turned on after the fixture's probe, so the probe's image is not one of them;
/// with the Role that lets the webhook's ServiceAccount create ImageScans in the test's
/// scangate namespace (deploy/rbac grants it in scangate-system).
fn first_sight_with(cluster: &'static Cluster, prefix: &str, config: &str) -> Enforced {
    let env = Enforced::start(cluster, prefix, &[]);
    let system = &env.system.name;
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: first-sight, namespace: {system}}}\n\
         rules: [{{apiGroups: [scanning.scangate.dev], resources: [imagescans], verbs: [create]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: first-sight, namespace: {system}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: first-sight}}\n\
         subjects: [{{kind: ServiceAccount, name: scangate-webhook, namespace: scangate-system}}]\n"
    );
    let out = cluster.apply(&rbac, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    env.set_config(config);
    env.cluster
        .eventually("the webhook to reload its config", WAIT, || {
            let (_, text) = http_get(&env.webhook.admin, "/metrics")?;
            text.contains("scangate_config_reloads_total{result=\"ok\"}")
                .then_some(())
        });
    env
}

/// The first-sight scans in the test's scangate namespace: (name, image).
fn scans(env: &Enforced) -> Vec<(String, String)> {
    let out = env.system.kubectl_ok(&[
        "get",
        "imagescans",
        "-l",
        "scangate.dev/first-sight=true",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.registry.image}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, i)| (n.to_string(), i.to_string()))
        .collect()
}

/// A first-sight counter from the webhook's metrics.
fn counter(env: &Enforced, outcome: &str) -> u64 {
    let (_, text) = http_get(&env.webhook.admin, "/metrics").expect("metrics");
    let prefix = format!("scangate_first_sight_requests_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until every queued request was created, found existing, or failed.
fn wait_drained(env: &Enforced) -> u64 {
    env.cluster
        .eventually("the first-sight queue to drain", WAIT, || {
            let queued = counter(env, "queued");
            let done = counter(env, "created") + counter(env, "exists") + counter(env, "failed");
            (queued > 0 && queued == done).then_some(queued)
        })
}

fn random_tag() -> String {
    common::registry::random_bytes(6)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn many_pods_of_an_unscanned_image_create_one_scan() {
    let Some(cluster) = cluster() else { return };
    let env = first_sight(cluster, "first-sight");
    let image = format!("registry.example/unscanned/app:{}", random_tag());
    // A dry run requests nothing.
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
    assert_eq!(counter(&env, "queued"), 0);
    let ns = env.ns.name.clone();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let (ns, image) = (ns.clone(), image.clone());
            std::thread::spawn(move || {
                cluster.kubectl(&[
                    "-n",
                    &ns,
                    "run",
                    &format!("pod-{i}"),
                    &format!("--image={image}"),
                ])
            })
        })
        .collect();
    for handle in handles {
        // Admitted with a warning: unscanned, or pending once the first-sight scan is indexed.
        let out = handle.join().expect("kubectl thread");
        let warning = stderr(&out);
        assert!(out.status.success(), "{warning}");
        assert!(
            warning.contains("has no trusted scan") || warning.contains("is not scanned yet"),
            "{warning}"
        );
    }
    env.cluster.eventually("the first-sight scan", WAIT, || {
        (!scans(&env).is_empty()).then_some(())
    });
    wait_drained(&env);
    let found = scans(&env);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, image);
    assert!(found[0].0.starts_with("first-sight-app-"), "{found:?}");
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
    assert_eq!(scans(&env).len(), 1);
}

/// A Pod review of `image`, as the apiserver sends it.
fn review(namespace: &str, uid: usize, image: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("00000000-0000-0000-0000-{uid:012}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p", "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": namespace},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_images_creates_at_most_the_rate_limit() {
    let Some(cluster) = cluster() else { return };
    let env = tokio::task::block_in_place(|| first_sight(cluster, "first-flood"));
    let http = client(&[&env.dir.path().join("ca.crt")]);
    let url = format!("{}/validate/workloads", env.webhook.url);
    let started = Instant::now();
    let requests = futures::stream::iter(0..1000).map(|i| {
        let body = review(
            &env.ns.name,
            i,
            &format!("registry.example/flood/app-{i}:{}", random_tag()),
        );
        let (http, url) = (http.clone(), url.clone());
        async move {
            let answer: Value = http
                .post(&url)
                .json(&body)
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("an AdmissionReview");
            answer
        }
    });
    let answers: Vec<Value> = requests.buffer_unordered(16).collect().await;
    let elapsed = started.elapsed();
    for answer in &answers {
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        let warnings = answer["response"]["warnings"].to_string();
        assert!(warnings.contains("has no trusted scan"), "{answer}");
    }
    let queued = tokio::task::block_in_place(|| wait_drained(&env));
    let created = tokio::task::block_in_place(|| scans(&env)).len() as u64;
    // The bucket starts full and refills PER_MINUTE a minute while the flood lasts.
    let limit = PER_MINUTE + (PER_MINUTE * elapsed.as_secs()).div_ceil(60);
    assert!(created >= 1, "no scan was created");
    assert!(
        created <= limit,
        "{created} scans for a limit of {limit} ({PER_MINUTE}/min over {elapsed:?})"
    );
    assert_eq!(created, queued);
    assert!(counter(&env, "limited") >= 1000 - limit);
}

#[test]
fn a_first_sight_scan_without_a_policy_is_judged_by_the_default_policy_and_denies() {
    let Some(cluster) = cluster() else { return };
    // No firstSight.policy and no defaultScanPolicy; the admin pushes the report, as a CI
    // pipeline would, in the place of the scan Job's pod (there is no container runtime).
    let env = first_sight_with(
        cluster,
        "first-judged",
        &format!(
            "firstSight: {{template: grype, perMinute: {PER_MINUTE}}}\n\
             trustedReporterGroups: [system:masters]"
        ),
    );
    let system = env.system.name.clone();
    let out = env.system.apply(&grype_template(&system).to_string());
    assert!(out.status.success(), "{}", stderr(&out));
    // Declared after the environment: stopped before its namespaces go.
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), &system)
        .config(&env.config)
        .start();

    let repository = format!("registry.example/first-judged/app-{}", random_tag());
    let image = format!("{repository}:1");
    let out = env
        .ns
        .kubectl(&["run", "first", &format!("--image={image}")]);
    assert!(
        out.status.success() && stderr(&out).contains("has no trusted scan"),
        "{}",
        stderr(&out)
    );
    let (scan, _) = env.cluster.eventually("the first-sight scan", WAIT, || {
        scans(&env).into_iter().find(|(_, i)| *i == image)
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
