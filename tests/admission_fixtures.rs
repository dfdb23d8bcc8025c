//! Real AdmissionReviews captured from kube-apiservers (tests/fixtures/admission/SOURCES.md)
//! decode, and the workload review finds the images a person reading them finds; and the OPA
//! peer of `make bench` decides the bench's reviews as scangate does.

use std::path::Path;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use scangate::admission::config::{AdmissionConfig, Enforcement};
use scangate::admission::pod::{self, WorkloadKind};
use scangate::admission::review::{self, WorkloadOutcome};
use scangate::admission::workload::Context;
use scangate::api::{ImageScan, ImageScanSpec, Phase, RegistrySpec, ScanStatus};
use scangate::index::ScanIndex;
use serde_json::{Value, json};

fn body(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/admission")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read fixture");
    if name.ends_with(".admissionrequest.json") {
        let request: Value = serde_json::from_str(&text).expect("fixture is JSON");
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}))
            .expect("encode")
    } else {
        text.into_bytes()
    }
}

/// Fixture, kind, operation, uid and the images of its pod template, read by hand.
const FIXTURES: [(&str, &str, &str, &str, &[&str]); 10] = [
    (
        "crd-admissionpolicy-create.admissionrequest.json",
        "AdmissionPolicy",
        "CREATE",
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        &[],
    ),
    (
        "cronjob-create.admissionrequest.json",
        "CronJob",
        "CREATE",
        "682d570d-ca11-4752-87e8-26617d394119",
        &["busybox:1.28"],
    ),
    (
        "daemonset-create.admissionrequest.json",
        "DaemonSet",
        "CREATE",
        "18621aa5-c868-4040-9705-d0abb60757f0",
        &["quay.io/fluentd_elasticsearch/fluentd:v2.5.2"],
    ),
    (
        "deployment-create.admissionreview.json",
        "Deployment",
        "CREATE",
        "12345-67890-abcdef",
        &["ghcr.io/nginx/nginx-unprivileged:1.29.0-alpine-perl"],
    ),
    (
        "deployment-update-with-oldobject.admissionrequest.json",
        "Deployment",
        "UPDATE",
        "ab41adeb-eca2-4add-9336-c263895d3953",
        &["nginx:latest"],
    ),
    (
        "job-create.admissionrequest.json",
        "Job",
        "CREATE",
        "3834715c-44ce-4519-a7f8-932e726018b0",
        &["perl:5.34.0"],
    ),
    (
        "pod-create-ephemeral-container.admissionrequest.json",
        "Pod",
        "CREATE",
        "1299d386-525b-4032-98ae-1949f69f9cfc",
        &["alpine", "nginx", "nginx"],
    ),
    (
        "pod-create-privileged.admissionreview.json",
        "Pod",
        "CREATE",
        "1299d386-525b-4032-98ae-1949f69f9cfc",
        &["alpine", "nginx"],
    ),
    (
        "pod-delete-with-oldobject.admissionrequest.json",
        "Pod",
        "DELETE",
        "6230ff1b-7dd7-42af-88d2-fbf9aecde94b",
        &[],
    ),
    (
        "statefulset-create.admissionrequest.json",
        "StatefulSet",
        "CREATE",
        "da5d4560-d427-45b0-aa29-6eeb9bcd2ec4",
        &["registry.k8s.io/nginx-slim:0.8"],
    ),
];

#[test]
fn every_fixture_decodes_with_its_uid_kind_and_operation() {
    for (file, kind, operation, uid, _) in FIXTURES {
        let req = review::decode(&body(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(req.uid, uid, "{file}");
        assert_eq!(req.kind.kind, kind, "{file}");
        assert_eq!(
            serde_json::to_value(&req.operation).ok(),
            Some(json!(operation)),
            "{file}"
        );
    }
}

#[test]
fn workload_fixtures_yield_their_images() {
    for (file, kind, operation, _, images) in FIXTURES {
        let Some(kind) = WorkloadKind::from_kind(kind).filter(|_| operation != "DELETE") else {
            continue;
        };
        let req = review::decode(&body(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let object = req.object_json().expect("object");
        let found: Vec<String> = pod::containers(kind, object)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .into_iter()
            .map(|c| c.image)
            .collect();
        let mut found_sorted = found.clone();
        found_sorted.sort();
        let mut expected: Vec<&str> = images.to_vec();
        expected.sort();
        assert_eq!(found_sorted, expected, "{file}");
    }
}

fn failed_scan(namespace: &str, image: &str) -> ImageScan {
    let mut scan = ImageScan::new(
        "bad",
        ImageScanSpec {
            registry: RegistrySpec {
                image: image.into(),
                image_pull_secret: None,
            },
            results_from: None,
            scan: Default::default(),
        },
    );
    scan.metadata.namespace = Some(namespace.into());
    scan.status = Some(ScanStatus {
        phase: Some(Phase::Failed),
        scanned_at: Some(Time(Timestamp::UNIX_EPOCH)),
        ..ScanStatus::default()
    });
    scan
}

#[test]
fn a_failed_image_in_each_workload_fixture_is_denied() {
    let config = AdmissionConfig::default();
    for (file, kind, operation, uid, images) in FIXTURES {
        let req = review::decode(&body(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let namespace = req.namespace.clone().unwrap_or_default();
        let index = ScanIndex::new(
            &images
                .first()
                .map(|i| failed_scan(&namespace, i))
                .into_iter()
                .collect::<Vec<_>>(),
        );
        let ctx = Context {
            config: &config,
            index: &index,
            exceptions: &[],
            namespace: &namespace,
            enforcement: Enforcement::Enforce,
            now: Timestamp::UNIX_EPOCH,
            pins_tags: true,
        };
        let (response, outcome) = review::review_workload(&req, &ctx);
        assert_eq!(response.uid, uid, "{file}");
        let evaluated = WorkloadKind::from_kind(kind).is_some() && operation == "CREATE";
        if evaluated {
            assert!(!response.allowed, "{file}: {outcome:?}");
            // A tenant namespace's own Failed scan denies there (Trust model, point 3).
            assert!(
                response.result.message.contains("failed namespace scan"),
                "{file}: {}",
                response.result.message
            );
        } else {
            // Deletes, non-workload kinds and updates that keep the images are not re-evaluated.
            assert!(response.allowed, "{file}: {outcome:?}");
            assert!(
                matches!(outcome, WorkloadOutcome::Skipped(_)),
                "{file}: {outcome:?}"
            );
        }
    }
}

// --- the bench's OPA peer decides as scangate does --------------------------------------------

#[path = "../benches/common/admission_data.rs"]
mod admission_data;

/// The rule `make bench` asks the OPA server for (`POST /v1/data/scangate/admission/review`).
const OPA_REVIEW: &str = "data.scangate.admission.review";

/// How many generated scans the peers hold beside the example ones (the bench's 10,000 decide
/// the same: none of them is an image the reviews run).
const PEER_SCANS: u64 = 1_000;

/// scangate's answer to a review as `scangate webhook --scans-dir` gives it: the admission
/// response and each container's action (`allow`, `warn`, `deny`), in pod order.
fn scangate_verdict(
    state: &scangate::server::state::WebhookState,
    body: &[u8],
) -> (bool, usize, Vec<String>) {
    let req = review::decode(body).unwrap_or_else(|e| panic!("{e}"));
    let config = state.config();
    let namespace = req.namespace.clone().unwrap_or_default();
    let exceptions = state.exceptions();
    let index = state.scans();
    let ctx = Context {
        config: &config,
        index: &index,
        exceptions: &exceptions,
        namespace: &namespace,
        enforcement: state.enforcement(&namespace, &config),
        now: Timestamp::now(),
        pins_tags: state.pin_digests(&namespace, &config),
    };
    let (response, outcome) = review::review_workload(&req, &ctx);
    let WorkloadOutcome::Decided(decision) = outcome else {
        panic!("the bench's review was not decided: {outcome:?}")
    };
    let actions = decision
        .verdicts
        .iter()
        .map(|v| serde_json::to_value(v.action).expect("an action encodes"))
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    let warnings = response.warnings.map_or(0, |w| w.len());
    (response.allowed, warnings, actions)
}

/// The OPA peer's answer (benches/opa/admission.rego, evaluated by regorus, an OPA-compatible
/// engine) on the data the bench gives the OPA server.
fn peer_verdict(data: &Value, review: &Value) -> (bool, usize, Vec<String>) {
    let rego = std::fs::read_to_string(admission_data::repo().join(admission_data::OPA_POLICY))
        .expect("read the peer's Rego");
    let mut engine = regorus::Engine::new();
    engine
        .add_policy(admission_data::OPA_POLICY.into(), rego)
        .unwrap_or_else(|e| panic!("the peer's Rego does not compile: {e}"));
    engine
        .add_data(regorus::Value::from(data.clone()))
        .expect("the peer's data loads");
    engine.set_input(regorus::Value::from(review.clone()));
    let eval = |engine: &mut regorus::Engine, rule: &str| -> Value {
        let value = engine
            .eval_rule(rule.into())
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        serde_json::from_str(&value.to_json_str().expect("a result encodes")).expect("JSON")
    };
    let answer = eval(&mut engine, OPA_REVIEW);
    let verdicts = eval(&mut engine, "data.scangate.admission.verdicts");
    let response = &answer["response"];
    assert_eq!(response["uid"], review["request"]["uid"], "{answer}");
    let actions = verdicts
        .as_array()
        .unwrap_or_else(|| panic!("verdicts: {verdicts}"))
        .iter()
        .map(|v| v["action"].as_str().unwrap_or_default().to_string())
        .collect();
    let allowed = response["allowed"]
        .as_bool()
        .unwrap_or_else(|| panic!("no decision: {answer}"));
    let warnings = response["warnings"].as_array().map_or(0, Vec::len);
    (allowed, warnings, actions)
}

#[test]
fn the_bench_opa_peer_decides_the_bench_reviews_as_scangate_does() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    admission_data::write_scans(dir.path(), PEER_SCANS).expect("write the bench's scans");
    // `make bench` runs the webhook without --config: the default admission config.
    let config = AdmissionConfig::default();
    let state = scangate::server::state::WebhookState::new(config.clone());
    scangate::server::sources::load_files(dir.path(), &state).expect("load the bench's scans");
    let data = admission_data::opa_data(dir.path(), &config).expect("the bench's OPA data");
    let (pod, deployment) = admission_data::reviews().expect("the bench's reviews");
    let reviews = [("Pod", pod, false), ("Deployment", deployment, true)];
    for (what, review, admitted) in reviews {
        let body = serde_json::to_vec(&review).expect("encode");
        let ours = scangate_verdict(&state, &body);
        let peer = peer_verdict(&data, &review);
        assert_eq!(
            ours, peer,
            "{what} review: scangate (left) and its OPA peer (right)"
        );
        // What the bench checks before it measures.
        assert_eq!(ours.0, admitted, "{what} review: {ours:?}");
    }
}
