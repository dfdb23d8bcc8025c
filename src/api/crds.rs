//! The CustomResourceDefinitions, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{DeniedDigests, ImageScan, ScanException, ScanPolicy, ScanTemplate, SourceScan};

/// Every CRD scangate installs, in a stable order.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        ImageScan::crd(),
        SourceScan::crd(),
        ScanTemplate::crd(),
        ScanPolicy::crd(),
        ScanException::crd(),
        DeniedDigests::crd(),
    ]
}

/// All CRDs as one multi-document YAML stream, as `scangate crds` prints it.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
