//! `scangate policy eval`: a ScanPolicy evaluated against a report, offline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::report::read_report;
use super::{Error, Result, read};
use crate::api::{Condition, Phase, phase};
use crate::policy::{self, CompatInput, CompiledPolicy, PolicyOptions};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate a policy against a report: exit 0 compliant, 1 violated, 2 error.
    Eval(PolicyEvalArgs),
}

#[derive(Debug, Args)]
pub struct PolicyEvalArgs {
    /// A Rego file, or a ScanPolicy manifest.
    #[arg(long, env = "SCANGATE_POLICY")]
    pub policy: PathBuf,
    /// A scanner's output file or a normalized report.
    #[arg(long, env = "SCANGATE_REPORT")]
    pub report: PathBuf,
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
    let report = read_report(report_path, None)?;
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
