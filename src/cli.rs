//! Command line interface: every flag has an environment variable fallback.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

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

/// The file name kubectl looks for on PATH to run `kubectl scangate …`: a symlink to (or a copy
/// of) the scangate binary installed under this name is the kubectl plugin.
pub const KUBECTL_PLUGIN_FILE: &str = "kubectl-scangate";

/// The command name that usage and error messages show for a process started as `argv0`:
/// `kubectl scangate` when kubectl started it as its plugin, else none (clap then shows the
/// binary's file name, as it always has).
#[must_use]
pub fn invoked_as(argv0: &OsStr) -> Option<&'static str> {
    (Path::new(argv0).file_name() == Some(OsStr::new(KUBECTL_PLUGIN_FILE)))
        .then_some("kubectl scangate")
}

impl Cli {
    /// Parses the process's arguments, as `Cli::parse` does, with usage naming the command the
    /// way it was started (see [`invoked_as`]); prints clap's message and exits on bad ones.
    #[must_use]
    pub fn parse_args() -> Self {
        Self::parse_from_args(std::env::args_os())
    }

    /// [`Cli::parse_args`] for the given arguments, the first being the program (argv[0]).
    #[must_use]
    pub fn parse_from_args(args: impl IntoIterator<Item = OsString>) -> Self {
        let args: Vec<OsString> = args.into_iter().collect();
        let mut command = Self::command();
        if let Some(name) = args.first().and_then(|argv0| invoked_as(argv0)) {
            command = command.bin_name(name);
        }
        let parsed = command
            .try_get_matches_from_mut(args)
            .and_then(|mut matches| Self::from_arg_matches_mut(&mut matches))
            .map_err(|e| e.format(&mut command));
        parsed.unwrap_or_else(|e| e.exit())
    }
}

/// The status a command exits with when the reader of its standard output stopped reading
/// (`scangate report x | head`): 141, what a shell reports for grep, jq or cat in its place
/// (128 + SIGPIPE: they are killed by the signal; scangate, like every Rust program, ignores
/// it and sees the write fail), so that `set -o pipefail` scripts see what they always saw.
/// Nothing is printed: the reader left on purpose.
pub const EXIT_PIPE_CLOSED: u8 = 141;

/// How writing a command's output ended.
#[derive(Debug)]
pub enum Written {
    All,
    /// The reading end of the pipe is closed: nobody reads the rest.
    PipeClosed,
    Failed(std::io::Error),
}

/// Writes `text` to `out` and flushes it, telling a reader that went away from a failure.
pub fn write_output(out: &mut impl std::io::Write, text: &str) -> Written {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Written::All,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Written::PipeClosed,
        Err(e) => Written::Failed(e),
    }
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
    Webhook(crate::server::WebhookArgs),
    /// Run the scan controller.
    Controller(Box<ControllerArgs>),
    /// Check workload manifests against scans on disk, as the webhook would (no cluster needed).
    /// Exceptions among the scans that do not count (not approved, expired, another
    /// namespace's) are named, with why.
    ///
    /// Exit codes: 0 every workload admitted, or nothing to check (files with no workload pass
    /// with a note); 1 at least one workload denied; 2 an input could not be read or a workload
    /// could not be decided (the other inputs are still checked, and errors go to standard
    /// error).
    Check(crate::cmd::check::CheckArgs),
    /// Explain the verdict the webhook would give now to each image of a pod or workload in
    /// the cluster: the deciding result and the exception that applied (`kubectl scangate
    /// why` as a kubectl plugin).
    ///
    /// Exit codes: 0 admitted (with or without warnings); 1 denied; 2 an error, or the verdict
    /// depends on what you may not read (a trusted result, an exception, a namespace scan).
    /// A namespace whose label you may not read is taken to be in the config's default mode,
    /// and the report says so.
    Why(crate::cmd::why::WhyArgs),
    /// Count ImageScans by phase and origin, and the running pods' images by the verdict the
    /// webhook would give them now, cluster-wide or in one namespace (`kubectl scangate
    /// status`).
    Status(crate::cmd::status::StatusArgs),
    /// Rescan an ImageScan (NAME or imagescan/NAME) or a SourceScan (sourcescan/NAME) now:
    /// sets its `scangate.dev/rescan` annotation to the current time (`kubectl scangate
    /// rescan`); the controller starts one new scan per new value, through the scan queue.
    Rescan(crate::cmd::rescan::RescanArgs),
    /// Scan an image now: creates an ImageScan of it as you (`kubectl scangate scan IMAGE`),
    /// in scangate's namespace by default, so that your RBAC decides; for an image whose
    /// workload was denied, which the controller's first sight (of what runs) never meets.
    Scan(crate::cmd::scan::ScanArgs),
    /// Re-evaluate the policies on scans' stored reports now, without rescanning: one scan
    /// (NAME, imagescan/NAME, sourcescan/NAME), every scan of a namespace (-n), or of all (-A).
    /// Sets their `scangate.dev/reevaluate` annotation to the current time (`kubectl scangate
    /// reevaluate`); the controller re-evaluates once per new value, recorded in
    /// `status.handledReevaluate`.
    Reevaluate(crate::cmd::reevaluate::ReevaluateArgs),
    /// Normalize a scanner's output (Grype, Trivy, CycloneDX, SARIF) and print or store it;
    /// --image says which image a scan of an archive or a directory was of.
    Report(crate::cmd::report::ReportArgs),
    /// Evaluate ScanPolicies offline.
    #[command(subcommand)]
    Policy(crate::cmd::policy_eval::PolicyCommand),
    /// Import an OpenVEX document's statements into a namespace as you (only an approver's
    /// count), or export the namespace's statements as an OpenVEX document (docs/vex.md).
    #[command(subcommand)]
    Vex(crate::cmd::vex::VexCommand),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Create a local CA and a serving certificate for development and tests.
    Certs(crate::cmd::certs::CertsArgs),
    /// Print the webhook configurations (validating and mutating) as YAML.
    WebhookConfig(crate::cmd::webhook_config::WebhookConfigArgs),
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
    /// Policy checks and evaluations running at once, for trusted work (scangate's and the
    /// trusted namespaces) and for tenants' work each: tenants never hold up trusted work.
    #[arg(long, env = "SCANGATE_POLICY_CONCURRENCY", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub policy_concurrency: u16,
    /// Policy checks that may wait for a free slot, in each of the two; more are refused at
    /// once ("retry"). The controller's queue is at least twice its --concurrency, so its
    /// reconciles always wait.
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
            per_tenant: None,
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

/// A duration flag: `90s`, `5m`, `1h`.
pub fn duration(s: &str) -> Result<Duration, String> {
    crate::api::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn started_as_the_kubectl_plugin_usage_says_kubectl_scangate() {
        for argv0 in [
            "kubectl-scangate",
            "/usr/local/bin/kubectl-scangate",
            "./kubectl-scangate",
        ] {
            assert_eq!(
                invoked_as(OsStr::new(argv0)),
                Some("kubectl scangate"),
                "{argv0}"
            );
        }
        for argv0 in [
            "scangate",
            "/usr/local/bin/scangate",
            "kubectl-scangate-old",
            "kubectl",
            "",
        ] {
            assert_eq!(invoked_as(OsStr::new(argv0)), None, "{argv0}");
        }
    }

    #[test]
    fn parse_from_args_reads_the_same_commands_under_either_name() {
        for argv0 in ["scangate", "/bin/kubectl-scangate"] {
            let cli = Cli::parse_from_args([argv0, "crds"].map(OsString::from));
            assert!(matches!(cli.command, Command::Crds), "{argv0}");
        }
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

    /// A writer that takes `room` bytes, then fails as `error` says.
    struct Closing {
        room: usize,
        error: std::io::ErrorKind,
        taken: Vec<u8>,
    }

    impl std::io::Write for Closing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(self.error.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_told_from_a_failed_write() {
        let closing = |error| Closing {
            room: 4,
            error,
            taken: vec![],
        };
        let mut out = closing(std::io::ErrorKind::BrokenPipe);
        assert!(matches!(
            write_output(&mut out, "line 1\nline 2\n"),
            Written::PipeClosed
        ));
        assert_eq!(out.taken, b"line");
        let mut out = closing(std::io::ErrorKind::StorageFull);
        assert!(matches!(
            write_output(&mut out, "line 1\n"),
            Written::Failed(e) if e.kind() == std::io::ErrorKind::StorageFull
        ));
        let mut out = closing(std::io::ErrorKind::BrokenPipe);
        assert!(matches!(write_output(&mut out, "abc"), Written::All));
        assert_eq!(out.taken, b"abc");
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
