//! The offline commands `scangate report` (printing) and `scangate policy eval`: read files,
//! call the pure engine, format the result.

use std::fmt::Write as _;
use std::path::Path;

use crate::api::{Condition, Phase, phase};
use crate::policy::{self, CompatInput, CompiledPolicy, PolicyOptions};
use crate::report::{Limits, Report};

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

/// Reads Rego, or the `spec.regoFile` of a ScanPolicy manifest.
fn read_policy(path: &Path) -> Result<(String, String)> {
    let bytes = read(path)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy".into());
    let looks_like_manifest =
        text.lines().any(|l| l.trim_start().starts_with("kind:")) && text.contains("ScanPolicy");
    if !looks_like_manifest {
        return Ok((format!("{name}.rego"), text));
    }
    let policy: crate::api::ScanPolicy =
        serde_yaml::from_str(&text).map_err(|e| Error::NotAPolicy {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
    let name = policy.metadata.name.unwrap_or(name);
    Ok((format!("{name}.rego"), policy.spec.rego_file))
}

/// What `policy eval` found.
pub struct PolicyEval {
    pub text: String,
    pub phase: Phase,
}

/// `scangate policy eval`: the deny messages, the counts and the phase the scan would get.
pub fn policy_eval(policy_path: &Path, report_path: &Path) -> Result<PolicyEval> {
    let (name, rego) = read_policy(policy_path)?;
    let options = PolicyOptions::default().with_input(CompatInput::detect(&rego));
    let compiled = CompiledPolicy::compile(&name, &rego, options)?;
    let report = read_report(report_path)?;
    let input = serde_json::to_value(&report)?;
    let outcome = policy::outcome(&report, compiled.evaluate(&input));
    let conditions = [
        Condition::job_finished(),
        Condition::succeeded("Report read"),
        outcome.condition.clone(),
    ];
    let phase = phase(&conditions);
    let counts = report.cve_count();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "report: {} {} scanned by {} {}",
        report.artifact.name,
        report.artifact.digest.as_deref().unwrap_or(""),
        report.scanner.name,
        report.scanner.version
    );
    let _ = writeln!(
        text,
        "CVEs: critical {} high {} medium {} low {} unknown {} total {}",
        counts.critical, counts.high, counts.medium, counts.low, counts.unknown, counts.total
    );
    for message in &outcome.deny {
        let _ = writeln!(text, "deny: {message}");
    }
    let c = &outcome.condition;
    let _ = writeln!(
        text,
        "PolicySucceeded={} {}: {}{}",
        c.status,
        c.reason,
        c.message,
        c.error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    let _ = writeln!(text, "phase: {phase}");
    Ok(PolicyEval { text, phase })
}
