//! ImageScan and SourceScan: what to scan, with which template and policy.
// clippy reads the repeated `printcolumn(type_ = …)` arguments of the derive as duplicated
// attributes; they are separate columns.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ScanStatus;

/// Scans a container image and keeps the verdict in its status.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "scanning.scangate.dev",
    version = "v1beta1",
    kind = "ImageScan",
    namespaced,
    status = "ScanStatus",
    shortname = "imgscan",
    category = "scangate",
    doc = "ImageScan scans a container image with a ScanTemplate and checks the report against a ScanPolicy.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "ScannedImage",
        type_ = "string",
        json_path = ".status.artifact.registry.image"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Critical",
        type_ = "integer",
        json_path = ".status.cveCount.critical"
    ),
    printcolumn(name = "High", type_ = "integer", json_path = ".status.cveCount.high"),
    printcolumn(
        name = "Medium",
        type_ = "integer",
        json_path = ".status.cveCount.medium"
    ),
    printcolumn(name = "Low", type_ = "integer", json_path = ".status.cveCount.low"),
    printcolumn(
        name = "Unknown",
        type_ = "integer",
        json_path = ".status.cveCount.unknown"
    ),
    printcolumn(
        name = "CVETotal",
        type_ = "integer",
        json_path = ".status.cveCount.total"
    ),
    printcolumn(
        name = "Scanner",
        type_ = "string",
        json_path = ".status.scannedBy.scanner.name",
        priority = 1
    ),
    printcolumn(
        name = "ScannerVersion",
        type_ = "string",
        json_path = ".status.scannedBy.scanner.version",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanSpec {
    pub registry: RegistrySpec,
    /// Where the results come from: `Report` (the default: a scan Job from `scanTemplate`, or
    /// a report pushed with `scangate report`) or `Attestation` (signed vulnerability
    /// attestations next to the image in its registry, verified with the admin's keys; no
    /// Job runs and no report is stored in the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_from: Option<ResultsFrom>,
    #[serde(flatten)]
    pub scan: ScanSettings,
}

/// Where an ImageScan's results come from.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ResultsFrom {
    /// A scan Job from the scan's ScanTemplate, or a report pushed with `scangate report`.
    #[default]
    Report,
    /// The image's signed vulnerability attestations (cosign `vuln/v1`, in-toto `vulns/v0.2`).
    Attestation,
}

/// The image to scan.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// The image reference, by tag or digest (`nginx:1.27`, `ghcr.io/org/app@sha256:…`).
    pub image: String,
    /// A Secret in the same namespace, of type kubernetes.io/dockerconfigjson, to pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
}

/// Scans source code from a git repository or an archive and keeps the verdict in its status.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "scanning.scangate.dev",
    version = "v1beta1",
    kind = "SourceScan",
    namespaced,
    status = "ScanStatus",
    shortname = "srcscan",
    category = "scangate",
    doc = "SourceScan scans source code (git or an archive) with a ScanTemplate and checks the report against a ScanPolicy.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "ScannedRevision",
        type_ = "string",
        json_path = ".status.artifact.git.revision"
    ),
    printcolumn(
        name = "ScannedRepository",
        type_ = "string",
        json_path = ".status.artifact.git.url"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Critical",
        type_ = "integer",
        json_path = ".status.cveCount.critical"
    ),
    printcolumn(name = "High", type_ = "integer", json_path = ".status.cveCount.high"),
    printcolumn(
        name = "Medium",
        type_ = "integer",
        json_path = ".status.cveCount.medium"
    ),
    printcolumn(name = "Low", type_ = "integer", json_path = ".status.cveCount.low"),
    printcolumn(
        name = "Unknown",
        type_ = "integer",
        json_path = ".status.cveCount.unknown"
    ),
    printcolumn(
        name = "CVETotal",
        type_ = "integer",
        json_path = ".status.cveCount.total"
    ),
    printcolumn(
        name = "Scanner",
        type_ = "string",
        json_path = ".status.scannedBy.scanner.name",
        priority = 1
    ),
    printcolumn(
        name = "ScannerVersion",
        type_ = "string",
        json_path = ".status.scannedBy.scanner.version",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SourceScanSpec {
    /// An archive of the source, fetched over HTTP(S).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobSpec>,
    /// A git repository and revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSpec>,
    #[serde(flatten)]
    pub scan: ScanSettings,
}

/// A source archive.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlobSpec {
    /// Where to fetch the archive (a tarball) from.
    pub url: String,
}

/// A git repository to scan.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitSpec {
    /// The repository URL (https://, ssh:// or git@host:path).
    pub url: String,
    /// Branch, tag or commit; the default branch when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// A Secret in the same namespace with the SSH private key (`ssh-privatekey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_secret: Option<String>,
    /// known_hosts entries for the git server, for SSH URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
    /// The user name for HTTPS authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// Settings shared by ImageScan and SourceScan.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanSettings {
    /// The ScanTemplate (same namespace) whose pod runs the scanner. Without one, reports are
    /// pushed from elsewhere with `scangate report --to-configmap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_template: Option<String>,
    /// The ScanPolicy (same namespace) the report is checked against. Without one, a successful
    /// scan is Completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_policy: Option<String>,
    /// Scan again on this schedule (e.g. `24h`, `30m`), as new CVEs are published for old images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescan_interval: Option<String>,
    /// When true, no new scan Jobs are started; the status keeps the last verdict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}
