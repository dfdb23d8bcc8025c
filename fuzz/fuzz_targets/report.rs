//! A scanner report (Grype, Trivy, CycloneDX, SARIF, or anything else), read as
//! `scangate report` and the scan Job read it: the format detected from the content, one
//! streaming pass, under the default limit and under one smaller than the input. A report that
//! reads is summarised, and must come back unchanged from the ConfigMap it is stored in. No
//! input may panic. (Each format's converter is private to `report`: detection is the way in.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use scangate::report::{Limits, Report, ScanRef, from_config_map, to_config_map};

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_report_bytes: (data.len() / 2) as u64,
    };
    if let Err(error) = Report::from_reader("fuzz", data, small) {
        let _ = error.to_string();
    }
    let report = match Report::from_reader("fuzz", data, Limits::default()) {
        Ok(report) => report,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let _ = report.cve_count();
    let _ = report.vulnerabilities_worst_first();
    let owner = ScanRef {
        api_version: "scanning.scangate.dev/v1beta1".into(),
        kind: "ImageScan".into(),
        name: "fuzz".into(),
        namespace: "fuzz".into(),
        uid: "0".into(),
    };
    if let Ok(config_map) = to_config_map(&report, &owner) {
        match from_config_map(&config_map) {
            Ok(stored) => assert_eq!(stored, report, "the stored report reads back changed"),
            Err(error) => panic!("a stored report does not read back: {error}"),
        }
    }
});
