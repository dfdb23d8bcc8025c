//! `scangate report FILE`: a scanner's output normalized, printed or stored for a scan.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Result, read};
use crate::report::{Limits, Report};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The scanner's output file; `-` for standard input.
    #[arg(env = "SCANGATE_REPORT_FILE")]
    pub file: PathBuf,
    /// Store the normalized report in the cluster for scan NAMESPACE/SCAN instead of printing it.
    #[arg(
        long,
        env = "SCANGATE_REPORT_TO_CONFIGMAP",
        value_name = "NAMESPACE/SCAN"
    )]
    pub to_configmap: Option<String>,
}

/// Reads a scanner's output, or a report scangate already normalized.
pub fn read_report(path: &Path) -> Result<Report> {
    let bytes = read(path)?;
    if let Ok(report) = serde_json::from_slice::<Report>(&bytes) {
        return Ok(report);
    }
    let name = path.display().to_string();
    Ok(Report::from_reader(&name, &bytes[..], Limits::default())?)
}

/// `scangate report FILE`: the normalized report as pretty JSON.
pub fn report_json(path: &Path) -> Result<String> {
    Ok(serde_json::to_string_pretty(&read_report(path)?)?)
}
