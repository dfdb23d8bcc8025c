//! Trivy JSON (`trivy image|fs|repo -f json`), SchemaVersion 2, with or without the `Trivy`
//! block, with any number of `Results`.

use serde::Deserialize;
use serde_json::Value;

use super::error::Problem;
use super::model::{Artifact, ArtifactType, Package, Report, Scanner, Vulnerability};
use super::normalize::{
    digest_of, non_blank, or_unknown, package_type_from_trivy, split_fixed_versions, unique_urls,
};
use super::severity::MappedSeverity;

/// The `Metadata` block (only what identifies the image).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Metadata {
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
    repo_digests: Option<Vec<String>>,
}

/// The `Trivy` block of newer reports.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Info {
    version: Option<String>,
}

/// One `Results[]` entry: the findings of one target (OS packages, a lock file, …).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TrivyResult {
    #[serde(rename = "Type")]
    result_type: Option<String>,
    vulnerabilities: Option<Vec<TrivyVulnerability>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyVulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    pkg_name: String,
    installed_version: Option<String>,
    fixed_version: Option<String>,
    severity: Option<String>,
    #[serde(rename = "PrimaryURL")]
    primary_url: Option<String>,
    references: Option<Vec<String>>,
    pkg_identifier: Option<PkgIdentifier>,
}

#[derive(Debug, Deserialize)]
struct PkgIdentifier {
    #[serde(rename = "PURL")]
    purl: Option<String>,
}

/// The top-level fields of a Trivy report.
#[derive(Debug, Default)]
pub(crate) struct TrivyDocument {
    pub schema_version: Option<Value>,
    pub artifact_name: Option<String>,
    pub artifact_type: Option<String>,
    pub metadata: Option<Metadata>,
    pub results: Option<Vec<TrivyResult>>,
    pub trivy: Option<Info>,
}

const SUPPORTED_SCHEMA: &str = "SchemaVersion 2";

/// Converts a Trivy report; `SchemaVersion` (2) is required, `Results` may be absent (a scan
/// that found no targets).
pub(crate) fn convert(document: TrivyDocument) -> Result<Report, Problem> {
    check_schema_version(document.schema_version.as_ref())?;
    let vulnerabilities = document
        .results
        .into_iter()
        .flatten()
        .flat_map(result_vulnerabilities)
        .collect();
    Ok(Report {
        artifact: Artifact {
            artifact_type: artifact_type(document.artifact_type.as_deref()),
            name: document.artifact_name.unwrap_or_default(),
            digest: document.metadata.as_ref().and_then(image_digest),
            image_id: document
                .metadata
                .as_ref()
                .and_then(|m| m.image_id.as_deref())
                .and_then(digest_of),
        },
        scanner: Scanner {
            name: "trivy".to_string(),
            vendor: "aquasecurity".to_string(),
            version: or_unknown(document.trivy.and_then(|info| info.version).as_deref()),
        },
        vulnerabilities,
        exceptions: Vec::new(),
        vex: Vec::new(),
    })
}

fn check_schema_version(schema_version: Option<&Value>) -> Result<(), Problem> {
    match schema_version {
        None => Err(Problem::missing("SchemaVersion")),
        Some(version) if version.as_i64() == Some(2) => Ok(()),
        Some(version) => Err(Problem::UnsupportedVersion {
            found: format!("SchemaVersion {version}"),
            supported: SUPPORTED_SCHEMA,
        }),
    }
}

fn artifact_type(trivy_type: Option<&str>) -> ArtifactType {
    match trivy_type {
        Some("container_image") => ArtifactType::Image,
        Some("filesystem" | "rootfs") => ArtifactType::Filesystem,
        Some("repository") => ArtifactType::Repository,
        Some("cyclonedx" | "spdx") => ArtifactType::Sbom,
        _ => ArtifactType::Unknown,
    }
}

/// The registry digest (`RepoDigests[0]`); the `ImageID` is the config's, which no registry
/// serves the image by.
fn image_digest(metadata: &Metadata) -> Option<String> {
    metadata
        .repo_digests
        .iter()
        .flatten()
        .find_map(|reference| digest_of(reference))
}

fn result_vulnerabilities(result: TrivyResult) -> impl Iterator<Item = Vulnerability> {
    let result_type = result.result_type;
    result
        .vulnerabilities
        .into_iter()
        .flatten()
        .map(move |found| vulnerability(result_type.as_deref(), found))
}

fn vulnerability(result_type: Option<&str>, found: TrivyVulnerability) -> Vulnerability {
    let severity = MappedSeverity::from_raw(found.severity.as_deref());
    let purl = non_blank(found.pkg_identifier.and_then(|id| id.purl));
    let urls = unique_urls(
        found
            .primary_url
            .iter()
            .chain(found.references.iter().flatten())
            .map(String::as_str),
    );
    Vulnerability {
        id: found.vulnerability_id,
        severity: severity.severity,
        raw_severity: severity.raw,
        package: Package {
            name: found.pkg_name,
            version: found.installed_version.unwrap_or_default(),
            package_type: package_type_from_trivy(result_type, purl.as_deref()),
            purl,
        },
        fixed_versions: found
            .fixed_version
            .as_deref()
            .map(split_fixed_versions)
            .unwrap_or_default(),
        urls,
    }
}
