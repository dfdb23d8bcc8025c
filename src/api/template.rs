//! ScanTemplate: the pod that runs a scanner.

use k8s_openapi::api::core::v1::PodSpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The pod a scan Job runs. The controller passes the target as environment variables
/// (`SCAN_IMAGE`, `SCAN_GIT_URL`, `SCAN_GIT_REVISION`, `SCAN_BLOB_URL`, `SCAN_NAME`,
/// `SCAN_NAMESPACE`); the last container runs `scangate report` to store the report.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "scanning.scangate.dev",
    version = "v1beta1",
    kind = "ScanTemplate",
    namespaced,
    shortname = "scantpl",
    category = "scangate",
    doc = "ScanTemplate is the pod a scan Job runs: the scanner, and `scangate report` to store its output."
)]
#[serde(rename_all = "camelCase")]
pub struct ScanTemplateSpec {
    /// A core/v1 PodSpec. It is validated as one by the admission webhook; the CRD keeps it
    /// schemaless so that it stays small enough for client-side `kubectl apply`.
    #[schemars(schema_with = "pod_spec_schema")]
    pub template: PodSpec,
}

fn pod_spec_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "A core/v1 PodSpec for the scanner pod.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
