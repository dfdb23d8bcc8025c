//! What becomes a ScanPolicy's `input`, and the policy worker's pipe, with fixed policies only
//! (arbitrary Rego runs in a worker process with OS limits, never in here):
//! - a scanner report, read and normalized, then shaped for each [`CompatInput`] and evaluated
//!   by scangate's default policy (normalized input) and by the legacy-shape test policy
//!   (`input.bom`), and turned into a policy outcome;
//! - any JSON value as the report (the worker receives `report` as JSON), shaped and evaluated
//!   the same way;
//! - the bytes as a worker request (`scangate policy-worker` stdin) and as a worker's answer
//!   (its stdout, read by the parent).
//!
//! No input may panic.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scangate::policy::{
    self, CompatInput, CompiledPolicy, PolicyOptions, bom_view, default_policy,
};
use scangate::report::{Limits, Report};
use scangate::sandbox::protocol::{self, Ended, Finished, Request};
use serde_json::Value;

/// A policy written for the system scangate replaces: it reads `input.bom`.
const LEGACY_SHAPE: &str = include_str!("../../tests/fixtures/policies/legacy-shape-regorus.rego");

/// The default policy (normalized input) and the legacy-shape one (bom view), compiled once.
fn policies() -> &'static [CompiledPolicy] {
    static POLICIES: OnceLock<Vec<CompiledPolicy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let legacy = CompiledPolicy::compile(
            "legacy-shape.rego",
            LEGACY_SHAPE,
            PolicyOptions::default().with_input(CompatInput::detect(LEGACY_SHAPE)),
        );
        [default_policy(PolicyOptions::default()), legacy]
            .into_iter()
            .map(|compiled| compiled.unwrap_or_else(|e| panic!("a fixed policy compiles: {e}")))
            .collect()
    })
}

/// Shapes `report` for every input kind and evaluates it with every fixed policy.
fn evaluate_all(report: &Value) {
    for input in [CompatInput::Normalized, CompatInput::CycloneDxBom] {
        let _ = serde_json::to_vec(input.input_for(report).as_ref());
    }
    let _ = bom_view(report);
    for policy in policies() {
        if let Err(error) = policy.evaluate(report) {
            let _ = error.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = Report::from_reader("fuzz", data, Limits::default()) {
        if let Ok(input) = serde_json::to_value(&report) {
            evaluate_all(&input);
            for policy in policies() {
                let _ = policy::outcome(&report, policy.evaluate(&input));
            }
        }
    } else if let Ok(value) = serde_json::from_slice::<Value>(data) {
        evaluate_all(&value);
    }

    if let Ok(Request::Evaluate { input, report, .. }) = serde_json::from_slice::<Request>(data) {
        let _ = serde_json::to_vec(input.input_for(&report).as_ref());
    }
    let finished = Finished {
        ended: Ended::Exited(0),
        stdout: data.to_vec(),
        stdout_overflowed: false,
        stderr: Vec::new(),
    };
    if let Err(error) = protocol::read(
        &finished,
        "fuzz.rego",
        &scangate::sandbox::Limits::default(),
    ) {
        let _ = error.to_string();
    }
});
