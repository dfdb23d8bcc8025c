//! End-to-end support: the local control plane started by `make controlplane`
//! (tests/controlplane/), reached through its kubeconfig and its own kubectl.
//!
//! E2E tests run when `SCANGATE_E2E=1`; then an unreachable control plane fails the test
//! loudly. Without it they return at once, saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cluster, when e2e tests are enabled; `None` (after saying why) otherwise.
pub fn cluster() -> Option<&'static Cluster> {
    if std::env::var("SCANGATE_E2E").as_deref() != Ok("1") {
        eprintln!(
            "skipping: set SCANGATE_E2E=1 and run `make controlplane` (or `make test`) for end-to-end tests"
        );
        return None;
    }
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    Some(CLUSTER.get_or_init(|| {
        let dir = std::env::var_os("SCANGATE_CONTROLPLANE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/controlplane"));
        Cluster::at(&dir)
    }))
}

impl Cluster {
    /// The control plane whose state directory is `dir` (as `make controlplane` or
    /// [`super::controlplane::ControlPlane`] start one), with scangate's CRDs and RBAC applied.
    pub fn at(dir: &Path) -> Cluster {
        let cluster = Cluster {
            kubeconfig: dir.join("kubeconfig"),
            kubectl: dir.join("bin/kubectl"),
        };
        let ready = cluster.kubectl(&["get", "--raw", "/readyz"]);
        assert!(
            ready.status.success(),
            "SCANGATE_E2E=1 but the control plane at {} is not reachable (run `make controlplane`): {}",
            cluster.kubeconfig.display(),
            String::from_utf8_lossy(&ready.stderr)
        );
        cluster.apply_crds();
        cluster.apply_rbac();
        cluster
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_in(args, None)
    }

    /// Runs kubectl with `stdin` as standard input.
    pub fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.kubectl_with(&self.kubeconfig, args, stdin)
    }

    /// Runs kubectl with another kubeconfig (e.g. one from [`Cluster::kubeconfig_as`]).
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .current_dir(repo())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()));
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .expect("write kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns its standard output, failing the test if it fails.
    /// Stores `report` (a scanner's JSON) for scan `scan` (`namespace/name`) with `scangate
    /// report --to-configmap`, as a CI pipeline does, as the admin.
    pub fn push_report(&self, scan: &str, report: &serde_json::Value) {
        let file = tempfile::NamedTempFile::new().expect("report file");
        std::fs::write(file.path(), report.to_string()).expect("write report");
        let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args([
                "report",
                &file.path().display().to_string(),
                "--to-configmap",
                scan,
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("scangate report");
        assert!(out.status.success(), "{}", stderr(&out));
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `yaml`; returns the whole output.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_in(&args, Some(yaml))
    }

    fn apply_crds(&self) {
        self.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            "deploy/crds/",
        ]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/imagescans.scanning.scangate.dev",
            "crd/sourcescans.scanning.scangate.dev",
            "crd/scantemplates.scanning.scangate.dev",
            "crd/scanpolicies.scanning.scangate.dev",
            "crd/scanexceptions.scanning.scangate.dev",
            "crd/denieddigests.scanning.scangate.dev",
            "crd/policyreports.wgpolicyk8s.io",
        ]);
    }

    /// scangate's namespace, ServiceAccounts and RBAC, as `deploy/core` installs them, so
    /// tests can run scangate under its own identities.
    fn apply_rbac(&self) {
        self.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "deploy/rbac/namespace.yaml",
        ]);
        self.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "deploy/rbac/rbac.yaml",
        ]);
    }

    /// A kube client for the cluster's admin kubeconfig (call inside a tokio runtime).
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("client config");
        kube::Client::try_from(config).expect("client")
    }

    /// A kubeconfig that acts as ServiceAccount `scangate-system/<name>` (impersonation), so
    /// whatever runs with it has exactly that ServiceAccount's RBAC.
    pub fn kubeconfig_as(&self, service_account: &str) -> PathBuf {
        self.kubeconfig_as_in("scangate-system", service_account)
    }

    /// Like [`Cluster::kubeconfig_as`], for a ServiceAccount in another namespace.
    pub fn kubeconfig_as_in(&self, namespace: &str, service_account: &str) -> PathBuf {
        self.kubeconfig_impersonating(
            &format!("{namespace}-{service_account}"),
            &format!("system:serviceaccount:{namespace}:{service_account}"),
        )
    }

    /// A kubeconfig that acts as user `user` (impersonation), as `kubectl --as` does.
    pub fn kubeconfig_as_user(&self, user: &str) -> PathBuf {
        self.kubeconfig_impersonating(&format!("user-{user}"), user)
    }

    /// A kubeconfig `kubeconfig-as-<file>` whose every user acts as `user`.
    fn kubeconfig_impersonating(&self, file: &str, user: &str) -> PathBuf {
        let path = self
            .kubeconfig
            .with_file_name(format!("kubeconfig-as-{file}"));
        let text = std::fs::read_to_string(&self.kubeconfig).expect("read kubeconfig");
        let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
        if let Some(users) = config.get_mut("users").and_then(|u| u.as_sequence_mut()) {
            for entry in users {
                if let Some(map) = entry.get_mut("user").and_then(|u| u.as_mapping_mut()) {
                    map.insert("as".into(), user.into());
                }
            }
        }
        // Tests run in parallel and webhooks read this file as they start: write a private
        // copy and rename it into place, so no reader ever sees a half-written kubeconfig.
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let partial = path.with_extension(format!(
            "{}-{}.partial",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(
            &partial,
            serde_yaml::to_string(&config).expect("kubeconfig"),
        )
        .expect("write kubeconfig");
        std::fs::rename(&partial, &path).expect("move kubeconfig into place");
        path
    }

    /// A fresh namespace, deleted when the returned guard drops.
    pub fn namespace(&'static self, prefix: &str, labels: &[(&str, &str)]) -> TestNamespace {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let labels: String = labels
            .iter()
            .map(|(k, v)| format!("\n    {k}: \"{v}\""))
            .collect();
        let yaml = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:{}\n",
            if labels.is_empty() {
                " {}".to_string()
            } else {
                labels
            }
        );
        let out = self.apply(&yaml, &[]);
        assert!(
            out.status.success(),
            "create namespace: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestNamespace {
            cluster: self,
            name,
        }
    }

    /// Whether a namespace is being deleted: the namespace controller and the garbage
    /// collector read and delete its objects, in bursts, until it is gone.
    pub fn terminating_namespaces(&self) -> bool {
        let out = self.kubectl_ok(&["get", "namespaces", "-o", "json"]);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["status"]["phase"] == "Terminating")
    }

    /// Waits until earlier tests' namespaces are gone: for tests that look at the whole
    /// cluster (a controller of every namespace, cluster-wide counts).
    pub fn wait_until_no_namespace_terminates(&self) {
        self.eventually(
            "earlier tests' namespaces to be deleted",
            Duration::from_secs(180),
            || (!self.terminating_namespaces()).then_some(()),
        );
    }

    /// Polls `check` until it returns Some, or fails after `timeout` with `what`.
    pub fn eventually<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub struct TestNamespace {
    cluster: &'static Cluster,
    pub name: String,
}

impl TestNamespace {
    /// Marks Job `job` complete through its status subresource, as the Job controller does
    /// when its pod succeeds (there is no kubelet here), once the Job has started.
    pub fn complete_job(&self, job: &str) {
        let start = self
            .cluster
            .eventually("the Job's startTime", Duration::from_secs(60), || {
                let text =
                    self.kubectl_ok(&["get", "job", job, "-o", "jsonpath={.status.startTime}"]);
                (!text.is_empty()).then_some(text)
            });
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .map(|t| t.to_string())
            .unwrap_or_default();
        let condition = |t: &str| serde_json::json!({"type": t, "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now});
        let patch = serde_json::json!({"status": {"startTime": start, "completionTime": now,
            "active": 0, "ready": 0, "terminating": 0, "succeeded": 1,
            "conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}});
        self.kubectl_ok(&[
            "patch",
            "job",
            job,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    /// kubectl with `-n <namespace>` added.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        self.cluster.kubectl(&all)
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        self.cluster.kubectl_ok(&all)
    }

    pub fn apply(&self, yaml: &str) -> Output {
        self.cluster.apply(yaml, &["-n", &self.name])
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// kubectl's standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A one-replica Deployment `name` running `image`.
pub fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: \"{image}\"}}]
"
    )
}
