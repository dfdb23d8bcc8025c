//! Bad input: every error kind, with messages that name the source and say what to do.

use std::io::Write;

use scangate::report::{Error, Format, Limits, Report, Severity};

fn parse(json: &str) -> Result<Report, Error> {
    Report::from_reader("scan.json", json.as_bytes(), Limits::default())
}

fn parse_err(json: &str) -> Error {
    match parse(json) {
        Ok(report) => panic!("expected an error for {json}, got {report:?}"),
        Err(error) => {
            assert!(error.to_string().contains("scan.json"), "{error}");
            error
        }
    }
}

fn fixture_path(path: &str) -> String {
    format!(
        "{}/tests/fixtures/reports/{path}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let error = Report::from_path("/nonexistent/grype.json", Limits::default()).unwrap_err();
    assert!(matches!(error, Error::Read { .. }), "{error:?}");
    assert!(
        error.to_string().contains("/nonexistent/grype.json"),
        "{error}"
    );
}

#[test]
fn empty_input() {
    for input in ["", "  \n\t "] {
        assert!(matches!(parse_err(input), Error::Empty { .. }));
    }
}

#[test]
fn truncated_json_gives_line_and_column() {
    let full = std::fs::read_to_string(fixture_path("trivy/trivy_alpine-3.9_image_golden.json"))
        .expect("fixture");
    let cut = &full[..full.len() / 2];
    let error = parse_err(cut);
    let Error::Truncated { line, column, .. } = error else {
        panic!("{error:?}");
    };
    assert_eq!(line, cut.lines().count());
    assert!(column > 0);
    let message = parse_err(cut).to_string();
    assert!(message.contains("truncated"), "{message}");
    assert!(message.contains(&format!("line {line}")), "{message}");
}

#[test]
fn truncated_file_names_the_file() {
    let full =
        std::fs::read(fixture_path("grype/grype-0.94.0_busybox-1.32.1.json")).expect("fixture");
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(&full[..1000]).expect("write");
    let error = Report::from_path(file.path(), Limits::default()).unwrap_err();
    assert!(matches!(error, Error::Truncated { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&file.path().display().to_string())
    );
}

#[test]
fn not_json() {
    for input in [
        "hello world",
        "{'matches': []}",
        "{\"matches\": []} trailing",
        "{\"a\" 1}",
    ] {
        let error = parse_err(input);
        assert!(matches!(error, Error::NotJson { .. }), "{input}: {error:?}");
        assert!(error.to_string().contains("not valid JSON"), "{error}");
    }
}

#[test]
fn unknown_formats_list_the_understood_ones() {
    for (input, hint) in [
        ("{\"foo\": 1}", "without the keys"),
        ("[{\"Target\": \"x\"}]", "JSON array"),
        ("42", "not an object"),
        ("\"text\"", "not an object"),
        ("<?xml version=\"1.0\"?><bom/>", "XML"),
        ("\u{feff}<bom/>", "XML"),
    ] {
        let error = parse_err(input);
        assert!(
            matches!(error, Error::UnknownFormat { .. }),
            "{input}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(hint), "{message}");
        for format in ["Grype JSON", "Trivy JSON", "CycloneDX JSON", "SARIF"] {
            assert!(message.contains(format), "{message}");
        }
    }
    let utf16 = [0xFF, 0xFE, b'{', 0];
    let error = Report::from_reader("u16.json", &utf16[..], Limits::default()).unwrap_err();
    assert!(error.to_string().contains("UTF-16"), "{error}");
}

#[test]
fn utf8_byte_order_mark_is_skipped() {
    let report = parse("\u{feff}{\"matches\": []}").expect("BOM + grype");
    assert!(report.vulnerabilities.is_empty());
}

fn assert_missing(input: &str, format: Format, field: &str) {
    match parse_err(input) {
        Error::MissingField {
            format: found_format,
            field: found_field,
            ..
        } => {
            assert_eq!(
                (found_format, found_field.as_str()),
                (format, field),
                "{input}"
            );
        }
        other => panic!("{input}: {other:?}"),
    }
    let message = parse_err(input).to_string();
    assert!(message.contains(&format!("`{field}`")), "{message}");
    assert!(message.contains(&format.to_string()), "{message}");
}

#[test]
fn missing_required_fields_are_named() {
    assert_missing(
        r#"{"matches":[{"vulnerability":{"severity":"High"},"artifact":{"name":"a","version":"1"}}]}"#,
        Format::Grype,
        "matches[0].vulnerability.id",
    );
    assert_missing(
        r#"{"matches":[{"vulnerability":{"id":"CVE-1"},"artifact":{"name":"a"}}]}"#,
        Format::Grype,
        "matches[0].artifact.version",
    );
    assert_missing(
        r#"{"descriptor":{"name":"grype"}}"#,
        Format::Grype,
        "matches",
    );
    assert_missing(
        r#"{"ArtifactName":"x","Results":[]}"#,
        Format::Trivy,
        "SchemaVersion",
    );
    assert_missing(
        r#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"PkgName":"a"}]}]}"#,
        Format::Trivy,
        "Results[0].Vulnerabilities[0].VulnerabilityID",
    );
    assert_missing(
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#,
        Format::CycloneDx,
        "vulnerabilities",
    );
    assert_missing(
        r#"{"bomFormat":"CycloneDX","vulnerabilities":[]}"#,
        Format::CycloneDx,
        "specVersion",
    );
    assert_missing(
        r#"{"specVersion":"1.5","vulnerabilities":[]}"#,
        Format::CycloneDx,
        "bomFormat",
    );
    assert_missing(
        r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"level":"error"}]}]}"#,
        Format::Sarif,
        "runs[0].results[0].ruleId",
    );
    assert_missing(
        r#"{"version":"2.1.0","runs":[{"tool":{}}]}"#,
        Format::Sarif,
        "runs[0].tool.driver",
    );
    assert_missing(r#"{"runs":[]}"#, Format::Sarif, "version");
}

#[test]
fn invalid_fields_are_named_with_position() {
    let error = parse_err(r#"{"matches": "none"}"#);
    let Error::InvalidField {
        format,
        field,
        position,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((*format, field.as_str()), (Format::Grype, "matches"));
    assert_eq!(*position, Some((1, 18)));
    let error = parse_err(
        r#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":7,"PkgName":"a"}]}]}"#,
    );
    assert!(
        matches!(&error, Error::InvalidField { field, .. } if field == "Results[0].Vulnerabilities[0].VulnerabilityID"),
        "{error:?}"
    );
}

#[test]
fn unsupported_versions() {
    for (input, format, found) in [
        (
            r#"{"SchemaVersion":1,"Results":[]}"#,
            Format::Trivy,
            "SchemaVersion 1",
        ),
        (
            r#"{"bomFormat":"CycloneDX","specVersion":"1.3","vulnerabilities":[]}"#,
            Format::CycloneDx,
            "specVersion 1.3",
        ),
        (
            r#"{"bomFormat":"SPDX","specVersion":"1.5","vulnerabilities":[]}"#,
            Format::CycloneDx,
            "bomFormat \"SPDX\"",
        ),
        (
            r#"{"version":"2.0.0","runs":[]}"#,
            Format::Sarif,
            "\"2.0.0\"",
        ),
    ] {
        match parse_err(input) {
            Error::UnsupportedVersion {
                format: f,
                found: v,
                ..
            } => {
                assert_eq!((f, v.as_str()), (format, found));
            }
            other => panic!("{input}: {other:?}"),
        }
    }
}

#[test]
fn size_limit_is_enforced_and_stated() {
    let limits = Limits {
        max_report_bytes: 100,
    };
    let path = fixture_path("grype/grype-0.94.0_busybox-1.32.1.json");
    let error = Report::from_path(&path, limits).unwrap_err();
    assert!(
        matches!(error, Error::TooLarge { limit: 100, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("limit of 100 bytes"), "{error}");
    let file = std::fs::File::open(&path).expect("fixture");
    let error = Report::from_reader("stdin", file, limits).unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("stdin"), "{error}");
    // Exactly at the limit is fine.
    let json = r#"{"matches": []}"#;
    let limits = Limits {
        max_report_bytes: json.len() as u64,
    };
    assert!(Report::from_reader("exact", json.as_bytes(), limits).is_ok());
}

#[test]
fn odd_severities_lose_nothing() {
    let report = parse(
        r#"{"matches":[
            {"vulnerability":{"id":"A","severity":"Severe"},"artifact":{"name":"a","version":"1"}},
            {"vulnerability":{"id":"B","severity":"important"},"artifact":{"name":"a","version":"1"}},
            {"vulnerability":{"id":"C"},"artifact":{"name":"a","version":"1"}}]}"#,
    )
    .expect("grype");
    let severities: Vec<(Severity, Option<&str>)> = report
        .vulnerabilities
        .iter()
        .map(|v| (v.severity, v.raw_severity.as_deref()))
        .collect();
    assert_eq!(
        severities,
        vec![
            (Severity::Unknown, Some("Severe")),
            (Severity::High, Some("important")),
            (Severity::Unknown, None),
        ]
    );
}

#[test]
fn cyclonedx_scores_without_severity_use_cvss_bands() {
    let report = parse(
        r#"{"bomFormat":"CycloneDX","specVersion":"1.4",
            "metadata":{"tools":[{"vendor":"acme","name":"scanx","version":"2"}]},
            "components":[{"bom-ref":"c1","name":"lib","version":"1.0","purl":"pkg:npm/lib@1.0"}],
            "vulnerabilities":[
              {"id":"CVE-1","ratings":[{"score":7.5,"method":"CVSSv31"},{"score":3.1,"method":"CVSSv3"}],
               "affects":[{"ref":"c1","versions":[{"version":"1.1","status":"unaffected"}]},{"ref":"pkg:pypi/other@2.0"}]},
              {"id":"CVE-2","ratings":[{"score":10.0,"method":"CVSSv2"}]},
              {"id":"CVE-3","ratings":[{"method":"other"}]}]}"#,
    )
    .expect("cyclonedx");
    assert_eq!(report.scanner.name, "scanx");
    assert_eq!(report.scanner.vendor, "acme");
    let found: Vec<(&str, Severity, &str, &str, &str)> = report
        .vulnerabilities
        .iter()
        .map(|v| {
            (
                v.id.as_str(),
                v.severity,
                v.package.name.as_str(),
                v.package.version.as_str(),
                v.package.package_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("CVE-1", Severity::High, "lib", "1.0", "npm"),
            ("CVE-1", Severity::High, "other", "2.0", "python"),
            ("CVE-2", Severity::High, "", "", "unknown"),
            ("CVE-3", Severity::Unknown, "", "", "unknown"),
        ]
    );
    assert_eq!(
        report.vulnerabilities[0].fixed_versions,
        vec!["1.1".to_string()]
    );
}
