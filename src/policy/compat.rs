//! Input shapes for policies written for the system scangate replaces.
//!
//! Those policies read a CycloneDX 1.2 XML report (with grype's vulnerability extension)
//! converted to JSON by an XML-to-JSON mapper: attributes become `-name` keys, the text of an
//! element with attributes becomes `#text`, namespace prefixes are dropped, and an element that
//! occurs once is an object while a repeated one is an array. They walk
//! `input.bom.components.component[…].vulnerabilities.vulnerability[…].ratings.rating[…].severity`
//! with the severities `Critical`, `High`, `Medium`, `Low`, `Negligible`, `UnknownSeverity`.
//!
//! [`CompatInput::CycloneDxBom`] gives such a policy that shape, built by [`bom_view`] from
//! the normalized report, so the policy runs on reports of any scanner scangate reads. The
//! normalized report stays at the top level next to `bom` (`input.vulnerabilities`,
//! `input.exceptions`...), so a migrated policy can move to it one rule at a time.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The shape of `input` a policy expects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompatInput {
    /// scangate's normalized report, as is.
    #[default]
    Normalized,
    /// The normalized report plus `bom`: the XML-mapped CycloneDX view that policies of the
    /// system scangate replaces read (see [`bom_view`]).
    CycloneDxBom,
}

impl CompatInput {
    /// Guesses the shape from the policy text: a policy that reads `input.bom` was written for
    /// the CycloneDX view. For callers whose ScanPolicy does not say.
    #[must_use]
    pub fn detect(rego: &str) -> Self {
        let reads_bom = ["input.bom", "input[\"bom\"]"]
            .iter()
            .any(|needle| rego.contains(needle));
        if reads_bom {
            Self::CycloneDxBom
        } else {
            Self::Normalized
        }
    }

    /// The policy's input for a normalized report.
    #[must_use]
    pub fn input_for(self, report: &Value) -> Cow<'_, Value> {
        match self {
            Self::Normalized => Cow::Borrowed(report),
            Self::CycloneDxBom => Cow::Owned(bom_view(report)),
        }
    }
}

/// The normalized report with a `bom` key holding the XML-mapped CycloneDX 1.2 view:
/// `bom.metadata` (tool, scanned component) and `bom.components.component`, one component per
/// package that has vulnerabilities (in report order), each with
/// `vulnerabilities.vulnerability[…]` = `{id, source?: {url}, ratings: {rating: {severity}}}`.
///
/// Severities are capitalised as in that system (`critical` → `Critical`, `unknown` →
/// `UnknownSeverity`). The normalized report maps `Negligible` to `low`, so a policy that
/// tells `Low` from `Negligible` sees both as `Low`. As with the mapper, a single element is
/// an object and repeated ones an array; absent ones are left out.
#[must_use]
pub fn bom_view(report: &Value) -> Value {
    let mut view = match report {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    view.insert("bom".to_owned(), bom(report));
    Value::Object(view)
}

/// The `bom` element.
fn bom(report: &Value) -> Value {
    let mut bom = Map::new();
    bom.insert("metadata".to_owned(), metadata(report));
    let components = components(report);
    if !components.is_empty() {
        bom.insert(
            "components".to_owned(),
            json!({ "component": one_or_many(components) }),
        );
    }
    Value::Object(bom)
}

/// `bom.metadata`: the scanner as the tool, the artifact as the component.
fn metadata(report: &Value) -> Value {
    let scanner = &report["scanner"];
    let artifact = &report["artifact"];
    json!({
        "tools": { "tool": {
            "vendor": text(&scanner["vendor"]),
            "name": text(&scanner["name"]),
            "version": text(&scanner["version"]),
        }},
        "component": {
            "-type": "container",
            "name": text(&artifact["name"]),
            "version": text(&artifact["digest"]),
        },
    })
}

/// One component per package, in the order packages first appear in the report.
fn components(report: &Value) -> Vec<Value> {
    let empty = Vec::new();
    let vulnerabilities = report["vulnerabilities"].as_array().unwrap_or(&empty);
    let mut order: Vec<(&Value, Vec<Value>)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for vulnerability in vulnerabilities {
        let package = &vulnerability["package"];
        let position = *index.entry(package.to_string()).or_insert_with(|| {
            order.push((package, Vec::new()));
            order.len() - 1
        });
        if let Some((_, vulns)) = order.get_mut(position) {
            vulns.push(vulnerability_element(vulnerability));
        }
    }
    order
        .into_iter()
        .map(|(package, vulns)| component(package, vulns))
        .collect()
}

/// A `component` element with its vulnerabilities.
fn component(package: &Value, vulnerabilities: Vec<Value>) -> Value {
    let mut component = Map::new();
    component.insert("-type".to_owned(), json!("library"));
    component.insert("name".to_owned(), text(&package["name"]));
    component.insert("version".to_owned(), text(&package["version"]));
    if let Some(purl) = package["purl"].as_str() {
        component.insert("purl".to_owned(), json!(purl));
    }
    component.insert(
        "vulnerabilities".to_owned(),
        json!({ "vulnerability": one_or_many(vulnerabilities) }),
    );
    Value::Object(component)
}

/// A `vulnerability` element of grype's vulnerability extension.
fn vulnerability_element(vulnerability: &Value) -> Value {
    let mut element = Map::new();
    element.insert("id".to_owned(), text(&vulnerability["id"]));
    let urls: Vec<Value> = vulnerability["urls"]
        .as_array()
        .map(|urls| urls.iter().filter(|url| url.is_string()).cloned().collect())
        .unwrap_or_default();
    if !urls.is_empty() {
        element.insert("source".to_owned(), json!({ "url": one_or_many(urls) }));
    }
    let severity = legacy_severity(vulnerability["severity"].as_str().unwrap_or_default());
    element.insert(
        "ratings".to_owned(),
        json!({ "rating": { "severity": severity } }),
    );
    Value::Object(element)
}

/// The severity as that system spells it.
#[must_use]
pub fn legacy_severity(severity: &str) -> &'static str {
    match severity.to_ascii_lowercase().as_str() {
        "critical" => "Critical",
        "high" => "High",
        "medium" => "Medium",
        "low" => "Low",
        "negligible" => "Negligible",
        _ => "UnknownSeverity",
    }
}

/// One element as an object, several as an array (the mapper's convention).
fn one_or_many(mut elements: Vec<Value>) -> Value {
    if elements.len() == 1 {
        elements.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(elements)
    }
}

/// A string field as text content; anything else as empty text.
fn text(value: &Value) -> Value {
    Value::String(value.as_str().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(vulnerabilities: Value) -> Value {
        json!({
            "artifact": {"type": "image", "name": "docker.io/library/app:1", "digest": "sha256:ab"},
            "scanner": {"name": "grype", "vendor": "anchore", "version": "0.80.0"},
            "vulnerabilities": vulnerabilities,
            "exceptions": [],
        })
    }

    fn vuln(id: &str, severity: &str, package: &str) -> Value {
        json!({
            "id": id, "severity": severity,
            "package": {"name": package, "version": "1.0", "type": "java-archive"},
            "fixedVersions": [], "urls": [format!("https://nvd.nist.gov/vuln/detail/{id}")],
        })
    }

    #[test]
    fn groups_vulnerabilities_by_package_single_as_object_many_as_array() {
        let view = bom_view(&report(json!([
            vuln("CVE-1", "critical", "a"),
            vuln("CVE-2", "unknown", "b"),
            vuln("CVE-3", "low", "a"),
        ])));
        let components = &view["bom"]["components"]["component"];
        assert_eq!(components[0]["name"], "a");
        let a_vulns = &components[0]["vulnerabilities"]["vulnerability"];
        assert_eq!(a_vulns[0]["id"], "CVE-1");
        assert_eq!(a_vulns[0]["ratings"]["rating"]["severity"], "Critical");
        assert_eq!(a_vulns[1]["ratings"]["rating"]["severity"], "Low");
        let b_vuln = &components[1]["vulnerabilities"]["vulnerability"];
        assert!(b_vuln.is_object(), "a single vulnerability is an object");
        assert_eq!(b_vuln["ratings"]["rating"]["severity"], "UnknownSeverity");
        assert_eq!(
            b_vuln["source"]["url"],
            "https://nvd.nist.gov/vuln/detail/CVE-2"
        );
        assert_eq!(view["bom"]["metadata"]["tools"]["tool"]["name"], "grype");
        assert_eq!(
            view["vulnerabilities"][0]["id"], "CVE-1",
            "normalized fields kept"
        );
    }

    #[test]
    fn a_single_component_is_an_object_and_no_component_is_absent() {
        let one = bom_view(&report(json!([vuln("CVE-1", "high", "a")])));
        assert!(one["bom"]["components"]["component"].is_object());
        let none = bom_view(&report(json!([])));
        assert!(none["bom"].get("components").is_none());
    }

    #[test]
    fn detects_policies_reading_the_bom() {
        assert_eq!(
            CompatInput::detect("x := input.bom.components"),
            CompatInput::CycloneDxBom
        );
        assert_eq!(
            CompatInput::detect("x := input.vulnerabilities"),
            CompatInput::Normalized
        );
    }

    #[test]
    fn maps_every_severity() {
        let mapped: Vec<_> = [
            "critical",
            "high",
            "medium",
            "low",
            "unknown",
            "Negligible",
            "",
        ]
        .into_iter()
        .map(legacy_severity)
        .collect();
        assert_eq!(
            mapped,
            [
                "Critical",
                "High",
                "Medium",
                "Low",
                "UnknownSeverity",
                "Negligible",
                "UnknownSeverity"
            ]
        );
    }
}
