//! An AdmissionReview body, as the webhook's endpoints receive it: decoded as the workload
//! endpoint decodes it and reviewed as a workload; decoded as the others decode it, then (when it
//! decodes) reviewed as a workload, a scan status write, an exception write and a scanning
//! object, with the default config and an empty index, and every answer encoded. No input may
//! panic; a refusal must encode as well as an answer.

#![no_main]

use jiff::Timestamp;
use kube::core::admission::AdmissionResponse;
use libfuzzer_sys::fuzz_target;
use scangate::admission::config::{AdmissionConfig, Enforcement};
use scangate::admission::request::{Answer, Request};
use scangate::admission::review;
use scangate::admission::scanning::{self, JobRights, Names, Verdict};
use scangate::admission::workload::Context;
use scangate::index::ScanIndex;

/// A cluster in which every named template and policy exists.
struct Everything;

impl Names for Everything {
    fn template_exists(&self, _namespace: &str, _name: &str) -> bool {
        true
    }
    fn policy_exists(&self, _namespace: &str, _name: &str) -> bool {
        true
    }
}

/// A fixed time, so that a crash reproduces.
fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Encodes an answer as the webhook does.
fn encode(response: AdmissionResponse) {
    let _ = serde_json::to_vec(&Answer::of(&response));
}

/// Reviews a request as a workload and encodes the answer.
fn review_workload(req: &Request, enforcement: Enforcement) {
    let config = AdmissionConfig::default();
    let index = ScanIndex::default();
    let namespace = req.namespace.clone().unwrap_or_default();
    let ctx = Context {
        config: &config,
        index: &index,
        exceptions: &[],
        namespace: &namespace,
        enforcement,
        now: now(),
        pins_tags: config.pins_tags(enforcement, None),
    };
    let (response, outcome) = review::review_workload(req, &ctx);
    let _ = outcome.verdict_label();
    encode(response);
}

fn review_all(req: &Request, enforcement: Enforcement) {
    review_workload(req, enforcement);
    let config = AdmissionConfig::default();
    let namespace = req.namespace.clone().unwrap_or_default();

    // Once as someone else, once as the controller itself, so the status is enriched.
    encode(review::review_status(
        req,
        &config.controller_username,
        now(),
    ));
    let writer = req.user_info.username.clone().unwrap_or_default();
    encode(review::review_status(req, &writer, now()));

    encode(review::review_exception_write(req, &config, now()));

    if let Some(object) = req.object_json() {
        let name = object
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(&req.name)
            .to_string();
        let job_rights = JobRights::Allowed;
        let ctx = scanning::Context {
            config: &config,
            names: &Everything,
            namespace: &namespace,
            now: now(),
            policy_check: Some(Ok(())),
            job_rights: &job_rights,
        };
        match scanning::review(&req.kind.kind, &name, object, &ctx) {
            Verdict::Allowed { warnings } => drop(warnings),
            Verdict::Denied(message) => encode(req.deny(message)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let enforcement = match data.len() % 3 {
        0 => Enforcement::Enforce,
        1 => Enforcement::Warn,
        _ => Enforcement::Audit,
    };
    // The workload endpoint's decode, which leaves a create's objects unbuilt.
    if let Ok(req) = review::decode_workload(data) {
        review_workload(&req, enforcement);
    }
    match review::decode(data) {
        Ok(req) => review_all(&req, enforcement),
        Err(rejection) => {
            let _ = rejection.to_string();
            let _ = serde_json::to_vec(&rejection.into_review());
        }
    }
});
