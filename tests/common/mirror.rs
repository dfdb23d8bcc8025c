//! The verdict mirror in tests and benches: the controller's right to write its parameters in a
//! test's scangate namespace (deploy/rbac grants it in scangate-system only), and the mirror's
//! cluster-wide policy and bindings, deleted when the test ends.

use super::cluster::{Cluster, stderr};

/// Lets scangate's controller write DeniedDigests in `namespace`, the test's scangate
/// namespace.
pub fn grant(cluster: &Cluster, namespace: &str) {
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: mirror, namespace: {namespace}}}\n\
         rules: [{{apiGroups: [scanning.scangate.dev], resources: [denieddigests], verbs: [get, list, create, patch, delete]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: mirror, namespace: {namespace}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: mirror}}\n\
         subjects: [{{kind: ServiceAccount, name: scangate-controller, namespace: scangate-system}}]\n"
    );
    let out = cluster.apply(&rbac, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Mirror `name`'s ValidatingAdmissionPolicy and its bindings, deleted when dropped (they are
/// cluster-wide).
pub struct Objects {
    pub cluster: &'static Cluster,
    pub name: String,
}

impl Drop for Objects {
    fn drop(&mut self) {
        for mode in ["enforce", "warn", "audit"] {
            let binding = format!("{}-{mode}", self.name);
            let _ = self.cluster.kubectl(&[
                "delete",
                "validatingadmissionpolicybinding",
                &binding,
                "--ignore-not-found",
            ]);
        }
        let _ = self.cluster.kubectl(&[
            "delete",
            "validatingadmissionpolicy",
            &self.name,
            "--ignore-not-found",
        ]);
    }
}
