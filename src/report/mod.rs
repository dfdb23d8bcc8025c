//! Scanner output (Grype, Trivy, CycloneDX, SARIF) normalized into one report.
//!
//! [`Report::from_path`] and [`Report::from_reader`] detect the format from the content and
//! read it in one streaming pass; [`Report::cve_count`] and
//! [`Report::vulnerabilities_worst_first`] summarize it; [`to_config_map`] and
//! [`from_config_map`] carry it from the scan Job to the controller.
//!
//! The normalized report is also the `input` of ScanPolicies:
//! `{artifact: {type, name, digest}, scanner: {name, vendor, version}, vulnerabilities:
//! [{id, severity, rawSeverity?, package: {name, version, type, purl}, fixedVersions, urls}],
//! exceptions}`.

mod configmap;
mod cyclonedx;
mod error;
mod grype;
mod model;
mod normalize;
mod parse;
mod sarif;
mod severity;
mod summary;
mod trivy;

pub use configmap::{
    MAX_COMPRESSED_REPORT_BYTES, REPORT_KEY, REPORTED_BY, SCAN_LABEL, ScanRef, config_map_name,
    from_config_map, scan_label_value, to_config_map,
};
pub use error::{Error, Format, Result, UNDERSTOOD_FORMATS};
pub use model::{Artifact, ArtifactType, Package, Report, Scanner, VexInput, Vulnerability};
pub use parse::{DEFAULT_MAX_REPORT_BYTES, Limits};
pub use severity::{ALL_SEVERITIES, Severity};
pub use summary::{cve_count, worst_first};
