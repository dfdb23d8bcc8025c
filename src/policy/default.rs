//! scangate's own default ScanPolicy, also the sample shown to users.
//!
//! The policy (`default.rego`, Rego v1) denies every vulnerability whose severity is in
//! `notAllowedSeverities` (default `critical`, `high`), unless its id is in `ignoreCves` or an
//! exception in `input.exceptions` covers it (an exception without CVEs covers every CVE).
//! One message per violation: `CVE-2021-44228 (critical) in log4j-core 2.13.2, fixed in
//! 2.15.0`.
//!
//! `input.exceptions` must hold only the active exceptions for the artifact: the caller drops
//! expired ones (the policy does not re-check `expires`, which can lie past what Rego's
//! nanosecond time builtins represent, e.g. year 2999).

use super::compiled::{CompiledPolicy, PolicyOptions};
use super::error::Result;

/// The Rego text of the default policy.
pub const DEFAULT_POLICY: &str = include_str!("default.rego");

/// The source name of the default policy in messages.
pub const DEFAULT_POLICY_NAME: &str = "scangate/default.rego";

/// The default policy, compiled.
pub fn default_policy(options: PolicyOptions) -> Result<CompiledPolicy> {
    CompiledPolicy::compile(DEFAULT_POLICY_NAME, DEFAULT_POLICY, options)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::{Syntax, check_contract, empty_report, sample_report};

    fn deny(report: &Value) -> Result<Vec<String>> {
        Ok(default_policy(PolicyOptions::default())?
            .evaluate(report)?
            .deny)
    }

    fn with_exceptions(exceptions: Value) -> Value {
        let mut report = sample_report();
        report["exceptions"] = exceptions;
        report
    }

    fn exception(cves: &[&str], expires: &str) -> Value {
        json!({"images": ["docker.io/library/sample:*"], "cves": cves,
               "reason": "accepted risk", "expires": expires})
    }

    const ALL_DENIED: [&str; 4] = [
        "CVE-2021-44228 (critical) in log4j-core 2.13.2, fixed in 2.15.0",
        "CVE-2021-45046 (critical) in log4j-core 2.13.2, fixed in 2.16.0, 2.12.2",
        "CVE-2022-0778 (high) in libssl1.1 1.1.1k, fixed in 1.1.1n",
        "CVE-2022-0778 (high) in openssl 1.1.1k, fixed in 1.1.1n",
    ];

    #[test]
    fn meets_the_contract_as_rego_v1() -> Result<()> {
        let policy = check_contract(DEFAULT_POLICY_NAME, DEFAULT_POLICY)?;
        assert_eq!(policy.syntax(), Syntax::V1);
        assert!(policy.evaluate(&empty_report())?.is_compliant());
        Ok(())
    }

    #[test]
    fn denies_critical_and_high_with_one_message_per_violation() -> Result<()> {
        assert_eq!(deny(&with_exceptions(json!([])))?, ALL_DENIED);
        Ok(())
    }

    #[test]
    fn message_without_fixed_version() -> Result<()> {
        let report = json!({"vulnerabilities": [{"id": "CVE-1", "severity": "HIGH",
            "package": {"name": "p", "version": "1", "type": "deb"}, "fixedVersions": [], "urls": []}]});
        assert_eq!(deny(&report)?, ["CVE-1 (high) in p 1"]);
        Ok(())
    }

    #[test]
    fn an_exception_without_cves_covers_the_whole_image() -> Result<()> {
        let report = with_exceptions(json!([exception(&[], "2999-01-01T00:00:00Z")]));
        assert!(deny(&report)?.is_empty());
        Ok(())
    }

    #[test]
    fn an_exception_with_cves_covers_only_those() -> Result<()> {
        let report = with_exceptions(json!([
            exception(&["CVE-2022-0778"], "2999-01-01T00:00:00Z"),
            exception(&["CVE-2021-45046"], "2999-01-01T00:00:00Z"),
        ]));
        assert_eq!(deny(&report)?, ALL_DENIED[..1]);
        Ok(())
    }

    #[test]
    fn knobs_at_the_top_change_the_verdict() -> Result<()> {
        let rego = DEFAULT_POLICY
            .replace(
                r#"notAllowedSeverities := ["critical", "high"]"#,
                r#"notAllowedSeverities := ["medium", "unknown"]"#,
            )
            .replace(
                "ignoreCves := []",
                r#"ignoreCves := ["GHSA-jfh8-c2jp-5v3q"]"#,
            );
        let policy = check_contract("team-a/custom.rego", &rego)?;
        assert_eq!(
            policy.evaluate(&sample_report())?.deny,
            ["CVE-2020-8908 (medium) in guava 29.0-jre, fixed in 32.0.0-android"]
        );
        Ok(())
    }
}
