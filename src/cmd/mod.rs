//! The commands besides the webhook and the controller: the offline ones (`check`, `report`,
//! `policy eval`, `certs`, `webhook-config`) read files, `why` and `status` read the
//! cluster, `rescan` and `reevaluate` annotate scans, `scan` creates one, `vex` imports and exports OpenVEX
//! statements; each calls the same pure functions the webhook and the controller use and formats
//! the result; `main` only dispatches.

use std::path::Path;

use crate::policy;

pub mod annotate;
pub mod certs;
pub mod check;
pub mod policy_eval;
pub mod reevaluate;
pub mod report;
pub mod rescan;
pub mod scan;
pub mod status;
pub mod vex;
pub mod webhook_config;
pub mod why;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error(transparent)]
    Report(#[from] crate::report::Error),
    #[error(transparent)]
    Policy(#[from] policy::Error),
    #[error("{path} is a manifest but not a ScanPolicy with spec.regoFile: {cause}")]
    NotAPolicy { path: String, cause: String },
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("--image {image:?} is not an image reference: {source}")]
    ImageFlag {
        image: String,
        source: crate::image::Error,
    },
    #[error(
        "the report is not of --image {image}: {cause}; without --image the report's own name stands, or give the image the scanner read"
    )]
    ImageDisagrees {
        image: String,
        cause: Box<crate::scan::target::Error>,
    },
    #[error(
        "--image {image} pins another digest than the report records ({recorded}): give the digest the scanner read, or the image without a digest"
    )]
    ImageDigest { image: String, recorded: String },
    #[error(
        "the report is for the repository {name:?}, not an image: --image {image} cannot say what it scanned"
    )]
    ImageOfRepository { name: String, image: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a command that reads the cluster could not reach it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cannot find the cluster: {source}; set KUBECONFIG or select a context with a kubeconfig"
    )]
    Kubeconfig {
        #[source]
        source: kube::config::InferConfigError,
    },
    #[error("cannot build a Kubernetes client: {source}")]
    Client {
        #[source]
        source: kube::Error,
    },
}

/// A client for the kubeconfig's current context (or the pod's in-cluster config), and that
/// context's namespace, the default of `-n`.
pub async fn cluster_client() -> Result<(kube::Client, String), ClusterError> {
    let config = kube::Config::infer()
        .await
        .map_err(|source| ClusterError::Kubeconfig { source })?;
    let namespace = config.default_namespace.clone();
    let client =
        kube::Client::try_from(config).map_err(|source| ClusterError::Client { source })?;
    Ok((client, namespace))
}

/// A file's bytes, or standard input's for `-`.
fn read(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = vec![];
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map_err(|cause| {
            Error::Read {
                path: "standard input".into(),
                cause,
            }
        })?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|cause| Error::Read {
        path: path.display().to_string(),
        cause,
    })
}
