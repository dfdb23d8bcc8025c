//! A report ConfigMap as the controller reads it (anyone with `edit` in a namespace can write
//! one): `binaryData["report.json.gz"]` is gunzipped, checked and decoded as a normalized
//! report. The first byte chooses what the rest is: odd, the gzip data as stored (corrupt,
//! truncated or a bomb); even, the JSON inside, compressed here, so the fuzzer reaches the
//! report decoder. No input may panic.

#![no_main]

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use libfuzzer_sys::fuzz_target;
use scangate::report::{REPORT_KEY, from_config_map};

fn gzip(json: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(json).ok()?;
    encoder.finish().ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let stored = if mode % 2 == 1 {
        rest.to_vec()
    } else {
        match gzip(rest) {
            Some(compressed) => compressed,
            None => return,
        }
    };
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("fuzz-report".into()),
            namespace: Some("fuzz".into()),
            ..ObjectMeta::default()
        },
        binary_data: Some(BTreeMap::from([(
            REPORT_KEY.to_string(),
            ByteString(stored),
        )])),
        ..ConfigMap::default()
    };
    match from_config_map(&config_map) {
        Ok(report) => {
            let _ = report.cve_count();
            let _ = report.vulnerabilities_worst_first();
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
