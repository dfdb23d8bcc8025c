//! The webhook role's flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::{PolicyLimitArgs, duration};

#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Address of the HTTPS admission server.
    #[arg(long, env = "SCANGATE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP admin server (/livez, /readyz, /metrics).
    #[arg(long, env = "SCANGATE_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    /// PEM serving certificate (chain); reloaded when it changes.
    #[arg(
        long,
        env = "SCANGATE_TLS_CERT",
        default_value = "/etc/scangate/tls/tls.crt"
    )]
    pub tls_cert: PathBuf,
    /// PEM private key of the serving certificate; reloaded when it changes.
    #[arg(
        long,
        env = "SCANGATE_TLS_KEY",
        default_value = "/etc/scangate/tls/tls.key"
    )]
    pub tls_key: PathBuf,
    /// Admission rules (YAML); reloaded when it changes.
    #[arg(long, env = "SCANGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Read scans, exceptions and namespaces from this directory once instead of watching the
    /// cluster (for running without a cluster, and for benchmarks).
    #[arg(long, env = "SCANGATE_SCANS_DIR")]
    pub scans_dir: Option<PathBuf>,
    /// How often the certificate and config files are checked for changes.
    #[arg(long, env = "SCANGATE_RELOAD_INTERVAL", default_value = "2s", value_parser = duration)]
    pub reload_interval: Duration,
    /// On SIGTERM, how long /readyz says not ready while reviews and new connections are still
    /// served, before the server stops accepting: time for kube-proxy (or any front) to take
    /// this replica out. The pod's terminationGracePeriodSeconds must cover this delay plus
    /// --shutdown-grace.
    #[arg(long, env = "SCANGATE_SHUTDOWN_DELAY", default_value = "5s", value_parser = duration)]
    pub shutdown_delay: Duration,
    /// How long in-flight reviews may take to finish on shutdown (after --shutdown-delay).
    #[arg(long, env = "SCANGATE_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// The largest AdmissionReview body accepted (the apiserver sends at most a few MiB).
    #[arg(long, env = "SCANGATE_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    #[command(flatten)]
    pub policy: PolicyLimitArgs,
    /// ScanPolicy checks one user may have running or waiting at once, outside scangate's and
    /// the trusted namespaces (whose writes have workers of their own); more are refused at
    /// once, so one user's dry runs cannot hold up anyone else's.
    #[arg(long, env = "SCANGATE_POLICY_CHECKS_PER_USER", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub policy_checks_per_user: u16,
}

impl WebhookArgs {
    /// The sandbox's limits for ScanPolicy checks.
    #[must_use]
    pub fn policy_limits(&self) -> crate::sandbox::Limits {
        crate::sandbox::Limits {
            per_tenant: Some(usize::from(self.policy_checks_per_user)),
            ..self.policy.limits()
        }
    }
}
