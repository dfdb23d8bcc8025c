//! ScanPolicies: Rego compiled once with regorus, evaluated many times.
//!
//! A ScanPolicy's `regoFile` is Rego v1 or v0 with `package main` and a `deny` set of
//! messages; a non-empty `deny` is a violation. Its `input` is scangate's normalized report
//! (`{artifact, scanner, vulnerabilities, exceptions}`), or, for policies written for the system
//! scangate replaces, that report plus a CycloneDX `bom` view ([`CompatInput`]).
//!
//! - [`CompiledPolicy::compile`] parses (v1, else v0) and prepares a policy once;
//!   [`CompiledPolicy::evaluate`] runs it under a time limit, from any thread.
//! - [`check_contract`] is the admission check: compile, then evaluate on scangate's own
//!   [`empty_report`] and [`sample_report`].
//! - [`DEFAULT_POLICY`] is scangate's own policy.

mod compat;
mod compiled;
mod contract;
mod default;
mod error;
mod outcome;

pub use compat::{CompatInput, bom_view, legacy_severity};
pub use compiled::{
    CompiledPolicy, DEFAULT_TIMEOUT, DENY_RULE, Evaluation, PolicyOptions, Syntax,
    TIMER_CHECK_INTERVAL, source_name,
};
pub use contract::{check_contract, check_contract_with, empty_report, sample_report};
pub use default::{DEFAULT_POLICY, DEFAULT_POLICY_NAME, default_policy};
pub use error::{Error, Result};
pub use outcome::{Outcome, outcome};

#[cfg(test)]
mod tests;
