//! CycloneDX JSON 1.4+ with a `vulnerabilities` array (`grype -o cyclonedx-json`,
//! `trivy --format cyclonedx`, …).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::error::Problem;
use super::model::{Artifact, ArtifactType, Package, Report, Scanner, Vulnerability};
use super::normalize::{
    digest_of, known_scanner, non_blank, or_unknown, package_type_or_unknown, purl_name_version,
    split_fixed_versions, unique_urls,
};
use super::severity::{MappedSeverity, Severity};

/// The `metadata` block.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Metadata {
    tools: Option<Value>,
    component: Option<Component>,
}

/// A component (package, container, file, …), possibly with nested components.
#[derive(Debug, Deserialize)]
pub(crate) struct Component {
    #[serde(rename = "bom-ref")]
    bom_ref: Option<String>,
    #[serde(rename = "type")]
    component_type: Option<String>,
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    properties: Option<Vec<Property>>,
    components: Option<Vec<Component>>,
}

#[derive(Debug, Deserialize)]
struct Property {
    name: Option<String>,
    value: Option<String>,
}

/// One `vulnerabilities[]` entry.
#[derive(Debug, Deserialize)]
pub(crate) struct CdxVulnerability {
    id: String,
    source: Option<Link>,
    ratings: Option<Vec<Rating>>,
    advisories: Option<Vec<Link>>,
    recommendation: Option<String>,
    affects: Option<Vec<Affects>>,
    tools: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Link {
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Rating {
    severity: Option<String>,
    score: Option<f64>,
    method: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Affects {
    #[serde(rename = "ref")]
    reference: Option<String>,
    versions: Option<Vec<AffectedVersion>>,
}

#[derive(Debug, Deserialize)]
struct AffectedVersion {
    version: Option<String>,
    status: Option<String>,
}

/// The top-level fields of a CycloneDX document.
#[derive(Debug, Default)]
pub(crate) struct CycloneDxDocument {
    pub bom_format: Option<String>,
    pub spec_version: Option<String>,
    pub metadata: Option<Metadata>,
    pub components: Option<Vec<Component>>,
    pub vulnerabilities: Option<Vec<CdxVulnerability>>,
}

const SUPPORTED_SPEC: &str = "specVersion 1.4 or later";

/// Converts a CycloneDX document; `specVersion` (1.4+) and `vulnerabilities` are required: an
/// SBOM without that array is not a scan result (a clean scan must write an empty array).
pub(crate) fn convert(document: CycloneDxDocument) -> Result<Report, Problem> {
    check_bom_format(document.bom_format.as_deref())?;
    check_spec_version(document.spec_version.as_deref())?;
    let vulnerabilities = document
        .vulnerabilities
        .ok_or(Problem::missing("vulnerabilities"))?;
    let metadata = document.metadata.unwrap_or_default();
    let mut components_by_ref = HashMap::new();
    index_components(metadata.component.iter(), &mut components_by_ref);
    index_components(document.components.iter().flatten(), &mut components_by_ref);

    let scanner = scanner(metadata.tools.as_ref(), &vulnerabilities);
    let artifact = metadata
        .component
        .as_ref()
        .map(artifact)
        .unwrap_or_default();
    let vulnerabilities = vulnerabilities
        .iter()
        .flat_map(|found| affected_vulnerabilities(found, &components_by_ref))
        .collect();
    Ok(Report {
        artifact,
        scanner,
        vulnerabilities,
        exceptions: Vec::new(),
        vex: Vec::new(),
    })
}

fn check_bom_format(bom_format: Option<&str>) -> Result<(), Problem> {
    match bom_format {
        None => Err(Problem::missing("bomFormat")),
        Some(name) if name.eq_ignore_ascii_case("CycloneDX") => Ok(()),
        Some(other) => Err(Problem::UnsupportedVersion {
            found: format!("bomFormat {other:?}"),
            supported: "bomFormat \"CycloneDX\"",
        }),
    }
}

fn check_spec_version(spec_version: Option<&str>) -> Result<(), Problem> {
    let spec_version = spec_version.ok_or(Problem::missing("specVersion"))?;
    let minor = spec_version
        .trim()
        .strip_prefix("1.")
        .and_then(|minor| minor.parse::<u32>().ok());
    match minor {
        Some(minor) if minor >= 4 => Ok(()),
        _ => Err(Problem::UnsupportedVersion {
            found: format!("specVersion {spec_version}"),
            supported: SUPPORTED_SPEC,
        }),
    }
}

fn index_components<'a>(
    components: impl Iterator<Item = &'a Component>,
    index: &mut HashMap<&'a str, &'a Component>,
) {
    for component in components {
        if let Some(bom_ref) = component.bom_ref.as_deref() {
            index.entry(bom_ref).or_insert(component);
        }
        index_components(component.components.iter().flatten(), index);
    }
}

fn artifact(component: &Component) -> Artifact {
    let artifact_type = match component.component_type.as_deref() {
        Some("container") => ArtifactType::Image,
        Some("file") => ArtifactType::Filesystem,
        _ => ArtifactType::Unknown,
    };
    Artifact {
        artifact_type,
        name: component.name.clone().unwrap_or_default(),
        digest: component_digest(component),
        image_id: component_property(component, "aquasecurity:trivy:ImageID"),
    }
}

/// Trivy's `aquasecurity:trivy:RepoDigest` property, else the digest in an
/// `pkg:oci/…@sha256:…` package URL (never the `ImageID`: that is the config's digest).
fn component_digest(component: &Component) -> Option<String> {
    component_property(component, "aquasecurity:trivy:RepoDigest").or_else(|| {
        let (_, version) = purl_name_version(component.purl.as_deref()?)?;
        digest_of(&version)
    })
}

/// The digest in the component's first property named `wanted`.
fn component_property(component: &Component, wanted: &str) -> Option<String> {
    component
        .properties
        .iter()
        .flatten()
        .filter(|p| p.name.as_deref() == Some(wanted))
        .find_map(|p| p.value.as_deref().and_then(digest_of))
}

/// One normalized vulnerability per affected component (one with an empty package when the
/// entry names none).
fn affected_vulnerabilities(
    found: &CdxVulnerability,
    components_by_ref: &HashMap<&str, &Component>,
) -> Vec<Vulnerability> {
    let severity = rated_severity(found.ratings.as_deref().unwrap_or_default());
    let urls = unique_urls(
        found
            .source
            .iter()
            .chain(found.advisories.iter().flatten())
            .filter_map(|link| link.url.as_deref()),
    );
    let recommended = found
        .recommendation
        .as_deref()
        .map(versions_from_recommendation)
        .unwrap_or_default();
    let build = |package: Package, unaffected: Vec<String>| Vulnerability {
        id: found.id.clone(),
        severity: severity.severity,
        raw_severity: severity.raw.clone(),
        package,
        fixed_versions: merge_versions(unaffected, &recommended),
        urls: urls.clone(),
    };
    let affects = found.affects.as_deref().unwrap_or_default();
    if affects.is_empty() {
        return vec![build(unknown_package(), Vec::new())];
    }
    affects
        .iter()
        .map(|affected| {
            let package = affected
                .reference
                .as_deref()
                .map(|reference| package_for_ref(reference, components_by_ref))
                .unwrap_or_else(unknown_package);
            build(package, unaffected_versions(affected))
        })
        .collect()
}

fn unknown_package() -> Package {
    Package {
        package_type: package_type_or_unknown(None),
        ..Package::default()
    }
}

/// The component with that bom-ref; failing that, what the ref says if it is a package URL.
fn package_for_ref(reference: &str, components_by_ref: &HashMap<&str, &Component>) -> Package {
    if let Some(component) = components_by_ref.get(reference) {
        let purl = non_blank(component.purl.clone());
        return Package {
            name: component.name.clone().unwrap_or_default(),
            version: component.version.clone().unwrap_or_default(),
            package_type: package_type_or_unknown(purl.as_deref()),
            purl,
        };
    }
    match purl_name_version(reference) {
        Some((name, version)) => Package {
            name,
            version,
            package_type: package_type_or_unknown(Some(reference)),
            purl: Some(reference.to_string()),
        },
        None => Package {
            name: reference.to_string(),
            ..unknown_package()
        },
    }
}

/// The worst severity among the ratings that name one (other than `unknown`); if none does,
/// the worst CVSS band of their scores; else `unknown`, keeping an unrecognized raw name.
fn rated_severity(ratings: &[Rating]) -> MappedSeverity {
    let named: Vec<MappedSeverity> = ratings
        .iter()
        .filter_map(|rating| rating.severity.as_deref())
        .map(|raw| MappedSeverity::from_raw(Some(raw)))
        .collect();
    if let Some(worst) = named
        .iter()
        .filter(|mapped| mapped.severity != Severity::Unknown)
        .min_by_key(|mapped| mapped.severity)
    {
        return worst.clone();
    }
    if let Some(worst) = ratings.iter().filter_map(score_severity).min() {
        return MappedSeverity::derived(worst);
    }
    named
        .into_iter()
        .find(|mapped| mapped.raw.is_some())
        .unwrap_or_default()
}

/// The band of a rating's score: CVSS v2 bands for `CVSSv2`, v3 bands otherwise.
fn score_severity(rating: &Rating) -> Option<Severity> {
    let score = rating.score?;
    match rating
        .method
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("cvssv2") => Severity::from_cvss_v2_score(score),
        _ => Severity::from_cvss_v3_score(score),
    }
}

/// Versions an `affects` entry marks `unaffected` (the fixed ones, in practice).
fn unaffected_versions(affected: &Affects) -> Vec<String> {
    affected
        .versions
        .iter()
        .flatten()
        .filter(|v| v.status.as_deref() == Some("unaffected"))
        .filter_map(|v| non_blank(v.version.clone()))
        .collect()
}

/// Versions from a recommendation written as Trivy (and Snyk) do:
/// `Upgrade <package> to version 1.2.3, 1.3.0[ or higher][.]`.
fn versions_from_recommendation(recommendation: &str) -> Vec<String> {
    let text = recommendation.trim();
    if !text.starts_with("Upgrade ") {
        return Vec::new();
    }
    let Some((_, versions)) = text.split_once(" to version ") else {
        return Vec::new();
    };
    let versions = versions.trim_end_matches('.');
    let versions = versions.strip_suffix(" or higher").unwrap_or(versions);
    split_fixed_versions(versions)
}

fn merge_versions(mut versions: Vec<String>, more: &[String]) -> Vec<String> {
    for version in more {
        if !versions.contains(version) {
            versions.push(version.clone());
        }
    }
    versions
}

/// A tool named in `tools`: name, vendor and version when given.
struct Tool {
    name: String,
    vendor: Option<String>,
    version: Option<String>,
}

/// The scanner from `metadata.tools`, else from the first vulnerability's `tools`; a known
/// vulnerability scanner is preferred over other tools listed (e.g. an SBOM generator).
fn scanner(metadata_tools: Option<&Value>, vulnerabilities: &[CdxVulnerability]) -> Scanner {
    let tools = metadata_tools
        .map(tools_of)
        .filter(|tools| !tools.is_empty())
        .or_else(|| {
            vulnerabilities
                .iter()
                .filter_map(|v| v.tools.as_ref())
                .map(tools_of)
                .find(|tools| !tools.is_empty())
        })
        .unwrap_or_default();
    let chosen = tools
        .iter()
        .find(|tool| known_scanner(&tool.name).is_some())
        .or_else(|| tools.first());
    let Some(tool) = chosen else {
        return Scanner {
            name: or_unknown(None),
            vendor: or_unknown(None),
            version: or_unknown(None),
        };
    };
    let (name, vendor) = match known_scanner(&tool.name) {
        Some((name, vendor)) => (name.to_string(), vendor.to_string()),
        None => (tool.name.clone(), or_unknown(tool.vendor.as_deref())),
    };
    Scanner {
        name,
        vendor,
        version: or_unknown(tool.version.as_deref()),
    }
}

/// Tools in the 1.4 array form (`[{vendor, name, version}]`) or the 1.5+ object form
/// (`{components: [...], services: [...]}`).
fn tools_of(tools: &Value) -> Vec<Tool> {
    let listed: Vec<&Value> = match tools {
        Value::Array(tools) => tools.iter().collect(),
        Value::Object(form) => ["components", "services"]
            .iter()
            .filter_map(|key| form.get(*key).and_then(Value::as_array))
            .flatten()
            .collect(),
        _ => Vec::new(),
    };
    listed.into_iter().filter_map(tool).collect()
}

fn tool(tool: &Value) -> Option<Tool> {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
    let name = non_blank(text(tool.get("name")))?;
    let vendor = [
        tool.get("vendor"),
        tool.get("manufacturer").and_then(|m| m.get("name")),
        tool.get("supplier").and_then(|s| s.get("name")),
        tool.get("provider").and_then(|p| p.get("name")),
        tool.get("group"),
        tool.get("publisher"),
        tool.get("author"),
    ]
    .into_iter()
    .find_map(|candidate| non_blank(text(candidate)));
    Some(Tool {
        name,
        vendor,
        version: text(tool.get("version")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(severity: Option<&str>, score: Option<f64>, method: Option<&str>) -> Rating {
        Rating {
            severity: severity.map(str::to_string),
            score,
            method: method.map(str::to_string),
        }
    }

    #[test]
    fn worst_named_rating_wins() {
        let ratings = [
            rating(Some("medium"), None, None),
            rating(Some("critical"), Some(9.8), Some("CVSSv31")),
            rating(Some("low"), None, None),
        ];
        assert_eq!(rated_severity(&ratings).severity, Severity::Critical);
    }

    #[test]
    fn score_bands_when_no_rating_names_a_severity() {
        let ratings = [
            rating(None, Some(10.0), Some("CVSSv2")),
            rating(None, Some(6.6), Some("CVSSv31")),
        ];
        assert_eq!(rated_severity(&ratings).severity, Severity::High);
        let ratings = [rating(Some("unknown"), Some(9.1), None)];
        assert_eq!(rated_severity(&ratings).severity, Severity::Critical);
    }

    #[test]
    fn unknown_keeps_unrecognized_raw_name() {
        let rated = rated_severity(&[rating(Some("severe"), None, None)]);
        assert_eq!(rated.severity, Severity::Unknown);
        assert_eq!(rated.raw.as_deref(), Some("severe"));
        assert_eq!(rated_severity(&[]), MappedSeverity::default());
    }

    #[test]
    fn recommendation_versions() {
        assert_eq!(
            versions_from_recommendation(
                "Upgrade com.fasterxml.jackson.core:jackson-databind to version 2.6.7.5, 2.8.11.1, 2.9.5 or higher."
            ),
            vec!["2.6.7.5", "2.8.11.1", "2.9.5"]
        );
        assert_eq!(
            versions_from_recommendation("Upgrade activesupport to version 6.0.3.1, 5.2.4.3"),
            vec!["6.0.3.1", "5.2.4.3"]
        );
        assert!(versions_from_recommendation("Apply the vendor patch").is_empty());
    }

    #[test]
    fn spec_versions() {
        assert!(check_spec_version(Some("1.4")).is_ok());
        assert!(check_spec_version(Some("1.7")).is_ok());
        assert!(matches!(
            check_spec_version(Some("1.3")),
            Err(Problem::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            check_spec_version(None),
            Err(Problem::Missing { .. })
        ));
    }
}
