//! The status shared by ImageScan and SourceScan.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Unique CVE ids per severity, and their total.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CveCount {
    #[serde(default)]
    pub critical: i64,
    #[serde(default)]
    pub high: i64,
    #[serde(default)]
    pub medium: i64,
    #[serde(default)]
    pub low: i64,
    #[serde(default)]
    pub unknown: i64,
    #[serde(default)]
    pub total: i64,
}
