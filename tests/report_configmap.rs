//! The report ConfigMap: shape, round trip, and every way its data can be broken.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use scangate::report::{
    Error, Limits, MAX_COMPRESSED_REPORT_BYTES, Package, REPORT_KEY, Report, SCAN_LABEL, ScanRef,
    Severity, Vulnerability, from_config_map, to_config_map,
};

fn scan() -> ScanRef {
    ScanRef {
        api_version: "scanning.scangate.dev/v1beta1".into(),
        kind: "ImageScan".into(),
        name: "nginx".into(),
        namespace: "apps".into(),
        uid: "6c5a8f0e-1111-4222-8333-944445555666".into(),
    }
}

fn fixture_report() -> Report {
    let path = format!(
        "{}/tests/fixtures/reports/grype/grype-0.28.0_debian10-vulnerable-image.json",
        env!("CARGO_MANIFEST_DIR")
    );
    Report::from_path(path, Limits::default()).expect("fixture")
}

fn with_data(data: Vec<u8>) -> ConfigMap {
    let mut config_map = to_config_map(&Report::default(), &scan()).expect("config map");
    config_map
        .binary_data
        .get_or_insert_default()
        .insert(REPORT_KEY.into(), ByteString(data));
    config_map
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

#[test]
fn config_map_shape() {
    let config_map = to_config_map(&fixture_report(), &scan()).expect("config map");
    let metadata = &config_map.metadata;
    assert_eq!(metadata.name.as_deref(), Some("nginx-report"));
    assert_eq!(metadata.namespace.as_deref(), Some("apps"));
    let labels = metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.get(SCAN_LABEL).map(String::as_str), Some("nginx"));
    let owners = metadata
        .owner_references
        .as_ref()
        .expect("owner references");
    assert_eq!(owners.len(), 1);
    let owner = &owners[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        (
            "scanning.scangate.dev/v1beta1",
            "ImageScan",
            "nginx",
            "6c5a8f0e-1111-4222-8333-944445555666"
        )
    );
    assert_eq!(owner.controller, Some(true));
    let data = config_map.binary_data.as_ref().expect("binary data");
    assert_eq!(data.keys().collect::<Vec<_>>(), vec![REPORT_KEY]);
    assert_eq!(&data[REPORT_KEY].0[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(config_map.data.is_none());
}

#[test]
fn round_trip_through_config_map() {
    let report = fixture_report();
    let config_map = to_config_map(&report, &scan()).expect("config map");
    assert_eq!(from_config_map(&config_map).expect("decode"), report);
    // Deterministic: the same report gives the same bytes.
    assert_eq!(to_config_map(&report, &scan()).expect("again"), config_map);
}

#[test]
fn missing_key() {
    let mut config_map = to_config_map(&fixture_report(), &scan()).expect("config map");
    config_map.binary_data = None;
    let error = from_config_map(&config_map).unwrap_err();
    assert!(
        matches!(error, Error::ConfigMapMissingKey { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("apps/nginx-report") && message.contains(REPORT_KEY),
        "{message}"
    );
}

#[test]
fn corrupt_gzip() {
    let error = from_config_map(&with_data(b"this is not gzip at all".to_vec())).unwrap_err();
    assert!(matches!(error, Error::ConfigMapCorrupt { .. }), "{error:?}");
    // A flipped byte in the deflate data or the checksum.
    let mut data = to_config_map(&fixture_report(), &scan())
        .expect("cm")
        .binary_data
        .expect("data")[REPORT_KEY]
        .0
        .clone();
    let last = data.len() - 5;
    data[last] ^= 0xff;
    let error = from_config_map(&with_data(data)).unwrap_err();
    assert!(matches!(error, Error::ConfigMapCorrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("not valid gzip"), "{error}");
}

#[test]
fn truncated_gzip() {
    let data = to_config_map(&fixture_report(), &scan())
        .expect("cm")
        .binary_data
        .expect("data")[REPORT_KEY]
        .0
        .clone();
    for cut in [data.len() / 2, data.len() - 4, 12] {
        let error = from_config_map(&with_data(data[..cut].to_vec())).unwrap_err();
        assert!(
            matches!(error, Error::ConfigMapTruncated { .. }),
            "cut at {cut}: {error:?}"
        );
        assert!(error.to_string().contains("truncated"), "{error}");
    }
}

#[test]
fn bad_json_inside_gzip() {
    for json in [
        &b"not json"[..],
        b"{\"artifact\": 1}",
        b"{\"vulnerabilities\": []}",
    ] {
        let error = from_config_map(&with_data(gzip(json))).unwrap_err();
        assert!(
            matches!(error, Error::ConfigMapBadReport { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("normalized scangate report"),
            "{error}"
        );
    }
}

/// A pseudo-random, incompressible id.
fn noise(state: &mut u64) -> String {
    (0..4)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            format!("{:016x}", *state)
        })
        .collect()
}

#[test]
fn report_too_large_for_a_config_map() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let vulnerabilities = (0..40_000)
        .map(|_| Vulnerability {
            id: noise(&mut state),
            severity: Severity::High,
            raw_severity: None,
            package: Package {
                name: noise(&mut state),
                ..Package::default()
            },
            fixed_versions: vec![],
            urls: vec![],
        })
        .collect();
    let report = Report {
        vulnerabilities,
        ..Report::default()
    };
    let error = to_config_map(&report, &scan()).unwrap_err();
    let Error::ConfigMapTooLarge { size, limit, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*limit, MAX_COMPRESSED_REPORT_BYTES);
    assert!(*size > *limit);
    let message = error.to_string();
    assert!(
        message.contains("apps/nginx") && message.contains("ConfigMap"),
        "{message}"
    );
}
