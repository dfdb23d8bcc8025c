//! A namespace where the real webhook enforces: the webhook binary on loopback, and webhook
//! configurations (with the local CA) that select only this namespace, so tests sharing a
//! cluster do not see each other's webhooks. Everything is removed on drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scangate::webhooks::{self, Ca, Namespaces, Target};

use super::cluster::{Cluster, TestNamespace};
use super::webhook::{Webhook, certs};

/// The label that ties a namespace to its test's webhook configurations.
const E2E_LABEL: &str = "scangate.dev/e2e";

pub struct Enforced {
    pub cluster: &'static Cluster,
    pub ns: TestNamespace,
    config_name: String,
    pub webhook: Webhook,
    pub dir: tempfile::TempDir,
}

impl Enforced {
    /// Starts a webhook running as ServiceAccount scangate-system/scangate-webhook (its RBAC
    /// is exercised), and a namespace (`labels` added) it enforces on.
    pub fn start(cluster: &'static Cluster, prefix: &str, labels: &[(&str, &str)]) -> Enforced {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        certs(dir.path());
        let mut all = vec![(E2E_LABEL, id.as_str())];
        all.extend_from_slice(labels);
        let ns = cluster.namespace(prefix, &all);
        let kubeconfig = cluster.kubeconfig_as("scangate-webhook");
        let webhook =
            Webhook::start_with_env(dir.path(), dir.path(), &[], &[("KUBECONFIG", &kubeconfig)]);
        let config_name = format!("scangate-e2e-{id}");
        let ca = std::fs::read(dir.path().join("ca.crt")).expect("CA");
        let yaml = webhooks::configurations_yaml(
            &config_name,
            &Target::Url(&webhook.url),
            &Namespaces::Labelled {
                key: E2E_LABEL,
                value: &id,
            },
            &Ca::Bundle(&ca),
        )
        .expect("webhook configurations");
        let out = cluster.apply(&yaml, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let enforced = Enforced {
            cluster,
            ns,
            config_name,
            webhook,
            dir,
        };
        // The apiserver picks up new configurations asynchronously: wait until a probe is reviewed.
        cluster.eventually(
            "the webhook configuration to take effect",
            Duration::from_secs(30),
            || {
                let out = enforced.ns.kubectl(&[
                    "run",
                    "probe",
                    "--image=registry.example/probe:1",
                    "--dry-run=server",
                ]);
                String::from_utf8_lossy(&out.stderr)
                    .contains("has no trusted scan")
                    .then_some(())
            },
        );
        enforced
    }
}

impl Drop for Enforced {
    fn drop(&mut self) {
        for kind in [
            "validatingwebhookconfiguration",
            "mutatingwebhookconfiguration",
        ] {
            let _ =
                self.cluster
                    .kubectl(&["delete", kind, &self.config_name, "--ignore-not-found"]);
        }
    }
}
