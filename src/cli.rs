//! Command line interface: every flag has an environment variable fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::controller::args::ControllerArgs;

/// Keeps vulnerable images out of Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "scangate", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log filter, in `tracing` EnvFilter syntax (e.g. `info,scangate=debug`).
    #[arg(
        long,
        env = "SCANGATE_LOG",
        default_value = "info,rustls=error",
        global = true
    )]
    pub log_filter: String,
    /// Log format.
    #[arg(long, env = "SCANGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook (HTTPS) and its admin port.
    Webhook(WebhookArgs),
    /// Run the scan controller.
    Controller(ControllerArgs),
    /// Check workload manifests against scans on disk, as the webhook would (no cluster needed).
    ///
    /// Exit codes: 0 every workload admitted, or nothing to check (files with no workload pass
    /// with a note); 1 at least one workload denied; 2 an input could not be read or a workload
    /// could not be decided (the other inputs are still checked, and errors go to standard
    /// error).
    Check(CheckArgs),
    /// Normalize a scanner's output (Grype, Trivy, CycloneDX, SARIF) and print or store it.
    Report(ReportArgs),
    /// Evaluate ScanPolicies offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Create a local CA and a serving certificate for development and tests.
    Certs(CertsArgs),
    /// Print the webhook configurations (validating and mutating) as YAML.
    WebhookConfig(WebhookConfigArgs),
    /// Internal: check or evaluate one policy read from stdin, under OS limits (started by the
    /// webhook and the controller, one process per policy check).
    #[command(hide = true)]
    PolicyWorker(PolicyWorkerArgs),
}

/// The limits of ScanPolicy checks and evaluations: each runs in its own worker process.
#[derive(Debug, Clone, Args)]
pub struct PolicyLimitArgs {
    /// Memory one policy check or evaluation may allocate, in MiB (its process's RLIMIT_DATA).
    #[arg(long, env = "SCANGATE_POLICY_MEMORY_LIMIT_MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(16..=65536))]
    pub policy_memory_limit_mib: u64,
    /// Wall-clock time one policy check or evaluation may take; its process is killed then.
    #[arg(long, env = "SCANGATE_POLICY_TIME_LIMIT", default_value = "2s", value_parser = duration)]
    pub policy_time_limit: Duration,
    /// Policy checks and evaluations running at once.
    #[arg(long, env = "SCANGATE_POLICY_CONCURRENCY", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub policy_concurrency: u16,
    /// Policy checks that may wait for a free slot; more are refused at once ("retry"). The
    /// controller's queue is at least twice its --concurrency, so its reconciles always wait.
    #[arg(long, env = "SCANGATE_POLICY_QUEUE", default_value_t = 4)]
    pub policy_queue: u16,
}

impl PolicyLimitArgs {
    /// The sandbox's limits.
    #[must_use]
    pub fn limits(&self) -> crate::sandbox::Limits {
        crate::sandbox::Limits {
            memory_bytes: self.policy_memory_limit_mib.saturating_mul(1024 * 1024),
            time: self.policy_time_limit,
            concurrency: usize::from(self.policy_concurrency),
            queue: usize::from(self.policy_queue),
        }
    }
}

/// The limits a policy worker sets on itself before reading its request.
#[derive(Debug, Args)]
pub struct PolicyWorkerArgs {
    /// RLIMIT_DATA, in bytes.
    #[arg(long, env = "SCANGATE_POLICY_WORKER_MEMORY_BYTES")]
    pub memory_bytes: u64,
    /// RLIMIT_CPU (soft; the hard limit is one second more), in seconds.
    #[arg(long, env = "SCANGATE_POLICY_WORKER_CPU_SECONDS")]
    pub cpu_seconds: u64,
    /// regorus's own time limit of one evaluation, in milliseconds.
    #[arg(long, env = "SCANGATE_POLICY_WORKER_TIME_LIMIT_MS")]
    pub time_limit_ms: u64,
}

impl PolicyWorkerArgs {
    /// The worker's limits.
    #[must_use]
    pub fn limits(&self) -> crate::sandbox::worker::WorkerLimits {
        crate::sandbox::worker::WorkerLimits {
            memory_bytes: self.memory_bytes,
            cpu_seconds: self.cpu_seconds,
            time: Duration::from_millis(self.time_limit_ms),
        }
    }
}

#[derive(Debug, Args)]
pub struct WebhookConfigArgs {
    /// Send reviews to this base URL (e.g. https://127.0.0.1:8443 for a webhook on loopback).
    #[arg(long, env = "SCANGATE_WEBHOOK_URL", conflicts_with = "service")]
    pub url: Option<String>,
    /// Send reviews to this Service, as NAMESPACE/NAME (port 443).
    #[arg(
        long,
        env = "SCANGATE_WEBHOOK_SERVICE",
        default_value = "scangate-system/scangate-webhook"
    )]
    pub service: String,
    /// PEM CA bundle that signed the webhook's certificate.
    #[arg(long, env = "SCANGATE_WEBHOOK_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Without --ca-file: the cert-manager Certificate (NAMESPACE/NAME) whose CA is injected.
    #[arg(
        long,
        env = "SCANGATE_WEBHOOK_CERTIFICATE",
        default_value = "scangate-system/scangate-webhook"
    )]
    pub certificate: String,
    /// Namespaces the webhooks never apply to.
    #[arg(
        long,
        env = "SCANGATE_EXCLUDED_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system,scangate-system"
    )]
    pub exclude_namespaces: Vec<String>,
}

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
    /// How long in-flight reviews may take to finish on shutdown.
    #[arg(long, env = "SCANGATE_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// The largest AdmissionReview body accepted (the apiserver sends at most a few MiB).
    #[arg(long, env = "SCANGATE_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    #[command(flatten)]
    pub policy: PolicyLimitArgs,
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    crate::api::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Workload manifests (YAML or JSON, multi-document, Lists): files, or directories of
    /// `.yaml`, `.yml` and `.json` files; `-` for standard input.
    #[arg(
        short = 'f',
        long = "filename",
        env = "SCANGATE_CHECK_MANIFESTS",
        required = true
    )]
    pub manifests: Vec<PathBuf>,
    /// Read the directories of --filename recursively, like kubectl; without it, only each
    /// directory's own files.
    #[arg(short = 'R', long, env = "SCANGATE_CHECK_RECURSIVE")]
    pub recursive: bool,
    /// Scan objects (ImageScans, ScanExceptions, Namespaces) as YAML or JSON: a file, or a
    /// directory's own files. Without it, no image is scanned.
    #[arg(long, env = "SCANGATE_CHECK_SCANS")]
    pub scans: Option<PathBuf>,
    /// Admission rules (YAML), as the webhook reads them.
    #[arg(long, env = "SCANGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The user the workloads are created by. It matters for pods a built-in controller
    /// creates from a template (e.g. system:serviceaccount:kube-system:replicaset-controller
    /// for a ReplicaSet's pods): those pass with a warning, as at the webhook, unless the
    /// config sets recheckControllerPods. Without it, a user who is no controller.
    #[arg(long, env = "SCANGATE_CHECK_USER", value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The scanner's output file; `-` for standard input.
    #[arg(env = "SCANGATE_REPORT_FILE")]
    pub file: PathBuf,
    /// Store the normalized report in the cluster for scan NAMESPACE/SCAN instead of printing it.
    #[arg(
        long,
        env = "SCANGATE_REPORT_TO_CONFIGMAP",
        value_name = "NAMESPACE/SCAN"
    )]
    pub to_configmap: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate a policy against a report: exit 0 compliant, 1 violated, 2 error.
    Eval(PolicyEvalArgs),
}

#[derive(Debug, Args)]
pub struct PolicyEvalArgs {
    /// A Rego file, or a ScanPolicy manifest.
    #[arg(long, env = "SCANGATE_POLICY")]
    pub policy: PathBuf,
    /// A scanner's output file or a normalized report.
    #[arg(long, env = "SCANGATE_REPORT")]
    pub report: PathBuf,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, env = "SCANGATE_CERTS_DIR", default_value = "certs/local")]
    pub out_dir: PathBuf,
    /// Names and IP addresses of the serving certificate (default: loopback and the Service).
    #[arg(long = "host", env = "SCANGATE_CERTS_HOSTS", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Days the CA and certificate are valid.
    #[arg(long, env = "SCANGATE_CERTS_DAYS", default_value_t = 365)]
    pub days: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_an_environment_fallback() {
        fn walk(cmd: &clap::Command, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_env().is_none() {
                    missing.push(format!("{} --{}", cmd.get_name(), arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, missing);
            }
        }
        let mut missing = vec![];
        walk(&Cli::command(), &mut missing);
        assert!(missing.is_empty(), "flags without env: {missing:?}");
    }

    #[test]
    fn parses_a_webhook_command_line() {
        let cli = Cli::try_parse_from([
            "scangate",
            "webhook",
            "--listen",
            "127.0.0.1:9443",
            "--tls-cert",
            "a.crt",
        ]);
        match cli.map(|c| c.command) {
            Ok(Command::Webhook(args)) => {
                assert_eq!(args.listen.port(), 9443);
                assert_eq!(args.tls_cert, PathBuf::from("a.crt"));
                assert_eq!(args.policy.limits(), crate::sandbox::Limits::default());
            }
            other => panic!("{other:?}"),
        }
    }
}
