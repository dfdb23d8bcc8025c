//! The controller resolves an ImageScan's tag at a real registry (the CNCF distribution
//! registry with TLS and htpasswd, tests/common/registry.rs) before starting its scan Job, with
//! the scan's imagePullSecret, and scans exactly that digest; `status.resolved` records it.
//! After a new push to the tag, a rescan records the new digest and a real webhook treats the
//! tag as unscanned until the new content's report, while the old digest keeps its result; with
//! `--tag-recheck-interval`, the controller finds the moved tag by itself and scans the new
//! content. Unresolvable tags say why and start no Job. The test plays the scanner (no
//! kubelet).

mod common;

use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, cluster, deployment, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{GRYPE_BUSYBOX, grype_template};
use common::net::free_port;
use common::registry::{PASSWORD, Registry, USER, registry};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The controller is stopped before the namespace is deleted (fields drop in order).
struct Resolving {
    _controller: Controller,
    enforced: Enforced,
}

/// A webhook and a controller (as their ServiceAccounts) for a namespace whose own scans
/// decide there, the controller trusting the registry's CA and resolving tags again only on
/// request; a template, the default policy and pull secrets `pull` (right password) and `wrong`
/// in the namespace.
fn start(cluster: &'static Cluster, registry: &Registry) -> Resolving {
    start_with(cluster, registry, &["--tag-recheck-interval", "0s"])
}

/// [`start`], with the controller's flags `args` added.
fn start_with(cluster: &'static Cluster, registry: &Registry, args: &[&str]) -> Resolving {
    let enforced = Enforced::with_config(cluster, "e2e-resolve", &[], "trustNamespaceScans: true");
    let ns = enforced.ns.name.clone();
    let dir = enforced.dir.path().to_path_buf();
    let ca = dir.join("registry-ca.pem");
    std::fs::write(&ca, &registry.ca).expect("write the registry CA");
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), &ns)
        .config(&enforced.config)
        .args(&["--registry-ca-file", &ca.display().to_string()])
        .args(args)
        .resolving_tags()
        .start();
    let resolving = Resolving {
        _controller: controller,
        enforced,
    };
    for (name, password) in [("pull", PASSWORD), ("wrong", "not-the-password")] {
        resolving.enforced.ns.kubectl_ok(&[
            "create",
            "secret",
            "docker-registry",
            name,
            &format!("--docker-server={}", registry.host),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={password}"),
        ]);
    }
    apply_json(&resolving, &grype_template(&ns));
    apply_json(
        &resolving,
        &json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ScanPolicy",
            "metadata": {"name": "default", "namespace": ns},
            "spec": {"regoFile": scangate::policy::DEFAULT_POLICY},
        }),
    );
    resolving
}

fn apply_json(r: &Resolving, object: &Value) {
    let out = r.enforced.ns.apply(&object.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
}

fn image_scan(r: &Resolving, name: &str, image: &str, secret: &str) {
    apply_json(
        r,
        &json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": name, "namespace": r.enforced.ns.name},
            "spec": {
                "registry": {"image": image, "imagePullSecret": secret},
                "scanTemplate": "grype",
                "scanPolicy": "default",
            },
        }),
    );
}

fn status(r: &Resolving, name: &str) -> Value {
    let text = r
        .enforced
        .ns
        .kubectl_ok(&["get", "imagescan", name, "-o", "json"]);
    serde_json::from_str::<Value>(&text)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

/// The names of the scan's Jobs.
fn jobs(r: &Resolving, scan: &str) -> Vec<Value> {
    let text = r.enforced.ns.kubectl_ok(&[
        "get",
        "jobs",
        "-l",
        &format!("scanning.scangate.dev/scan={scan}"),
        "-o",
        "json",
    ]);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Waits for a Job of the scan other than `seen`; its name and its `SCAN_IMAGE`.
fn new_job(r: &Resolving, scan: &str, seen: &[String]) -> (String, String) {
    r.enforced.cluster.eventually("a new scan Job", WAIT, || {
        jobs(r, scan).into_iter().find_map(|job| {
            let name = job["metadata"]["name"].as_str()?.to_string();
            if seen.contains(&name) {
                return None;
            }
            let image = job["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()?
                .iter()
                .find(|e| e["name"] == "SCAN_IMAGE")?["value"]
                .as_str()?
                .to_string();
            Some((name, image))
        })
    })
}

/// Plays the scanner: stores a report of `image` at `digest` (the fixture's 15 CVEs, or none),
/// then marks the Job complete.
fn scanned(r: &Resolving, scan: &str, job: &str, image: &str, digest: &str, vulnerable: bool) {
    let mut report: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GRYPE_BUSYBOX),
        )
        .expect("fixture"),
    )
    .expect("fixture JSON");
    let repository = image.rsplit_once(':').map_or(image, |(repo, _)| repo);
    report["source"]["target"]["userInput"] = json!(image);
    report["source"]["target"]["tags"] = json!([image]);
    report["source"]["target"]["repoDigests"] = json!([format!("{repository}@{digest}")]);
    report["source"]["target"]["manifestDigest"] = json!(digest);
    if !vulnerable {
        report["matches"] = json!([]);
    }
    let file = r.enforced.dir.path().join(format!("{job}.json"));
    std::fs::write(&file, report.to_string()).expect("write the report");
    let ns = &r.enforced.ns.name;
    let cluster = r.enforced.cluster;
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "report",
            &file.display().to_string(),
            "--to-configmap",
            &format!("{ns}/{scan}"),
        ])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .expect("scangate report");
    assert!(out.status.success(), "{}", stderr(&out));
    let start = cluster.eventually("the Job's startTime", WAIT, || {
        let text =
            r.enforced
                .ns
                .kubectl_ok(&["get", "job", job, "-o", "jsonpath={.status.startTime}"]);
        (!text.is_empty()).then_some(text)
    });
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let condition = |t: &str| json!({"type": t, "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now});
    let patch = json!({"status": {"startTime": start, "completionTime": now, "active": 0, "ready": 0,
        "terminating": 0, "succeeded": 1,
        "conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}});
    r.enforced.ns.kubectl_ok(&[
        "patch",
        "job",
        job,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

/// Admission of a Deployment of `image` (server-side dry run): `Err(message)` when denied,
/// else `Ok(warnings)`.
fn admit(r: &Resolving, image: &str) -> Result<String, String> {
    let out = r.enforced.cluster.apply(
        &deployment("app", image),
        &["-n", &r.enforced.ns.name, "--dry-run=server"],
    );
    if out.status.success() {
        Ok(stderr(&out))
    } else {
        Err(stderr(&out))
    }
}

/// After `tag` moved from the Failed content `old` to `new`, whose rescan Job is `job`: until
/// the new content is judged, the tag and the new digest are unscanned (onUnscanned: warn) and
/// the old digest keeps its Failed result; then the new content's report (no CVEs) decides the
/// tag, admitted silently.
fn unscanned_until_judged(
    r: &Resolving,
    tag: &str,
    repository: &str,
    job: &str,
    (old, new): (&str, &str),
) {
    let cluster = r.enforced.cluster;
    let unscanned = cluster.eventually(
        "the webhook to treat the moved tag as unscanned",
        WAIT,
        || {
            admit(r, tag)
                .ok()
                .filter(|w| w.contains("has no trusted scan"))
        },
    );
    assert!(unscanned.contains("Warning"), "{unscanned}");
    let new_digest = admit(r, &format!("{tag}@{new}"));
    assert!(
        new_digest
            .as_ref()
            .is_ok_and(|w| w.contains("has no trusted scan")),
        "{new_digest:?}"
    );
    let old_digest = admit(r, &format!("{repository}@{old}"));
    assert!(
        old_digest.as_ref().is_err_and(|m| m.contains("CVE-")),
        "{old_digest:?}"
    );
    scanned(r, "app", job, tag, new, false);
    cluster.eventually("the rescan to be Completed", WAIT, || {
        (status(r, "app")["phase"] == "Completed").then_some(())
    });
    cluster.eventually("the webhook to admit the tag silently", WAIT, || {
        admit(r, tag).ok().filter(|w| !w.contains("Warning"))
    });
}

#[test]
fn a_tag_is_scanned_at_the_digest_its_registry_serves_and_a_moved_tag_is_unscanned_until_rescanned()
{
    let Some(cluster) = cluster() else { return };
    let Some(registry) = registry() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let first = runtime.block_on(registry.push("team/app", "1"));
    let (index, platforms) = runtime.block_on(registry.push_index("team/multi", "2"));
    let r = start(cluster, &registry);
    let tag = first.reference.clone();
    let repository = format!("{}/team/app", registry.host);

    // By tag: resolved with the pull secret, the Job scans exactly that digest.
    image_scan(&r, "app", &tag, "pull");
    let (job, scanned_image) = new_job(&r, "app", &[]);
    assert_eq!(scanned_image, format!("{tag}@{}", first.digest));
    let resolved = cluster.eventually("status.resolved", WAIT, || {
        Some(status(&r, "app")["resolved"].clone()).filter(|v| v.is_object())
    });
    assert_eq!(resolved["image"], format!("{tag}@{}", first.digest));
    assert_eq!(
        resolved["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(resolved["resolvedAt"].is_string());
    assert!(resolved.get("platforms").is_none());

    // A multi-platform index: its digest and its platforms.
    image_scan(&r, "multi", &index.reference, "pull");
    let (_, multi_image) = new_job(&r, "multi", &[]);
    assert_eq!(multi_image, format!("{}@{}", index.reference, index.digest));
    let resolved = cluster.eventually("the index's status.resolved", WAIT, || {
        Some(status(&r, "multi")["resolved"].clone()).filter(|v| v.is_object())
    });
    assert_eq!(
        resolved["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let got: Vec<(String, String)> = resolved["platforms"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| {
                    (
                        format!(
                            "{}/{}",
                            p["os"].as_str().unwrap_or(""),
                            p["architecture"].as_str().unwrap_or("")
                        ),
                        p["digest"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let want: Vec<(String, String)> = platforms
        .iter()
        .map(|p| (format!("{}/{}", p.os, p.architecture), p.digest.clone()))
        .collect();
    assert_eq!(got, want);

    // The scanner's report of the first content: Failed by the policy; the tag is denied.
    scanned(&r, "app", &job, &tag, &first.digest, true);
    cluster.eventually("the scan to be Failed", WAIT, || {
        (status(&r, "app")["phase"] == "Failed").then_some(())
    });
    let denied = cluster.eventually("the webhook to deny the tag", WAIT, || {
        admit(&r, &tag).err()
    });
    assert!(denied.contains("CVE-"), "{denied}");

    // New content pushed to the tag, and a rescan: the new digest is recorded and scanned.
    let second = runtime.block_on(registry.push("team/app", "1"));
    assert_ne!(first.digest, second.digest);
    r.enforced.ns.kubectl_ok(&[
        "annotate",
        "imagescan",
        "app",
        "--overwrite",
        &format!("scangate.dev/rescan={}", jiff::Timestamp::now()),
    ]);
    let (rescan_job, rescanned_image) = new_job(&r, "app", &[job]);
    assert_eq!(rescanned_image, format!("{tag}@{}", second.digest));
    cluster.eventually("status.resolved to name the new digest", WAIT, || {
        (status(&r, "app")["resolved"]["image"] == format!("{tag}@{}", second.digest)).then_some(())
    });

    // Not scanned yet: the tag and the new digest are unscanned (onUnscanned: warn); the old
    // digest keeps its Failed result. Then the new content's report (no CVEs) decides the tag.
    unscanned_until_judged(
        &r,
        &tag,
        &repository,
        &rescan_job,
        (&first.digest, &second.digest),
    );
}

#[test]
fn unresolvable_tags_say_why_and_start_no_job() {
    let Some(cluster) = cluster() else { return };
    let Some(registry) = registry() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let pushed = runtime.block_on(registry.push("team/app", "1"));
    let r = start(cluster, &registry);
    let unreachable = format!("127.0.0.1:{}/team/app:1", free_port());
    let cases = [
        (
            "wrong-password",
            pushed.reference.clone(),
            "wrong",
            "refused access",
        ),
        (
            "unknown-tag",
            format!("{}/team/app:nope", registry.host),
            "pull",
            "has no manifest",
        ),
        ("unreachable", unreachable, "pull", "is unreachable"),
        (
            "no-secret",
            pushed.reference.clone(),
            "missing",
            "imagePullSecret",
        ),
    ];
    for (name, image, secret, _) in &cases {
        image_scan(&r, name, image, secret);
    }
    for (name, _, _, says) in &cases {
        let status = cluster.eventually(&format!("{name} to be in Error"), WAIT, || {
            Some(status(&r, name)).filter(|s| s["phase"] == "Error")
        });
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        let succeeded = conditions
            .iter()
            .find(|c| c["type"] == "Succeeded")
            .cloned()
            .unwrap_or_default();
        assert_eq!(succeeded["reason"], "ResolveFailed", "{name}: {status}");
        let message = succeeded["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
        let scanning = conditions
            .iter()
            .find(|c| c["type"] == "Scanning")
            .cloned()
            .unwrap_or_default();
        assert_eq!(scanning["reason"], "ResolveFailed", "{name}: {status}");
        assert!(status.get("resolved").is_none(), "{name}: {status}");
    }
    let wrong = status(&r, "wrong-password");
    let message = wrong["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Succeeded"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("with the pull secret's credentials"),
        "{message}"
    );
    // Retried with the error backoff (2s), never with a Job.
    std::thread::sleep(Duration::from_secs(5));
    for (name, ..) in &cases {
        assert!(jobs(&r, name).is_empty(), "{name} has a Job");
        assert_eq!(status(&r, name)["phase"], "Error", "{name}");
    }
}

#[test]
fn a_moved_tag_is_found_by_the_controller_and_its_new_content_scanned() {
    let Some(cluster) = cluster() else { return };
    let Some(registry) = registry() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let first = runtime.block_on(registry.push("team/moving", "1"));
    let r = start_with(cluster, &registry, &["--tag-recheck-interval", "2s"]);
    let tag = first.reference.clone();
    let repository = format!("{}/team/moving", registry.host);

    image_scan(&r, "app", &tag, "pull");
    let (job, _) = new_job(&r, "app", &[]);
    scanned(&r, "app", &job, &tag, &first.digest, true);
    let failed = cluster.eventually("the scan to be Failed", WAIT, || {
        Some(status(&r, "app")).filter(|s| s["phase"] == "Failed")
    });
    let pinned = format!("{tag}@{}", first.digest);
    assert_eq!(failed["resolved"]["image"], pinned);

    // The tag still names the same content: resolved again on schedule, only resolvedAt
    // moves; no new Job, the verdict stands.
    let resolved_at = failed["resolved"]["resolvedAt"].clone();
    let refreshed = cluster.eventually("the tag to be resolved again", WAIT, || {
        Some(status(&r, "app")).filter(|s| s["resolved"]["resolvedAt"] != resolved_at)
    });
    assert_eq!(refreshed["resolved"]["image"], pinned);
    assert_eq!(refreshed["phase"], "Failed");
    assert_eq!(refreshed["lastResult"], failed["lastResult"]);
    assert_eq!(jobs(&r, "app").len(), 1);

    // New content pushed to the tag, no rescan asked for: the controller finds the move,
    // records the new digest and scans it.
    let second = runtime.block_on(registry.push("team/moving", "1"));
    assert_ne!(first.digest, second.digest);
    let (rescan_job, rescanned_image) = new_job(&r, "app", &[job]);
    assert_eq!(rescanned_image, format!("{tag}@{}", second.digest));
    let moved = cluster.eventually("status.resolved to name the new digest", WAIT, || {
        Some(status(&r, "app"))
            .filter(|s| s["resolved"]["image"] == format!("{tag}@{}", second.digest))
    });
    // The last result is the old content's, kept.
    assert_eq!(moved["lastResult"]["phase"], "Failed", "{moved}");

    // Not scanned yet: the tag and the new digest are unscanned (onUnscanned: warn); the old
    // digest keeps its Failed result. Then the new content's report (no CVEs) decides the tag.
    unscanned_until_judged(
        &r,
        &tag,
        &repository,
        &rescan_job,
        (&first.digest, &second.digest),
    );
    assert_eq!(jobs(&r, "app").len(), 2);
    // The old content stays denied by its digest (status.earlierResults), under any name.
    let done = status(&r, "app");
    assert_eq!(done["earlierResults"][0]["phase"], "Failed", "{done}");
    for old in [
        format!("{repository}@{}", first.digest),
        format!("ghcr.io/anyone/copy@{}", first.digest),
    ] {
        let denied = admit(&r, &old);
        assert!(
            denied.as_ref().is_err_and(|m| m.contains("CVE-")),
            "{old}: {denied:?}"
        );
    }
}

/// Issue 19's moved tag, as a tenant: clean content judged, then Failed content pushed under
/// the same tag. The tenant's next Deployment of the tag is pinned to the clean digest (what
/// was judged), so the node never pulls the new bytes; once the controller finds the move
/// and the new content is judged Failed, the tag and the new digest are denied.
#[test]
fn a_tenant_gets_the_judged_digest_of_a_tag_until_its_new_content_is_judged() {
    let Some(cluster) = cluster() else { return };
    let Some(registry) = registry() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let clean = runtime.block_on(registry.push("team/pinned", "1"));
    // Long enough that the tenant's Deployment comes before the controller looks again (on a
    // loaded machine too), short enough for `new_job`'s wait.
    let r = start_with(cluster, &registry, &["--tag-recheck-interval", "45s"]);
    let tenant = r.enforced.tenant();
    let tag = clean.reference.clone();
    let repository = format!("{}/team/pinned", registry.host);
    image_scan(&r, "app", &tag, "pull");
    let (job, _) = new_job(&r, "app", &[]);
    scanned(&r, "app", &job, &tag, &clean.digest, false);
    cluster.eventually("the scan to be Completed", WAIT, || {
        (status(&r, "app")["phase"] == "Completed").then_some(())
    });
    cluster.eventually("the webhook to admit the tag silently", WAIT, || {
        admit(&r, &tag).ok().filter(|w| !w.contains("Warning"))
    });

    let vulnerable = runtime.block_on(registry.push("team/pinned", "1"));
    assert_ne!(clean.digest, vulnerable.digest);
    let ns = r.enforced.ns.name.clone();
    let out = r.enforced.kubectl_as(
        &tenant,
        &["apply", "-n", &ns, "-f", "-"],
        Some(&deployment("web", &tag)),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = r.enforced.ns.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(stored.trim(), format!("{tag}@{}", clean.digest));

    // The controller finds the move by itself and scans the new content: Failed.
    let (rescan, image) = new_job(&r, "app", &[job]);
    assert_eq!(image, format!("{tag}@{}", vulnerable.digest));
    scanned(&r, "app", &rescan, &tag, &vulnerable.digest, true);
    cluster.eventually("the rescan to be Failed", WAIT, || {
        (status(&r, "app")["phase"] == "Failed").then_some(())
    });
    for image in [tag.clone(), format!("{repository}@{}", vulnerable.digest)] {
        let denied = cluster.eventually("the webhook to deny the new content", WAIT, || {
            let out = r.enforced.kubectl_as(
                &tenant,
                &["apply", "-n", &ns, "--dry-run=server", "-f", "-"],
                Some(&deployment("web2", &image)),
            );
            (!out.status.success()).then(|| stderr(&out))
        });
        assert!(
            denied.contains(&format!("failed trusted scan {ns}/app")),
            "{image}: {denied}"
        );
    }
    // The tenant's Deployment pinned to the clean digest keeps its verdict: admitted silently.
    let out = r.enforced.kubectl_as(
        &tenant,
        &["apply", "-n", &ns, "--dry-run=server", "-f", "-"],
        Some(&deployment("web", &format!("{tag}@{}", clean.digest))),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
}
