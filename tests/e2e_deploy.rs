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
    // Neither may read Secrets cluster-wide or patch workloads.
    for sa in ["scangate-webhook", "scangate-controller"] {
        assert!(
            !can_i(sa, &["get", "secrets", "-A"]),
            "{sa} can read secrets"
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
