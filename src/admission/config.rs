//! The admission rules an admin configures (a YAML file, mounted from a ConfigMap).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{DurationError, parse_duration};
use crate::image::RegistryAliases;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("admission config is not valid YAML for scangate: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("admission config exceptions.maxDuration: {0}")]
    MaxDuration(DurationError),
    #[error("admission config trustedScanNamespaces has an empty name")]
    EmptyNamespace,
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
    /// Namespaces whose scans and exceptions count for every namespace (besides the
    /// workload's own).
    #[serde(default)]
    pub trusted_scan_namespaces: Vec<String>,
    /// Registries that serve the same images as another (`mirror.example:5000: docker.io`):
    /// an image pulled through one is decided as the image of the registry it mirrors.
    #[serde(default)]
    pub registry_aliases: RegistryAliases,
    #[serde(default)]
    pub exceptions: ExceptionRules,
    #[serde(default)]
    pub templates: TemplateRules,
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
            trusted_scan_namespaces: vec![],
            registry_aliases: RegistryAliases::default(),
            exceptions: ExceptionRules::default(),
            templates: TemplateRules::default(),
        }
    }
}

/// Limits on ScanExceptions.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExceptionRules {
    /// The longest an exception may run from when it is applied (`90d`, `720h`).
    #[serde(default = "default_max_duration")]
    pub max_duration: String,
}

fn default_max_duration() -> String {
    "90d".into()
}

impl Default for ExceptionRules {
    fn default() -> Self {
        ExceptionRules {
            max_duration: default_max_duration(),
        }
    }
}

/// Which pod privileges a ScanTemplate may ask for. All refused by default.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateRules {
    #[serde(default)]
    pub allow_privileged: bool,
    #[serde(default)]
    pub allow_host_path: bool,
    #[serde(default)]
    pub allow_host_network: bool,
    #[serde(default, rename = "allowHostPID")]
    pub allow_host_pid: bool,
}

impl AdmissionConfig {
    /// Parses and checks a config file's text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config: AdmissionConfig = if text.trim().is_empty() {
            AdmissionConfig::default()
        } else {
            serde_yaml::from_str(text)?
        };
        config.exception_max_duration()?;
        if config.trusted_scan_namespaces.iter().any(String::is_empty) {
            return Err(Error::EmptyNamespace);
        }
        Ok(config)
    }

    /// `exceptions.maxDuration` as a duration.
    pub fn exception_max_duration(&self) -> Result<Duration> {
        parse_duration(&self.exceptions.max_duration).map_err(Error::MaxDuration)
    }

    /// Whether scans and exceptions in `source` count for a workload in `workload`.
    pub fn trusts(&self, workload: &str, source: &str) -> bool {
        source == workload || self.trusted_scan_namespaces.iter().any(|t| t == source)
    }
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
             registryAliases: {mirror.example:5000: docker.io}\n\
             templates: {allowPrivileged: true, allowHostPath: true, allowHostNetwork: true, allowHostPID: true}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.default_enforcement, Enforcement::Warn);
        assert_eq!(config.on_error, Action::Warn);
        assert_eq!(config.on_pending, Action::Allow);
        assert_eq!(config.on_unscanned, Action::Deny);
        assert!(config.trusts("shop", "scangate-system"));
        assert!(config.trusts("shop", "shop"));
        assert!(!config.trusts("shop", "other"));
        assert!(config.templates.allow_host_pid);
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
}
