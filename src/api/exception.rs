//! ScanException: a reviewed, expiring permission to run an image despite its CVEs.
// clippy reads the repeated `printcolumn(type_ = …)` arguments of the derive as duplicated
// attributes; they are separate columns.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Admits images matching `images` despite the listed CVEs (or despite all, when `cves` is
/// empty) until `expires`. Active exceptions are given to the policy as `input.exceptions` and
/// are honoured by admission; an expired one does nothing.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "scanning.scangate.dev",
    version = "v1beta1",
    kind = "ScanException",
    namespaced,
    shortname = "scanex",
    category = "scangate",
    doc = "ScanException admits matching images despite the listed CVEs until it expires.",
    printcolumn(name = "Expires", type_ = "date", json_path = ".spec.expires"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".spec.reason"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScanExceptionSpec {
    /// Image reference patterns: `registry/repo:tag`, `registry/repo@sha256:…`, or with a
    /// trailing `*` (`ghcr.io/org/*`).
    pub images: Vec<String>,
    /// CVE ids; empty means every CVE of the matching images.
    #[serde(default)]
    pub cves: Vec<String>,
    /// Why the exception was granted, and by whom.
    pub reason: String,
    /// When the exception stops applying (RFC 3339). Bounded by the admin's configured maximum.
    pub expires: Time,
}
