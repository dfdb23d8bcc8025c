//! The trust model on a real kube-apiserver, tried as a tenant would: a user with the built-in
//! `edit` role in its namespace (which aggregates the shipped `scangate-edit`), acting with
//! `kubectl --as`. A Failed image with a trusted result must stay denied whatever the tenant
//! does; only an approver's exception, in its own namespace, admits it.

mod common;

use std::process::Output;
use std::time::Duration;

use common::cluster::{cluster, deployment, stderr};
use common::enforced::Enforced;
use common::fixtures::{ALPINE, BUSYBOX, FAILED, PASSED};

const WAIT: Duration = Duration::from_secs(30);

/// The trusted results: busybox Failed, alpine Completed, in the test's scangate namespace.
fn trusted(env: &Enforced) {
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, FAILED);
    env.trusted_scan("alpine", "alpine:3.10", ALPINE, PASSED);
}

/// `kubectl apply` of a Deployment of `image` in `namespace`, as `user`.
fn deploy_as(env: &Enforced, user: &str, namespace: &str, name: &str, image: &str) -> Output {
    env.kubectl_as(
        user,
        &["-n", namespace, "apply", "-f", "-"],
        Some(&deployment(name, image)),
    )
}

/// Waits until the busybox Deployment is denied in `namespace` (the webhook saw the scans).
fn wait_denied(env: &Enforced, user: &str, namespace: &str) -> String {
    env.cluster.eventually("a denial of busybox", WAIT, || {
        let out = env.kubectl_as(
            user,
            &["-n", namespace, "apply", "--dry-run=server", "-f", "-"],
            Some(&deployment("legacy", "busybox:1.32.1")),
        );
        let message = stderr(&out);
        (!out.status.success() && message.contains("denied the request")).then_some(message)
    })
}

fn assert_forbidden(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what} succeeded");
    assert!(
        stderr(out).contains("forbidden") || stderr(out).contains("denied the request"),
        "{what}: {}",
        stderr(out)
    );
}

#[test]
fn a_tenant_cannot_turn_a_trusted_failed_result_into_an_admission() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-tenant", &[]);
    let tenant = env.tenant();
    let ns = env.ns.name.clone();
    let system = env.system.name.clone();
    trusted(&env);
    let message = wait_denied(&env, &tenant, &ns);
    assert!(
        message.contains(&format!("failed trusted scan {system}/busybox")),
        "{message}"
    );

    // 1. Its own bare scan of the image (it may create scans: scangate-edit via edit).
    let bare = "apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {name: mine}\nspec:\n  registry: {image: \"busybox:1.32.1\"}\n";
    let out = env.kubectl_as(&tenant, &["-n", &ns, "apply", "-f", "-"], Some(bare));
    assert!(out.status.success(), "{}", stderr(&out));
    // 2. Its scan's status: refused (RBAC first; the webhook refuses any writer but the
    // controller, see e2e_webhook).
    let forged = r#"{"status": {"conditions": [
        {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
        {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"}],
        "scannedAt": "2999-01-01T00:00:00Z"}}"#;
    let out = env.kubectl_as(
        &tenant,
        &[
            "-n",
            &ns,
            "patch",
            "imagescan",
            "mine",
            "--subresource=status",
            "--type=merge",
            "-p",
            forged,
        ],
        None,
    );
    assert_forbidden(&out, "a tenant's status write");
    // Even a Completed scan of its own, newer than the trusted one (as the controller would
    // write it from a report the tenant forged in its namespace), only counts against it.
    env.scan(&ns, "forged", "busybox:1.32.1", BUSYBOX, PASSED);
    // 3. The trusted scan and its report are out of its reach.
    for args in [
        vec!["-n", system.as_str(), "delete", "imagescan", "busybox"],
        vec![
            "-n",
            system.as_str(),
            "delete",
            "configmap",
            "busybox-report",
        ],
        vec![
            "-n",
            system.as_str(),
            "create",
            "configmap",
            "busybox-report",
            "--from-literal=report=forged",
        ],
    ] {
        let out = env.kubectl_as(&tenant, &args, None);
        assert_forbidden(&out, &args.join(" "));
    }
    // 4. Exceptions: a tenant cannot write them at all.
    let catch_all = "apiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata: {name: all}\nspec:\n  images: [\"*\"]\n  reason: mine\n  expires: \"2099-01-01T00:00:00Z\"\n";
    let out = env.kubectl_as(&tenant, &["-n", &ns, "apply", "-f", "-"], Some(catch_all));
    assert_forbidden(&out, "a tenant's exception");

    // The image is still denied, by the trusted result, after all of that.
    std::thread::sleep(Duration::from_secs(1));
    let out = deploy_as(&env, &tenant, &ns, "legacy", "busybox:1.32.1");
    assert!(!out.status.success(), "busybox was admitted");
    assert!(
        stderr(&out).contains(&format!("failed trusted scan {system}/busybox")),
        "{}",
        stderr(&out)
    );
    // Its own scans never make an image clean: an image only it scanned is unscanned.
    env.scan(
        &ns,
        "own-clean",
        "registry.example/team/app:1",
        "registry.example/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000001",
        PASSED,
    );
    let out = deploy_as(&env, &tenant, &ns, "app", "registry.example/team/app:1");
    assert!(
        stderr(&out).contains("has no trusted scan"),
        "{}",
        stderr(&out)
    );
    // The clean image is admitted silently.
    let out = deploy_as(&env, &tenant, &ns, "storefront", "alpine:3.10");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
}

#[test]
fn a_tenants_own_failed_scan_denies_in_its_namespace_only() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-tenant-own", &[]);
    let tenant = env.tenant();
    let ns = env.ns.name.clone();
    let other = env.namespace("e2e-tenant-other");
    trusted(&env);
    // The tenant's own scan says alpine failed: denied in its namespace (it can only add
    // denials), while the trusted result still admits alpine elsewhere.
    env.scan(&ns, "strict", "alpine:3.10", ALPINE, FAILED);
    let message = env
        .cluster
        .eventually("the namespace scan to deny", WAIT, || {
            let out = deploy_as(&env, &tenant, &ns, "storefront", "alpine:3.10");
            (!out.status.success()).then(|| stderr(&out))
        });
    assert!(
        message.contains(&format!("failed namespace scan {ns}/strict")),
        "{message}"
    );
    let out = env.cluster.apply(
        &deployment("storefront", "alpine:3.10"),
        &["-n", &other.name],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_approvers_exception_admits_in_its_namespace_only_and_not_for_long() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-exception", &[]);
    let tenant = env.tenant();
    let ns = env.ns.name.clone();
    let other = env.namespace("e2e-exception-other");
    let approver = format!("approver-{ns}");
    env.bind(&ns, &approver, "scangate-exception-approver");
    trusted(&env);
    wait_denied(&env, &tenant, &ns);

    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .expect("tomorrow");
    let exception = |images: &str| {
        format!(
            "apiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata: {{name: legacy}}\nspec:\n  images: {images}\n  reason: ticket SEC-1\n  expires: \"{expires}\"\n"
        )
    };
    // A pattern that covers a whole registry is refused, even from an approver.
    let out = env.kubectl_as(
        &approver,
        &["-n", &ns, "apply", "-f", "-"],
        Some(&exception("[\"docker.io/*\"]")),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("covers every image of a registry"),
        "{}",
        stderr(&out)
    );
    // A forged approval record is replaced with the real writer.
    let forged = exception("[busybox]").replace(
        "metadata: {name: legacy}",
        "metadata: {name: legacy, annotations: {scangate.dev/approved-by: ciso}}",
    );
    let out = env.kubectl_as(&approver, &["-n", &ns, "apply", "-f", "-"], Some(&forged));
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded = env.ns.kubectl_ok(&[
        "get",
        "scanexception",
        "legacy",
        "-o",
        "jsonpath={.metadata.annotations.scangate\\.dev/approved-by}",
    ]);
    assert_eq!(recorded, approver);

    // Admitted in its namespace, with the approver named in the warning.
    let warning = env
        .cluster
        .eventually("the exception to admit busybox", WAIT, || {
            let out = deploy_as(&env, &tenant, &ns, "legacy", "busybox:1.32.1");
            out.status.success().then(|| stderr(&out))
        });
    assert!(
        warning.contains(&format!(
            "admitted by ScanException {ns}/legacy, approved by {approver} until"
        )),
        "{warning}"
    );
    // Never in another namespace.
    let out = env.cluster.apply(
        &deployment("legacy", "busybox:1.32.1"),
        &["-n", &other.name, "--dry-run=server"],
    );
    assert!(!out.status.success(), "admitted in {}", other.name);

    // Once older than maxDuration (the admin shortens it), it stops counting at use, although
    // it has not expired.
    env.set_config("exceptions: {maxDuration: 2s}");
    env.cluster
        .eventually("the exception to stop counting", WAIT, || {
            let out = env.kubectl_as(
                &tenant,
                &["-n", &ns, "apply", "--dry-run=server", "-f", "-"],
                Some(&deployment("legacy2", "busybox:1.32.1")),
            );
            (!out.status.success()).then_some(())
        });
}

#[test]
fn pods_a_controller_recreates_stay_admitted_after_the_verdict_turns() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-scaleout", &[]);
    let tenant = env.tenant();
    let ns = env.ns.name.clone();
    trusted(&env);
    env.cluster.eventually("alpine to be admitted", WAIT, || {
        deploy_as(&env, &tenant, &ns, "web", "alpine:3.10")
            .status
            .success()
            .then_some(())
    });
    let pods = |env: &Enforced| {
        env.ns
            .kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"])
            .lines()
            .count()
    };
    env.cluster
        .eventually("the first pod", Duration::from_secs(60), || {
            (pods(&env) == 1).then_some(())
        });
    // New CVEs: alpine's trusted result turns Failed.
    let out = env.write_status(&env.system.name, "alpine", FAILED);
    assert!(out.status.success(), "{}", stderr(&out));
    env.cluster.eventually("alpine to be denied", WAIT, || {
        let out = env.kubectl_as(
            &tenant,
            &[
                "-n",
                &ns,
                "run",
                "probe",
                "--image=alpine:3.10",
                "--dry-run=server",
            ],
            None,
        );
        (!out.status.success()).then_some(())
    });
    // Scale-out: the ReplicaSet controller creates the new pod; it is admitted.
    let out = env.kubectl_as(
        &tenant,
        &["-n", &ns, "scale", "deployment", "web", "--replicas=2"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    env.cluster
        .eventually("the second pod", Duration::from_secs(60), || {
            (pods(&env) == 2).then_some(())
        });
    // The webhook records nothing about the pass (a review can be forged); the controller
    // records a VerdictTurned Event from the pods that really run (e2e_first_sight.rs).
    // A pod that merely claims the ReplicaSet as its owner gets no pass.
    let rs = env.ns.kubectl_ok(&[
        "get",
        "replicaset",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}/{.items[0].metadata.uid}",
    ]);
    let (rs_name, rs_uid) = rs.split_once('/').expect("name/uid");
    let claimed = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: claimed\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: {rs_name}, uid: {rs_uid}, controller: true}}]\nspec:\n  containers: [{{name: app, image: \"alpine:3.10\"}}]\n"
    );
    let out = env.kubectl_as(&tenant, &["-n", &ns, "apply", "-f", "-"], Some(&claimed));
    assert!(
        !out.status.success(),
        "a pod claiming an owner was admitted"
    );
    assert!(
        stderr(&out).contains("failed trusted scan"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn only_trusted_writers_store_reports_where_scans_are_trusted() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::with_config(
        cluster,
        "e2e-reports",
        &[],
        "trustedReporters: [ci-pipeline]",
    );
    let system = env.system.name.clone();
    // Both may write ConfigMaps in the trusted namespace (RBAC), only one is a trusted reporter.
    env.bind(&system, "ci-pipeline", "edit");
    env.bind(&system, "helpdesk", "edit");
    let report = |user: &str, name: &str| {
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-report\n  labels: {{scanning.scangate.dev/scan: {name}}}\n  annotations: {{scangate.dev/reported-by: ci-pipeline}}\ndata: {{}}\n"
        );
        env.kubectl_as(user, &["-n", &system, "apply", "-f", "-"], Some(&yaml))
    };
    let refused = report("helpdesk", "busybox");
    assert!(
        !refused.status.success(),
        "an untrusted writer stored a report"
    );
    assert!(
        stderr(&refused).contains(&format!(
            "reports in namespace {system} are trusted results"
        )),
        "{}",
        stderr(&refused)
    );
    let stored = report("ci-pipeline", "alpine");
    assert!(stored.status.success(), "{}", stderr(&stored));
    // The writer is recorded by the webhook, whatever the object said.
    let recorded = env.system.kubectl_ok(&[
        "get",
        "configmap",
        "alpine-report",
        "-o",
        "jsonpath={.metadata.annotations.scangate\\.dev/reported-by}",
    ]);
    assert_eq!(recorded, "ci-pipeline");
    // In a tenant's namespace anyone may store reports (they count there only), recorded too.
    let tenant = env.tenant();
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mine-report\n  labels: {scanning.scangate.dev/scan: mine}\n  annotations: {scangate.dev/reported-by: ci-pipeline}\ndata: {}\n";
    let out = env.kubectl_as(
        &tenant,
        &["-n", &env.ns.name, "apply", "-f", "-"],
        Some(yaml),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded = env.ns.kubectl_ok(&[
        "get",
        "configmap",
        "mine-report",
        "-o",
        "jsonpath={.metadata.annotations.scangate\\.dev/reported-by}",
    ]);
    assert_eq!(recorded, tenant);
}

#[test]
fn a_digest_nobody_scanned_beside_the_clean_tag_is_unscanned() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::with_config(cluster, "e2e-digest", &[], "onUnscanned: deny");
    let tenant = env.tenant();
    let ns = env.ns.name.clone();
    trusted(&env);
    let unscanned = "docker.io/library/alpine:3.10@sha256:0000000000000000000000000000000000000000000000000000000000000001";
    env.cluster.eventually("alpine to be admitted", WAIT, || {
        deploy_as(&env, &tenant, &ns, "clean", "alpine:3.10")
            .status
            .success()
            .then_some(())
    });
    // The runtime pulls the digest, which nobody scanned: denied under onUnscanned: deny.
    let out = deploy_as(&env, &tenant, &ns, "pinned", unscanned);
    assert!(!out.status.success(), "the unscanned digest was admitted");
    assert!(
        stderr(&out).contains("has no trusted scan"),
        "{}",
        stderr(&out)
    );
    // Under onUnscanned: warn, a warning.
    env.set_config("onUnscanned: warn");
    let warning = env.cluster.eventually("the unscanned warning", WAIT, || {
        let out = deploy_as(&env, &tenant, &ns, "pinned", unscanned);
        out.status.success().then(|| stderr(&out))
    });
    assert!(warning.contains("has no trusted scan"), "{warning}");
}

/// A PolicyReport named like the controller's, written by the admin (the controller's own are
/// tested in e2e_policyreports; here only who may read them counts).
fn policy_report(env: &Enforced, namespace: &str) {
    let yaml = "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: scangate}\nsummary: {pass: 1}\nresults:\n  - {policy: scangate, result: pass, source: scangate}\n";
    let out = env.cluster.apply(yaml, &["-n", namespace]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A tenant bound to `edit` in its namespace may ask for a re-evaluation of its scans (the
/// `scangate.dev/reevaluate` annotation is an update of imagescans it has, so `kubectl scangate
/// reevaluate` works for it), never of a trusted scan in scangate's namespace; it reads its
/// namespace's PolicyReport (deploy/rbac's scangate-reports-view, aggregated into view, edit
/// and admin), not another tenant's, and cannot list them cluster-wide.
#[test]
fn a_tenant_reevaluates_and_reads_the_reports_of_its_own_namespace_only() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-tenant-reports", &[]);
    let tenant = env.tenant();
    let ns = env.ns.name.clone();
    let system = env.system.name.clone();
    let other = env.namespace("e2e-tenant-reports-other");
    trusted(&env);
    env.scan(&ns, "mine", "alpine:3.10", ALPINE, PASSED);

    let request = "scangate.dev/reevaluate=2026-01-02T00:00:00Z";
    let out = env.kubectl_as(
        &tenant,
        &[
            "-n",
            &ns,
            "annotate",
            "--overwrite",
            "imagescan",
            "mine",
            request,
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.kubectl_as(
        &tenant,
        &[
            "-n",
            &system,
            "annotate",
            "--overwrite",
            "imagescan",
            "busybox",
            request,
        ],
        None,
    );
    assert_forbidden(&out, "a tenant's re-evaluation of a trusted scan");
    let out = env.kubectl_as(
        &tenant,
        &["auth", "can-i", "patch", "imagescans", "-n", &system],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no",
        "{}",
        stderr(&out)
    );

    policy_report(&env, &ns);
    policy_report(&env, &other.name);
    // The built-in roles pick the aggregated rules up asynchronously.
    let own = env
        .cluster
        .eventually("the tenant to read its PolicyReport", WAIT, || {
            let out = env.kubectl_as(
                &tenant,
                &["-n", &ns, "get", "policyreport", "scangate", "-o", "name"],
                None,
            );
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        });
    assert_eq!(own.trim(), "policyreport.wgpolicyk8s.io/scangate");
    let out = env.kubectl_as(
        &tenant,
        &["-n", &ns, "get", "policyreports", "-o", "name"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.kubectl_as(
        &tenant,
        &["-n", &other.name, "get", "policyreport", "scangate"],
        None,
    );
    assert_forbidden(&out, "reading another tenant's PolicyReport");
    let out = env.kubectl_as(&tenant, &["get", "policyreports", "-A"], None);
    assert_forbidden(&out, "listing PolicyReports cluster-wide");
}
