//! DeniedDigests: one shard of the verdict mirror's parameters (written by scangate's
//! controller in its own namespace; read by the apiserver's ValidatingAdmissionPolicy).
//!
//! A CRD rather than ConfigMaps: typed, so no tenant object can pass for one, and the
//! apiserver keeps the parameter informers of custom kinds running when bindings come and go
//! (its ConfigMap parameter informer can stop for good when the last binding that names
//! ConfigMaps is removed, kubernetes/kubernetes#130887).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Digests that trusted results deny, with the trusted scan that denies each, and the
/// namespaces where an approver's exception lifts a denial.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "scanning.scangate.dev",
    version = "v1beta1",
    kind = "DeniedDigests",
    namespaced,
    plural = "denieddigests",
    shortname = "denied",
    category = "scangate",
    doc = "DeniedDigests is one shard of scangate's verdict mirror: the digests trusted results deny, read by the apiserver's ValidatingAdmissionPolicy. Written by scangate's controller only."
)]
#[serde(rename_all = "camelCase")]
pub struct DeniedDigestsSpec {
    /// `sha256:…` to the trusted scan (`namespace/name`) whose result denies it.
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
    /// `namespace/sha256:…`: the denial of that digest is lifted in that namespace by an
    /// approver's exception (the value names it).
    #[serde(default)]
    pub exempt: BTreeMap<String, String>,
}
