//! A 50 MB report parses, streaming, within the default limits.

use std::io::{BufWriter, Write};

use scangate::report::{Limits, Report, Severity};

const SEVERITIES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];

/// Writes a Trivy report of `count` findings (each CVE id in two packages) with long
/// descriptions, the way real reports are padded.
fn write_trivy_report(out: &mut impl Write, count: usize) -> std::io::Result<()> {
    let description = "A long description of the vulnerability. ".repeat(8);
    write!(
        out,
        r#"{{"SchemaVersion":2,"ArtifactName":"registry.example/big:1","ArtifactType":"container_image","Metadata":{{"RepoDigests":["registry.example/big@sha256:{}"]}},"Trivy":{{"Version":"0.50.0"}},"Results":[{{"Target":"big (debian 12)","Class":"os-pkgs","Type":"debian","Vulnerabilities":["#,
        "a".repeat(64)
    )?;
    for i in 0..count {
        if i > 0 {
            out.write_all(b",")?;
        }
        write!(
            out,
            r#"{{"VulnerabilityID":"CVE-2024-{id}","PkgName":"pkg{pkg}","InstalledVersion":"1.{i}","FixedVersion":"1.{i}.1, 2.0","Severity":"{sev}","PrimaryURL":"https://avd.aquasec.com/nvd/cve-2024-{id}","Title":"title {i}","Description":"{description}","References":["https://example.com/{i}/a","https://example.com/{i}/b"],"CVSS":{{"nvd":{{"V3Score":7.5}}}}}}"#,
            id = i / 2,
            pkg = i % 2,
            sev = SEVERITIES[(i / 2) % 5],
        )?;
    }
    out.write_all(b"]}]}")
}

#[test]
fn fifty_megabyte_trivy_report_parses() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    {
        let mut out = BufWriter::new(file.as_file_mut());
        write_trivy_report(&mut out, 100_000).expect("write report");
        out.flush().expect("flush");
    }
    let size = file.as_file().metadata().expect("metadata").len();
    assert!(size > 50_000_000, "only {size} bytes");

    let report = Report::from_path(file.path(), Limits::default()).expect("50 MB report");
    assert_eq!(report.vulnerabilities.len(), 100_000);
    let count = report.cve_count();
    assert_eq!(count.total, 50_000);
    assert_eq!(
        [
            count.critical,
            count.high,
            count.medium,
            count.low,
            count.unknown
        ],
        [10_000; 5]
    );
    assert_eq!(
        report.vulnerabilities_worst_first()[0].severity,
        Severity::Critical
    );
    assert_eq!(
        report.vulnerabilities[3].fixed_versions,
        vec!["1.3.1", "2.0"]
    );
    assert_eq!(
        report.artifact.digest,
        Some(format!("sha256:{}", "a".repeat(64)))
    );

    let limits = Limits {
        max_report_bytes: 10 * 1024 * 1024,
    };
    let error = Report::from_path(file.path(), limits).expect_err("over the limit");
    assert!(error.to_string().contains("10 MiB"), "{error}");
}
