//! Runs the real `scangate webhook` binary on loopback and talks to it over real TLS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::net::{free_port, http_get};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Writes a CA and serving certificate for 127.0.0.1 into `dir`.
pub fn certs(dir: &Path) {
    scangate::cmd::certs::generate(&["127.0.0.1".to_string(), "localhost".to_string()], 30)
        .and_then(|b| b.write(dir))
        .expect("write certs");
}

/// A TLS client trusting the given CA files.
pub fn client(cas: &[&Path]) -> reqwest::Client {
    client_builder(cas).build().expect("client")
}

/// The builder of [`client`], to change more settings.
pub fn client_builder(cas: &[&Path]) -> reqwest::ClientBuilder {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        let pem = std::fs::read(ca).expect("read CA");
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(10))
}

pub struct Webhook {
    child: Child,
    pub url: String,
    pub admin: String,
    pub log: PathBuf,
}

impl Webhook {
    /// Starts the webhook with `args` added, and waits until `/readyz` answers 200.
    pub fn start(workdir: &Path, tls_dir: &Path, args: &[&str]) -> Webhook {
        Self::start_with_env(workdir, tls_dir, args, &[])
    }

    /// Like [`Webhook::start`], with environment variables set (e.g. KUBECONFIG).
    pub fn start_with_env(
        workdir: &Path,
        tls_dir: &Path,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Webhook {
        // A port free_port found free can be taken by another test before the webhook binds
        // it: then start again, on other ports.
        for _ in 0..5 {
            let mut webhook = Self::spawn(workdir, tls_dir, args, env);
            if webhook.wait_ready() {
                return webhook;
            }
        }
        panic!("the webhook lost its ports to other processes 5 times in a row");
    }

    /// Like [`Webhook::start_with_env`], waiting only until it is alive (`/livez`), not ready.
    pub fn start_alive(
        workdir: &Path,
        tls_dir: &Path,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Webhook {
        let webhook = Self::spawn(workdir, tls_dir, args, env);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&webhook.admin, "/livez").is_none_or(|(status, _)| status != 200) {
            assert!(Instant::now() < deadline, "webhook not alive in 30s");
            std::thread::sleep(Duration::from_millis(50));
        }
        webhook
    }

    fn spawn(workdir: &Path, tls_dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Webhook {
        let port = free_port();
        let admin_port = free_port();
        let log = workdir.join(format!("webhook-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args([
                "webhook",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admin-listen",
                &format!("127.0.0.1:{admin_port}"),
                "--tls-cert",
                &tls_dir.join("tls.crt").display().to_string(),
                "--tls-key",
                &tls_dir.join("tls.key").display().to_string(),
                "--reload-interval",
                "100ms",
            ])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start scangate webhook");
        Webhook {
            child,
            url: format!("https://127.0.0.1:{port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            log,
        }
    }

    /// Waits until ready: true; false when the webhook ended because a port of its was taken.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http_get(&self.admin, "/readyz").is_some_and(|(status, _)| status == 200) {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_)))
                && self.logs().contains("Address already in use")
            {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "webhook not ready in 30s; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the webhook has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and returns at once.
    pub fn sigterm(&self) {
        // The shell's builtin kill: no procps needed.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.wait()
    }

    /// Waits (at most 30 s) for the exit status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "webhook did not stop in 30s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lays out a directory as the kubelet mounts a Secret: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<version>`, swapped atomically by renaming a new `..data` symlink over it.
pub fn mount_secret(mount: &Path, version: &str, from: &Path) {
    let versioned = mount.join(version);
    std::fs::create_dir_all(&versioned).expect("mkdir");
    for f in ["tls.crt", "tls.key"] {
        std::fs::copy(from.join(f), versioned.join(f)).expect("copy");
    }
    let tmp = mount.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp).expect("symlink");
    std::fs::rename(&tmp, mount.join("..data")).expect("swap ..data");
    for f in ["tls.crt", "tls.key"] {
        let link = mount.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).expect("symlink");
        }
    }
}
