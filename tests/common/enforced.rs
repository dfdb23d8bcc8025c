//! A namespace where the real webhook enforces: the webhook binary on loopback, and webhook
//! configurations (with the local CA) that select only this namespace, so tests sharing a
//! cluster do not see each other's webhooks. Everything is removed on drop.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scangate::cmd::webhook_config::{self, Ca, FailurePolicy, Namespaces, Target};

use super::cluster::{Cluster, TestNamespace};
use super::controller::Controller;
use super::webhook::{Webhook, certs};

/// The label that ties a namespace to its test's webhook configurations.
const E2E_LABEL: &str = "scangate.dev/e2e";

pub struct Enforced {
    pub cluster: &'static Cluster,
    /// The workload namespace, a tenant's.
    pub ns: TestNamespace,
    /// This test's stand-in for scangate-system: the webhook's `scangateNamespace`, whose
    /// scans are trusted results and whose exceptions count everywhere.
    pub system: TestNamespace,
    /// The admission config the webhook reads.
    pub config: std::path::PathBuf,
    /// The label value that ties this test's namespaces to its webhook configurations.
    id: String,
    config_name: String,
    pub webhook: Webhook,
    pub dir: tempfile::TempDir,
}

impl Enforced {
    /// Starts a webhook running as ServiceAccount scangate-system/scangate-webhook (its RBAC
    /// is exercised), and a namespace (`labels` added) it enforces on.
    pub fn start(cluster: &'static Cluster, prefix: &str, labels: &[(&str, &str)]) -> Enforced {
        Self::with_config(cluster, prefix, labels, "")
    }

    /// Like [`Enforced::start`], with admission config lines added (YAML; the fixture sets
    /// `scangateNamespace` to [`Enforced::system`]).
    pub fn with_config(
        cluster: &'static Cluster,
        prefix: &str,
        labels: &[(&str, &str)],
        config: &str,
    ) -> Enforced {
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
        let system = cluster.namespace(&format!("{prefix}-sys"), &all[..1]);
        let config_path = dir.path().join("config.yaml");
        std::fs::write(
            &config_path,
            format!("scangateNamespace: {}\n{config}\n", system.name),
        )
        .expect("write config");
        let webhook = start_webhook(cluster, dir.path(), dir.path(), &config_path, &[]);
        let config_name = format!("scangate-e2e-{id}");
        let ca = std::fs::read(dir.path().join("ca.crt")).expect("CA");
        apply_configurations(
            cluster,
            &config_name,
            &id,
            &webhook.url,
            &ca,
            FailurePolicy::Fail,
        );
        let enforced = Enforced {
            cluster,
            ns,
            system,
            config: config_path,
            id: id.clone(),
            config_name,
            webhook,
            dir,
        };
        // The apiserver picks up new configurations asynchronously: wait until a probe is
        // reviewed (on a loaded machine this can take a while; a timeout says what was seen).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = enforced.ns.kubectl(&[
                "run",
                "probe",
                "--image=registry.example/probe:1",
                "--dry-run=server",
            ]);
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            if said.contains("has no trusted scan") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the webhook configuration did not take effect in 60s; the probe said: {said}\n\
                 webhook log:\n{}",
                enforced.webhook.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        enforced
    }
}

/// A webhook process running as ServiceAccount scangate-system/scangate-webhook, reading the
/// admission config `config` and its certificate from `tls_dir`, with `args` added.
fn start_webhook(
    cluster: &Cluster,
    workdir: &Path,
    tls_dir: &Path,
    config: &Path,
    args: &[&str],
) -> Webhook {
    let kubeconfig = cluster.kubeconfig_as("scangate-webhook");
    let config = config.display().to_string();
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    Webhook::start_with_env(workdir, tls_dir, &all, &[("KUBECONFIG", &kubeconfig)])
}

/// Applies this test's webhook configurations: reviews of its namespaces go to `url`, whose
/// certificate is checked against `ca_bundle` (PEM, one CA or more); the workload webhooks
/// with `workload_failure`.
fn apply_configurations(
    cluster: &Cluster,
    name: &str,
    id: &str,
    url: &str,
    ca_bundle: &[u8],
    workload_failure: FailurePolicy,
) {
    let yaml = webhook_config::configurations_yaml(
        name,
        &Target::Url(url),
        &Namespaces::Labelled {
            key: E2E_LABEL,
            value: id,
        },
        &Ca::Bundle(ca_bundle),
        workload_failure,
        scangate::admission::config::DEFAULT_SCANNER_SERVICE_ACCOUNT,
    )
    .expect("webhook configurations");
    let out = cluster.apply(&yaml, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Enforced {
    /// Another webhook process like [`Enforced::webhook`] (same identity and admission config),
    /// with its certificate read from `tls_dir` and `args` added: a replica.
    pub fn start_replica(&self, tls_dir: &Path, args: &[&str]) -> Webhook {
        start_webhook(self.cluster, self.dir.path(), tls_dir, &self.config, args)
    }

    /// Points this test's webhook configurations at `url` (e.g. a front before replicas), with
    /// `ca_bundle` as their caBundle. The apiserver picks the change up asynchronously.
    pub fn point_at(&self, url: &str, ca_bundle: &[u8]) {
        apply_configurations(
            self.cluster,
            &self.config_name,
            &self.id,
            url,
            ca_bundle,
            FailurePolicy::Fail,
        );
    }

    /// Makes the workload webhooks fail open (`failurePolicy: Ignore`), as with the verdict
    /// mirror on. The apiserver picks the change up asynchronously.
    pub fn fail_open(&self) {
        let ca = std::fs::read(self.dir.path().join("ca.crt")).expect("CA");
        apply_configurations(
            self.cluster,
            &self.config_name,
            &self.id,
            &self.webhook.url,
            &ca,
            FailurePolicy::Ignore,
        );
    }

    /// The label (`key`, `value`) that ties this test's namespaces to its webhooks.
    pub fn label(&self) -> (&'static str, &str) {
        (E2E_LABEL, &self.id)
    }

    /// kubectl acting as scangate's controller (the only identity that may write scan status).
    pub fn as_controller(&self, args: &[&str]) -> std::process::Output {
        let kubeconfig = self.cluster.kubeconfig_as("scangate-controller");
        self.cluster.kubectl_with(&kubeconfig, args, None)
    }

    /// An ImageScan of `image` in `namespace` whose status scangate's controller wrote: the
    /// artifact `resolved` (`repo@digest`) and `status` (JSON members: conditions, counts,
    /// violations).
    pub fn scan(&self, namespace: &str, name: &str, image: &str, resolved: &str, status: &str) {
        let out = self.cluster.apply(
            &format!(
                "apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {{name: {name}}}\nspec:\n  registry: {{image: \"{image}\"}}\n"
            ),
            &["-n", namespace],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.write_status(
            namespace,
            name,
            &format!(r#""artifact": {{"registry": {{"image": "{resolved}"}}}}, {status}"#),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Merges `status` (JSON members) into scan `namespace/name`'s status as scangate's
    /// controller writes it (e.g. a trusted result turning Failed); kubectl's output.
    pub fn write_status(&self, namespace: &str, name: &str, status: &str) -> std::process::Output {
        self.as_controller(&[
            "-n",
            namespace,
            "patch",
            "imagescan",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(r#"{{"status": {{{status}}}}}"#),
        ])
    }

    /// A trusted result: [`Enforced::scan`] in the test's scangate namespace.
    pub fn trusted_scan(&self, name: &str, image: &str, resolved: &str, status: &str) {
        self.scan(&self.system.name, name, image, resolved, status);
    }

    /// Another namespace this webhook enforces on (another tenant's).
    pub fn namespace(&self, prefix: &str) -> TestNamespace {
        self.cluster.namespace(prefix, &[(E2E_LABEL, &self.id)])
    }

    /// Replaces the admission config lines (the webhook reloads the file).
    pub fn set_config(&self, config: &str) {
        // Renamed into place: the webhook polls the file and must never read half of it.
        let partial = self.config.with_extension("yaml.partial");
        std::fs::write(
            &partial,
            format!("scangateNamespace: {}\n{config}\n", self.system.name),
        )
        .expect("write config");
        std::fs::rename(&partial, &self.config).expect("move config into place");
    }

    /// kubectl acting as `user` (impersonation), with `stdin`.
    pub fn kubectl_as(
        &self,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> std::process::Output {
        let mut all = vec!["--as", user];
        all.extend_from_slice(args);
        self.cluster.kubectl_in(&all, stdin)
    }

    /// A tenant of [`Enforced::ns`]: a user bound to the built-in `edit` role there (which
    /// aggregates `scangate-edit`). Returns the user name for `kubectl --as`.
    pub fn tenant(&self) -> String {
        let user = format!("tenant-{}", self.ns.name);
        self.bind(&self.ns.name, &user, "edit");
        user
    }

    /// Binds `cluster_role` to `user` in `namespace`.
    pub fn bind(&self, namespace: &str, user: &str, cluster_role: &str) {
        let yaml = format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {user}-{cluster_role}, namespace: {namespace}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {cluster_role}}}\n\
             subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]\n"
        );
        let out = self.cluster.apply(&yaml, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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

impl Enforced {
    /// The controller, cluster-wide (the page's figures are the cluster's), serving the results
    /// page over TLS with the test's serving certificate (written for 127.0.0.1), under the
    /// lease `LEASE-<the test's namespace>`; and the page's base URL.
    pub fn results_page(&self, lease: &str) -> (Controller, String) {
        let (start, base) =
            Controller::cluster_wide(self.cluster.kubeconfig_as("scangate-controller"))
                .config(&self.config)
                .lease(&format!("{lease}-{}", self.ns.name), None)
                .results_page(self.dir.path());
        (start.start(), base)
    }
}
