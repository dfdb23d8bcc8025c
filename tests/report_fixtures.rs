//! Every report fixture, parsed, with numbers checked by hand against the files (jq/python).

use scangate::api::CveCount;
use scangate::report::{
    Artifact, ArtifactType, Error, Limits, Package, Report, Scanner, Severity, Vulnerability,
};

fn fixture(path: &str) -> Report {
    let path = format!(
        "{}/tests/fixtures/reports/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    match Report::from_path(&path, Limits::default()) {
        Ok(report) => report,
        Err(error) => panic!("{path}: {error}"),
    }
}

fn counts(critical: i64, high: i64, medium: i64, low: i64, unknown: i64) -> CveCount {
    CveCount {
        critical,
        high,
        medium,
        low,
        unknown,
        total: critical + high + medium + low + unknown,
    }
}

fn scanner(name: &str, vendor: &str, version: &str) -> Scanner {
    Scanner {
        name: name.into(),
        vendor: vendor.into(),
        version: version.into(),
    }
}

/// `digest` is the one a registry serves the image by; `image_id` its config's.
fn artifact(
    artifact_type: ArtifactType,
    name: &str,
    digest: Option<&str>,
    image_id: Option<&str>,
) -> Artifact {
    Artifact {
        artifact_type,
        name: name.into(),
        digest: digest.map(str::to_string),
        image_id: image_id.map(str::to_string),
    }
}

fn find<'a>(report: &'a Report, id: &str, package: &str) -> &'a Vulnerability {
    report
        .vulnerabilities
        .iter()
        .find(|v| v.id == id && v.package.name == package)
        .unwrap_or_else(|| panic!("{id} in {package} not found"))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- Grype

#[test]
fn grype_0_94_busybox_new_schema() {
    let report = fixture("grype/grype-0.94.0_busybox-1.32.1.json");
    assert_eq!(report.vulnerabilities.len(), 15);
    assert_eq!(report.cve_count(), counts(1, 10, 2, 2, 0));
    assert_eq!(report.scanner, scanner("grype", "anchore", "0.94.0"));
    // repoDigests wins over manifestDigest (sha256:123b…, a locally computed manifest).
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Image,
            "busybox:1.32.1",
            Some("sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7"),
            Some("sha256:388056c9a6838deea3792e8f00705b35b439cf57b3c9c2634fb4e95cfc896de6"),
        )
    );
    let fixed = find(&report, "CVE-2021-42376", "busybox");
    assert_eq!(
        *fixed,
        Vulnerability {
            id: "CVE-2021-42376".into(),
            severity: Severity::Medium,
            raw_severity: None,
            package: Package {
                name: "busybox".into(),
                version: "1.32.1".into(),
                package_type: "binary".into(),
                purl: Some("pkg:generic/busybox@1.32.1".into()),
            },
            fixed_versions: strings(&["1.34.0"]),
            // dataSource first, then the 5 distinct urls (the file lists each twice).
            urls: strings(&[
                "https://nvd.nist.gov/vuln/detail/CVE-2021-42376",
                "https://claroty.com/team82/research/unboxing-busybox-14-vulnerabilities-uncovered-by-claroty-jfrog",
                "https://jfrog.com/blog/unboxing-busybox-14-new-vulnerabilities-uncovered-by-claroty-and-jfrog/",
                "https://lists.fedoraproject.org/archives/list/package-announce%40lists.fedoraproject.org/message/6T2TURBYYJGBMQTTN2DSOAIQGP7WCPGV/",
                "https://lists.fedoraproject.org/archives/list/package-announce%40lists.fedoraproject.org/message/UQXGOGWBIYWOIVXJVRKHZR34UMEHQBXS/",
                "https://security.netapp.com/advisory/ntap-20211223-0002/",
            ]),
        }
    );
}

#[test]
fn grype_0_28_duplicated_match_and_negligible() {
    let report = fixture("grype/grype-0.28.0_debian10-vulnerable-image.json");
    assert_eq!(report.vulnerabilities.len(), 6);
    // CVE-2021-33574 in libc-bin and libc6 and the duplicated Django match count once.
    assert_eq!(report.cve_count(), counts(1, 2, 0, 1, 0));
    assert_eq!(report.vulnerabilities_worst_first().len(), 5);
    assert_eq!(report.scanner, scanner("grype", "anchore", "0.28.0"));
    // repoDigests is empty: the manifestDigest is used.
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Image,
            "vulnerable-image:latest",
            Some("sha256:9d8825ab20ac86b40eb71495bece1608a302fb180384740697a28c2b0a5a0fc6"),
            Some("sha256:ce9898fd214aef9c994a42624b09056bdce3ff4a8e3f68dc242d967b80fcbeee"),
        )
    );
    let negligible = find(&report, "CVE-2004-0971", "libgssapi-krb5-2");
    assert_eq!(negligible.severity, Severity::Low);
    assert_eq!(negligible.raw_severity.as_deref(), Some("Negligible"));
    assert_eq!(negligible.package.package_type, "deb");
    assert_eq!(
        *find(&report, "GHSA-v6rh-hp5x-86rv", "Django"),
        Vulnerability {
            id: "GHSA-v6rh-hp5x-86rv".into(),
            severity: Severity::High,
            raw_severity: None,
            package: Package {
                name: "Django".into(),
                version: "3.2.9".into(),
                package_type: "python".into(),
                purl: Some("pkg:pypi/Django@3.2.9".into()),
            },
            fixed_versions: strings(&["3.2.10"]),
            urls: strings(&["https://github.com/advisories/GHSA-v6rh-hp5x-86rv"]),
        }
    );
    assert_eq!(
        find(&report, "CVE-2021-32626", "redis").fixed_versions,
        strings(&["fix_1", "fix_2"])
    );
}

#[test]
fn grype_missing_severity_is_unknown() {
    let report = fixture("grype/grype_ubi8-xjoin-kafka-connect-strimzi_missing-severity.json");
    assert_eq!(report.vulnerabilities.len(), 35);
    // 19 unique ids: bind CVEs repeat over 4 packages, avro's over 2 versions.
    assert_eq!(report.cve_count(), counts(1, 6, 9, 2, 1));
    assert_eq!(report.scanner, scanner("grype", "anchore", "0.96.0"));
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Image,
            "quay.io/cloudservices/xjoin-kafka-connect-strimzi:latest",
            Some("sha256:97e6d5aeed19f627205b218f45b284cd01ff658dd181416ab1d3e21aeb28d68e"),
            Some("sha256:7998b6425ee34508b5b9b02a038ed7ccaab47ecb60fc2c7f0259f964fdf80a70"),
        )
    );
    assert_eq!(
        *find(&report, "CVE-2024-26308", "commons-compress"),
        Vulnerability {
            id: "CVE-2024-26308".into(),
            severity: Severity::Unknown,
            raw_severity: None,
            package: Package {
                name: "commons-compress".into(),
                version: "1.21".into(),
                package_type: "java-archive".into(),
                purl: Some("pkg:maven/org.apache.commons/commons-compress@1.21".into()),
            },
            fixed_versions: strings(&["1.26.0"]),
            urls: strings(&[
                "https://nvd.nist.gov/vuln/detail/CVE-2024-26308",
                "http://www.openwall.com/lists/oss-security/2024/02/19/2",
                "https://lists.apache.org/thread/ch5yo2d21p7vlqrhll9b17otbyq4npfg",
            ]),
        }
    );
    assert_eq!(
        find(&report, "CVE-2023-38473", "avahi-libs").fixed_versions,
        strings(&["0:0.7-21.el8_9.1"])
    );
}

#[test]
fn grype_0_24_directory_scan_old_schema() {
    let report = fixture("grype/grype-0.24.0_directory-scan_npm-python.json");
    assert_eq!(report.vulnerabilities.len(), 9);
    assert_eq!(report.cve_count(), counts(2, 2, 5, 0, 0));
    assert_eq!(report.scanner, scanner("grype", "anchore", "0.24.0"));
    // The old schema wrote the target with its quotes: `"\".\""`.
    assert_eq!(
        report.artifact,
        artifact(ArtifactType::Filesystem, ".", None, None)
    );
    assert_eq!(
        *find(&report, "GHSA-8v27-2fg9-7h62", "static-eval"),
        Vulnerability {
            id: "GHSA-8v27-2fg9-7h62".into(),
            severity: Severity::Critical,
            raw_severity: None,
            package: Package {
                name: "static-eval".into(),
                version: "2.1.0".into(),
                package_type: "npm".into(),
                purl: Some("pkg:npm/static-eval@2.1.0".into()),
            },
            fixed_versions: vec![],
            urls: strings(&["https://github.com/advisories/GHSA-8v27-2fg9-7h62"]),
        }
    );
    assert_eq!(
        find(&report, "CVE-2021-32626", "redis")
            .package
            .package_type,
        "python"
    );
}

// ---------------------------------------------------------------- Trivy

#[test]
fn trivy_alpine_golden_current_schema() {
    let report = fixture("trivy/trivy_alpine-3.9_image_golden.json");
    assert_eq!(report.vulnerabilities.len(), 6);
    assert_eq!(report.cve_count(), counts(1, 0, 2, 0, 0));
    assert_eq!(report.scanner, scanner("trivy", "aquasecurity", "dev"));
    // No RepoDigests: the ImageID (config digest) is what the report knows.
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Image,
            "testdata/fixtures/images/alpine-39.tar.gz",
            None,
            Some("sha256:055936d3920576da37aa9bc460d70c5f212028bda1c08c0879aedf03d7a66ea1"),
        )
    );
    assert_eq!(
        *find(&report, "CVE-2019-14697", "musl"),
        Vulnerability {
            id: "CVE-2019-14697".into(),
            severity: Severity::Critical,
            raw_severity: None,
            package: Package {
                name: "musl".into(),
                version: "1.1.20-r4".into(),
                package_type: "apk".into(),
                purl: Some("pkg:apk/alpine/musl@1.1.20-r4?arch=x86_64&distro=3.9.4".into()),
            },
            fixed_versions: strings(&["1.1.20-r5"]),
            urls: strings(&[
                "https://avd.aquasec.com/nvd/cve-2019-14697",
                "http://www.openwall.com/lists/oss-security/2019/08/06/4",
                "https://security.gentoo.org/glsa/202003-13",
                "https://www.openwall.com/lists/musl/2019/08/06/1",
            ]),
        }
    );
}

#[test]
fn trivy_juice_shop_two_results_without_trivy_block() {
    let report = fixture("trivy/trivy_juice-shop-v10.2.0_image.json");
    // 26 os-pkgs + 68 lang-pkgs findings: CRITICAL 15 / HIGH 45 / MEDIUM 31 / LOW 3.
    assert_eq!(report.vulnerabilities.len(), 94);
    let per_finding = |severity| {
        report
            .vulnerabilities
            .iter()
            .filter(|v| v.severity == severity)
            .count()
    };
    assert_eq!(
        [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low
        ]
        .map(per_finding),
        [15, 45, 31, 3]
    );
    assert_eq!(report.cve_count(), counts(11, 31, 24, 2, 0));
    assert_eq!(report.scanner, scanner("trivy", "aquasecurity", "unknown"));
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Image,
            "bkimminich/juice-shop:v10.2.0",
            Some("sha256:b1802758946aa40549b98ee6b8f93e9b92d0a6bf7aed139284893466be9c5065"),
            Some("sha256:21ef0dc04325e8ee21e385dc672460ed6b5c058cef1fedb84086ed5fca3f91cd"),
        )
    );
    let apk_tools = find(&report, "CVE-2021-36159", "apk-tools");
    assert_eq!(
        *apk_tools,
        Vulnerability {
            id: "CVE-2021-36159".into(),
            severity: Severity::Critical,
            raw_severity: None,
            package: Package {
                name: "apk-tools".into(),
                version: "2.10.4-r3".into(),
                package_type: "apk".into(),
                purl: None,
            },
            fixed_versions: strings(&["2.10.7-r0"]),
            urls: strings(&[
                "https://avd.aquasec.com/nvd/cve-2021-36159",
                "https://github.com/freebsd/freebsd-src/commits/main/lib/libfetch",
                "https://gitlab.alpinelinux.org/alpine/apk-tools/-/issues/10749",
                "https://lists.apache.org/thread.html/r61db8e7dcb56dc000a5387a88f7a473bacec5ee01b9ff3f55308aacc@%3Cdev.kafka.apache.org%3E",
                "https://lists.apache.org/thread.html/r61db8e7dcb56dc000a5387a88f7a473bacec5ee01b9ff3f55308aacc@%3Cusers.kafka.apache.org%3E",
                "https://lists.apache.org/thread.html/rbf4ce74b0d1fa9810dec50ba3ace0caeea677af7c27a97111c06ccb7@%3Cdev.kafka.apache.org%3E",
                "https://lists.apache.org/thread.html/rbf4ce74b0d1fa9810dec50ba3ace0caeea677af7c27a97111c06ccb7@%3Cusers.kafka.apache.org%3E",
            ]),
        }
    );
    let node = report
        .vulnerabilities
        .iter()
        .filter(|v| v.package.package_type == "npm")
        .count();
    assert_eq!(node, 68);
}

#[test]
fn trivy_teamdojo_early_schema_2() {
    let report = fixture("trivy/trivy_teamdojo-alpine-3.9.4.json");
    assert_eq!(report.vulnerabilities.len(), 5);
    assert_eq!(report.cve_count(), counts(1, 1, 3, 0, 0));
    assert_eq!(report.scanner, scanner("trivy", "aquasecurity", "unknown"));
    assert_eq!(
        report.artifact,
        artifact(ArtifactType::Image, "teamdojo:latest", None, None)
    );
    let compress = find(
        &report,
        "CVE-2018-1324",
        "org.apache.commons:commons-compress",
    );
    assert_eq!(compress.severity, Severity::Medium);
    assert_eq!(compress.package.version, "1.14");
    assert_eq!(compress.package.package_type, "java-archive");
    assert_eq!(compress.package.purl, None);
    assert_eq!(compress.fixed_versions, strings(&["1.16"]));
    assert_eq!(compress.urls.len(), 11); // PrimaryURL + 10 References
    assert_eq!(
        compress.urls[0],
        "https://avd.aquasec.com/nvd/cve-2018-1324"
    );
}

#[test]
fn trivy_gomod_repository_with_unknown_severity() {
    let report = fixture("trivy/trivy_repo-gomod_unknown-severity_golden.json");
    assert_eq!(report.vulnerabilities.len(), 5);
    // GMS-2022-20 appears in 3 go.mod files: one unique id.
    assert_eq!(report.cve_count(), counts(0, 0, 1, 0, 2));
    assert_eq!(report.vulnerabilities_worst_first().len(), 3);
    assert_eq!(report.scanner, scanner("trivy", "aquasecurity", "dev"));
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Repository,
            "testdata/fixtures/repo/gomod",
            None,
            None
        )
    );
    let unknown = find(&report, "GMS-2022-20", "github.com/docker/distribution");
    assert_eq!(unknown.severity, Severity::Unknown);
    assert_eq!(unknown.raw_severity, None); // "UNKNOWN" is a canonical name
    assert_eq!(unknown.package.version, "v2.7.1+incompatible");
    assert_eq!(
        *find(
            &report,
            "CVE-2022-23628",
            "github.com/open-policy-agent/opa"
        ),
        Vulnerability {
            id: "CVE-2022-23628".into(),
            severity: Severity::Medium,
            raw_severity: None,
            package: Package {
                name: "github.com/open-policy-agent/opa".into(),
                version: "v0.35.0".into(),
                package_type: "gomod".into(),
                purl: Some("pkg:golang/github.com/open-policy-agent/opa@v0.35.0".into()),
            },
            fixed_versions: strings(&["0.37.0"]),
            urls: strings(&[
                "https://avd.aquasec.com/nvd/cve-2022-23628",
                "https://github.com/advisories/GHSA-hcw3-j74m-qc58",
                "https://github.com/open-policy-agent/opa/commit/932e4ffc37a590ace79e9b75ca4340288c220239",
                "https://github.com/open-policy-agent/opa/commit/bfd984ddf93ef2c4963a08d4fdadae0bcf1a3717",
                "https://github.com/open-policy-agent/opa/pull/3851",
                "https://github.com/open-policy-agent/opa/security/advisories/GHSA-hcw3-j74m-qc58",
                "https://nvd.nist.gov/vuln/detail/CVE-2022-23628",
            ]),
        }
    );
}

// ---------------------------------------------------------------- CycloneDX

#[test]
fn cyclonedx_1_6_trivy_fluentd() {
    let report = fixture("cyclonedx/trivy_cyclonedx-1.6_fluentd-image_golden.json");
    assert_eq!(report.vulnerabilities.len(), 3);
    // Worst rating: CVE-2019-18224 critical (nvd CVSSv31), CVE-2019-18276 high,
    // CVE-2020-8165 critical.
    assert_eq!(report.cve_count(), counts(2, 1, 0, 0, 0));
    // metadata.tools in the 1.5+ {components: […]} form.
    assert_eq!(report.scanner, scanner("trivy", "aquasecurity", "dev"));
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Image,
            "integration/testdata/fixtures/images/fluentd-multiple-lockfiles.tar.gz",
            None,
            Some("sha256:5a992077baba51b97f27591a10d54d2f2723dc9c81a3fe419e261023f2554933"),
        )
    );
    let activesupport = find(&report, "CVE-2020-8165", "activesupport");
    assert_eq!(
        *activesupport,
        Vulnerability {
            id: "CVE-2020-8165".into(),
            severity: Severity::Critical,
            raw_severity: None,
            package: Package {
                name: "activesupport".into(),
                version: "6.0.2.1".into(),
                package_type: "gem".into(),
                purl: Some("pkg:gem/activesupport@6.0.2.1".into()),
            },
            fixed_versions: strings(&["6.0.3.1", "5.2.4.3"]),
            urls: activesupport.urls.clone(),
        }
    );
    assert_eq!(
        activesupport.urls[0],
        "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Arubygems"
    );
    let bash = find(&report, "CVE-2019-18276", "bash");
    assert_eq!(bash.severity, Severity::High);
    assert_eq!(bash.package.package_type, "deb");
    assert_eq!(bash.package.version, "5.0-4");
    assert!(bash.fixed_versions.is_empty());
}

#[test]
fn cyclonedx_1_4_grype_log4j() {
    let report = fixture("cyclonedx/grype-0.41.0_cyclonedx-1.4_log4j-core-2.13.2.json");
    assert_eq!(report.vulnerabilities.len(), 8);
    assert_eq!(report.cve_count(), counts(4, 1, 3, 0, 0));
    // metadata.tools in the 1.4 array form.
    assert_eq!(report.scanner, scanner("grype", "anchore", "0.41.0"));
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Filesystem,
            "./configuration/.m2/repository/org/apache/logging/log4j/log4j-core/2.13.2",
            None,
            None
        )
    );
    let log4shell = find(&report, "CVE-2021-44228", "log4j-core");
    assert_eq!(
        *log4shell,
        Vulnerability {
            id: "CVE-2021-44228".into(),
            severity: Severity::Critical,
            raw_severity: None,
            package: Package {
                name: "log4j-core".into(),
                version: "2.13.2".into(),
                package_type: "java-archive".into(),
                purl: Some("pkg:maven/org.apache.logging.log4j/log4j-core@2.13.2".into()),
            },
            fixed_versions: vec![],
            urls: log4shell.urls.clone(),
        }
    );
    // source url + 46 advisories, of which one (cisco) is listed twice.
    assert_eq!(log4shell.urls.len(), 47);
    assert_eq!(
        log4shell.urls[0],
        "http://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2021-44228"
    );
}

#[test]
fn cyclonedx_1_6_spec_example() {
    let report = fixture("cyclonedx/cyclonedx-spec_valid-vulnerability-1.6.json");
    assert_eq!(report.vulnerabilities.len(), 1);
    assert_eq!(report.cve_count(), counts(1, 0, 0, 0, 0));
    // No metadata: the scanner comes from the vulnerability's own `tools`.
    assert_eq!(
        report.scanner,
        scanner("Snyk CLI (Linux)", "Snyk", "1.729.0")
    );
    assert_eq!(
        report.artifact,
        artifact(ArtifactType::Unknown, "", None, None)
    );
    assert_eq!(
        report.vulnerabilities[0],
        Vulnerability {
            id: "SNYK-JAVA-COMFASTERXMLJACKSONCORE-32111".into(),
            severity: Severity::Critical,
            raw_severity: None,
            package: Package {
                name: "jackson-databind".into(),
                version: "2.9.4".into(),
                package_type: "java-archive".into(),
                purl: Some("pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.4".into()),
            },
            fixed_versions: strings(&["2.6.7.5", "2.8.11.1", "2.9.5"]),
            urls: strings(&[
                "https://snyk.io/vuln/SNYK-JAVA-COMFASTERXMLJACKSONCORE-32111",
                "https://github.com/FasterXML/jackson-databind/commit/6799f8f10cc78e9af6d443ed6982d00a13f2e7d2",
                "https://github.com/FasterXML/jackson-databind/issues/1931",
            ]),
        }
    );
}

#[test]
fn cyclonedx_xml_is_an_unknown_format() {
    let path = format!(
        "{}/tests/fixtures/reports/cyclonedx/grype_cyclonedx-1.2-xml-vuln-ext_presenter-snapshot.xml",
        env!("CARGO_MANIFEST_DIR")
    );
    let error = Report::from_path(&path, Limits::default()).expect_err("XML must be refused");
    assert!(matches!(error, Error::UnknownFormat { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("grype_cyclonedx-1.2-xml-vuln-ext_presenter-snapshot.xml"),
        "{message}"
    );
    assert!(message.contains("XML"), "{message}");
    assert!(message.contains("cyclonedx-json"), "{message}");
    assert!(message.contains("Trivy JSON"), "{message}");
}

// ---------------------------------------------------------------- SARIF

#[test]
fn sarif_trivy_alpine_golden() {
    let report = fixture("sarif/trivy_alpine-3.10_image_golden.sarif");
    assert_eq!(report.vulnerabilities.len(), 4);
    assert_eq!(report.cve_count(), counts(0, 0, 2, 0, 0));
    assert_eq!(report.scanner, scanner("trivy", "aquasecurity", "dev"));
    assert_eq!(
        report.artifact,
        artifact(
            ArtifactType::Image,
            "testdata/fixtures/images/alpine-310.tar.gz",
            None,
            Some("sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"),
        )
    );
    assert_eq!(
        *find(&report, "CVE-2019-1551", "libssl1.1"),
        Vulnerability {
            id: "CVE-2019-1551".into(),
            severity: Severity::Medium,
            raw_severity: None,
            package: Package {
                name: "libssl1.1".into(),
                version: "1.1.1c-r0".into(),
                package_type: "unknown".into(),
                purl: None,
            },
            fixed_versions: strings(&["1.1.1d-r2"]),
            urls: strings(&["https://avd.aquasec.com/nvd/cve-2019-1551"]),
        }
    );
}
