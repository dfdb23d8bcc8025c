//! The flags of `scangate controller`: every flag has an environment variable fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::{PolicyLimitArgs, duration};
use crate::registry::egress::{Allowed, HostPort, List};

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Address of the plain-HTTP admin server (/livez, /readyz, /metrics).
    #[arg(long, env = "SCANGATE_ADMIN_LISTEN", default_value = "0.0.0.0:8081")]
    pub admin_listen: SocketAddr,
    /// Base URL of the metadata store; results are not sent when unset.
    #[arg(long, env = "SCANGATE_METADATA_STORE_URL")]
    pub metadata_store_url: Option<String>,
    /// A file holding the bearer token for the metadata store (read at every send).
    #[arg(long, env = "SCANGATE_METADATA_STORE_TOKEN_FILE")]
    pub metadata_store_token_file: Option<PathBuf>,
    /// PEM CA certificate(s) the metadata store's certificate is checked against (default: the
    /// platform's trust store).
    #[arg(long, env = "SCANGATE_METADATA_STORE_CA_FILE")]
    pub metadata_store_ca_file: Option<PathBuf>,
    /// How long to wait before retrying an error (missing template or policy, failed Job,
    /// metadata store failure). Failed Jobs back off, doubling this per attempt.
    #[arg(long, env = "SCANGATE_ERROR_RETRY", default_value = "60s", value_parser = duration)]
    pub error_retry: Duration,
    /// A scan paused (`spec.suspend: true` before its round finished) longer than this is
    /// canceled for good: its Job is deleted and only a rescan starts a new round.
    #[arg(long, env = "SCANGATE_PAUSE_LIMIT", default_value = "7d", value_parser = duration)]
    pub pause_limit: Duration,
    /// Finished scan Jobs are deleted after this long (Job ttlSecondsAfterFinished).
    #[arg(long, env = "SCANGATE_JOB_TTL", default_value = "1h", value_parser = duration)]
    pub job_ttl: Duration,
    /// Run only while holding the leader Lease (`--leader-election=false` to turn off).
    #[arg(
        long,
        env = "SCANGATE_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub leader_election: bool,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "SCANGATE_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "SCANGATE_LEADER_ELECTION_LEASE",
        default_value = "scangate-controller"
    )]
    pub leader_election_lease: String,
    /// This replica's identity in the Lease (default: POD_NAME, else the host name).
    #[arg(long, env = "SCANGATE_LEADER_ELECTION_IDENTITY")]
    pub leader_election_identity: Option<String>,
    /// Only reconcile scans in this namespace (default: all namespaces).
    #[arg(long, env = "SCANGATE_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Scan Jobs running at once, in all namespaces; more scans wait in the queue (phase
    /// Pending, condition Scanning=False/Queued with their place).
    #[arg(long, env = "SCANGATE_MAX_RUNNING_JOBS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running_jobs: u32,
    /// Scan Jobs running at once in one namespace.
    #[arg(long, env = "SCANGATE_MAX_RUNNING_JOBS_PER_NAMESPACE", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running_jobs_per_namespace: u32,
    /// Scans reconciled at the same time, per kind. A reconcile mostly waits on the apiserver
    /// (its status write), so this bounds the controller's writes in flight; the apiserver's
    /// priority and fairness shares it with its other clients.
    #[arg(long, env = "SCANGATE_CONCURRENCY", default_value_t = 64)]
    pub concurrency: u16,
    /// Phase Events published per second at most (Warnings first), after a burst of
    /// `--event-burst`. A reconcile queues its Event and goes on; beyond 1,000 of a type waiting,
    /// Events are dropped and counted (`scangate_controller_events_dropped_total`): a scan's
    /// status is its record.
    #[arg(long, env = "SCANGATE_EVENT_QPS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub event_qps: u32,
    /// Phase Events published at once before `--event-qps` applies.
    #[arg(long, env = "SCANGATE_EVENT_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub event_burst: u32,
    /// The admission rules (YAML) the webhook reads: which namespaces are trusted and the
    /// exception rules, read once at start. Without it, the defaults.
    #[arg(long, env = "SCANGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// On SIGTERM, how long the reconciles under way may take to finish before the controller
    /// exits anyway (then releases its lease).
    #[arg(long, env = "SCANGATE_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// The reports of what runs and its verdict now, one per namespace: `wgpolicyk8s`
    /// (wgpolicyk8s.io/v1alpha2 PolicyReport), `openreports` (openreports.io/v1alpha1 Report,
    /// whose CRD scangate does not install) or `off` (the runtime metrics only).
    #[arg(
        long,
        env = "SCANGATE_POLICY_REPORTS",
        value_enum,
        default_value = "wgpolicyk8s"
    )]
    pub policy_reports: crate::runtime::reports::ReportFormat,
    #[command(flatten)]
    pub policy: PolicyLimitArgs,
    #[command(flatten)]
    pub results: crate::web::ResultsArgs,
    #[command(flatten)]
    pub mirror: crate::mirror::MirrorArgs,
    /// Resolve an ImageScan's tag at its registry (with the scan's imagePullSecret) before
    /// starting its scan Job, and scan exactly that digest (`status.resolved` records it).
    /// `--resolve-tags=false`: the Job is given the tag as written (ImageScans with
    /// `resultsFrom: Attestation` still have their tag resolved: attestations are by digest).
    #[arg(
        long,
        env = "SCANGATE_RESOLVE_TAGS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub resolve_tags: bool,
    /// How long a finished trusted scan by tag trusts its tag's last resolution: then the
    /// controller asks the registry again (a manifest request, never on the admission path);
    /// when the tag moved, the new content is scanned, and until then admission treats the tag
    /// as unscanned. `0s`: never asked again.
    #[arg(long, env = "SCANGATE_TAG_RECHECK_INTERVAL", default_value = "10m", value_parser = duration)]
    pub tag_recheck_interval: Duration,
    /// PEM CA certificate(s) registries' certificates are checked against when resolving tags
    /// and fetching attestations (default: the platform's trust store).
    #[arg(long, env = "SCANGATE_REGISTRY_CA_FILE")]
    pub registry_ca_file: Option<PathBuf>,
    /// Registries (`host[:port]`, as images name them) asked over plain HTTP instead of HTTPS;
    /// redirects and token realms may be plain HTTP only to these. Comma-separated.
    #[arg(long, env = "SCANGATE_REGISTRY_INSECURE_HOSTS", default_value = "")]
    pub registry_insecure_hosts: List<HostPort>,
    /// Internal destinations (host names, IP addresses, CIDR networks) a registry may redirect
    /// the controller to, or name as its token realm. Loopback, private, link-local and the
    /// other internal addresses are refused otherwise; the registry an image names is always
    /// asked. Comma-separated.
    #[arg(long, env = "SCANGATE_REGISTRY_ALLOWED_PRIVATE", default_value = "")]
    pub registry_allowed_private: List<Allowed>,
    /// Hosts (`host[:port]`) that may serve Bearer tokens for any registry, besides each
    /// registry's own host:port (Docker Hub's tokens come from auth.docker.io). The list
    /// replaces the default (empty: none). Comma-separated.
    #[arg(
        long,
        env = "SCANGATE_REGISTRY_REALM_HOSTS",
        default_value = "auth.docker.io"
    )]
    pub registry_realm_hosts: List<HostPort>,
}

impl ControllerArgs {
    /// How long a finished trusted scan by tag trusts its tag's last resolution; `None` when
    /// tags are not resolved at all, or `--tag-recheck-interval=0s`.
    pub fn tag_recheck(&self) -> Option<Duration> {
        Some(self.tag_recheck_interval).filter(|every| self.resolve_tags && !every.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(flags: &[&str]) -> ControllerArgs {
        let argv = std::iter::once("controller").chain(flags.iter().copied());
        Command::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{e}"))
            .args
    }

    #[test]
    fn tags_are_resolved_again_every_ten_minutes_unless_turned_off() {
        assert_eq!(parse(&[]).tag_recheck(), Some(Duration::from_secs(600)));
        assert_eq!(
            parse(&["--tag-recheck-interval", "2s"]).tag_recheck(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(parse(&["--tag-recheck-interval", "0s"]).tag_recheck(), None);
        assert_eq!(parse(&["--resolve-tags=false"]).tag_recheck(), None);
    }
}
