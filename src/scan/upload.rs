//! `scangate report FILE --to-configmap NAMESPACE/SCAN`: stores a normalized report as the
//! scan's report ConfigMap, owned by the scan, with server-side apply. A report for another
//! image or repository than the scan's is refused before it is stored (the controller refuses
//! it too, whoever stores it).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::kinds::ScanKind;
use super::{Error, Result};
use crate::api::{ImageScan, SourceScan};
use crate::report::{Report, ScanRef, to_config_map};

/// The field manager of report uploads.
pub const FIELD_MANAGER: &str = "scangate-report";

/// Splits `NAMESPACE/SCAN`.
pub fn parse_target(target: &str) -> Result<(String, String)> {
    match target.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(Error::Target(target.to_string())),
    }
}

/// Finds the ImageScan, else the SourceScan, named `name` in `namespace`, and checks that
/// `report` is for what it scans.
pub async fn find_scan(
    client: &Client,
    namespace: &str,
    name: &str,
    report: &Report,
) -> Result<ScanRef> {
    let reference = |api_version: String, kind: String, uid: Option<String>| ScanRef {
        api_version,
        kind,
        name: name.to_string(),
        namespace: namespace.to_string(),
        uid: uid.unwrap_or_default(),
    };
    let checked = |outcome: std::result::Result<(), super::target::Error>| {
        outcome.map_err(|cause| Error::WrongTarget {
            cause: Box::new(cause),
            scan: format!("{namespace}/{name}"),
        })
    };
    let images: Api<ImageScan> = Api::namespaced(client.clone(), namespace);
    if let Some(scan) = images.get_opt(name).await? {
        checked(scan.check_report(report))?;
        return Ok(reference(
            ImageScan::api_version(&()).into_owned(),
            ImageScan::kind(&()).into_owned(),
            scan.uid(),
        ));
    }
    let sources: Api<SourceScan> = Api::namespaced(client.clone(), namespace);
    if let Some(scan) = sources.get_opt(name).await? {
        checked(scan.check_report(report))?;
        return Ok(reference(
            SourceScan::api_version(&()).into_owned(),
            SourceScan::kind(&()).into_owned(),
            scan.uid(),
        ));
    }
    Err(Error::ScanNotFound {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// Stores `report` for the scan `target` (`NAMESPACE/SCAN`); returns the ConfigMap's name.
pub async fn upload(client: &Client, report: &Report, target: &str) -> Result<String> {
    let (namespace, name) = parse_target(target)?;
    let scan = find_scan(client, &namespace, &name, report).await?;
    let config_map = to_config_map(report, &scan)?;
    let cm_name = config_map.name_any();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    api.patch(
        &cm_name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&config_map),
    )
    .await?;
    Ok(format!("{namespace}/{cm_name}"))
}

/// [`upload`] with a client from the environment (in-cluster config or KUBECONFIG).
pub async fn upload_to_cluster(report: &Report, target: &str) -> Result<String> {
    parse_target(target)?;
    let client = Client::try_default().await.map_err(Error::Connect)?;
    upload(&client, report, target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_namespace_slash_scan() {
        assert_eq!(
            parse_target("apps/busybox").ok(),
            Some(("apps".into(), "busybox".into()))
        );
        for bad in ["busybox", "/busybox", "apps/", "a/b/c", ""] {
            let error = parse_target(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("is not NAMESPACE/SCAN"), "{bad}: {error}");
        }
    }
}
