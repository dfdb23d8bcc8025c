//! The report's transport: a ConfigMap `<scan>-report` in the scan's namespace, holding the
//! normalized report as gzip-compressed JSON in `binaryData["report.json.gz"]`, labelled
//! with the scan and owned by it. Pure functions; the cluster I/O lives with the callers.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use super::error::{Error, Result};
use super::model::Report;
use super::parse::DEFAULT_MAX_REPORT_BYTES;

/// The `binaryData` key holding the gzip-compressed normalized report.
pub const REPORT_KEY: &str = "report.json.gz";

/// The label naming the scan a report ConfigMap belongs to.
pub const SCAN_LABEL: &str = "scanning.scangate.dev/scan";

/// The annotation on a report ConfigMap naming the identity that wrote it, as the webhook saw
/// the request (e.g. `system:serviceaccount:ci:pusher`). Only the webhook sets it.
pub const REPORTED_BY: &str = "scangate.dev/reported-by";

/// The largest compressed report stored: a ConfigMap holds at most 1 MiB of data; 64 KiB are
/// left for metadata.
pub const MAX_COMPRESSED_REPORT_BYTES: usize = 1024 * 1024 - 64 * 1024;

const CONFIG_MAP_SUFFIX: &str = "-report";
const MAX_NAME_LENGTH: usize = 253;
const MAX_LABEL_VALUE_LENGTH: usize = 63;

/// The scan (ImageScan or SourceScan) a report belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanRef {
    /// e.g. `scanning.scangate.dev/v1beta1`.
    pub api_version: String,
    /// `ImageScan` or `SourceScan`.
    pub kind: String,
    /// The scan's name.
    pub name: String,
    /// The scan's namespace.
    pub namespace: String,
    /// The scan's uid, for the owner reference.
    pub uid: String,
}

/// The name of a scan's report ConfigMap: `<scan>-report`. A name that would exceed 253
/// characters is shortened and made unique with a hash of the scan name.
pub fn config_map_name(scan_name: &str) -> String {
    let room = MAX_NAME_LENGTH - CONFIG_MAP_SUFFIX.len();
    format!("{}{CONFIG_MAP_SUFFIX}", shortened(scan_name, room))
}

/// The value of the [`SCAN_LABEL`]: the scan name, or when longer than a label value may be
/// (63), its start and a hash of the whole name.
pub fn scan_label_value(scan_name: &str) -> String {
    shortened(scan_name, MAX_LABEL_VALUE_LENGTH)
}

/// `name` when it fits in `max` characters, else a prefix, `-`, and 10 hex digits of its
/// SHA-256.
fn shortened(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash: String = Sha256::digest(name.as_bytes())
        .iter()
        .take(5)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let mut prefix_len = max - hash.len() - 1;
    while !name.is_char_boundary(prefix_len) {
        prefix_len -= 1;
    }
    let prefix = name[..prefix_len].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{hash}")
}

/// Builds the report ConfigMap of a scan. Fails when the compressed report is over
/// [`MAX_COMPRESSED_REPORT_BYTES`].
pub fn to_config_map(report: &Report, owner: &ScanRef) -> Result<ConfigMap> {
    let compressed = compress(report)?;
    if compressed.len() > MAX_COMPRESSED_REPORT_BYTES {
        return Err(Error::ConfigMapTooLarge {
            scan: format!("{}/{}", owner.namespace, owner.name),
            size: compressed.len(),
            limit: MAX_COMPRESSED_REPORT_BYTES,
        });
    }
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&owner.name)),
            namespace: Some(owner.namespace.clone()),
            labels: Some(BTreeMap::from([(
                SCAN_LABEL.to_string(),
                scan_label_value(&owner.name),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        binary_data: Some(BTreeMap::from([(
            REPORT_KEY.to_string(),
            ByteString(compressed),
        )])),
        ..ConfigMap::default()
    })
}

fn compress(report: &Report) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    serde_json::to_writer(&mut encoder, report).map_err(|error| Error::Encode(error.into()))?;
    encoder.flush().map_err(Error::Encode)?;
    encoder.finish().map_err(Error::Encode)
}

/// Reads the normalized report back from a report ConfigMap, verifying the gzip data
/// (checksum, length) and the JSON.
pub fn from_config_map(config_map: &ConfigMap) -> Result<Report> {
    let name = format!(
        "{}/{}",
        config_map.metadata.namespace.as_deref().unwrap_or_default(),
        config_map.metadata.name.as_deref().unwrap_or_default()
    );
    let compressed = config_map
        .binary_data
        .as_ref()
        .and_then(|data| data.get(REPORT_KEY))
        .ok_or_else(|| Error::ConfigMapMissingKey {
            config_map: name.clone(),
            key: REPORT_KEY,
        })?;
    let json = decompress(&name, &compressed.0)?;
    serde_json::from_slice(&json).map_err(|source| Error::ConfigMapBadReport {
        config_map: name,
        key: REPORT_KEY,
        source,
    })
}

fn decompress(config_map: &str, compressed: &[u8]) -> Result<Vec<u8>> {
    let mut json = Vec::new();
    GzDecoder::new(compressed)
        .take(DEFAULT_MAX_REPORT_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|source| match source.kind() {
            io::ErrorKind::UnexpectedEof => Error::ConfigMapTruncated {
                config_map: config_map.to_string(),
                key: REPORT_KEY,
            },
            _ => Error::ConfigMapCorrupt {
                config_map: config_map.to_string(),
                key: REPORT_KEY,
                source,
            },
        })?;
    if json.len() as u64 > DEFAULT_MAX_REPORT_BYTES {
        return Err(Error::ConfigMapTooLargeDecompressed {
            config_map: config_map.to_string(),
            key: REPORT_KEY,
            limit: DEFAULT_MAX_REPORT_BYTES,
        });
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(config_map_name("nginx-scan"), "nginx-scan-report");
        assert_eq!(scan_label_value("nginx-scan"), "nginx-scan");
    }

    #[test]
    fn long_names_are_shortened_with_a_hash() {
        let long = "a".repeat(300);
        let name = config_map_name(&long);
        assert_eq!(name.len(), 253);
        assert!(name.ends_with("-report"));
        let label = scan_label_value(&"b-".repeat(40));
        assert!(label.len() <= 63, "{label}");
        assert!(
            label
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric())
        );
        assert_ne!(
            scan_label_value(&"c".repeat(64)),
            scan_label_value(&"c".repeat(65))
        );
    }
}
