//! Real AdmissionReviews captured from kube-apiservers (tests/fixtures/admission/SOURCES.md)
//! decode, and the workload review finds the images a person reading them finds.

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
        let object = review::object_json(req.object.as_ref()).expect("object");
        let found: Vec<String> = pod::containers(kind, &object)
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
