//! ScanTemplates cannot escalate (design, Trust model point 7; issue 10, attack 6), on the
//! real apiserver with the shipped RBAC and the webhook running as its ServiceAccount: a tenant
//! (built-in `edit`, which aggregates `scangate-edit`) acting with `kubectl --as`.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, TestNamespace, cluster, stderr};
use common::enforced::Enforced;
use serde_json::{Value, json};

/// Binds `user` to ClusterRole `role` in the namespace.
fn bind(ns: &TestNamespace, user: &str, role: &str) {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": format!("{user}-{role}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    });
    let out = ns.apply(&binding.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A Role that lets `user` write ScanTemplates in the namespace, and nothing else.
fn allow_templates_only(ns: &TestNamespace, user: &str) {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "scantemplate-writer"},
        "rules": [{"apiGroups": ["scanning.scangate.dev"], "resources": ["scantemplates"], "verbs": ["get", "create", "update", "patch"]}],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": format!("{user}-scantemplate-writer")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scantemplate-writer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    });
    for object in [role, binding] {
        let out = ns.apply(&object.to_string());
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// `kubectl apply` of `object` in the namespace, as `user`.
fn apply_as(cluster: &Cluster, ns: &TestNamespace, user: &str, object: &Value) -> (bool, String) {
    let as_user = format!("--as={user}");
    let out = cluster.kubectl_in(
        &[&as_user, "-n", &ns.name, "apply", "-f", "-"],
        Some(&object.to_string()),
    );
    (out.status.success(), stderr(&out))
}

fn template(name: &str, pod: Value) -> Value {
    json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanTemplate",
        "metadata": {"name": name},
        "spec": {"template": pod},
    })
}

/// Issue 10, attack 6: another ServiceAccount, the host's IPC namespace, SYS_ADMIN, a Secret
/// (which `restricted` allows) and a hostPath (which it does not).
fn attack() -> Value {
    template(
        "escalate",
        json!({
            "serviceAccountName": "default",
            "hostIPC": true,
            "volumes": [
                {"name": "token", "secret": {"secretName": "anything"}},
                {"name": "host", "hostPath": {"path": "/"}},
            ],
            "containers": [{
                "name": "scan",
                "image": "anchore/grype:v0.94.0",
                "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}},
                "volumeMounts": [{"name": "host", "mountPath": "/host"}],
            }],
        }),
    )
}

/// A template `restricted` accepts.
fn compliant() -> Value {
    template(
        "grype",
        json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "out", "emptyDir": {}}],
            "containers": [{
                "name": "scan",
                "image": "anchore/grype:v0.94.0",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "out", "mountPath": "/out"}],
            }],
        }),
    )
}

/// The aggregation controller fills `edit` with `scangate-edit` asynchronously.
fn wait_until_allowed(cluster: &Cluster, ns: &TestNamespace, user: &str, verb: &str, what: &str) {
    let as_user = format!("--as={user}");
    cluster.eventually(
        &format!("{user} to be allowed to {verb} {what}"),
        Duration::from_secs(30),
        || {
            let out = cluster.kubectl(&[&as_user, "-n", &ns.name, "auth", "can-i", verb, what]);
            out.status.success().then_some(())
        },
    );
}

#[test]
fn scan_templates_cannot_escalate() {
    let Some(cluster) = cluster() else { return };
    let enforced = Enforced::start(cluster, "e2e-templates", &[]);
    let ns = &enforced.ns;
    let tenant = format!("tenant-{}", ns.name);
    bind(ns, &tenant, "edit");
    wait_until_allowed(
        cluster,
        ns,
        &tenant,
        "create",
        "scantemplates.scanning.scangate.dev",
    );

    // The attack: refused, naming each field and its control.
    let (ok, message) = apply_as(cluster, ns, &tenant, &attack());
    assert!(!ok, "the escalating template was admitted");
    for part in [
        "ScanTemplate \"escalate\" would run a pod that Pod Security \"restricted\" forbids",
        "spec.template.hostIPC: control \"Host Namespaces\" (baseline) requires it unset or false",
        "spec.template.volumes[1].hostPath: control \"Volume Types\" (restricted)",
        "spec.template.containers[0].securityContext.capabilities.add: control \"Capabilities\" (restricted) allows adding only NET_BIND_SERVICE; found SYS_ADMIN",
        "spec.template.containers[0].securityContext.capabilities.drop: control \"Capabilities\" (restricted)",
        "spec.template.containers[0].securityContext.allowPrivilegeEscalation: control \"Privilege Escalation\" (restricted)",
        "spec.template.containers[0].securityContext.runAsNonRoot: control \"Running as Non-root\" (restricted)",
        "spec.template.containers[0].securityContext.seccompProfile.type: control \"Seccomp\" (restricted)",
        "spec.template.serviceAccountName is \"default\", but a scan pod may only run as the scanner's ServiceAccount \"scangate-scanner\"",
    ] {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
    assert!(!message.contains("volumes[0]"), "{message}");
    let missing = ns.kubectl(&["get", "scantemplate", "escalate"]);
    assert!(!missing.status.success(), "the refused template exists");

    // A template restricted accepts is admitted, for the tenant who may create Jobs.
    let (ok, message) = apply_as(cluster, ns, &tenant, &compliant());
    assert!(ok, "{message}");
    // Naming the scanner's ServiceAccount is fine too.
    let mut named = compliant();
    named["spec"]["template"]["serviceAccountName"] = json!("scangate-scanner");
    let (ok, message) = apply_as(cluster, ns, &tenant, &named);
    assert!(ok, "{message}");

    // A user with only `view` cannot write templates at all: the apiserver's RBAC refuses.
    let viewer = format!("viewer-{}", ns.name);
    bind(ns, &viewer, "view");
    wait_until_allowed(
        cluster,
        ns,
        &viewer,
        "get",
        "scantemplates.scanning.scangate.dev",
    );
    let mut mine = compliant();
    mine["metadata"]["name"] = json!("viewers");
    let (ok, message) = apply_as(cluster, ns, &viewer, &mine);
    assert!(!ok, "a viewer created a ScanTemplate");
    assert!(message.contains("forbidden"), "{message}");

    // Allowed to write ScanTemplates but not to create Jobs (issue 10, attack 6): the webhook
    // asks the apiserver (SubjectAccessReview) and refuses.
    allow_templates_only(ns, &viewer);
    wait_until_allowed(
        cluster,
        ns,
        &viewer,
        "create",
        "scantemplates.scanning.scangate.dev",
    );
    let (ok, message) = apply_as(cluster, ns, &viewer, &mine);
    assert!(!ok, "a user who cannot create Jobs created a ScanTemplate");
    assert!(
        message.contains(&format!(
            "user \"{viewer}\" cannot create Jobs in namespace {}, so it cannot create a ScanTemplate that runs one",
            ns.name
        )),
        "{message}"
    );
}
