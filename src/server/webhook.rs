//! The HTTPS admission endpoints. Each handler reads the body (bounded), decodes it, calls a
//! pure review from `admission`, and encodes the answer: always an AdmissionReview.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};
use tracing::{Instrument, Span, field};

use super::metrics::{Endpoint, EndpointLabels, KindLabel, RequestLabels};
use super::state::WebhookState;
use crate::admission::config::AdmissionConfig;
use crate::admission::reporter::{PodClaim, ScanPod};
use crate::admission::request::{Answer, Request};
use crate::admission::review::{self, Rejection, ScanningOutcome};
use crate::admission::scanning::{self, JobRights};
use crate::admission::workload::Context;
use crate::sandbox::Sandbox;

/// Shared with every handler.
#[derive(Clone)]
pub struct AppState {
    pub state: Arc<WebhookState>,
    /// The largest body read; larger ones are refused with a clear error.
    pub max_body_bytes: usize,
    /// The cluster, to ask whether a ScanTemplate's writer may create Jobs; `None` when the
    /// webhook runs without one (`--scans-dir`), and the question is not asked.
    pub client: Option<kube::Client>,
    /// Where ScanPolicy Rego is checked: worker processes, off the async runtime.
    pub policies: Arc<Sandbox>,
}

/// How long the apiserver may take to say whether a ScanTemplate's writer may create Jobs.
const ACCESS_REVIEW_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/validate/workloads", post(validate_workloads))
        .route("/validate/scanning", post(validate_scanning))
        .route("/mutate/scan-status", post(mutate_scan_status))
        .route("/mutate/exceptions", post(mutate_exceptions))
        .route("/mutate/reports", post(mutate_reports))
        .route("/mutate/pin", post(mutate_pin))
        .with_state(app)
}

/// An AdmissionReview refusing a body, with its HTTP status.
fn refuse(status: StatusCode, review: AdmissionReview<DynamicObject>) -> Response {
    (status, axum::Json(review)).into_response()
}

/// 503 while the parts a workload decision reads are loading: the apiserver then applies the
/// webhook's `failurePolicy` (deny with `Fail`; with `Ignore`, admit, and the verdict mirror
/// still denies known-bad digests), rather than a verdict from a partial index.
fn not_synced(app: &AppState) -> Option<Response> {
    let missing = app.state.ready.missing_for_workloads();
    if missing.is_empty() {
        return None;
    }
    let message = format!(
        "scangate cannot decide workloads yet: waiting for {} to be listed from the apiserver",
        missing.join(", ")
    );
    tracing::warn!(%message, "answered a workload review 503");
    Some((StatusCode::SERVICE_UNAVAILABLE, message).into_response())
}

/// Reads and decodes a body, or gives the answer refusing it: 200 with `allowed: false` for a
/// review the apiserver can match by uid, 400 otherwise.
async fn decode(app: &AppState, body: Body) -> Result<Request, Response> {
    decode_with(app, body, review::decode).await
}

/// Reads a body and decodes it with `decode` (`review::decode`, or the workload review's
/// `review::decode_workload`).
async fn decode_with(
    app: &AppState,
    body: Body,
    decode: fn(&[u8]) -> Result<Request, Rejection>,
) -> Result<Request, Response> {
    let bytes: Bytes = match axum::body::to_bytes(body, app.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let message = format!(
                "request body could not be read or is over {} bytes: {e}",
                app.max_body_bytes
            );
            tracing::warn!(%message, "refused an admission request");
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                Rejection::Unidentified(message).into_review(),
            ));
        }
    };
    decode(&bytes).map_err(|rejection| {
        tracing::warn!(error = %rejection, "refused an undecodable admission request");
        let status = match rejection {
            Rejection::Identified { .. } => StatusCode::OK,
            Rejection::Unidentified(_) => StatusCode::BAD_REQUEST,
        };
        refuse(status, rejection.into_review())
    })
}

fn admission_span(endpoint: Endpoint, req: &Request) -> Span {
    tracing::info_span!(
        "admission",
        endpoint = ?endpoint,
        uid = %req.uid,
        kind = %req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = %req.name,
        operation = ?req.operation,
        dry_run = req.dry_run,
        verdict = field::Empty,
    )
}

fn record(
    app: &AppState,
    endpoint: Endpoint,
    kind: &str,
    verdict: &'static str,
    mode: &'static str,
    started: Instant,
) {
    let metrics = &app.state.metrics;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint,
            kind: KindLabel::of(kind),
            verdict,
            mode,
        })
        .inc();
    metrics
        .duration
        .get_or_create(&EndpointLabels { endpoint })
        .observe(started.elapsed().as_secs_f64());
}

fn respond(response: AdmissionResponse) -> Response {
    (StatusCode::OK, axum::Json(Answer::of(&response))).into_response()
}

async fn validate_workloads(State(app): State<AppState>, body: Body) -> Response {
    if let Some(unavailable) = not_synced(&app) {
        return unavailable;
    }
    let req = match decode_with(&app, body, review::decode_workload).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    let started = Instant::now();
    let span = admission_span(Endpoint::validate_workloads, &req);
    // A scale that starts a template running again is decided on the scaled object's template,
    // which the request does not carry: read it first (a failure answers 503, so the
    // apiserver applies the failurePolicy).
    let scaled = match review::scale_target(&req) {
        Some(target) => match scaled_object(&app, &target).instrument(span.clone()).await {
            Ok(object) => Some((target, object)),
            Err(message) => {
                tracing::warn!(parent: &span, %message, "answered a scale review 503");
                return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
            }
        },
        None => None,
    };
    let _entered = span.enter();
    let state = &app.state;
    let config = state.config();
    let namespace = req.namespace();
    let enforcement = state.enforcement(namespace, &config);
    let exceptions = state.exceptions();
    let (response, outcome) = {
        let index = state.scans();
        let ctx = Context {
            config: &config,
            index: &index,
            exceptions: &exceptions,
            namespace,
            enforcement,
            now: jiff::Timestamp::now(),
            pins_tags: state.pin_digests(namespace, &config),
        };
        match &scaled {
            Some((target, object)) => review::review_scale(&req, &ctx, target, object),
            None => review::review_workload(&req, &ctx),
        }
    };
    let verdict = outcome.verdict_label();
    span.record("verdict", verdict);
    tracing::info!(
        allowed = response.allowed,
        mode = enforcement.as_str(),
        "workload reviewed"
    );
    record(
        &app,
        Endpoint::validate_workloads,
        &req.kind.kind,
        verdict,
        enforcement.as_str(),
        started,
    );
    respond(response)
}

/// How long the apiserver may take to give the object a scale review decides.
const SCALED_OBJECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The object whose `scale` subresource `target` writes, as JSON, read from the apiserver
/// (the webhook may `get` the scalable kinds); the error says why it could not be read.
async fn scaled_object(
    app: &AppState,
    target: &review::ScaleTarget,
) -> Result<serde_json::Value, String> {
    use crate::admission::pod::WorkloadKind;
    use kube::core::{ApiResource, GroupVersionKind};
    let Some(client) = app.client.clone() else {
        return Err(format!(
            "scangate decides scaling {} {} up on its template, and this webhook has no cluster \
             to read it from",
            target.kind, target.name
        ));
    };
    let group = match target.kind {
        WorkloadKind::ReplicationController => "",
        _ => "apps",
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", target.kind.as_str()));
    let api: Api<DynamicObject> = Api::namespaced_with(client, &target.namespace, &resource);
    let read = tokio::time::timeout(SCALED_OBJECT_TIMEOUT, api.get(&target.name)).await;
    let cannot = |why: String| {
        format!(
            "scangate decides scaling {} {} up on its template and could not read it: {why}",
            target.kind, target.name
        )
    };
    match read {
        Ok(Ok(object)) => serde_json::to_value(object).map_err(|e| cannot(e.to_string())),
        Ok(Err(e)) => Err(cannot(e.to_string())),
        Err(_) => Err(cannot(format!(
            "no answer within {}s",
            SCALED_OBJECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Digest pinning: adds to each new image tag that is admitted without a warning the digest
/// that was judged, where pinning is on (the namespace's `scangate.dev/pin-digests` label, else
/// `pinDigests`, else namespaces in `enforce` mode).
async fn mutate_pin(State(app): State<AppState>, body: Body) -> Response {
    if let Some(unavailable) = not_synced(&app) {
        return unavailable;
    }
    let req = match decode(&app, body).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    let started = Instant::now();
    let span = admission_span(Endpoint::mutate_pin, &req);
    let _entered = span.enter();
    let state = &app.state;
    let config = state.config();
    let namespace = req.namespace();
    let pinning = state.pin_digests(namespace, &config);
    let exceptions = state.exceptions();
    let (response, outcome) = {
        let index = state.scans();
        let ctx = Context {
            config: &config,
            index: &index,
            exceptions: &exceptions,
            namespace,
            enforcement: state.enforcement(namespace, &config),
            now: jiff::Timestamp::now(),
            pins_tags: pinning,
        };
        review::review_pin(&req, pinning, |container| {
            crate::admission::workload::pin_target(&ctx, container)
        })
    };
    let verdict = outcome.verdict_label();
    span.record("verdict", verdict);
    if let review::PinOutcome::Pinned(pinned) = &outcome {
        for pin in pinned {
            tracing::info!(
                container = %pin.container,
                from = %pin.from,
                to = %pin.to,
                scan = %pin.scan,
                "pinned image digest"
            );
        }
    }
    record(
        &app,
        Endpoint::mutate_pin,
        &req.kind.kind,
        verdict,
        "none",
        started,
    );
    respond(response)
}

/// What the admission of an object asks of the policy sandbox.
#[derive(Debug, PartialEq, Eq)]
enum PolicyWork<'a> {
    /// Nothing: not a ScanPolicy being written, or no Rego to check (the review says why).
    None,
    /// An update that keeps the Rego (labels, annotations, a re-apply): it was checked when it
    /// was written.
    Unchanged,
    /// Check this Rego.
    Check(&'a str),
}

/// Decides what a scanning review needs from the policy sandbox.
fn policy_work<'a>(
    kind: &str,
    operation: &Operation,
    object: Option<&'a serde_json::Value>,
    old_object: Option<&serde_json::Value>,
) -> PolicyWork<'a> {
    let rego_of = |object: Option<&'a serde_json::Value>| {
        object?
            .pointer("/spec/regoFile")
            .and_then(serde_json::Value::as_str)
    };
    let old_rego = old_object
        .and_then(|old| old.pointer("/spec/regoFile"))
        .and_then(serde_json::Value::as_str);
    match (kind, operation, rego_of(object)) {
        ("ScanPolicy", Operation::Update, Some(rego)) if old_rego == Some(rego) => {
            PolicyWork::Unchanged
        }
        ("ScanPolicy", Operation::Create | Operation::Update, Some(rego)) => {
            PolicyWork::Check(rego)
        }
        _ => PolicyWork::None,
    }
}

/// The admission check of a created or updated ScanPolicy's Rego, in a policy worker (bounded
/// in time, memory and concurrency); `None` for anything else. Awaited before the pure review,
/// which gets its result.
async fn check_policy(
    app: &AppState,
    req: &Request,
    object: Option<&serde_json::Value>,
) -> Option<Result<(), String>> {
    let rego = match policy_work(
        &req.kind.kind,
        &req.operation,
        object,
        req.old_object_json(),
    ) {
        PolicyWork::None => return None,
        PolicyWork::Unchanged => return Some(Ok(())),
        PolicyWork::Check(rego) => rego,
    };
    let name = crate::policy::source_name(
        req.namespace.as_deref().unwrap_or_default(),
        &review::object_name(req, object),
    );
    // Each writer is one tenant, with its own bound of checks in progress.
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let requester = app.state.config().policy_requester(namespace, || {
        req.user_info.username.clone().unwrap_or_default()
    });
    let checked = app.policies.check(&requester, &name, rego).await;
    if let Err(e) = &checked {
        tracing::info!(policy = %name, error = %e, "ScanPolicy refused by its check");
    }
    Some(checked.map_err(|e| e.to_string()))
}

impl scanning::Names for WebhookState {
    fn template_exists(&self, namespace: &str, name: &str) -> bool {
        WebhookState::template_exists(self, namespace, name)
    }

    fn policy_exists(&self, namespace: &str, name: &str) -> bool {
        WebhookState::policy_exists(self, namespace, name)
    }
}

/// Asks the apiserver (a SubjectAccessReview, bounded in time) whether the writer of a created
/// or updated ScanTemplate may create Jobs in its namespace; other requests are not asked.
async fn job_rights(app: &AppState, req: &Request) -> JobRights {
    let writes_template = req.kind.kind == "ScanTemplate"
        && matches!(req.operation, Operation::Create | Operation::Update);
    let Some(client) = app.client.as_ref().filter(|_| writes_template) else {
        return JobRights::NotChecked;
    };
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let user = req.user_info.username.clone().unwrap_or_default();
    let review = scanning::job_access_review(&req.user_info, namespace);
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let params = PostParams::default();
    let asked = api.create(&params, &review);
    match tokio::time::timeout(ACCESS_REVIEW_TIMEOUT, asked).await {
        Ok(Ok(answer)) => JobRights::from_answer(&user, answer.status.as_ref()),
        Ok(Err(e)) => JobRights::Unknown {
            user,
            error: e.to_string(),
        },
        Err(_) => JobRights::Unknown {
            user,
            error: format!(
                "the apiserver did not answer within {}s",
                ACCESS_REVIEW_TIMEOUT.as_secs()
            ),
        },
    }
}

async fn validate_scanning(State(app): State<AppState>, body: Body) -> Response {
    let req = match decode(&app, body).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    let started = Instant::now();
    let job_rights = job_rights(&app, &req).await;
    let span = admission_span(Endpoint::validate_scanning, &req);
    let object = req.object_json();
    let policy_check = check_policy(&app, &req, object)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    if let JobRights::Unknown { error, .. } = &job_rights {
        tracing::warn!(%error, "cannot check the ScanTemplate writer's rights");
    }
    let config = app.state.config();
    let namespace = req.namespace.clone().unwrap_or_default();
    let ctx = scanning::Context {
        config: &config,
        names: app.state.as_ref(),
        namespace: &namespace,
        now: jiff::Timestamp::now(),
        policy_check,
        job_rights: &job_rights,
    };
    let (response, outcome) = review::review_scanning(&req, object, &ctx);
    if let ScanningOutcome::Denied(reason) = &outcome {
        tracing::info!(%reason, "scanning object refused");
    }
    let verdict = outcome.verdict_label();
    span.record("verdict", verdict);
    record(
        &app,
        Endpoint::validate_scanning,
        &req.kind.kind,
        verdict,
        "none",
        started,
    );
    respond(response)
}

async fn mutate_scan_status(State(app): State<AppState>, body: Body) -> Response {
    guard(
        app,
        body,
        Endpoint::mutate_scan_status,
        "status",
        |req, config| {
            review::review_status(req, &config.controller_username, jiff::Timestamp::now())
        },
    )
    .await
}

async fn mutate_exceptions(State(app): State<AppState>, body: Body) -> Response {
    guard(
        app,
        body,
        Endpoint::mutate_exceptions,
        "exception",
        |req, config| review::review_exception_write(req, config, jiff::Timestamp::now()),
    )
    .await
}

async fn mutate_reports(State(app): State<AppState>, body: Body) -> Response {
    let req = match decode(&app, body).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    let started = Instant::now();
    let config = app.state.config();
    let pod = match review::report_pod_to_check(&req, &config) {
        Some(claim) => {
            let namespace = req.namespace.as_deref().unwrap_or_default();
            Some(scan_pod(&app, namespace, &claim).await)
        }
        None => None,
    };
    decide(
        &app,
        &req,
        started,
        Endpoint::mutate_reports,
        "report",
        |req, config| review::review_report_write(req, config, pod.as_ref()),
    )
}

/// How long the apiserver may take to answer each read of a report writer's pod and Job.
const POD_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the pod a scanner's token names and the Job that controls it (the edge of
/// [`crate::admission::reporter::scanner_may_write`], which decides).
async fn scan_pod(app: &AppState, namespace: &str, claim: &PodClaim) -> ScanPod {
    let Some(client) = app.client.clone() else {
        return ScanPod::Unreadable("the webhook runs without a cluster".into());
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = match read_bounded(&pods, &claim.name, "pod").await {
        Ok(Some(pod)) => pod,
        Ok(None) => return ScanPod::Missing,
        Err(unreadable) => return unreadable,
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let Some(job_ref) = controller_of(&pod.metadata).filter(|o| o.kind == "Job") else {
        return ScanPod::Found {
            uid,
            job: None,
            job_owner: None,
        };
    };
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let job = match read_bounded(&jobs, &job_ref.name, "Job").await {
        Ok(job) => job,
        Err(unreadable) => return unreadable,
    };
    // The Job the pod names, not another of the same name created since.
    let job_owner = job
        .filter(|job| job.metadata.uid.as_deref() == Some(job_ref.uid.as_str()))
        .and_then(|job| controller_of(&job.metadata).cloned());
    ScanPod::Found {
        uid,
        job: Some(job_ref.name.clone()),
        job_owner,
    }
}

/// Reads object `name` (a `kind`), within [`POD_LOOKUP_TIMEOUT`]; a failure as the reason.
async fn read_bounded<K>(api: &Api<K>, name: &str, kind: &str) -> Result<Option<K>, ScanPod>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match tokio::time::timeout(POD_LOOKUP_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(ScanPod::Unreadable(format!("reading {kind} {name}: {e}"))),
        Err(_) => Err(ScanPod::Unreadable(format!(
            "reading {kind} {name}: the apiserver did not answer within {}s",
            POD_LOOKUP_TIMEOUT.as_secs()
        ))),
    }
}

/// The controlling owner of an object.
fn controller_of(
    metadata: &kube::core::ObjectMeta,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// The guards of scangate's own objects: decode, review with the current config, record.
async fn guard(
    app: AppState,
    body: Body,
    endpoint: Endpoint,
    what: &'static str,
    review: impl FnOnce(&Request, &AdmissionConfig) -> AdmissionResponse,
) -> Response {
    let req = match decode(&app, body).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    decide(&app, &req, Instant::now(), endpoint, what, review)
}

/// Reviews a decoded request of a guard with the current config, and records the verdict.
fn decide(
    app: &AppState,
    req: &Request,
    started: Instant,
    endpoint: Endpoint,
    what: &'static str,
    review: impl FnOnce(&Request, &AdmissionConfig) -> AdmissionResponse,
) -> Response {
    let span = admission_span(endpoint, req);
    let _entered = span.enter();
    let config = app.state.config();
    let response = review(req, &config);
    let verdict = if response.allowed { "allow" } else { "deny" };
    span.record("verdict", verdict);
    if !response.allowed {
        tracing::info!(what, reason = %response.result.message, "write refused");
    }
    record(app, endpoint, &req.kind.kind, verdict, "none", started);
    respond(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_new_rego_of_a_scanpolicy_is_checked() {
        let policy = |rego: &str| json!({"spec": {"regoFile": rego}});
        let (a, b) = (policy("package main"), policy("package main\n"));
        let no_rego = json!({"spec": {}});
        let cases = [
            (
                "ScanPolicy",
                Operation::Create,
                &a,
                None,
                PolicyWork::Check("package main"),
            ),
            (
                "ScanPolicy",
                Operation::Update,
                &a,
                Some(&a),
                PolicyWork::Unchanged,
            ),
            (
                "ScanPolicy",
                Operation::Update,
                &b,
                Some(&a),
                PolicyWork::Check("package main\n"),
            ),
            ("ScanPolicy", Operation::Delete, &a, None, PolicyWork::None),
            (
                "ScanTemplate",
                Operation::Create,
                &a,
                None,
                PolicyWork::None,
            ),
            (
                "ScanPolicy",
                Operation::Create,
                &no_rego,
                None,
                PolicyWork::None,
            ),
        ];
        for (kind, operation, new, old, expected) in cases {
            assert_eq!(
                policy_work(kind, &operation, Some(new), old),
                expected,
                "{kind} {operation:?}"
            );
        }
    }
}
