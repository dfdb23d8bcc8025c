//! The normalized report: what every scanner format is turned into. It is also the `input`
//! of ScanPolicies (Rego), so its JSON shape is a contract: camelCase keys, lowercase enums.

use serde::{Deserialize, Serialize};

use super::severity::Severity;

/// A scanner's findings, normalized. Serialized as
/// `{artifact, scanner, vulnerabilities, exceptions}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// What was scanned.
    pub artifact: Artifact,
    /// Which scanner produced the report.
    pub scanner: Scanner,
    /// One entry per (vulnerability, affected package) the scanner reported, in report order.
    /// Duplicates are kept as reported; see [`Report::vulnerabilities_worst_first`].
    pub vulnerabilities: Vec<Vulnerability>,
    /// Active ScanExceptions, filled in by the policy layer; empty when parsed.
    #[serde(default)]
    pub exceptions: Vec<serde_json::Value>,
    /// Active VEX statements for the artifact, whatever their status (`input.vex`), filled in
    /// by the policy layer; absent from the input when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vex: Vec<VexInput>,
}

/// An active VEX statement as the policy sees it (`input.vex[]`): its ScanException's CVEs
/// and images, and the statement's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VexInput {
    /// `namespace/name` of the ScanException that holds it.
    pub exception: String,
    pub images: Vec<String>,
    pub cves: Vec<String>,
    #[serde(flatten)]
    pub statement: crate::api::VexStatement,
    /// When it stops counting (RFC 3339).
    pub expires: String,
}

/// What was scanned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// The kind of target.
    #[serde(rename = "type")]
    pub artifact_type: ArtifactType,
    /// The target as the scanner named it (image reference, path, repository URL); empty when
    /// the report does not say.
    pub name: String,
    /// `sha256:…` when the report knows the digest a registry serves the image by (a manifest
    /// or an index: what a node can pull). Never the image ID.
    pub digest: Option<String>,
    /// The image ID (`sha256:…`, the digest of the image's config) when the report gives one.
    /// No registry serves an image by it: it is not the artifact's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// The kind of target a scanner looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactType {
    /// A container image.
    Image,
    /// A directory, root filesystem or file.
    Filesystem,
    /// A source repository.
    Repository,
    /// An SBOM document that was scanned.
    Sbom,
    /// The report does not say.
    #[default]
    Unknown,
}

/// The scanner that produced a report (`status.scannedBy.scanner`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scanner {
    /// e.g. `grype`, `trivy`.
    pub name: String,
    /// e.g. `anchore`, `aquasecurity`; `unknown` when the report does not say.
    pub vendor: String,
    /// The scanner's version; `unknown` when the report does not say.
    pub version: String,
}

/// One vulnerability in one package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vulnerability {
    /// The vulnerability id as reported (`CVE-…`, `GHSA-…`, …).
    pub id: String,
    /// The normalized severity.
    pub severity: Severity,
    /// The scanner's own severity name when it was not one of the five canonical names
    /// (e.g. `Negligible`, `Important`, or an unrecognized value). Omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_severity: Option<String>,
    /// The affected package.
    pub package: Package,
    /// Versions that fix it; empty when there is no fix (or the report does not say).
    pub fixed_versions: Vec<String>,
    /// Links about the vulnerability, first the primary one, without duplicates.
    pub urls: Vec<String>,
}

/// An installed package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// The package name as the scanner reports it.
    pub name: String,
    /// The installed version; empty when the report does not say.
    pub version: String,
    /// The ecosystem: `deb`, `apk`, `rpm`, `npm`, `python`, `gomod`, `java-archive`, `gem`,
    /// `rust-crate`, `php-composer`, `dotnet`, `binary`, … (Grype's names, except Go modules
    /// which are `gomod`); `unknown` when the report does not say.
    #[serde(rename = "type")]
    pub package_type: String,
    /// The package URL, when the report has one.
    pub purl: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The policy `input` contract: exact keys and value spellings.
    #[test]
    fn json_shape_is_the_policy_contract() {
        let report = Report {
            artifact: Artifact {
                artifact_type: ArtifactType::Image,
                name: "nginx:1.27".into(),
                digest: Some("sha256:abc".into()),
                image_id: None,
            },
            scanner: Scanner {
                name: "grype".into(),
                vendor: "anchore".into(),
                version: "0.94.0".into(),
            },
            vulnerabilities: vec![
                Vulnerability {
                    id: "CVE-2004-0971".into(),
                    severity: Severity::Low,
                    raw_severity: Some("Negligible".into()),
                    package: Package {
                        name: "libkrb5".into(),
                        version: "1.17".into(),
                        package_type: "deb".into(),
                        purl: None,
                    },
                    fixed_versions: vec!["1.18".into()],
                    urls: vec!["https://example.com".into()],
                },
                Vulnerability {
                    id: "CVE-1".into(),
                    severity: Severity::Critical,
                    ..Vulnerability::default()
                },
            ],
            exceptions: vec![],
            vex: vec![],
        };
        assert_eq!(
            serde_json::to_value(&report).expect("serialize"),
            json!({
                "artifact": {"type": "image", "name": "nginx:1.27", "digest": "sha256:abc"},
                "scanner": {"name": "grype", "vendor": "anchore", "version": "0.94.0"},
                "vulnerabilities": [
                    {
                        "id": "CVE-2004-0971",
                        "severity": "low",
                        "rawSeverity": "Negligible",
                        "package": {"name": "libkrb5", "version": "1.17", "type": "deb", "purl": null},
                        "fixedVersions": ["1.18"],
                        "urls": ["https://example.com"]
                    },
                    {
                        "id": "CVE-1",
                        "severity": "critical",
                        "package": {"name": "", "version": "", "type": "", "purl": null},
                        "fixedVersions": [],
                        "urls": []
                    }
                ],
                "exceptions": []
            })
        );
    }

    #[test]
    fn exceptions_default_to_empty() {
        let report: Report = serde_json::from_value(json!({
            "artifact": {"type": "unknown", "name": "", "digest": null},
            "scanner": {"name": "x", "vendor": "y", "version": "z"},
            "vulnerabilities": []
        }))
        .expect("deserialize");
        assert!(report.exceptions.is_empty());
    }
}
