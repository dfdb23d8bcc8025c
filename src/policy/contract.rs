//! The contract a ScanPolicy must meet to be admitted, checked without any I/O.

use serde_json::{Value, json};

use super::compiled::{CompiledPolicy, PolicyOptions};
use super::error::{Error, Result};

/// Checks a ScanPolicy at admission with the default options; see [`check_contract_with`].
pub fn check_contract(name: &str, rego: &str) -> Result<CompiledPolicy> {
    check_contract_with(name, rego, PolicyOptions::default())
}

/// Checks a ScanPolicy at admission and returns it compiled: it parses (v1 or v0), declares
/// `package main` and a `deny` rule, and evaluates without error, to a set of strings, on
/// [`empty_report`] and on [`sample_report`].
///
/// Evaluation failures on the samples come back as [`Error::SampleReport`]; a `deny` of the
/// wrong type as [`Error::DenyNotACollection`] or [`Error::DenyNotStrings`].
pub fn check_contract_with(
    name: &str,
    rego: &str,
    options: PolicyOptions,
) -> Result<CompiledPolicy> {
    let policy = CompiledPolicy::compile(name, rego, options)?;
    evaluate_sample(&policy, "empty report", &empty_report())?;
    evaluate_sample(&policy, "sample report", &sample_report())?;
    Ok(policy)
}

/// Evaluates one sample, naming it in evaluation errors.
fn evaluate_sample(policy: &CompiledPolicy, report: &'static str, input: &Value) -> Result<()> {
    match policy.evaluate(input) {
        Ok(_) => Ok(()),
        Err(err @ (Error::DenyNotACollection { .. } | Error::DenyNotStrings { .. })) => Err(err),
        Err(err) => Err(Error::SampleReport {
            name: policy.name().to_owned(),
            report,
            cause: Box::new(err),
        }),
    }
}

/// A normalized report without vulnerabilities or exceptions.
#[must_use]
pub fn empty_report() -> Value {
    json!({
        "artifact": artifact(),
        "scanner": scanner(),
        "vulnerabilities": [],
        "exceptions": [],
    })
}

/// A normalized report with vulnerabilities of every severity (with and without fixed
/// versions, purls and urls, one package with two CVEs, one CVE in two packages) and one
/// active exception.
#[must_use]
pub fn sample_report() -> Value {
    json!({
        "artifact": artifact(),
        "scanner": scanner(),
        "vulnerabilities": [
            vulnerability("CVE-2021-44228", "critical", ("log4j-core", "2.13.2", "java-archive"), &["2.15.0"]),
            vulnerability("CVE-2021-45046", "critical", ("log4j-core", "2.13.2", "java-archive"), &["2.16.0", "2.12.2"]),
            vulnerability("CVE-2022-0778", "high", ("openssl", "1.1.1k", "deb"), &["1.1.1n"]),
            vulnerability("CVE-2022-0778", "high", ("libssl1.1", "1.1.1k", "deb"), &["1.1.1n"]),
            vulnerability("CVE-2020-8908", "medium", ("guava", "29.0-jre", "java-archive"), &["32.0.0-android"]),
            vulnerability("CVE-2023-4039", "low", ("gcc-12-base", "12.2.0-14", "deb"), &[]),
            vulnerability("GHSA-jfh8-c2jp-5v3q", "unknown", ("tar", "6.1.0", "npm"), &[]),
        ],
        "exceptions": [{
            "images": ["docker.io/library/sample:*"],
            "cves": ["CVE-2023-4039"],
            "reason": "not reachable: gcc is only in the build stage",
            "expires": "2999-12-31T00:00:00Z",
        }],
    })
}

/// The artifact of the samples.
fn artifact() -> Value {
    json!({
        "type": "image",
        "name": "docker.io/library/sample:1.0",
        "digest": "sha256:2731251dc34951c0e50fcc643b4c5f74922dad1a5d98f302b504cf46cd5d9368",
    })
}

/// The scanner of the samples.
fn scanner() -> Value {
    json!({"name": "grype", "vendor": "anchore", "version": "0.80.0"})
}

/// One vulnerability of the sample.
fn vulnerability(
    id: &str,
    severity: &str,
    (name, version, kind): (&str, &str, &str),
    fixed_versions: &[&str],
) -> Value {
    let mut package = json!({"name": name, "version": version, "type": kind});
    if kind != "deb" {
        package["purl"] = json!(format!("pkg:{}/{name}@{version}", purl_type(kind)));
    }
    json!({
        "id": id,
        "severity": severity,
        "package": package,
        "fixedVersions": fixed_versions,
        "urls": if id.starts_with("CVE-") {
            vec![format!("https://nvd.nist.gov/vuln/detail/{id}")]
        } else {
            Vec::new()
        },
    })
}

/// The purl type of a package type.
fn purl_type(kind: &str) -> &str {
    match kind {
        "java-archive" => "maven",
        other => other,
    }
}
