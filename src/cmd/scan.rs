//! `scangate scan IMAGE` (also `kubectl scangate scan IMAGE`): creates an ImageScan of the image,
//! with the caller's credentials, so the caller's RBAC decides. By default in scangate's
//! namespace (`-n` to change), where a result is trusted: an admin, or whoever the admin grants
//! create on imagescans there (the shipped role `scangate-scan-requester`). The scan is named
//! as a first-sight scan of the image would be, so asking twice, or after the controller's
//! first sight, meets the same scan. This is how an image whose workload was denied, and so
//! never stored or run, gets scanned: the controller makes first-sight scans only of what runs.

use clap::Args;
use kube::api::{Api, PostParams};

use crate::api::{ImageScan, ImageScanSpec, RegistrySpec, ScanSettings};
use crate::image::ImageRef;
use crate::scan::naming::scan_name;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The image to scan (a tag or a digest; normalized as admission does).
    #[arg(env = "SCANGATE_SCAN_IMAGE", value_name = "IMAGE")]
    pub image: String,
    /// The namespace of the ImageScan; scangate's, where results are trusted, by default.
    #[arg(
        short = 'n',
        long,
        env = "SCANGATE_NAMESPACE",
        default_value = "scangate-system"
    )]
    pub namespace: String,
    /// The ScanTemplate (in that namespace) to scan with; the controller's default when unset.
    #[arg(long, env = "SCANGATE_SCAN_TEMPLATE")]
    pub template: Option<String>,
    /// The ScanPolicy (in that namespace) to judge the report by; the config's default when
    /// unset.
    #[arg(long, env = "SCANGATE_SCAN_POLICY")]
    pub policy: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] super::ClusterError),
    #[error("{image:?} is not an image reference: {source}")]
    Image {
        image: String,
        #[source]
        source: crate::image::Error,
    },
    #[error(
        "you may not create imagescans in {namespace} ({reason}); in scangate's namespace an \
         admin grants it (role scangate-scan-requester), in your own namespaces scangate-edit \
         does (a scan there counts for that namespace only)"
    )]
    Refused { namespace: String, reason: String },
    #[error("cannot create the ImageScan {namespace}/{name}: {source}")]
    Create {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ImageScan the command creates.
pub fn image_scan(image: &ImageRef, args: &ScanArgs) -> ImageScan {
    ImageScan {
        metadata: kube::core::ObjectMeta {
            name: Some(scan_name(image)),
            namespace: Some(args.namespace.clone()),
            ..Default::default()
        },
        spec: ImageScanSpec {
            results_from: None,
            registry: RegistrySpec {
                image: image.to_string(),
                image_pull_secret: None,
            },
            scan: ScanSettings {
                scan_template: args.template.clone(),
                scan_policy: args.policy.clone(),
                ..ScanSettings::default()
            },
        },
        status: None,
    }
}

/// Creates the scan; returns what to print.
pub async fn run(args: &ScanArgs) -> Result<String> {
    let image = ImageRef::parse(&args.image).map_err(|source| Error::Image {
        image: args.image.clone(),
        source,
    })?;
    let scan = image_scan(&image, args);
    let name = scan_name(&image);
    let (client, _) = super::cluster_client().await?;
    let api: Api<ImageScan> = Api::namespaced(client, &args.namespace);
    match api.create(&PostParams::default(), &scan).await {
        Ok(_) => Ok(format!(
            "imagescan {}/{name} created for {image}; the controller starts it when a scan slot \
             is free (`kubectl get imagescan -n {} {name}`)\n",
            args.namespace, args.namespace
        )),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(format!(
            "imagescan {}/{name} exists already for {image}; `kubectl scangate rescan -n {} \
             {name}` scans it again\n",
            args.namespace, args.namespace
        )),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(Error::Refused {
            namespace: args.namespace.clone(),
            reason: status.message,
        }),
        Err(source) => Err(Error::Create {
            namespace: args.namespace.clone(),
            name,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(line: &[&str]) -> ScanArgs {
        let all = ["scangate", "scan"].iter().chain(line);
        match Cli::try_parse_from(all).map(|cli| cli.command) {
            Ok(Command::Scan(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_scan_is_named_as_first_sight_would_name_it() {
        let parsed = args(&["nginx:1.27"]);
        assert_eq!(parsed.namespace, "scangate-system");
        let image = ImageRef::parse(&parsed.image).unwrap_or_else(|e| panic!("{e}"));
        let scan = image_scan(&image, &parsed);
        assert_eq!(scan.metadata.name, Some(scan_name(&image)));
        assert_eq!(scan.spec.registry.image, "docker.io/library/nginx:1.27");
        assert_eq!(scan.metadata.labels, None);
        let parsed = args(&[
            "-n",
            "shop",
            "--template",
            "trivy",
            "--policy",
            "strict",
            "nginx:1.27",
        ]);
        let scan = image_scan(&image, &parsed);
        assert_eq!(scan.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(scan.spec.scan.scan_template.as_deref(), Some("trivy"));
        assert_eq!(scan.spec.scan.scan_policy.as_deref(), Some("strict"));
    }
}
