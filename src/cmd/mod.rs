//! The commands besides the webhook and the controller: the offline ones (`check`, `report`,
//! `policy eval`, `certs`, `webhook-config`) read files, `why` and `status` read the
//! cluster, `rescan` annotates a scan; each calls the same pure functions the webhook and the controller use and formats
//! the result; `main` only dispatches.

use std::path::Path;

use crate::policy;

pub mod certs;
pub mod check;
pub mod policy_eval;
pub mod report;
pub mod rescan;
pub mod status;
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
