//! What a cluster admin installs: the kustomize base passes server-side validation, and each
//! ServiceAccount may do what its role needs and nothing more.

mod common;

use common::cluster::cluster;

#[test]
fn the_base_passes_server_side_dry_run() {
    let Some(cluster) = cluster() else { return };
    // cert-manager's CRDs are not installed here, so its objects (deploy/cert-manager.yaml) are
    // left out: deploy/core is everything else.
    let out = cluster.kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-k",
        "deploy/core",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    for object in [
        "deployment.apps/scangate",
        "service/scangate-webhook",
        "poddisruptionbudget.policy/scangate",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/scangate",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/scangate",
        "clusterrole.rbac.authorization.k8s.io/scangate-controller",
        "configmap/scangate-config",
    ] {
        assert!(stdout.contains(object), "{object} missing from\n{stdout}");
    }
}

fn can_i(sa: &str, args: &[&str]) -> bool {
    let Some(cluster) = cluster() else {
        return false;
    };
    let user = format!("--as=system:serviceaccount:scangate-system:{sa}");
    let mut all = vec!["auth", "can-i", user.as_str()];
    all.extend_from_slice(args);
    let out = cluster.kubectl(&all);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn each_service_account_may_do_only_its_job() {
    if cluster().is_none() {
        return;
    }
    // The webhook reads scans, exceptions and namespaces.
    assert!(can_i(
        "scangate-webhook",
        &["watch", "imagescans.scanning.scangate.dev", "-A"]
    ));
    assert!(can_i(
        "scangate-webhook",
        &["list", "scanexceptions.scanning.scangate.dev", "-A"]
    ));
    assert!(can_i("scangate-webhook", &["list", "namespaces"]));
    assert!(!can_i(
        "scangate-webhook",
        &["update", "imagescans.scanning.scangate.dev", "-A"]
    ));
    // It writes nothing: no scan, no Event, anywhere (a review can be forged).
    for namespace in ["scangate-system", "default"] {
        for (verb, what) in [
            ("create", "imagescans.scanning.scangate.dev"),
            ("delete", "imagescans.scanning.scangate.dev"),
            ("create", "events.events.k8s.io"),
            ("create", "events"),
        ] {
            assert!(
                !can_i("scangate-webhook", &[verb, what, "-n", namespace]),
                "the webhook may {verb} {what} in {namespace}"
            );
        }
    }
    // Scans on first sight: the controller creates and deletes ImageScans in scangate's
    // namespace, nowhere else.
    for verb in ["create", "delete"] {
        assert!(can_i(
            "scangate-controller",
            &[
                verb,
                "imagescans.scanning.scangate.dev",
                "-n",
                "scangate-system"
            ]
        ));
        assert!(!can_i(
            "scangate-controller",
            &[verb, "imagescans.scanning.scangate.dev", "-n", "default"]
        ));
    }
    // The controller runs Jobs, reads report ConfigMaps, writes scan status and Events.
    assert!(can_i(
        "scangate-controller",
        &["create", "jobs.batch", "-n", "default"]
    ));
    assert!(can_i(
        "scangate-controller",
        &[
            "patch",
            "imagescans.scanning.scangate.dev",
            "--subresource=status",
            "-n",
            "default"
        ]
    ));
    assert!(can_i(
        "scangate-controller",
        &[
            "update",
            "leases.coordination.k8s.io",
            "-n",
            "scangate-system"
        ]
    ));
    assert!(!can_i(
        "scangate-controller",
        &["update", "leases.coordination.k8s.io", "-n", "default"]
    ));
    assert!(!can_i(
        "scangate-controller",
        &["patch", "imagescans.scanning.scangate.dev", "-n", "default"]
    ));
    // Neither may list Secrets or patch workloads; the webhook reads none, the controller
    // only a scan's imagePullSecret by name (to resolve its tag).
    assert!(!can_i("scangate-webhook", &["get", "secrets", "-A"]));
    assert!(can_i("scangate-controller", &["get", "secrets", "-A"]));
    for sa in ["scangate-webhook", "scangate-controller"] {
        assert!(
            !can_i(sa, &["watch", "secrets", "-A"]),
            "{sa} can watch secrets"
        );
        assert!(
            !can_i(sa, &["list", "secrets", "-n", "scangate-system"]),
            "{sa} can list secrets"
        );
        for workload in ["deployments.apps", "daemonsets.apps", "pods"] {
            assert!(
                !can_i(sa, &["patch", workload, "-A"]),
                "{sa} can patch {workload}"
            );
        }
    }
}

#[test]
fn a_scanner_may_store_reports_in_its_namespace_only() {
    let Some(cluster) = cluster() else { return };
    let ns = cluster.namespace("e2e-scanner", &[]);
    let other = cluster.namespace("e2e-scanner-other", &[]);
    // The example binding, in the test's namespace.
    let rbac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/cluster/scanner-rbac.yaml"
    ))
    .expect("examples/cluster/scanner-rbac.yaml")
    .replace("namespace: shop", &format!("namespace: {}", ns.name));
    let out = cluster.apply(&rbac, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for namespace in [&ns, &other] {
        let out = namespace.apply("apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {name: busybox}\nspec:\n  registry: {image: busybox:1.32.1}\n");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kubeconfig = cluster.kubeconfig_as_in(&ns.name, "scangate-scanner");
    let report = |target: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args([
                "report",
                "tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json",
                "--to-configmap",
                target,
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("run scangate report")
    };
    // In its namespace, as the scanner: stored.
    let out = report(&format!("{}/busybox", ns.name));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ns.kubectl_ok(&["get", "configmap", "busybox-report"]);
    // In another namespace: forbidden, with a clear error.
    let out = report(&format!("{}/busybox", other.name));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = format!("--as=system:serviceaccount:{}:scangate-scanner", ns.name);
    let no = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", user.as_str()];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&cluster.kubectl(&all).stdout).trim() == "no"
    };
    assert!(no(&["get", "secrets", "-n", &ns.name]));
    assert!(no(&["create", "configmaps", "-n", &other.name]));
    assert!(no(&[
        "patch",
        "imagescans.scanning.scangate.dev",
        "--subresource=status",
        "-n",
        &ns.name
    ]));
}
