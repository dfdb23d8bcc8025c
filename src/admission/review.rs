//! AdmissionReview in and out: decoding a body into a request (or a clear refusal), and the
//! pure reviews of workloads and scan status. The server decodes, calls one of these, encodes.

use jiff::Timestamp;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::{Value, json};

use super::config::Action;
use super::status;
use super::workload::{self, Container, Context, Decision};

/// The API version of the AdmissionReviews scangate answers.
const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// A body that is not an AdmissionReview scangate can answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    /// The review has a uid, so the apiserver can match a refusal to it.
    #[error("{message}")]
    Identified { uid: String, message: String },
    /// Nothing in the body identifies a review.
    #[error("{0}")]
    Unidentified(String),
}

impl Rejection {
    /// The AdmissionReview answering the rejected body: denied, with the reason.
    pub fn into_review(self) -> AdmissionReview<DynamicObject> {
        let (uid, message) = match self {
            Rejection::Identified { uid, message } => (uid, message),
            Rejection::Unidentified(message) => (String::new(), message),
        };
        let mut response = AdmissionResponse::invalid(message);
        response.uid = uid;
        response.into_review()
    }
}

/// Decodes an AdmissionReview body.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Rejection> {
    // The apiserver's reviews parse straight into the typed request; anything else goes the
    // slow way, which says what is wrong.
    if let Ok(review) = serde_json::from_slice::<AdmissionReview<DynamicObject>>(body)
        && review.types.kind == "AdmissionReview"
        && review.types.api_version == REVIEW_API_VERSION
        && review.request.as_ref().is_some_and(|r| !r.uid.is_empty())
        && let Ok(request) = review.try_into()
    {
        return Ok(request);
    }
    diagnose(body)
}

/// Decodes a body that is not a plain AdmissionReview, saying what is wrong with it.
fn diagnose(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Rejection> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Rejection::Unidentified(format!(
            "request body is not JSON ({e}); scangate expects an admission.k8s.io/v1 AdmissionReview"
        ))
    })?;
    let uid = value
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .filter(|uid| !uid.is_empty())
        .map(str::to_string);
    let reject = |message: String| match &uid {
        Some(uid) => Rejection::Identified {
            uid: uid.clone(),
            message,
        },
        None => Rejection::Unidentified(message),
    };
    if value.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err(reject(
            "request body is not an AdmissionReview (kind must be AdmissionReview)".into(),
        ));
    }
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    if api_version != Some(REVIEW_API_VERSION) {
        return Err(reject(format!(
            "AdmissionReview apiVersion {} is not supported; configure the webhook with admissionReviewVersions: [v1]",
            api_version.unwrap_or("(missing)")
        )));
    }
    if uid.is_none() {
        return Err(reject(
            "AdmissionReview has no request.uid; the apiserver always sends one".into(),
        ));
    }
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(value)
        .map_err(|e| reject(format!("AdmissionReview request is not valid: {e}")))?;
    review
        .try_into()
        .map_err(|_| reject("AdmissionReview has no request".into()))
}

/// The request's `object` (or `oldObject`) as JSON.
pub fn object_json(object: Option<&DynamicObject>) -> Option<Value> {
    object.and_then(|o| serde_json::to_value(o).ok())
}

/// The object's name, or its generateName prefix (a Pod of a ReplicaSet has no name yet).
fn display_name(object: &DynamicObject) -> String {
    object
        .metadata
        .name
        .clone()
        .or_else(|| object.metadata.generate_name.clone())
        .unwrap_or_default()
}

/// Denies with a message, keeping uid and types.
pub fn deny(req: &AdmissionRequest<DynamicObject>, message: impl ToString) -> AdmissionResponse {
    AdmissionResponse::from(req).deny(message)
}

/// What the workload review found, for logs and metrics.
#[derive(Debug, PartialEq)]
pub enum WorkloadOutcome {
    /// Not evaluated: a delete, or an update that does not change images.
    Skipped(&'static str),
    /// The object could not be read as a workload.
    Malformed,
    Decided(Decision),
}

impl WorkloadOutcome {
    /// The verdict label for metrics: `allow`, `warn`, `deny`, `skip` or `error`.
    pub fn verdict_label(&self) -> &'static str {
        match self {
            WorkloadOutcome::Skipped(_) => "skip",
            WorkloadOutcome::Malformed => "error",
            WorkloadOutcome::Decided(d) => match d.verdict() {
                Action::Allow => "allow",
                Action::Warn => "warn",
                Action::Deny => "deny",
            },
        }
    }
}

/// Reviews a workload request: only containers whose image is new (on create, all of them) are
/// decided, so scaling or relabelling a running workload, or adding an ephemeral debug
/// container with an allowed image, never re-evaluates images already admitted.
pub fn review_workload(
    req: &AdmissionRequest<DynamicObject>,
    ctx: &Context<'_>,
) -> (AdmissionResponse, WorkloadOutcome) {
    let kind = req.kind.kind.as_str();
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return (
            AdmissionResponse::from(req),
            WorkloadOutcome::Skipped("not a create or update"),
        );
    }
    if workload::pod_spec_path(kind).is_none() {
        return (
            AdmissionResponse::from(req),
            WorkloadOutcome::Skipped("not a workload kind"),
        );
    }
    // The object's `data` holds its `spec`: no need to encode it back to JSON.
    let Some(object) = req.object.as_ref() else {
        return (
            deny(req, format!("{kind} request has no object to check")),
            WorkloadOutcome::Malformed,
        );
    };
    let containers = match workload::containers_named(kind, &display_name(object), &object.data) {
        Ok(c) => c,
        Err(e) => return (deny(req, e), WorkloadOutcome::Malformed),
    };
    let old_images: Vec<String> = req
        .old_object
        .as_ref()
        .and_then(|old| workload::containers_named(kind, &display_name(old), &old.data).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.image)
        .collect();
    let new: Vec<Container> = containers
        .into_iter()
        .filter(|c| !old_images.contains(&c.image))
        .collect();
    if new.is_empty() {
        return (
            AdmissionResponse::from(req),
            WorkloadOutcome::Skipped("no new images"),
        );
    }
    let decision = workload::decide(ctx, &new);
    let mut response = AdmissionResponse::from(req);
    if !decision.warnings.is_empty() {
        response.warnings = Some(decision.warnings.clone());
    }
    if let Some(message) = &decision.message {
        response = response.deny(message);
    }
    (response, WorkloadOutcome::Decided(decision))
}

/// Reviews a write of a scan's `status` subresource: answers with a JSONPatch that sets the
/// enriched status, or a denial saying what is inconsistent.
pub fn review_status(req: &AdmissionRequest<DynamicObject>, now: Timestamp) -> AdmissionResponse {
    let Some(object) = object_json(req.object.as_ref()) else {
        return deny(req, "status request has no object");
    };
    let old = object_json(req.old_object.as_ref());
    let new_status = object.get("status").cloned().unwrap_or_else(|| json!({}));
    let old_status = old.as_ref().and_then(|o| o.get("status"));
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let enriched = match status::enrich(old_status, &new_status, generation, now) {
        Ok(s) => s,
        Err(e) => return deny(req, e),
    };
    let enriched = match serde_json::to_value(&enriched) {
        Ok(v) => v,
        Err(e) => return deny(req, format!("cannot encode the enriched status: {e}")),
    };
    let before = json!({ "status": object.get("status").cloned().unwrap_or(Value::Null) });
    let after = json!({ "status": enriched });
    let patch = json_patch::diff(&before, &after);
    match AdmissionResponse::from(req).with_patch(patch) {
        Ok(r) => r,
        Err(e) => deny(req, format!("cannot encode the status patch: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::{AdmissionConfig, Enforcement};
    use crate::index::ScanIndex;

    fn review(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request
        }))
        .unwrap_or_default()
    }

    fn pod_request(operation: &str, images: &[&str], old_images: Option<&[&str]>) -> Value {
        let pod = |images: &[&str]| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                   "spec": {"containers": images.iter().enumerate()
                        .map(|(i, im)| json!({"name": format!("c{i}"), "image": im})).collect::<Vec<_>>()}})
        };
        json!({
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p", "namespace": "ns", "operation": operation,
            "userInfo": {"username": "alice"},
            "object": pod(images),
            "oldObject": old_images.map(pod),
        })
    }

    fn decoded(body: &[u8]) -> AdmissionRequest<DynamicObject> {
        decode(body).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn undecodable_bodies_are_refused_clearly() {
        let not_json = decode(b"{oops").err();
        assert!(
            matches!(&not_json, Some(Rejection::Unidentified(m)) if m.contains("not JSON")),
            "{not_json:?}"
        );
        let wrong_kind = decode(br#"{"kind": "Pod", "request": {"uid": "x"}}"#).err();
        assert_eq!(
            wrong_kind,
            Some(Rejection::Identified {
                uid: "x".into(),
                message: "request body is not an AdmissionReview (kind must be AdmissionReview)"
                    .into()
            })
        );
        let v1beta1 = decode(br#"{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "x"}}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            v1beta1.contains("admissionReviewVersions: [v1]"),
            "{v1beta1}"
        );
        let no_uid = decode(
            br#"{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}"#,
        )
        .err();
        assert!(matches!(no_uid, Some(Rejection::Unidentified(_))));
        let broken = decode(br#"{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": "x", "operation": "EXPLODE"}}"#).err();
        assert!(
            matches!(&broken, Some(Rejection::Identified { uid, message }) if uid == "x" && message.contains("not valid")),
            "{broken:?}"
        );
        // A refusal is still an AdmissionReview with the uid.
        let review = serde_json::to_value(broken.map(Rejection::into_review)).unwrap_or_default();
        assert_eq!(review["response"]["uid"], "x");
        assert_eq!(review["response"]["allowed"], false);
        assert_eq!(review["kind"], "AdmissionReview");
    }

    fn ctx<'a>(config: &'a AdmissionConfig, index: &'a ScanIndex) -> Context<'a> {
        Context {
            config,
            index,
            exceptions: &[],
            namespace: "ns",
            enforcement: Enforcement::Enforce,
            now: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn updates_only_decide_new_images() {
        let config = AdmissionConfig {
            on_unscanned: Action::Deny,
            ..AdmissionConfig::default()
        };
        let index = ScanIndex::default();
        let same = decoded(&review(pod_request("UPDATE", &["a:1"], Some(&["a:1"]))));
        let (response, outcome) = review_workload(&same, &ctx(&config, &index));
        assert!(response.allowed);
        assert_eq!(outcome, WorkloadOutcome::Skipped("no new images"));
        let changed = decoded(&review(pod_request(
            "UPDATE",
            &["a:1", "b:1"],
            Some(&["a:1"]),
        )));
        let (response, outcome) = review_workload(&changed, &ctx(&config, &index));
        assert!(!response.allowed);
        match outcome {
            WorkloadOutcome::Decided(d) => {
                assert_eq!(d.verdicts.len(), 1);
                assert_eq!(d.verdicts[0].container, "c1");
            }
            other => panic!("{other:?}"),
        }
        let create = decoded(&review(pod_request("CREATE", &["a:1"], None)));
        let (response, _) = review_workload(&create, &ctx(&config, &index));
        assert!(!response.allowed);
        assert_eq!(response.uid, "u-1");
    }

    #[test]
    fn ephemeral_containers_and_image_volumes_are_decided() {
        let config = AdmissionConfig {
            on_unscanned: Action::Deny,
            ..AdmissionConfig::default()
        };
        let index = ScanIndex::default();
        let pod = |spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": spec});
        let running = json!({"containers": [{"name": "app", "image": "a:1"}]});
        let debugged = json!({"containers": [{"name": "app", "image": "a:1"}],
                              "ephemeralContainers": [{"name": "debugger", "image": "busybox:1.32.1"}]});
        // What `kubectl debug` sends: the Pod, through the ephemeralcontainers subresource.
        let debug = decoded(&review(json!({
            "uid": "u-4",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "ephemeralcontainers",
            "name": "p", "namespace": "ns", "operation": "UPDATE",
            "userInfo": {"username": "alice"},
            "object": pod(debugged), "oldObject": pod(running),
        })));
        let (response, _) = review_workload(&debug, &ctx(&config, &index));
        assert!(!response.allowed);
        let message = response.result.message;
        assert!(
            message.contains(
                "ephemeral container \"debugger\": image docker.io/library/busybox:1.32.1"
            ),
            "{message}"
        );
        let volume = decoded(&review(json!({
            "uid": "u-5",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p", "namespace": "ns", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": pod(json!({"containers": [{"name": "app", "image": "a:1"}],
                                 "volumes": [{"name": "v", "image": {"reference": "docker.io/library/busybox:1.32.1"}}]})),
        })));
        let (response, _) = review_workload(&volume, &ctx(&config, &index));
        assert!(!response.allowed);
        assert!(
            response
                .result
                .message
                .contains("image volume \"v\": image docker.io/library/busybox:1.32.1"),
            "{}",
            response.result.message
        );
    }

    #[test]
    fn warnings_are_admission_warnings() {
        let config = AdmissionConfig::default();
        let index = ScanIndex::default();
        let create = decoded(&review(pod_request("CREATE", &["a:1"], None)));
        let (response, outcome) = review_workload(&create, &ctx(&config, &index));
        assert!(response.allowed);
        assert_eq!(outcome.verdict_label(), "warn");
        let warnings = response.warnings.unwrap_or_default();
        assert!(
            warnings[0].contains("has no scan in namespace ns"),
            "{warnings:?}"
        );
    }

    #[test]
    fn status_writes_come_back_enriched() {
        let scan = |status: Value| {
            json!({"apiVersion": "scanning.scangate.dev/v1beta1", "kind": "ImageScan",
                   "metadata": {"name": "s", "namespace": "ns", "generation": 2},
                   "spec": {"registry": {"image": "nginx"}}, "status": status})
        };
        let status = json!({"conditions": [
            {"type": "Scanning", "status": "False", "reason": "JobFinished", "message": "The scan job terminated"},
            {"type": "Succeeded", "status": "True", "reason": "JobFinished", "message": "Complete"}],
            "cveCount": {"critical": 1, "high": 2}});
        let body = review(json!({
            "uid": "u-2",
            "kind": {"group": "scanning.scangate.dev", "version": "v1beta1", "kind": "ImageScan"},
            "resource": {"group": "scanning.scangate.dev", "version": "v1beta1", "resource": "imagescans"},
            "subResource": "status",
            "name": "s", "namespace": "ns", "operation": "UPDATE", "userInfo": {"username": "ci"},
            "object": scan(status.clone()), "oldObject": scan(json!({}))
        }));
        let response = review_status(
            &decoded(&body),
            "2026-01-01T00:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
        );
        assert!(response.allowed, "{response:?}");
        let patch: json_patch::Patch =
            serde_json::from_slice(&response.patch.clone().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        let mut object = json!({"status": status});
        json_patch::patch(&mut object, &patch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(object["status"]["phase"], "Completed");
        assert_eq!(object["status"]["cveCount"]["total"], 3);
        assert_eq!(
            object["status"]["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(object["status"]["conditions"][0]["observedGeneration"], 2);
    }

    #[test]
    fn inconsistent_status_is_denied_with_the_reason() {
        let body = review(json!({
            "uid": "u-3",
            "kind": {"group": "scanning.scangate.dev", "version": "v1beta1", "kind": "ImageScan"},
            "resource": {"group": "scanning.scangate.dev", "version": "v1beta1", "resource": "imagescans"},
            "subResource": "status", "name": "s", "namespace": "ns", "operation": "UPDATE",
            "userInfo": {"username": "ci"},
            "object": {"apiVersion": "scanning.scangate.dev/v1beta1", "kind": "ImageScan",
                       "metadata": {"name": "s"}, "status": {"cveCount": {"high": -2}}}
        }));
        let response = review_status(&decoded(&body), Timestamp::UNIX_EPOCH);
        assert!(!response.allowed);
        assert!(
            response
                .result
                .message
                .contains("status.cveCount.high is -2")
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                "\\PC{0,12}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        const PATHS: [&str; 8] = [
            "/request/object",
            "/request/object/spec",
            "/request/object/spec/containers",
            "/request/object/spec/containers/0",
            "/request/object/spec/containers/0/image",
            "/request/kind",
            "/request/operation",
            "/request/oldObject",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = decode(&bytes);
            }

            #[test]
            fn mutated_reviews_are_answered(path in 0..PATHS.len(), value in json_value()) {
                let mut review_json = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "request": pod_request("CREATE", &["a:1"], Some(&["b:1"]))});
                if let Some(slot) = review_json.pointer_mut(PATHS[path]) {
                    *slot = value;
                }
                let body = serde_json::to_vec(&review_json).unwrap_or_default();
                match decode(&body) {
                    Ok(req) => {
                        let config = AdmissionConfig::default();
                        let index = ScanIndex::default();
                        let (response, _) = review_workload(&req, &ctx(&config, &index));
                        prop_assert_eq!(response.uid, "u-1");
                        let _ = review_status(&req, Timestamp::UNIX_EPOCH);
                    }
                    Err(rejection) => {
                        let answer = serde_json::to_value(rejection.into_review()).unwrap_or_default();
                        prop_assert_eq!(&answer["response"]["allowed"], &json!(false));
                    }
                }
            }
        }
    }
}
