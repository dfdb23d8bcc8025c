//! Grype JSON (`grype -o json`), old (0.2x) and new (0.9x) schemas.

use serde::Deserialize;
use serde_json::Value;

use super::error::Problem;
use super::model::{Artifact, ArtifactType, Package, Report, Scanner, Vulnerability};
use super::normalize::{
    digest_of, first_digest, non_blank, or_unknown, package_type_from_grype, unique_urls,
};
use super::severity::MappedSeverity;

/// One `matches[]` entry.
#[derive(Debug, Deserialize)]
pub(crate) struct Match {
    vulnerability: MatchedVulnerability,
    artifact: MatchedArtifact,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MatchedVulnerability {
    id: String,
    severity: Option<String>,
    data_source: Option<String>,
    urls: Option<Vec<String>>,
    fix: Option<Fix>,
}

#[derive(Debug, Deserialize)]
struct Fix {
    versions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct MatchedArtifact {
    name: String,
    version: String,
    #[serde(rename = "type")]
    artifact_type: Option<String>,
    purl: Option<String>,
}

/// The `descriptor` block.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Descriptor {
    name: Option<String>,
    version: Option<String>,
}

/// The top-level fields of a Grype report.
#[derive(Debug, Default)]
pub(crate) struct GrypeDocument {
    pub matches: Option<Vec<Match>>,
    pub source: Option<Value>,
    pub descriptor: Option<Descriptor>,
}

/// Converts a Grype report; `matches` is required.
pub(crate) fn convert(document: GrypeDocument) -> Result<Report, Problem> {
    let matches = document.matches.ok_or(Problem::missing("matches"))?;
    Ok(Report {
        artifact: artifact(document.source.as_ref()),
        scanner: scanner(document.descriptor.unwrap_or_default()),
        vulnerabilities: matches.into_iter().map(vulnerability).collect(),
        exceptions: Vec::new(),
        vex: Vec::new(),
    })
}

fn scanner(descriptor: Descriptor) -> Scanner {
    let name = non_blank(descriptor.name).unwrap_or_else(|| "grype".to_string());
    Scanner {
        vendor: "anchore".to_string(),
        version: or_unknown(descriptor.version.as_deref()),
        name,
    }
}

/// `source: {type, target}`; the target is a string (directory scans) or an object.
fn artifact(source: Option<&Value>) -> Artifact {
    let Some(source) = source else {
        return Artifact::default();
    };
    let artifact_type = match source.get("type").and_then(Value::as_str) {
        Some("image") => ArtifactType::Image,
        Some("directory" | "file") => ArtifactType::Filesystem,
        Some("sbom") => ArtifactType::Sbom,
        _ => ArtifactType::Unknown,
    };
    let target = source.get("target");
    let name = match target {
        Some(Value::String(path)) => unquoted(path).to_string(),
        Some(target) => ["userInput", "path", "name"]
            .iter()
            .find_map(|key| target.get(key).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    };
    let digest = target.and_then(image_digest);
    let image_id = target
        .and_then(|t| t.get("imageID"))
        .and_then(Value::as_str)
        .and_then(digest_of);
    Artifact {
        artifact_type,
        name,
        digest,
        image_id,
    }
}

/// Old Grype versions wrote a directory target with its quotes (`"\".\""`).
fn unquoted(path: &str) -> &str {
    path.strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .unwrap_or(path)
}

/// The registry digest (`repoDigests[0]`), else the `manifestDigest`.
fn image_digest(target: &Value) -> Option<String> {
    first_digest(target, "repoDigests", Some("manifestDigest"))
}

fn vulnerability(matched: Match) -> Vulnerability {
    let Match {
        vulnerability,
        artifact,
    } = matched;
    let severity = MappedSeverity::from_raw(vulnerability.severity.as_deref());
    let purl = non_blank(artifact.purl);
    let urls = unique_urls(
        vulnerability
            .data_source
            .iter()
            .chain(vulnerability.urls.iter().flatten())
            .map(String::as_str),
    );
    Vulnerability {
        id: vulnerability.id,
        severity: severity.severity,
        raw_severity: severity.raw,
        package: Package {
            package_type: package_type_from_grype(
                artifact.artifact_type.as_deref(),
                purl.as_deref(),
            ),
            name: artifact.name,
            version: artifact.version,
            purl,
        },
        fixed_versions: vulnerability
            .fix
            .and_then(|fix| fix.versions)
            .unwrap_or_default(),
        urls,
    }
}
