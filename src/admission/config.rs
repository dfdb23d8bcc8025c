//! The admission rules an admin configures (a YAML file, mounted from a ConfigMap).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pod_security::Level;
use crate::api::{DurationError, parse_duration};
use crate::image::RegistryAliases;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("admission config is not valid YAML for scangate: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("admission config exceptions.maxDuration: {0}")]
    MaxDuration(DurationError),
    #[error("admission config maxResultAge: {0}")]
    MaxResultAge(DurationError),
    #[error("admission config tagMaxAge: {0} (`0` turns the bound off)")]
    TagMaxAge(DurationError),
    #[error("admission config templates.activeDeadline: {0}")]
    ActiveDeadline(DurationError),
    #[error(
        "admission config templates.activeDeadline is under one second; give the longest a scan \
         Job may run (e.g. 1h)"
    )]
    DeadlineUnderOneSecond,
    #[error("admission config firstSight.unusedAfter: {0} (`0` keeps first-sight scans)")]
    UnusedAfter(DurationError),
    #[error("admission config trustedScanNamespaces has an empty name")]
    EmptyNamespace,
    #[error("cannot read the admission config {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    InFile {
        path: std::path::PathBuf,
        #[source]
        source: Box<Error>,
    },
    #[error(
        "admission config firstSight.perMinute, perNamespace or maxRunning is 0; give a \
         positive budget, or unset firstSight.template to turn scans on first sight off"
    )]
    ZeroRate,
    #[error("admission config attestations.keys: {0}")]
    AttestationKey(#[from] crate::attest::Error),
    #[error("admission config attestations.maxAge: {0} (`0` for no bound)")]
    AttestationMaxAge(DurationError),
    #[error("admission config {field} is empty; name {what}")]
    EmptyField {
        field: &'static str,
        what: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What admission does for an image in a given scan state.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deny,
    Warn,
    Allow,
}

/// How a namespace enforces: label `scangate.dev/enforcement`, default from the config.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Denials deny.
    #[default]
    Enforce,
    /// Denials become admission warnings.
    Warn,
    /// Everything is admitted silently; decisions are only recorded.
    Audit,
}

impl Enforcement {
    /// The namespace label that selects the mode.
    pub const LABEL: &'static str = "scangate.dev/enforcement";

    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Enforce => "enforce",
            Enforcement::Warn => "warn",
            Enforcement::Audit => "audit",
        }
    }

    /// The mode a namespace label value selects; `None` for a value that is not a mode.
    pub fn from_label(value: &str) -> Option<Self> {
        match value {
            "enforce" => Some(Enforcement::Enforce),
            "warn" => Some(Enforcement::Warn),
            "audit" => Some(Enforcement::Audit),
            _ => None,
        }
    }
}

/// The admission rules. Every field has a default, so an empty file is a valid config.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdmissionConfig {
    /// The mode of namespaces without the `scangate.dev/enforcement` label.
    #[serde(default)]
    pub default_enforcement: Enforcement,
    /// Images whose scan is in phase Error.
    #[serde(default = "deny")]
    pub on_error: Action,
    /// Images whose scan is Pending or Scanning.
    #[serde(default = "warn")]
    pub on_pending: Action,
    /// Images with no trusted scan.
    #[serde(default = "warn")]
    pub on_unscanned: Action,
    /// Results older than this (`7d`, `24h`) count as unscanned at admission (`onUnscanned`
    /// applies) and the controller rescans them by then. Unset: results do not age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_result_age: Option<String>,
    /// scangate's own namespace: its scans are trusted results, its exceptions count in every
    /// namespace. Admin-only.
    #[serde(default = "default_scangate_namespace")]
    pub scangate_namespace: String,
    /// More admin-only namespaces whose scans are trusted results for every namespace (their
    /// exceptions count only in themselves).
    #[serde(default)]
    pub trusted_scan_namespaces: Vec<String>,
    /// Whether a namespace's own scans (Jobs from its own templates, reports it can write)
    /// count as trusted results in that namespace. Off: they can only deny more there.
    #[serde(default)]
    pub trust_namespace_scans: bool,
    /// The ScanPolicy (in `scangateNamespace`) that judges every trusted scan whose spec names
    /// no `scanPolicy` (first-sight scans without `firstSight.policy`, reports a CI pipeline
    /// pushes). Unset: scangate's built-in default policy (denies critical and high). A trusted
    /// result never stands without a policy behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_scan_policy: Option<String>,
    /// Identities (users) whose report pushes into trusted namespaces count as trusted
    /// results, e.g. a CI pipeline's ServiceAccount running `scangate report --to-configmap`.
    /// Scan Jobs (the scanner's ServiceAccount there) and the controller always may.
    #[serde(default)]
    pub trusted_reporters: Vec<String>,
    /// Groups whose members' report pushes into trusted namespaces count.
    #[serde(default)]
    pub trusted_reporter_groups: Vec<String>,
    /// The only identity that may write scan status: scangate's controller.
    #[serde(default = "default_controller_username")]
    pub controller_username: String,
    /// Whether pods that a built-in workload controller creates for an admitted template are
    /// decided again (true) or admitted with a warning when their image's verdict has turned.
    #[serde(default)]
    pub recheck_controller_pods: bool,
    /// Registries that serve the same images as another (`mirror.example:5000: docker.io`):
    /// an image pulled through one is decided as the image of the registry it mirrors.
    #[serde(default)]
    pub registry_aliases: RegistryAliases,
    /// Whether admission rewrites each new `image: repo:tag` that it admits without a warning
    /// to `repo:tag@sha256:…`, the digest that was judged (`/mutate/pin`): unset, in namespaces
    /// in `enforce` mode; `true` in every namespace; `false` in none. A namespace label
    /// `scangate.dev/pin-digests: "true"|"false"` overrides it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_digests: Option<bool>,
    /// Where admission does not pin, a tag alone is decided by the content it was last known to
    /// name only while that is more recent than this (`1h`, `30m`; `0` for no bound): a Completed
    /// result counts as unscanned after it. The controller re-resolves trusted scans' tags on a
    /// schedule, which keeps a tag that did not move fresh.
    #[serde(default = "default_tag_max_age")]
    pub tag_max_age: String,
    /// Scans on first sight: what admission requests for an image with no trusted result.
    #[serde(default)]
    pub first_sight: FirstSightRules,
    #[serde(default)]
    pub exceptions: ExceptionRules,
    #[serde(default)]
    pub templates: TemplateRules,
    /// Signed vulnerability attestations: the keys that may sign the results of ImageScans
    /// with `resultsFrom: Attestation` in `scangateNamespace` and `trustedScanNamespaces`.
    #[serde(default)]
    pub attestations: AttestationRules,
}

/// Which signed vulnerability attestations count as results.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationRules {
    /// The public keys (PEM, ECDSA P-256, as `cosign generate-key-pair` writes them) whose
    /// signatures are trusted; the status names the key that verified a result.
    #[serde(default)]
    pub keys: Vec<AttestationKey>,
    /// An attestation of a scan that finished longer ago than this (`168h`, `7d`) counts as
    /// no result. Unset or `0`: attestations do not age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Verdicts out: when set, the controller signs its verdict on each digest that a trusted
    /// ImageScan finds Completed or Failed and pushes it to the image's registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignRules>,
}

/// Where the controller's verdict signing key and push credentials are (Secrets in
/// `scangateNamespace`, read by the controller only).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignRules {
    /// The Secret holding the ECDSA P-256 private key: `cosign.key` and `cosign.password`
    /// (as `cosign generate-key-pair k8s://NAMESPACE/NAME` creates it) or `key.pem`.
    pub key_secret: String,
    /// A `kubernetes.io/dockerconfigjson` Secret with credentials that may push to the
    /// images' repositories; unset: push without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret: Option<String>,
}

/// A named public key.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationKey {
    pub name: String,
    pub public_key: String,
}

impl AttestationRules {
    /// The configured keys, read (checked when the config is read: unique names, P-256 PEM).
    pub fn keys(&self) -> Result<Vec<crate::attest::TrustedKey>> {
        let mut keys: Vec<crate::attest::TrustedKey> = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            if keys.iter().any(|k| k.name == key.name) {
                return Err(crate::attest::Error::KeyName {
                    name: key.name.clone(),
                }
                .into());
            }
            keys.push(crate::attest::TrustedKey::from_pem(
                &key.name,
                &key.public_key,
            )?);
        }
        Ok(keys)
    }

    /// `maxAge` as a duration; `None` when unset or zero.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
            .as_deref()
            .and_then(|age| parse_duration(age).ok())
            .filter(|age| !age.is_zero())
    }
}

fn default_scangate_namespace() -> String {
    "scangate-system".into()
}

fn default_tag_max_age() -> String {
    "1h".into()
}

fn default_controller_username() -> String {
    "system:serviceaccount:scangate-system:scangate-controller".into()
}

fn deny() -> Action {
    Action::Deny
}

fn warn() -> Action {
    Action::Warn
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            default_enforcement: Enforcement::Enforce,
            on_error: Action::Deny,
            on_pending: Action::Warn,
            on_unscanned: Action::Warn,
            max_result_age: None,
            scangate_namespace: default_scangate_namespace(),
            trusted_scan_namespaces: vec![],
            trust_namespace_scans: false,
            default_scan_policy: None,
            trusted_reporters: vec![],
            trusted_reporter_groups: vec![],
            controller_username: default_controller_username(),
            recheck_controller_pods: false,
            registry_aliases: RegistryAliases::default(),
            pin_digests: None,
            tag_max_age: default_tag_max_age(),
            first_sight: FirstSightRules::default(),
            exceptions: ExceptionRules::default(),
            templates: TemplateRules::default(),
            attestations: AttestationRules::default(),
        }
    }
}

/// Scans on first sight: when a pod that the apiserver stored runs (phase Running) an image with
/// no trusted result, the controller creates an ImageScan of it in `scangateNamespace`, within
/// the budgets below, and deletes it once no running pod has used it for `unusedAfter`. The
/// webhook requests nothing: a forged review has no effect beyond its answer.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirstSightRules {
    /// The ScanTemplate (in `scangateNamespace`) first-sight scans run with; unset turns
    /// scans on first sight off.
    #[serde(default)]
    pub template: Option<String>,
    /// The ScanPolicy (in `scangateNamespace`) their reports are checked against.
    #[serde(default)]
    pub policy: Option<String>,
    /// The most first-sight scans created per minute in all (a token bucket of this size,
    /// refilled evenly, shared out among namespaces in turn). Unset: 30.
    #[serde(default)]
    pub per_minute: Option<u32>,
    /// The most first-sight scans requested for one namespace's pods that are not decided yet
    /// (no Completed, Failed or Error result): a namespace with many new images waits for its
    /// own scans, never for the other namespaces'. Unset: 10.
    #[serde(default)]
    pub per_namespace: Option<u32>,
    /// The most first-sight scan Jobs running at once: their own slots, beside the
    /// controller's `--max-running-jobs`, so the admin's scans keep theirs. Unset: 2.
    #[serde(default)]
    pub max_running: Option<u32>,
    /// A first-sight scan no running pod has used for this long is deleted (`168h`, `7d`;
    /// `0` keeps them). Unset: `168h`.
    #[serde(default)]
    pub unused_after: Option<String>,
}

impl FirstSightRules {
    /// The rate limit when none is configured.
    pub const DEFAULT_PER_MINUTE: u32 = 30;
    /// The per-namespace budget when none is configured.
    pub const DEFAULT_PER_NAMESPACE: u32 = 10;
    /// The first-sight slots when none are configured.
    pub const DEFAULT_MAX_RUNNING: u32 = 2;
    /// How long an unused first-sight scan is kept when nothing is configured.
    pub const DEFAULT_UNUSED_AFTER: &str = "168h";

    pub fn per_minute(&self) -> u32 {
        self.per_minute.unwrap_or(Self::DEFAULT_PER_MINUTE)
    }

    pub fn per_namespace(&self) -> u32 {
        self.per_namespace.unwrap_or(Self::DEFAULT_PER_NAMESPACE)
    }

    pub fn max_running(&self) -> u32 {
        self.max_running.unwrap_or(Self::DEFAULT_MAX_RUNNING)
    }

    /// How long an unused first-sight scan is kept; `None` keeps them.
    pub fn unused_after(&self) -> Result<Option<std::time::Duration>, DurationError> {
        let text = self
            .unused_after
            .as_deref()
            .unwrap_or(Self::DEFAULT_UNUSED_AFTER);
        let after = parse_duration(text)?;
        Ok((!after.is_zero()).then_some(after))
    }
}

/// Limits on ScanExceptions.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExceptionRules {
    /// The longest an exception may run from when it is applied (`90d`, `720h`).
    #[serde(default = "default_max_duration")]
    pub max_duration: String,
    /// Users whose exceptions count. With `approverGroups`, empty means: whoever RBAC lets
    /// write ScanExceptions (the shipped role `scangate-exception-approver`).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Groups whose members' exceptions count.
    #[serde(default)]
    pub approver_groups: Vec<String>,
    /// Whether a pattern may cover every image, or every image of a registry (`*`,
    /// `docker.io/*`).
    #[serde(default)]
    pub allow_catch_all: bool,
}

fn default_max_duration() -> String {
    "90d".into()
}

impl Default for ExceptionRules {
    fn default() -> Self {
        ExceptionRules {
            max_duration: default_max_duration(),
            approvers: vec![],
            approver_groups: vec![],
            allow_catch_all: false,
        }
    }
}

/// What a ScanTemplate's pod may be: the Pod Security level it must pass, the one
/// ServiceAccount it may name, and how long its Job may run.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateRules {
    /// `restricted` (the default) or `baseline`.
    #[serde(default)]
    pub pod_security: Level,
    /// The scanner's ServiceAccount: the only one a template may name (unset is fine: the
    /// controller sets it).
    #[serde(default = "default_service_account")]
    pub service_account: String,
    /// The longest a scan Job may run (its `activeDeadlineSeconds`; `1h`, `30m`): past it the
    /// Job is stopped and the scan is `Error`, so a hung scanner cannot hold a slot forever.
    #[serde(default = "default_active_deadline")]
    pub active_deadline: String,
}

/// The scanner's ServiceAccount unless the config names another.
pub const DEFAULT_SCANNER_SERVICE_ACCOUNT: &str = "scangate-scanner";

fn default_service_account() -> String {
    DEFAULT_SCANNER_SERVICE_ACCOUNT.into()
}

fn default_active_deadline() -> String {
    "1h".into()
}

impl Default for TemplateRules {
    fn default() -> Self {
        TemplateRules {
            pod_security: Level::default(),
            service_account: default_service_account(),
            active_deadline: default_active_deadline(),
        }
    }
}

impl TemplateRules {
    /// The config key that sets [`TemplateRules::active_deadline`], for messages.
    pub const ACTIVE_DEADLINE_KEY: &'static str = "templates.activeDeadline";

    /// `activeDeadline` as a duration (checked when the config is read; the default if not).
    pub fn active_deadline(&self) -> Duration {
        parse_duration(&self.active_deadline)
            .ok()
            .filter(|deadline| deadline.as_secs() > 0)
            .unwrap_or(Duration::from_secs(3600))
    }
}

impl AdmissionConfig {
    /// Reads, parses and checks a config file; `None` gives the defaults.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(AdmissionConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|source| Error::InFile {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Parses and checks a config file's text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config: AdmissionConfig = if text.trim().is_empty() {
            AdmissionConfig::default()
        } else {
            serde_yaml::from_str(text)?
        };
        config.exception_max_duration()?;
        if let Some(age) = &config.max_result_age {
            parse_duration(age).map_err(Error::MaxResultAge)?;
        }
        parse_duration(&config.tag_max_age).map_err(Error::TagMaxAge)?;
        config.attestations.keys()?;
        if let Some(age) = &config.attestations.max_age {
            parse_duration(age).map_err(Error::AttestationMaxAge)?;
        }
        if let Some(sign) = &config.attestations.sign {
            if sign.key_secret.is_empty() {
                return Err(Error::EmptyField {
                    field: "attestations.sign.keySecret",
                    what: "the Secret with the verdict signing key",
                });
            }
            if sign.push_secret.as_deref() == Some("") {
                return Err(Error::EmptyField {
                    field: "attestations.sign.pushSecret",
                    what: "the Secret with push credentials, or leave it out",
                });
            }
        }
        if config.trusted_scan_namespaces.iter().any(String::is_empty) {
            return Err(Error::EmptyNamespace);
        }
        if config.scangate_namespace.is_empty() {
            return Err(Error::EmptyField {
                field: "scangateNamespace",
                what: "the namespace scangate is installed in",
            });
        }
        if config.controller_username.is_empty() {
            return Err(Error::EmptyField {
                field: "controllerUsername",
                what: "the controller's identity, e.g. system:serviceaccount:scangate-system:scangate-controller",
            });
        }
        if [
            config.first_sight.per_minute,
            config.first_sight.per_namespace,
            config.first_sight.max_running,
        ]
        .contains(&Some(0))
        {
            return Err(Error::ZeroRate);
        }
        config
            .first_sight
            .unused_after()
            .map_err(Error::UnusedAfter)?;
        if config.first_sight.template.as_deref() == Some("") {
            return Err(Error::EmptyField {
                field: "firstSight.template",
                what: "a ScanTemplate in scangateNamespace, or leave it unset to turn scans on first sight off",
            });
        }
        if config.default_scan_policy.as_deref() == Some("") {
            return Err(Error::EmptyField {
                field: "defaultScanPolicy",
                what: "a ScanPolicy in scangateNamespace, or leave it unset for scangate's built-in default policy",
            });
        }
        let deadline =
            parse_duration(&config.templates.active_deadline).map_err(Error::ActiveDeadline)?;
        if deadline.as_secs() == 0 {
            return Err(Error::DeadlineUnderOneSecond);
        }
        if config.templates.service_account.is_empty() {
            return Err(Error::EmptyField {
                field: "templates.serviceAccount",
                what: "the scanner's ServiceAccount",
            });
        }
        Ok(config)
    }

    /// `exceptions.maxDuration` as a duration.
    pub fn exception_max_duration(&self) -> Result<Duration> {
        parse_duration(&self.exceptions.max_duration).map_err(Error::MaxDuration)
    }

    /// `maxResultAge` as a duration; `None` when unset or zero (checked when the config is
    /// read).
    pub fn max_result_age(&self) -> Option<Duration> {
        self.max_result_age
            .as_deref()
            .and_then(|age| parse_duration(age).ok())
            .filter(|age| !age.is_zero())
    }

    /// The bound on a tag's last resolution where admission does not pin; `None` for no bound.
    pub fn tag_max_age(&self) -> Option<Duration> {
        parse_duration(&self.tag_max_age)
            .ok()
            .filter(|age| !age.is_zero())
    }

    /// Whether admission pins tags in a namespace in mode `enforcement`, whose label
    /// `scangate.dev/pin-digests` says `label`: the label, else `pinDigests`, else only where
    /// denials are enforced.
    pub fn pins_tags(&self, enforcement: Enforcement, label: Option<bool>) -> bool {
        label
            .or(self.pin_digests)
            .unwrap_or(enforcement == Enforcement::Enforce)
    }

    /// Whether `namespace` is admin-only and its scans are trusted results everywhere.
    pub fn is_trusted_namespace(&self, namespace: &str) -> bool {
        namespace == self.scangate_namespace
            || self.trusted_scan_namespaces.iter().any(|t| t == namespace)
    }

    /// Whose lane a policy check for an object in `namespace` takes: trusted work for
    /// scangate's and the trusted namespaces (tenants cannot write there), else the tenant
    /// `tenant` names (tenants are served in turn, each within its bound).
    pub fn policy_requester(
        &self,
        namespace: &str,
        tenant: impl FnOnce() -> String,
    ) -> crate::sandbox::Requester {
        if self.is_trusted_namespace(namespace) {
            crate::sandbox::Requester::Trusted
        } else {
            crate::sandbox::Requester::Tenant(tenant())
        }
    }

    /// Whether the scans of `namespace` are trusted results (in every namespace, or with
    /// `trustNamespaceScans` in their own): such a result always has a policy behind it.
    pub fn scans_are_trusted(&self, namespace: &str) -> bool {
        self.origin(namespace, namespace) == Some(Origin::Trusted)
    }

    /// What a scan in `scan` namespace counts for, for a workload in `workload` namespace:
    /// a trusted result, a namespace scan (it can only deny more), or nothing.
    pub fn origin(&self, workload: &str, scan: &str) -> Option<Origin> {
        if self.is_trusted_namespace(scan) || (scan == workload && self.trust_namespace_scans) {
            Some(Origin::Trusted)
        } else if scan == workload {
            Some(Origin::Namespace)
        } else {
            None
        }
    }

    /// Whether an exception in `exception` namespace counts for a workload in `workload`:
    /// its own namespace, or scangate's (those count everywhere).
    pub fn exception_counts(&self, workload: &str, exception: &str) -> bool {
        exception == workload || exception == self.scangate_namespace
    }

    /// Whether an exception in `exception` namespace may shape the result of a scan in `scan`
    /// namespace (the policy's `input.exceptions`): scangate's own count for every scan; a
    /// namespace's own only for its namespace scans, whose results count there alone. An
    /// exception never changes a result that other namespaces trust.
    pub fn exception_counts_for_scan(&self, scan: &str, exception: &str) -> bool {
        exception == self.scangate_namespace
            || (exception == scan && !self.is_trusted_namespace(scan))
    }

    /// Who `username` (in `groups`) is as the writer of a report in `namespace`: in a
    /// namespace whose scans are not trusted results, anyone; in a trusted one, scangate's
    /// controller and `trustedReporters` count as they are, the scanner's ServiceAccount
    /// there only for its own scan's report from its Job's pod, and nobody else.
    pub fn report_writer(
        &self,
        namespace: &str,
        username: &str,
        groups: &[String],
    ) -> ReportWriter {
        if !self.is_trusted_namespace(namespace) {
            ReportWriter::Untrusted
        } else if username == self.controller_username
            || self.trusted_reporters.iter().any(|r| r == username)
            || groups
                .iter()
                .any(|g| self.trusted_reporter_groups.contains(g))
        {
            ReportWriter::Trusted
        } else if username == self.scanner_username(namespace) {
            ReportWriter::Scanner
        } else {
            ReportWriter::Refused
        }
    }

    /// The username of the scanner's ServiceAccount in `namespace`.
    pub fn scanner_username(&self, namespace: &str) -> String {
        format!(
            "system:serviceaccount:{namespace}:{}",
            self.templates.service_account
        )
    }

    /// Whether `username` is the scanner's ServiceAccount of any namespace.
    pub fn is_scanner(&self, username: &str) -> bool {
        username
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(namespace, name)| {
                !namespace.is_empty() && name == self.templates.service_account
            })
    }

    /// Whether this writer's ScanExceptions count: a listed approver, or (no list) whoever
    /// RBAC lets write them.
    pub fn is_approver(&self, username: &str, groups: &[String]) -> bool {
        let rules = &self.exceptions;
        (rules.approvers.is_empty() && rules.approver_groups.is_empty())
            || rules.approvers.iter().any(|a| a == username)
            || groups.iter().any(|g| rules.approver_groups.contains(g))
    }
}

/// Who writes a report ConfigMap, as the report guard sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportWriter {
    /// Anyone, in a namespace whose scans are not trusted results (they count there only).
    Untrusted,
    /// scangate's controller or a `trustedReporters` identity, in a trusted namespace.
    Trusted,
    /// The scanner's ServiceAccount of a trusted namespace: only its own scan's report, from
    /// a pod of that scan's Job.
    Scanner,
    /// Anyone else in a trusted namespace.
    Refused,
}

/// What a scan counts for in a workload's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A trusted result: it decides.
    Trusted,
    /// The workload namespace's own scan: a Failed or Error one denies there; it never makes
    /// an image count as scanned and clean.
    Namespace,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        let config = AdmissionConfig::from_yaml("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config, AdmissionConfig::default());
        assert_eq!(config.on_error, Action::Deny);
        assert_eq!(config.on_pending, Action::Warn);
        assert_eq!(config.on_unscanned, Action::Warn);
        assert_eq!(config.default_enforcement, Enforcement::Enforce);
        assert_eq!(config.templates.pod_security, Level::Restricted);
        assert_eq!(config.templates.service_account, "scangate-scanner");
        assert_eq!(
            config.templates.active_deadline(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            config.exception_max_duration().ok(),
            Some(Duration::from_secs(90 * 86400))
        );
    }

    #[test]
    fn parses_every_field() {
        let config = AdmissionConfig::from_yaml(
            "defaultEnforcement: warn\nonError: warn\nonPending: allow\nonUnscanned: deny\n\
             trustedScanNamespaces: [scangate-system]\nexceptions: {maxDuration: 720h}\n\
             registryAliases: {mirror.example:5000: docker.io}\npinDigests: true\n\
             firstSight: {template: trivy, policy: strict, perMinute: 5, perNamespace: 3, maxRunning: 1, unusedAfter: 2h}\n\
             defaultScanPolicy: baseline\n\
             templates: {podSecurity: baseline, serviceAccount: scanner, activeDeadline: 20m}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.default_enforcement, Enforcement::Warn);
        assert_eq!(config.on_error, Action::Warn);
        assert_eq!(config.on_pending, Action::Allow);
        assert_eq!(config.on_unscanned, Action::Deny);
        assert_eq!(config.pin_digests, Some(true));
        assert_eq!(config.first_sight.template.as_deref(), Some("trivy"));
        assert_eq!(config.first_sight.policy.as_deref(), Some("strict"));
        assert_eq!(config.first_sight.per_minute(), 5);
        assert_eq!(config.first_sight.per_namespace(), 3);
        assert_eq!(config.first_sight.max_running(), 1);
        assert_eq!(
            config.first_sight.unused_after().ok().flatten(),
            Some(std::time::Duration::from_secs(7200))
        );
        let defaults = FirstSightRules::default();
        assert_eq!((defaults.per_namespace(), defaults.max_running()), (10, 2));
        assert_eq!(
            defaults.unused_after().ok().flatten(),
            Some(std::time::Duration::from_secs(168 * 3600))
        );
        let kept = FirstSightRules {
            unused_after: Some("0".into()),
            ..FirstSightRules::default()
        };
        assert_eq!(kept.unused_after().ok().flatten(), None);
        assert_eq!(config.default_scan_policy.as_deref(), Some("baseline"));
        assert_eq!(AdmissionConfig::default().default_scan_policy, None);
        assert_eq!(AdmissionConfig::default().first_sight.per_minute(), 30);
        assert_eq!(AdmissionConfig::default().first_sight.template, None);
        assert_eq!(
            config.origin("shop", "scangate-system"),
            Some(Origin::Trusted)
        );
        assert_eq!(config.origin("shop", "shop"), Some(Origin::Namespace));
        assert_eq!(config.origin("shop", "other"), None);
        assert_eq!(config.templates.pod_security, Level::Baseline);
        assert_eq!(config.templates.service_account, "scanner");
        assert_eq!(
            config.templates.active_deadline(),
            Duration::from_secs(20 * 60)
        );
        let mirrored = crate::image::ImageRef::parse("mirror.example:5000/busybox:1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.registry_aliases.canonicalize(&mirrored).to_string(),
            "docker.io/library/busybox:1"
        );
        assert_eq!(
            config.exception_max_duration().ok(),
            Some(Duration::from_secs(720 * 3600))
        );
    }

    #[test]
    fn mistakes_are_reported() {
        let typo = AdmissionConfig::from_yaml("onErorr: deny")
            .err()
            .map(|e| e.to_string());
        assert!(typo.unwrap_or_default().contains("unknown field `onErorr`"));
        let bad_action = AdmissionConfig::from_yaml("onError: block")
            .err()
            .map(|e| e.to_string());
        assert!(
            bad_action
                .unwrap_or_default()
                .contains("unknown variant `block`")
        );
        let bad_duration = AdmissionConfig::from_yaml("exceptions: {maxDuration: soon}")
            .err()
            .map(|e| e.to_string());
        assert!(bad_duration.unwrap_or_default().contains("maxDuration"));
        let bad_age = AdmissionConfig::from_yaml("maxResultAge: old")
            .err()
            .map(|e| e.to_string());
        assert!(bad_age.unwrap_or_default().contains("maxResultAge"));
        let aged = AdmissionConfig::from_yaml("maxResultAge: 7d").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            aged.max_result_age(),
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        assert_eq!(AdmissionConfig::default().max_result_age(), None);
        let chain = AdmissionConfig::from_yaml(
            "registryAliases: {a.example: b.example, b.example: docker.io}",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            chain.contains(
                "registryAliases: \"a.example\" maps to \"b.example\", which is itself an alias"
            ),
            "{chain}"
        );
        let empty_ns = AdmissionConfig::from_yaml("trustedScanNamespaces: ['']").err();
        assert!(matches!(empty_ns, Some(Error::EmptyNamespace)));
        let privileged = AdmissionConfig::from_yaml("templates: {podSecurity: privileged}")
            .err()
            .map(|e| e.to_string());
        assert!(
            privileged
                .unwrap_or_default()
                .contains("unknown variant `privileged`")
        );
        let old = AdmissionConfig::from_yaml("templates: {allowPrivileged: true}")
            .err()
            .map(|e| e.to_string());
        assert!(
            old.unwrap_or_default()
                .contains("unknown field `allowPrivileged`")
        );
        let zero = AdmissionConfig::from_yaml("firstSight: {template: t, perMinute: 0}").err();
        assert!(matches!(zero, Some(Error::ZeroRate)));
        let no_template = AdmissionConfig::from_yaml("firstSight: {template: ''}").err();
        assert!(matches!(no_template, Some(Error::EmptyField { .. })));
        let no_default = AdmissionConfig::from_yaml("defaultScanPolicy: ''").err();
        assert!(matches!(
            no_default,
            Some(Error::EmptyField {
                field: "defaultScanPolicy",
                ..
            })
        ));
        let bad_deadline = AdmissionConfig::from_yaml("templates: {activeDeadline: forever}").err();
        assert!(matches!(bad_deadline, Some(Error::ActiveDeadline(_))));
        for short in ["0s", "500ms"] {
            let short_deadline =
                AdmissionConfig::from_yaml(&format!("templates: {{activeDeadline: {short}}}"))
                    .err();
            assert!(
                matches!(short_deadline, Some(Error::DeadlineUnderOneSecond)),
                "{short}"
            );
        }
        let no_account = AdmissionConfig::from_yaml("templates: {serviceAccount: ''}").err();
        assert!(matches!(no_account, Some(Error::EmptyField { .. })));
    }

    #[test]
    fn trust_rules() {
        let mut config = AdmissionConfig::from_yaml(
            "trustedScanNamespaces: [ci-scans]\nexceptions: {approvers: [alice], approverGroups: [sec]}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Admin namespaces decide everywhere; a namespace's own scans only add denials there;
        // another tenant's scans do nothing.
        assert_eq!(config.origin("shop", "ci-scans"), Some(Origin::Trusted));
        assert_eq!(
            config.origin("shop", "scangate-system"),
            Some(Origin::Trusted)
        );
        assert_eq!(config.origin("shop", "shop"), Some(Origin::Namespace));
        assert_eq!(config.origin("shop", "other-team"), None);
        assert!(config.scans_are_trusted("ci-scans"));
        assert!(config.scans_are_trusted("scangate-system"));
        assert!(!config.scans_are_trusted("shop"));
        config.trust_namespace_scans = true;
        assert_eq!(config.origin("shop", "shop"), Some(Origin::Trusted));
        assert!(config.scans_are_trusted("shop"));
        assert_eq!(config.origin("shop", "other-team"), None);
        // Exceptions: their own namespace, or scangate's; not another trusted namespace's.
        assert!(config.exception_counts("shop", "shop"));
        assert!(config.exception_counts("shop", "scangate-system"));
        assert!(!config.exception_counts("shop", "ci-scans"));
        assert!(!config.exception_counts("shop", "other-team"));
        // Approvers: listed users or groups; with no list, whoever RBAC lets write.
        assert!(config.is_approver("alice", &[]));
        assert!(config.is_approver("bob", &["sec".to_string()]));
        assert!(!config.is_approver("mallory", &["system:authenticated".to_string()]));
        assert!(AdmissionConfig::default().is_approver("anyone", &[]));
        // Reports: anyone in a tenant namespace (they count there only); in trusted ones the
        // scan Jobs, the controller and the listed reporters.
        let config = AdmissionConfig::from_yaml(
            "trustedScanNamespaces: [ci-scans]\ntrustedReporters: [ci-bot]\ntrustedReporterGroups: [ci]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.report_writer("shop", "anyone", &[]),
            ReportWriter::Untrusted
        );
        assert_eq!(
            config.report_writer("ci-scans", "ci-bot", &[]),
            ReportWriter::Trusted
        );
        assert_eq!(
            config.report_writer("ci-scans", "someone", &["ci".into()]),
            ReportWriter::Trusted
        );
        assert_eq!(
            config.report_writer(
                "ci-scans",
                "system:serviceaccount:ci-scans:scangate-scanner",
                &[]
            ),
            ReportWriter::Scanner
        );
        assert_eq!(
            config.report_writer("scangate-system", &config.controller_username, &[]),
            ReportWriter::Trusted
        );
        assert_eq!(
            config.report_writer(
                "scangate-system",
                "system:serviceaccount:ci-scans:scangate-scanner",
                &[]
            ),
            ReportWriter::Refused
        );
        assert_eq!(
            config.report_writer(
                "scangate-system",
                "tenant",
                &["system:authenticated".into()]
            ),
            ReportWriter::Refused
        );
        // The scanner's ServiceAccount of any namespace, and nothing that only looks like it.
        assert!(config.is_scanner("system:serviceaccount:shop:scangate-scanner"));
        assert!(config.is_scanner("system:serviceaccount:scangate-system:scangate-scanner"));
        assert!(!config.is_scanner("system:serviceaccount:shop:scangate-scanner-2"));
        assert!(!config.is_scanner("system:serviceaccount::scangate-scanner"));
        assert!(!config.is_scanner("scangate-scanner"));
        assert!(!config.is_scanner("system:serviceaccount:scangate-system:scangate-controller"));
        let empty = AdmissionConfig::from_yaml("controllerUsername: ''").err();
        assert!(matches!(empty, Some(Error::EmptyField { .. })));
    }

    #[test]
    fn policy_checks_in_admin_namespaces_take_the_trusted_lane_and_tenants_are_named() {
        use crate::sandbox::Requester;
        let config = AdmissionConfig::from_yaml("trustedScanNamespaces: [ci-scans]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        for trusted in ["scangate-system", "ci-scans"] {
            assert_eq!(
                config.policy_requester(trusted, || "alice".into()),
                Requester::Trusted
            );
        }
        assert_eq!(
            config.policy_requester("shop", || "alice".into()),
            Requester::Tenant("alice".into())
        );
    }

    #[test]
    fn enforcement_labels() {
        assert_eq!(Enforcement::from_label("warn"), Some(Enforcement::Warn));
        assert_eq!(Enforcement::from_label("audit"), Some(Enforcement::Audit));
        assert_eq!(
            Enforcement::from_label("enforce"),
            Some(Enforcement::Enforce)
        );
        assert_eq!(Enforcement::from_label("Enforce"), None);
    }

    #[test]
    fn attestation_keys_are_read_and_checked_with_the_config() {
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};
        let pem = p256::ecdsa::SigningKey::from_slice(&[7; 32])
            .unwrap()
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
            .replace('\n', "\\n");
        let config = AdmissionConfig::from_yaml(&format!(
            "attestations: {{keys: [{{name: ci, publicKey: \"{pem}\"}}], maxAge: 7d}}"
        ))
        .unwrap();
        let keys = config.attestations.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, "ci");
        assert_eq!(
            config.attestations.max_age(),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(AdmissionConfig::default().attestations.max_age(), None);

        let twice = format!(
            "attestations: {{keys: [{{name: ci, publicKey: \"{pem}\"}}, {{name: ci, publicKey: \"{pem}\"}}]}}"
        );
        let error = AdmissionConfig::from_yaml(&twice).unwrap_err().to_string();
        assert!(error.contains("unique"), "{error}");
        let bad = AdmissionConfig::from_yaml("attestations: {keys: [{name: ci, publicKey: nope}]}")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("admission config attestations.keys"),
            "{error}"
        );
        assert!(bad.contains("cosign generate-key-pair"), "{bad}");
        let age = AdmissionConfig::from_yaml("attestations: {maxAge: soon}")
            .unwrap_err()
            .to_string();
        assert!(age.contains("attestations.maxAge"), "{age}");
    }

    #[test]
    fn verdict_signing_names_its_secrets() {
        let config = AdmissionConfig::from_yaml(
            "attestations: {sign: {keySecret: verdict-key, pushSecret: verdict-push}}",
        )
        .unwrap();
        let sign = config.attestations.sign.unwrap();
        assert_eq!(sign.key_secret, "verdict-key");
        assert_eq!(sign.push_secret.as_deref(), Some("verdict-push"));
        assert_eq!(AdmissionConfig::default().attestations.sign, None);
        for bad in [
            "attestations: {sign: {keySecret: ''}}",
            "attestations: {sign: {keySecret: k, pushSecret: ''}}",
        ] {
            let error = AdmissionConfig::from_yaml(bad).unwrap_err().to_string();
            assert!(error.contains("attestations.sign."), "{bad}: {error}");
        }
        let typo = AdmissionConfig::from_yaml("attestations: {sign: {key: k}}").unwrap_err();
        assert!(typo.to_string().contains("key"), "{typo}");
    }
}
