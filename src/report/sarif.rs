//! SARIF 2.1.0 written by a vulnerability scanner (Trivy's `-f sarif` is the reference: one
//! rule per vulnerability id, one result per affected package, the package and installed
//! version in the result message).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::error::Problem;
use super::model::{Artifact, ArtifactType, Package, Report, Scanner, Vulnerability};
use super::normalize::{
    digest_of, first_digest, known_scanner, non_blank, or_unknown, package_type_or_unknown,
    split_fixed_versions, unique_urls,
};
use super::severity::{MappedSeverity, Severity};

/// One `runs[]` entry.
#[derive(Debug, Deserialize)]
pub(crate) struct Run {
    tool: Tool,
    results: Option<Vec<SarifResult>>,
    properties: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Tool {
    driver: Driver,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: String,
    version: Option<String>,
    semantic_version: Option<String>,
    organization: Option<String>,
    rules: Option<Vec<Rule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: String,
    help_uri: Option<String>,
    properties: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: Option<String>,
    rule_index: Option<i64>,
    level: Option<String>,
    message: Option<Message>,
    locations: Option<Vec<Location>>,
}

#[derive(Debug, Deserialize)]
struct Message {
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Location {
    message: Option<Message>,
}

/// The top-level fields of a SARIF log.
#[derive(Debug, Default)]
pub(crate) struct SarifDocument {
    pub version: Option<Value>,
    pub runs: Option<Vec<Run>>,
}

const SUPPORTED_VERSION: &str = "SARIF 2.1.0";

/// Converts a SARIF log; `version` (2.1.x) and `runs` are required, and every result must
/// name its rule (`ruleId` or `ruleIndex`).
pub(crate) fn convert(document: SarifDocument) -> Result<Report, Problem> {
    check_version(document.version.as_ref())?;
    let runs = document.runs.ok_or(Problem::missing("runs"))?;
    let mut vulnerabilities = Vec::new();
    for (run_index, run) in runs.iter().enumerate() {
        vulnerabilities.extend(run_vulnerabilities(run_index, run)?);
    }
    Ok(Report {
        artifact: runs
            .iter()
            .find_map(|run| run.properties.as_ref())
            .map(artifact)
            .unwrap_or_default(),
        scanner: runs
            .first()
            .map(|run| scanner(&run.tool.driver))
            .unwrap_or_else(unknown_scanner),
        vulnerabilities,
        exceptions: Vec::new(),
        vex: Vec::new(),
    })
}

fn check_version(version: Option<&Value>) -> Result<(), Problem> {
    let version = version.ok_or(Problem::missing("version"))?;
    match version.as_str() {
        Some(text) if text.starts_with("2.1") => Ok(()),
        _ => Err(Problem::UnsupportedVersion {
            found: version.to_string(),
            supported: SUPPORTED_VERSION,
        }),
    }
}

fn unknown_scanner() -> Scanner {
    Scanner {
        name: or_unknown(None),
        vendor: or_unknown(None),
        version: or_unknown(None),
    }
}

fn scanner(driver: &Driver) -> Scanner {
    let (name, vendor) = match known_scanner(&driver.name) {
        Some((name, vendor)) => (name.to_string(), vendor.to_string()),
        None => (
            driver.name.clone(),
            or_unknown(driver.organization.as_deref()),
        ),
    };
    let version = non_blank(driver.version.clone()).or_else(|| driver.semantic_version.clone());
    Scanner {
        name,
        vendor,
        version: or_unknown(version.as_deref()),
    }
}

/// Trivy's run properties: `imageName`, `repoDigests`, `imageID`.
fn artifact(properties: &Value) -> Artifact {
    let image_name = properties.get("imageName").and_then(Value::as_str);
    // `imageID` is the config's digest, not one a registry serves the image by.
    let digest = first_digest(properties, "repoDigests", None);
    let image_id = properties
        .get("imageID")
        .and_then(Value::as_str)
        .and_then(digest_of);
    Artifact {
        artifact_type: if image_name.is_some() {
            ArtifactType::Image
        } else {
            ArtifactType::Unknown
        },
        name: image_name.unwrap_or_default().to_string(),
        digest,
        image_id,
    }
}

fn run_vulnerabilities(run_index: usize, run: &Run) -> Result<Vec<Vulnerability>, Problem> {
    let rules = run.tool.driver.rules.as_deref().unwrap_or_default();
    let rules_by_id: HashMap<&str, &Rule> =
        rules.iter().map(|rule| (rule.id.as_str(), rule)).collect();
    run.results
        .iter()
        .flatten()
        .enumerate()
        .map(|(result_index, result)| {
            let rule_by_index = result
                .rule_index
                .and_then(|index| usize::try_from(index).ok())
                .and_then(|index| rules.get(index));
            let rule_id = result
                .rule_id
                .as_deref()
                .or(rule_by_index.map(|rule| rule.id.as_str()))
                .ok_or_else(|| {
                    Problem::missing(format!("runs[{run_index}].results[{result_index}].ruleId"))
                })?;
            let rule = rules_by_id.get(rule_id).copied().or(rule_by_index);
            Ok(vulnerability(rule_id, rule, result))
        })
        .collect()
}

fn vulnerability(rule_id: &str, rule: Option<&Rule>, result: &SarifResult) -> Vulnerability {
    let text = result
        .message
        .as_ref()
        .and_then(|m| m.text.as_deref())
        .unwrap_or_default();
    let severity = result_severity(text, rule, result.level.as_deref());
    let (name, version) = package_name_version(text, result);
    let link = message_field(text, "Link").and_then(markdown_link_target);
    Vulnerability {
        id: vulnerability_id(rule_id).to_string(),
        severity: severity.severity,
        raw_severity: severity.raw,
        package: Package {
            name,
            version,
            package_type: package_type_or_unknown(None),
            purl: None,
        },
        fixed_versions: message_field(text, "Fixed Version")
            .map(split_fixed_versions)
            .unwrap_or_default(),
        urls: unique_urls(
            rule.and_then(|r| r.help_uri.as_deref())
                .into_iter()
                .chain(link),
        ),
    }
}

/// The result message's `Severity:` line, else a severity tag of the rule, else the band of
/// the rule's `security-severity` score, else `unknown` keeping the result `level`.
fn result_severity(text: &str, rule: Option<&Rule>, level: Option<&str>) -> MappedSeverity {
    if let Some(severity) = message_field(text, "Severity") {
        return MappedSeverity::from_raw(Some(severity));
    }
    let properties = rule.and_then(|r| r.properties.as_ref());
    let tagged = properties
        .and_then(|p| p.get("tags"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|tag| matches!(Severity::from_name(tag), Some(s) if s != Severity::Unknown))
        .map(|tag| MappedSeverity::from_raw(Some(tag)))
        .min_by_key(|mapped| mapped.severity);
    if let Some(tagged) = tagged {
        return tagged;
    }
    let scored = properties
        .and_then(|p| p.get("security-severity"))
        .and_then(|score| match score {
            Value::String(text) => text.trim().parse::<f64>().ok(),
            other => other.as_f64(),
        })
        .and_then(Severity::from_cvss_v3_score);
    match scored {
        Some(severity) => MappedSeverity::derived(severity),
        None => MappedSeverity {
            severity: Severity::Unknown,
            raw: level.map(str::to_string),
        },
    }
}

/// `Package:` and `Installed Version:` lines of the message, else the first location's
/// message `path: name@version`.
fn package_name_version(text: &str, result: &SarifResult) -> (String, String) {
    if let Some(name) = message_field(text, "Package") {
        let version = message_field(text, "Installed Version").unwrap_or_default();
        return (name.to_string(), version.to_string());
    }
    let location_text = result
        .locations
        .iter()
        .flatten()
        .find_map(|l| l.message.as_ref().and_then(|m| m.text.as_deref()));
    location_text
        .map(|text| text.rsplit_once(": ").map_or(text, |(_, package)| package))
        .and_then(|package| package.rsplit_once('@'))
        .map(|(name, version)| (name.to_string(), version.to_string()))
        .unwrap_or_default()
}

/// The value of a `Label: value` line of a message.
fn message_field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(label)?.strip_prefix(':'))
        .map(str::trim)
        .find(|value| !value.is_empty())
}

/// `[text](url)` → `url`.
fn markdown_link_target(link: &str) -> Option<&str> {
    let (_, rest) = link.split_once("](")?;
    rest.strip_suffix(')')
}

/// The vulnerability id at the start of a rule id: Grype's SARIF names rules
/// `CVE-2021-1234-package`; other rule ids are used as they are.
fn vulnerability_id(rule_id: &str) -> &str {
    cve_prefix(rule_id)
        .or_else(|| ghsa_prefix(rule_id))
        .unwrap_or(rule_id)
}

fn cve_prefix(rule_id: &str) -> Option<&str> {
    let rest = rule_id.strip_prefix("CVE-")?;
    let year_end = rest.find('-')?;
    let year_ok = year_end > 0 && rest[..year_end].bytes().all(|b| b.is_ascii_digit());
    let number = &rest[year_end + 1..];
    let number_len = number.bytes().take_while(u8::is_ascii_digit).count();
    (year_ok && number_len > 0).then(|| &rule_id[.."CVE-".len() + year_end + 1 + number_len])
}

fn ghsa_prefix(rule_id: &str) -> Option<&str> {
    // GHSA-xxxx-xxxx-xxxx: 19 characters.
    let candidate = rule_id.get(..19)?;
    let groups: Vec<&str> = candidate.strip_prefix("GHSA-")?.split('-').collect();
    let well_formed = groups.len() == 3
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric()));
    well_formed.then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vulnerability_ids_from_rule_ids() {
        assert_eq!(vulnerability_id("CVE-2019-1549"), "CVE-2019-1549");
        assert_eq!(
            vulnerability_id("CVE-2021-44228-log4j-core"),
            "CVE-2021-44228"
        );
        assert_eq!(
            vulnerability_id("GHSA-jfh8-c2jp-5v3q-log4j-core"),
            "GHSA-jfh8-c2jp-5v3q"
        );
        assert_eq!(vulnerability_id("CVE-x-1"), "CVE-x-1");
        assert_eq!(vulnerability_id("DS002"), "DS002");
        assert_eq!(vulnerability_id("CVE-"), "CVE-");
    }

    #[test]
    fn message_fields() {
        let text = "Package: libssl1.1\nInstalled Version: 1.1.1c-r0\nSeverity: MEDIUM\nLink: [CVE-1](https://x/cve-1)";
        assert_eq!(message_field(text, "Package"), Some("libssl1.1"));
        assert_eq!(message_field(text, "Installed Version"), Some("1.1.1c-r0"));
        assert_eq!(message_field(text, "Fixed Version"), None);
        assert_eq!(
            message_field(text, "Link").and_then(markdown_link_target),
            Some("https://x/cve-1")
        );
    }
}
