//! Property tests: the parsers never panic, whatever the input; the normalized report
//! survives JSON and the ConfigMap unchanged.

use proptest::prelude::*;
use scangate::report::{
    Artifact, ArtifactType, Limits, Package, Report, ScanRef, Scanner, Severity, Vulnerability,
    from_config_map, to_config_map,
};
use serde_json::{Value, json};

fn parse(bytes: &[u8]) -> Result<Report, scangate::report::Error> {
    Report::from_reader("prop", bytes, Limits::default())
}

/// Arbitrary JSON values, including the key names the formats use.
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_string()),
        Just("severity".to_string()),
        Just("name".to_string()),
        Just("version".to_string()),
        Just("vulnerability".to_string()),
        Just("artifact".to_string()),
        Just("ratings".to_string()),
        Just("affects".to_string()),
        Just("ref".to_string()),
        Just("VulnerabilityID".to_string()),
        Just("PkgName".to_string()),
        Just("Vulnerabilities".to_string()),
        Just("tool".to_string()),
        Just("driver".to_string()),
        Just("results".to_string()),
        Just("ruleId".to_string()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-20.0f64..20.0).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("critical"),
            Just("Negligible"),
            Just("pkg:npm/a@1"),
            Just("2.1.0")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A document of each format's skeleton with an arbitrary value where the findings go.
fn arb_document() -> impl Strategy<Value = Value> {
    (arb_json(), 0..6usize).prop_map(|(value, shape)| match shape {
        0 => json!({ "matches": value, "source": {"type": "image", "target": value} }),
        1 => json!({ "SchemaVersion": 2, "Results": value, "Metadata": value }),
        2 => json!({ "bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": value,
                     "components": value, "metadata": value }),
        3 => json!({ "version": "2.1.0", "runs": value }),
        4 => json!({ "version": "2.1.0", "runs": [{ "tool": {"driver": {"name": "x", "rules": value}},
                     "results": value, "properties": value }] }),
        _ => value,
    })
}

fn arb_text() -> impl Strategy<Value = String> {
    ".{0,16}"
}

fn arb_severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Critical),
        Just(Severity::High),
        Just(Severity::Medium),
        Just(Severity::Low),
        Just(Severity::Unknown),
    ]
}

fn arb_vulnerability() -> impl Strategy<Value = Vulnerability> {
    (
        arb_text(),
        arb_severity(),
        prop::option::of(arb_text()),
        (
            arb_text(),
            arb_text(),
            arb_text(),
            prop::option::of(arb_text()),
        ),
        prop::collection::vec(arb_text(), 0..3),
        prop::collection::vec(arb_text(), 0..3),
    )
        .prop_map(
            |(
                id,
                severity,
                raw_severity,
                (name, version, package_type, purl),
                fixed_versions,
                urls,
            )| {
                Vulnerability {
                    id,
                    severity,
                    raw_severity,
                    package: Package {
                        name,
                        version,
                        package_type,
                        purl,
                    },
                    fixed_versions,
                    urls,
                }
            },
        )
}

fn arb_report() -> impl Strategy<Value = Report> {
    (
        prop_oneof![
            Just(ArtifactType::Image),
            Just(ArtifactType::Filesystem),
            Just(ArtifactType::Repository),
            Just(ArtifactType::Sbom),
            Just(ArtifactType::Unknown),
        ],
        arb_text(),
        prop::option::of(arb_text()),
        (arb_text(), arb_text(), arb_text()),
        prop::collection::vec(arb_vulnerability(), 0..8),
        prop::collection::vec(arb_text().prop_map(|cve| json!({ "cves": [cve] })), 0..2),
    )
        .prop_map(
            |(
                artifact_type,
                name,
                digest,
                (scanner, vendor, version),
                vulnerabilities,
                exceptions,
            )| {
                Report {
                    artifact: Artifact {
                        artifact_type,
                        name,
                        image_id: digest.clone(),
                        digest,
                    },
                    scanner: Scanner {
                        name: scanner,
                        vendor,
                        version,
                    },
                    vulnerabilities,
                    exceptions,
                    vex: vec![],
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(document in arb_document()) {
        let bytes = serde_json::to_vec(&document).expect("serialize");
        if let Ok(report) = parse(&bytes) {
            // Whatever was accepted is a report that summarizes consistently.
            let count = report.cve_count();
            prop_assert_eq!(count.total, count.critical + count.high + count.medium + count.low + count.unknown);
            prop_assert!(report.vulnerabilities_worst_first().len() <= report.vulnerabilities.len());
        }
    }

    #[test]
    fn truncated_json_never_panics(document in arb_document(), cut in any::<prop::sample::Index>()) {
        let bytes = serde_json::to_vec(&document).expect("serialize");
        let _ = parse(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn report_round_trips_through_json(report in arb_report()) {
        let json = serde_json::to_string(&report).expect("serialize");
        let back: Report = serde_json::from_str(&json).expect("deserialize");
        prop_assert_eq!(back, report);
    }

    #[test]
    fn report_round_trips_through_config_map(report in arb_report(), name in "[a-z0-9]([-a-z0-9.]{0,80}[a-z0-9])?") {
        let scan = ScanRef { name, namespace: "ns".into(), ..ScanRef::default() };
        let config_map = to_config_map(&report, &scan).expect("config map");
        let label = &config_map.metadata.labels.as_ref().expect("labels")["scanning.scangate.dev/scan"];
        prop_assert!(label.len() <= 63);
        prop_assert!(config_map.metadata.name.as_ref().is_some_and(|n| n.len() <= 253));
        prop_assert_eq!(from_config_map(&config_map).expect("decode"), report);
    }

    #[test]
    fn worst_first_is_sorted_and_unique(report in arb_report()) {
        let sorted = report.vulnerabilities_worst_first();
        prop_assert!(sorted.windows(2).all(|pair| pair[0].severity <= pair[1].severity));
        let mut keys: Vec<_> = sorted.iter().map(|v| (&v.id, &v.package.name, &v.package.version)).collect();
        let before = keys.len();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), before);
    }
}
