//! The runtime view end to end: `scangate controller` (under deploy/rbac's ServiceAccount, by
//! impersonation) keeps a PolicyReport per namespace of what its Running pods run, on the
//! local control plane whose kwok node runs the pods. A running Deployment whose image's
//! result turns Failed (a new report pushed) shows `fail`; rolled out to a fixed image, `pass`;
//! deleted, its results are gone.

mod common;

use std::time::Duration;

use common::cluster::{cluster, deployment, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{ALPINE, GRYPE_BUSYBOX as FIXTURE, PASSED};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// What admission stores for `image` (a tag) in an enforced namespace: the tag pinned to the
/// digest of `scanned` (`repo@digest`), the content that was judged.
fn pinned(image: &str, scanned: &str) -> String {
    format!(
        "{image}@{}",
        scanned.rsplit_once('@').map_or("", |(_, d)| d)
    )
}

fn phase(enforced: &Enforced) -> String {
    enforced.ns.kubectl_ok(&[
        "get",
        "imagescan",
        "busybox",
        "-o",
        "jsonpath={.status.phase}",
    ])
}

/// The namespace's PolicyReport `scangate`, when there is one.
fn report(enforced: &Enforced) -> Option<Value> {
    let out = enforced
        .ns
        .kubectl(&["get", "policyreport", "scangate", "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// (workload, image, result) of each result.
fn results(report: &Value) -> Vec<(String, String, String)> {
    common::policy_reports::results(report)
        .into_iter()
        .map(|r| (r.workload, r.image, r.result))
        .collect()
}

#[test]
fn a_running_deployment_fails_when_its_result_turns_and_passes_when_fixed() {
    let Some(cluster) = cluster() else { return };
    let enforced = Enforced::with_config(cluster, "e2e-polr", &[], "trustNamespaceScans: true");
    let ns = enforced.ns.name.clone();
    let controller = Controller::of_enforced(&enforced, "polr").start();
    let apply = |object: Value| {
        let out = enforced.ns.apply(&object.to_string());
        assert!(out.status.success(), "{}", stderr(&out));
    };
    apply(json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {"regoFile": scangate::policy::DEFAULT_POLICY},
    }));
    // Scanned by CI: no template, the result comes from pushed reports.
    apply(json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": "busybox", "namespace": ns},
        "spec": {"registry": {"image": "busybox:1.32.1"}, "scanPolicy": "default"},
    }));
    let vulnerable: Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("fixture"))
            .expect("fixture JSON");
    let mut clean = vulnerable.clone();
    clean["matches"] = json!([]);
    enforced
        .cluster
        .push_report(&format!("{}/busybox", enforced.ns.name), &clean);
    cluster.eventually("the scan Completed", WAIT, || {
        (phase(&enforced) == "Completed").then_some(())
    });
    // The fixed image: a trusted result in scangate's namespace.
    enforced.trusted_scan("alpine", "alpine:3.10", ALPINE, PASSED);

    let out = enforced.ns.apply(&deployment("app", "busybox:1.32.1"));
    assert!(out.status.success(), "{}", stderr(&out));
    // Admitted clean, so stored pinned to the digest the report named.
    let busybox = pinned("busybox:1.32.1", common::fixtures::BUSYBOX);
    let passing = cluster.eventually("the running image to pass", WAIT, || {
        report(&enforced)
            .filter(|r| results(r) == [("Deployment/app".into(), busybox.clone(), "pass".into())])
    });
    assert_eq!(passing["summary"]["pass"], 1, "{passing}");
    let result = &passing["results"][0];
    assert_eq!(result["policy"], "scangate");
    assert_eq!(result["rule"], "image-verdict");
    assert_eq!(result["source"], "scangate");
    assert_eq!(result["properties"]["scan"], format!("{ns}/busybox"));
    assert_eq!(result["properties"]["scanOrigin"], "trusted");
    assert_eq!(result["properties"]["scanPhase"], "Completed");
    let manager = enforced.ns.kubectl_ok(&[
        "get",
        "policyreport",
        "scangate",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(manager, "scangate-controller");

    // A new report with the CVEs: the result turns Failed, and so does the running image.
    enforced
        .cluster
        .push_report(&format!("{}/busybox", enforced.ns.name), &vulnerable);
    let failing = cluster.eventually("the running image to fail", WAIT, || {
        report(&enforced)
            .filter(|r| results(r) == [("Deployment/app".into(), busybox.clone(), "fail".into())])
    });
    assert_eq!(phase(&enforced), "Failed");
    let result = &failing["results"][0];
    assert_eq!(result["severity"], "critical", "{failing}");
    assert_eq!(result["properties"]["scanPhase"], "Failed");
    let cves = result["properties"]["topCVEs"].as_str().unwrap_or_default();
    assert_eq!(cves.split(',').count(), 5, "{failing}");
    assert!(cves.split(',').all(|c| c.starts_with("CVE-")), "{cves}");
    assert_eq!(failing["summary"]["fail"], 1);
    let metrics = controller.metrics();
    assert!(
        metrics.contains(&format!(
            "scangate_running_images{{namespace=\"{ns}\",verdict=\"fail\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("scangate_oldest_result_age_seconds "),
        "{metrics}"
    );

    // The fixed image rolled out: its pod passes, the old one's result is gone with it.
    enforced
        .ns
        .kubectl_ok(&["set", "image", "deployment/app", "app=alpine:3.10"]);
    let fixed = cluster.eventually("the fixed image to pass", WAIT, || {
        report(&enforced).filter(|r| {
            results(r)
                == [(
                    "Deployment/app".into(),
                    pinned("alpine:3.10", ALPINE),
                    "pass".into(),
                )]
        })
    });
    assert_eq!(
        fixed["results"][0]["properties"]["scan"],
        format!("{}/alpine", enforced.system.name)
    );

    // Deleted: the namespace runs nothing, its report goes.
    enforced.ns.kubectl_ok(&["delete", "deployment", "app"]);
    cluster.eventually("the report deleted", WAIT, || {
        report(&enforced).is_none().then_some(())
    });
}
