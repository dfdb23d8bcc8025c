//! ScanPolicy: Rego that decides whether a report is compliant.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Rego policy with `package main` and a `deny` set of messages; a non-empty `deny` is a
/// violation. Its `input` is the normalized report, with the active ScanExceptions in
/// `input.exceptions`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "scanning.scangate.dev",
    version = "v1beta1",
    kind = "ScanPolicy",
    namespaced,
    shortname = "scanpol",
    category = "scangate",
    doc = "ScanPolicy is Rego (package main, a deny set of messages) that decides whether a scan report is compliant."
)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicySpec {
    /// The Rego source, v0 or v1 syntax.
    pub rego_file: String,
}
