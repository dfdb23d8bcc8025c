//! Policies of the system scangate replaces: their documented shape, on regorus, on the
//! input they were written for (a CycloneDX 1.2 XML report mapped to JSON) and on scangate's
//! normalized report through the `bom` compatibility view.
//!
//! See tests/fixtures/policies/README.md for what runs unchanged and what had to change.

use std::error::Error as StdError;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

use scangate::policy::{
    self, CompatInput, CompiledPolicy, Error, PolicyOptions, Syntax, check_contract_with,
};

type TestResult<T = ()> = Result<T, Box<dyn StdError>>;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policies");

fn fixture(name: &str) -> TestResult<String> {
    Ok(std::fs::read_to_string(format!("{FIXTURES}/{name}"))?)
}

/// The published shape, exactly.
fn legacy_policy() -> TestResult<String> {
    fixture("legacy-shape.rego")
}

/// The published shape with the one change regorus needs.
fn migrated_policy() -> TestResult<String> {
    fixture("legacy-shape-regorus.rego")
}

/// The CycloneDX XML report as the old system's XML-to-JSON mapper gives it.
fn xml_input() -> TestResult<Value> {
    xml_to_json(&fixture(
        "grype_cyclonedx-1.2-xml-vuln-ext_presenter-snapshot.xml",
    )?)
}

/// The same report, normalized by scangate.
fn normalized_report() -> TestResult<Value> {
    Ok(serde_json::from_str(&fixture(
        "grype-snapshot.normalized.json",
    )?)?)
}

/// The policy with its two knobs set.
fn with_knobs(rego: &str, severities: &[&str], ignore: &[&str]) -> TestResult<String> {
    let knob = |name: &str, values: &[&str]| -> TestResult<String> {
        Ok(format!("{name} := {}", serde_json::to_string(values)?))
    };
    let replaced = rego
        .replace(
            r#"notAllowedSeverities := ["Critical", "High", "UnknownSeverity"]"#,
            &knob("notAllowedSeverities", severities)?,
        )
        .replace("ignoreCves := []", &knob("ignoreCves", ignore)?);
    assert_ne!(replaced, rego, "the knobs are at the top of the policy");
    Ok(replaced)
}

fn compile(rego: &str, input: CompatInput) -> Result<CompiledPolicy, Error> {
    check_contract_with(
        "team-a/legacy.rego",
        rego,
        PolicyOptions::default().with_input(input),
    )
}

/// The documented knobs and the CVEs of the snapshot they deny.
const CASES: &[(&[&str], &[&str], &[&str])] = &[
    (
        &["Critical", "High", "UnknownSeverity"],
        &[],
        &["CVE package-1 CVE-1999-0002 {\"Critical\"}"],
    ),
    (
        &["Critical", "High", "Medium", "Low"],
        &[],
        &[
            "CVE package-1 CVE-1999-0001 {\"Low\"}",
            "CVE package-1 CVE-1999-0002 {\"Critical\"}",
        ],
    ),
    (
        &["Critical", "High", "Medium", "Low"],
        &["CVE-1999-0002"],
        &["CVE package-1 CVE-1999-0001 {\"Low\"}"],
    ),
    (&["Critical"], &["CVE-1999-0002"], &[]),
    (&["Medium", "Negligible"], &[], &[]),
];

#[test]
fn the_published_shape_fails_on_regorus_0_14_1() -> TestResult {
    // It parses as v0, compiles and passes scangate's own samples (whose normalized reports
    // have no `bom`, so the iteration is empty) ...
    let policy = compile(&legacy_policy()?, CompatInput::Normalized)?;
    assert_eq!(policy.syntax(), Syntax::V0);
    // ... but on a real report regorus trips over `some j` declared after an iteration.
    match policy.evaluate(&xml_input()?) {
        Err(err @ Error::Evaluation { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains("duplicated definition of local variable j"),
                "{message}"
            );
        }
        other => panic!("regorus 0.14.1 was expected to fail, got {other:?}"),
    }
    // The contract check catches it once the policy is declared as a bom policy.
    match compile(&legacy_policy()?, CompatInput::CycloneDxBom) {
        Err(Error::SampleReport { cause, .. }) => {
            assert!(
                cause.to_string().contains("duplicated definition"),
                "{cause}"
            );
        }
        other => panic!("expected the contract check to fail, got {other:?}"),
    }
    Ok(())
}

#[test]
fn the_migrated_policy_gives_the_documented_verdicts_on_the_xml_input() -> TestResult {
    let input = xml_input()?;
    for (severities, ignore, expected) in CASES {
        let rego = with_knobs(&migrated_policy()?, severities, ignore)?;
        let policy = compile(&rego, CompatInput::Normalized)?;
        assert_eq!(policy.syntax(), Syntax::V0);
        let evaluation = policy.evaluate(&input)?;
        assert_eq!(evaluation.deny, *expected, "{severities:?} {ignore:?}");
    }
    Ok(())
}

#[test]
fn the_migrated_policy_gives_the_same_verdicts_on_the_normalized_report() -> TestResult {
    let xml = xml_input()?;
    let normalized = normalized_report()?;
    for (severities, ignore, expected) in CASES {
        let rego = with_knobs(&migrated_policy()?, severities, ignore)?;
        let on_xml = compile(&rego, CompatInput::Normalized)?.evaluate(&xml)?;
        let on_view = compile(&rego, CompatInput::CycloneDxBom)?.evaluate(&normalized)?;
        assert_eq!(on_view, on_xml, "{severities:?} {ignore:?}");
        assert_eq!(on_view.deny, *expected);
    }
    Ok(())
}

#[test]
fn the_view_is_chosen_from_the_policy_text() -> TestResult {
    assert_eq!(
        CompatInput::detect(&migrated_policy()?),
        CompatInput::CycloneDxBom
    );
    assert_eq!(
        CompatInput::detect(policy::DEFAULT_POLICY),
        CompatInput::Normalized
    );
    Ok(())
}

#[test]
fn the_mapper_gives_the_documented_shape() -> TestResult {
    let input = xml_input()?;
    let components = &input["bom"]["components"]["component"];
    assert_eq!(
        components[0]["-type"], "library",
        "attributes become -name keys"
    );
    assert_eq!(components[1]["name"], "package-2");
    let vulns = &components[0]["vulnerabilities"]["vulnerability"];
    assert_eq!(
        vulns[1]["-ref"],
        "urn:uuid:d4b1a88b-8a3e-437d-8745-e1ad3a6f6dda"
    );
    assert_eq!(vulns[1]["ratings"]["rating"][0]["severity"], "Critical");
    assert_eq!(
        vulns[0]["source"]["-name"], "source-1",
        "an element with attributes keeps them next to its children"
    );
    assert!(
        input["bom"]["metadata"]["tools"]["tool"].is_object(),
        "a single element is an object"
    );
    Ok(())
}

#[test]
fn the_mapper_keeps_text_next_to_attributes() -> TestResult {
    let value = xml_to_json(r#"<r><a x="1">hi &amp; bye</a><b/><c>t</c><c>u</c></r>"#)?;
    assert_eq!(
        value,
        serde_json::json!({"r": {"a": {"-x": "1", "#text": "hi & bye"}, "b": "", "c": ["t", "u"]}})
    );
    Ok(())
}

#[test]
fn deleting_some_j_instead_also_works() -> TestResult {
    let rego = legacy_policy()?.replace("  some j\n", "");
    assert_ne!(rego, legacy_policy()?);
    let deny = compile(&rego, CompatInput::CycloneDxBom)?.evaluate(&normalized_report()?)?;
    assert_eq!(deny.deny, ["CVE package-1 CVE-1999-0002 {\"Critical\"}"]);
    Ok(())
}

#[test]
fn the_older_generation_is_rejected_with_a_pointer_to_package_main() {
    let rego = "package policies\n\ndefault isCompliant = false\n\
                isCompliant { input.currentVulnerability.Severity == \"Low\" }\n";
    match compile(rego, CompatInput::Normalized) {
        Err(err @ Error::NotPackageMain { .. }) => {
            assert!(err.to_string().contains("package main"), "{err}");
        }
        other => panic!("expected NotPackageMain, got {other:?}"),
    }
}

/// An XML element being built: attributes, children in document order, text.
#[derive(Default)]
struct Element {
    attributes: Vec<(String, Value)>,
    children: Vec<(String, Vec<Value>)>,
    text: String,
}

impl Element {
    fn open(start: &BytesStart<'_>) -> TestResult<Self> {
        let mut element = Self::default();
        for attribute in start.attributes() {
            let attribute = attribute?;
            let name = String::from_utf8(attribute.key.local_name().as_ref().to_vec())?;
            let value = attribute.unescape_value()?.into_owned();
            element
                .attributes
                .push((format!("-{name}"), Value::String(value)));
        }
        Ok(element)
    }

    fn add_child(&mut self, name: String, value: Value) {
        match self.children.iter_mut().find(|(child, _)| *child == name) {
            Some((_, values)) => values.push(value),
            None => self.children.push((name, vec![value])),
        }
    }

    /// Text only: a string; otherwise an object of `-attributes`, children (one → object,
    /// several → array) and `#text`.
    fn into_value(self) -> Value {
        let text = self.text.trim().to_owned();
        if self.attributes.is_empty() && self.children.is_empty() {
            return Value::String(text);
        }
        let mut object: Map<String, Value> = self.attributes.into_iter().collect();
        for (name, mut values) in self.children {
            let value = if values.len() == 1 {
                values.pop().unwrap_or(Value::Null)
            } else {
                Value::Array(values)
            };
            object.insert(name, value);
        }
        if !text.is_empty() {
            object.insert("#text".to_owned(), Value::String(text));
        }
        Value::Object(object)
    }
}

fn local_name(start: &BytesStart<'_>) -> TestResult<String> {
    Ok(String::from_utf8(start.local_name().as_ref().to_vec())?)
}

/// The XML-to-JSON mapping the old system's policies were written against: namespace
/// prefixes dropped, attributes as `-name`, text of an element with attributes as `#text`,
/// one element as an object, repeated elements as an array.
fn xml_to_json(xml: &str) -> TestResult<Value> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<(String, Element)> = vec![(String::new(), Element::default())];
    loop {
        match reader.read_event()? {
            Event::Start(start) => stack.push((local_name(&start)?, Element::open(&start)?)),
            Event::Empty(start) => {
                let value = Element::open(&start)?.into_value();
                parent(&mut stack)?.add_child(local_name(&start)?, value);
            }
            Event::End(_) => {
                let (name, element) = stack.pop().ok_or("unbalanced end tag")?;
                parent(&mut stack)?.add_child(name, element.into_value());
            }
            Event::Text(text) => parent(&mut stack)?.text.push_str(&text.decode()?),
            Event::CData(data) => parent(&mut stack)?.text.push_str(&data.decode()?),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref()? {
                    Some(character) => character.to_string(),
                    None => resolve_predefined_entity(&reference.decode()?)
                        .ok_or("unknown entity")?
                        .to_owned(),
                };
                parent(&mut stack)?.text.push_str(&resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let (_, document) = stack.pop().ok_or("no document")?;
    Ok(document.into_value())
}

fn parent(stack: &mut [(String, Element)]) -> TestResult<&mut Element> {
    Ok(&mut stack.last_mut().ok_or("no open element")?.1)
}
