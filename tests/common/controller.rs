//! A `scangate controller` process for the e2e tests: started with the flags a test needs,
//! waited for until ready, killed when dropped, its log's tail printed when the test failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::enforced::Enforced;
use super::net::{free_port, http_get};

/// How long a controller may take to say it is ready.
const READY: Duration = Duration::from_secs(60);

pub struct Controller {
    child: Child,
    /// The admin server, `http://127.0.0.1:PORT` (/readyz, /metrics).
    pub admin: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// How to start a controller; see [`Controller::of`].
pub struct Start {
    kubeconfig: PathBuf,
    /// `--namespace`; every namespace when `None`.
    namespace: Option<String>,
    lease: Option<(String, Option<String>)>,
    config: Option<PathBuf>,
    extra: Vec<String>,
    log: Option<PathBuf>,
    wait: bool,
    resolve_tags: bool,
}

impl Controller {
    /// A controller of `namespace`, acting with `kubeconfig`, without leader election, retrying
    /// errors after 2 s, scanning tags as written.
    pub fn of(kubeconfig: impl Into<PathBuf>, namespace: &str) -> Start {
        Start {
            namespace: Some(namespace.to_string()),
            ..Controller::cluster_wide(kubeconfig)
        }
    }

    /// A controller of every namespace, otherwise as [`Controller::of`].
    pub fn cluster_wide(kubeconfig: impl Into<PathBuf>) -> Start {
        Start {
            kubeconfig: kubeconfig.into(),
            namespace: None,
            lease: None,
            config: None,
            extra: vec![],
            log: None,
            wait: true,
            resolve_tags: false,
        }
    }

    /// A controller of an enforced namespace as scangate's controller ServiceAccount, with
    /// the namespace's admission config, holding its own Lease `scangate-e2e-WHAT-NAMESPACE`.
    pub fn of_enforced(enforced: &Enforced, what: &str) -> Start {
        let ns = &enforced.ns.name;
        Controller::of(enforced.cluster.kubeconfig_as("scangate-controller"), ns)
            .config(&enforced.config)
            .lease(&format!("scangate-e2e-{what}-{ns}"), None)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_ready(&self) -> bool {
        http_get(&self.admin, "/readyz").is_some_and(|(code, _)| code == 200)
    }

    /// The controller's metrics text (empty when it cannot be read).
    pub fn metrics(&self) -> String {
        http_get(&self.admin, "/metrics")
            .map(|(_, text)| text)
            .unwrap_or_default()
    }

    /// The sum of the metric samples whose line starts with `prefix` (0 when unreadable).
    pub fn metric(&self, prefix: &str) -> f64 {
        super::prom::sum(&self.metrics(), prefix)
    }

    /// How the process ended, when it has.
    /// The process id (for its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: no graceful shutdown, no lease release.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Start {
    /// Run only while holding this Lease in scangate-system, as `identity` when given.
    pub fn lease(mut self, lease: &str, identity: Option<&str>) -> Self {
        self.lease = Some((lease.to_string(), identity.map(str::to_string)));
        self
    }

    /// `--config`: the admission rules file.
    pub fn config(mut self, path: &Path) -> Self {
        self.config = Some(path.to_path_buf());
        self
    }

    /// Serve the results page on a free loopback port over TLS, with the serving certificate
    /// in `dir` (`tls.crt`, `tls.key`, written for 127.0.0.1); and the page's base URL.
    pub fn results_page(self, dir: &Path) -> (Self, String) {
        let page = format!("127.0.0.1:{}", free_port());
        let file = |name: &str| dir.join(name).display().to_string();
        let start = self.args(&[
            "--results-listen",
            &page,
            "--results-tls-cert-file",
            &file("tls.crt"),
            "--results-tls-key-file",
            &file("tls.key"),
        ]);
        (start, format!("https://{page}"))
    }

    pub fn args(mut self, extra: &[&str]) -> Self {
        self.extra.extend(extra.iter().map(|a| a.to_string()));
        self
    }

    /// Append the log to this file (kept across restarts) instead of a private one.
    pub fn log_to(mut self, path: &Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Resolve tags at their registry before a scan Job starts (the product's default; off
    /// otherwise, since the images the tests scan are on no reachable registry).
    pub fn resolving_tags(mut self) -> Self {
        self.resolve_tags = true;
        self
    }

    /// Do not wait for /readyz (a standby replica is not ready).
    pub fn no_wait(mut self) -> Self {
        self.wait = false;
        self
    }

    pub fn start(self) -> Controller {
        let dir = tempfile::tempdir().expect("controller dir");
        let log = self
            .log
            .unwrap_or_else(|| dir.path().join("controller.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("controller log file");
        let admin = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<String> = vec![
            "controller".into(),
            "--admin-listen".into(),
            admin.clone(),
            "--error-retry".into(),
            "2s".into(),
            format!("--resolve-tags={}", self.resolve_tags),
        ];
        if let Some(namespace) = self.namespace {
            args.extend(["--namespace".into(), namespace]);
        }
        match self.lease {
            Some((lease, identity)) => {
                args.extend([
                    "--leader-election-namespace".into(),
                    "scangate-system".into(),
                    "--leader-election-lease".into(),
                    lease,
                ]);
                if let Some(identity) = identity {
                    args.extend(["--leader-election-identity".into(), identity]);
                }
            }
            None => args.push("--leader-election=false".into()),
        }
        if let Some(config) = self.config {
            args.extend(["--config".into(), config.display().to_string()]);
        }
        args.extend(self.extra);
        let child = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(&args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("SCANGATE_LOG", "info,scangate=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start scangate controller");
        let controller = Controller {
            child,
            admin: format!("http://{admin}"),
            log,
            _dir: dir,
        };
        if self.wait {
            let deadline = Instant::now() + READY;
            while !controller.is_ready() {
                assert!(
                    Instant::now() < deadline,
                    "the controller is not ready after {READY:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        controller
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(200).collect();
            eprintln!(
                "controller log {} (last 200 lines):\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}
