//! AdmissionReview in and out: decoding a body into a request (or a clear refusal), and the
//! pure reviews of workloads, scanning objects, scan status and exception writes. The server
//! decodes, gathers any async inputs, calls one of these, and encodes.

use jiff::Timestamp;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};
use serde_json::{Value, json};

use super::config::{Action, AdmissionConfig, ReportWriter};
use super::pin;
use super::pod::{self, Container, WorkloadKind};
use super::reporter::{self, PodClaim, ScanPod};
use super::request::{REVIEW_API_VERSION, REVIEW_KIND, Request, Review};
use super::rollout::{self, Rollout, Scope, Write};
use super::scanning::{self, Verdict};
use super::status;
use super::workload::{self, Context, Decision};
use crate::index::{APPROVED_AT, APPROVED_BY};
use crate::report::{REPORTED_BY, SCAN_LABEL};

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

/// Decodes an AdmissionReview body, once: the objects as JSON, with their metadata.
pub fn decode(body: &[u8]) -> Result<Request, Rejection> {
    let request = decode_workload(body)?;
    built(request)
}

/// Like [`decode`], but the objects of a create are not built: the workload review reads only
/// the images of a created object ([`pod::object_images`]), so the rest of it is never built.
/// (Building every object cost the Pod review a fifth of its time, BENCHMARKS.md.)
pub fn decode_workload(body: &[u8]) -> Result<Request, Rejection> {
    // The apiserver's reviews parse straight into the request; anything else goes the slow
    // way, which says what is wrong.
    if let Ok(review) = serde_json::from_slice::<Review>(body)
        && review.kind == REVIEW_KIND
        && review.api_version == REVIEW_API_VERSION
        && let Some(request) = review.request
        && !request.uid.is_empty()
    {
        return if request.operation == Operation::Create && request.sub_resource.is_none() {
            Ok(request)
        } else {
            built(request)
        };
    }
    diagnose(body).and_then(built)
}

/// The request, once its objects are built; refused if one cannot be read.
fn built(request: Request) -> Result<Request, Rejection> {
    match request.build_objects() {
        Ok(()) => Ok(request),
        Err(e) => Err(Rejection::Identified {
            uid: request.uid.clone(),
            message: format!("AdmissionReview request is not valid: {e}"),
        }),
    }
}

/// Decodes a body that is not a plain AdmissionReview, saying what is wrong with it.
fn diagnose(body: &[u8]) -> Result<Request, Rejection> {
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
    if value.get("kind").and_then(Value::as_str) != Some(REVIEW_KIND) {
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
    // Read from the text again: an object keeps the text it came as.
    let review: Review = serde_json::from_slice(body)
        .map_err(|e| reject(format!("AdmissionReview request is not valid: {e}")))?;
    review
        .request
        .ok_or_else(|| reject("AdmissionReview has no request".into()))
}

/// What the workload review found, for logs and metrics.
#[derive(Debug, PartialEq)]
pub enum WorkloadOutcome {
    /// Not evaluated: a delete, or an update that starts nothing new (`rollout::scope`).
    Skipped(&'static str),
    /// The object could not be read as a workload.
    Malformed,
    Decided(Decision),
    /// Denied by the rules, but admitted: a built-in controller created it for a template that
    /// was already admitted (scale-out, rescheduling), and the admin did not ask to recheck.
    ControllerPass(Decision),
}

impl WorkloadOutcome {
    /// The verdict label for metrics: `allow`, `warn`, `deny`, `skip` or `error`.
    pub fn verdict_label(&self) -> &'static str {
        match self {
            WorkloadOutcome::Skipped(_) => "skip",
            WorkloadOutcome::Malformed => "error",
            WorkloadOutcome::ControllerPass(_) => "pass",
            WorkloadOutcome::Decided(d) => match d.verdict() {
                Action::Allow => "allow",
                Action::Warn => "warn",
                Action::Deny => "deny",
            },
        }
    }
}

/// The images of the object an update replaces (none on create, or when it cannot be read):
/// an image a workload already ran is not pinned again.
fn old_images(req: &Request, kind: WorkloadKind) -> Vec<String> {
    req.old_object
        .as_ref()
        .and_then(|old| pod::object_images(kind, old).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.image)
        .collect()
}

/// Whether the request writes a workload's `scale` subresource.
fn is_scale(req: &Request) -> bool {
    req.sub_resource.as_deref() == Some("scale")
}

/// A replica count of a Scale object (`spec.replicas`, left out when zero).
fn scale_replicas(object: Option<&Value>) -> i64 {
    object
        .and_then(|o| o.pointer("/spec/replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// A scale the bound decides: its template is the scaled object's, which the request does not
/// carry, so the server reads it (`review_scale` then decides it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleTarget {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub rollout: Rollout,
}

/// `Some` when the request scales a workload up in a way that is a rollout (from zero, or a
/// revision by a user: `rollout::scope`), so the scaled object's template must be decided.
pub fn scale_target(req: &Request) -> Option<ScaleTarget> {
    if !is_scale(req) || req.operation != Operation::Update {
        return None;
    }
    let kind = rollout::scalable(&req.resource.resource)?;
    let write = Write::Scale {
        kind,
        from: scale_replicas(req.old_object_json()),
        to: scale_replicas(req.object_json()),
    };
    match rollout::scope(&write) {
        Scope::Full(rollout) => Some(ScaleTarget {
            kind,
            namespace: req.namespace.clone().unwrap_or_default(),
            name: req.name.clone(),
            rollout,
        }),
        Scope::Skip(_) | Scope::NewImages => None,
    }
}

/// Reviews a workload request within the bound (`rollout::scope`): a new workload, a changed
/// pod template and anything that starts a template running again (woken from zero, a revision
/// scaled, resumed) is decided in full; a Pod's update only for images it did not run; an
/// update that starts nothing new (relabelling, scaling what runs) not at all. A scale the
/// bound decides needs the scaled object: [`scale_target`] and [`review_scale`].
pub fn review_workload(req: &Request, ctx: &Context<'_>) -> (AdmissionResponse, WorkloadOutcome) {
    if is_scale(req) {
        return match scale_target(req) {
            None => (
                req.admit(),
                WorkloadOutcome::Skipped("scaled within what was running"),
            ),
            Some(target) => (
                req.deny(format!(
                    "scaling {} {} up is {}, decided like a new workload, and scangate \
                     could not read its template",
                    target.kind, target.name, target.rollout
                )),
                WorkloadOutcome::Malformed,
            ),
        };
    }
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return (
            req.admit(),
            WorkloadOutcome::Skipped("not a create or update"),
        );
    }
    let Some(kind) = WorkloadKind::from_kind(&req.kind.kind) else {
        return (req.admit(), WorkloadOutcome::Skipped("not a workload kind"));
    };
    let Some(object) = req.object.as_ref() else {
        return (
            req.deny(format!("{kind} request has no object to check")),
            WorkloadOutcome::Malformed,
        );
    };
    let containers = match pod::object_images(kind, object) {
        Ok(c) => c,
        Err(e) => return (req.deny(e), WorkloadOutcome::Malformed),
    };
    let username = req.user_info.username.as_deref();
    let write = match (&req.operation, req.old_object.as_ref()) {
        (Operation::Update, Some(old)) => Write::Update {
            kind,
            old: match old.json() {
                Ok(json) => json,
                Err(e) => return (req.deny(e), WorkloadOutcome::Malformed),
            },
            new: match object.json() {
                Ok(json) => json,
                Err(e) => return (req.deny(e), WorkloadOutcome::Malformed),
            },
            by_its_controller: created_by_its_controller(kind, &object.metadata, username)
                .is_some(),
        },
        _ => Write::Create,
    };
    let (decided, rollout) = match rollout::scope(&write) {
        Scope::Skip(why) => return (req.admit(), WorkloadOutcome::Skipped(why)),
        Scope::NewImages => {
            let old_images = old_images(req, kind);
            let new: Vec<Container> = containers
                .into_iter()
                .filter(|c| !old_images.contains(&c.image))
                .collect();
            (new, None)
        }
        Scope::Full(rollout) => (containers, Some(rollout)),
    };
    if decided.is_empty() {
        return (req.admit(), WorkloadOutcome::Skipped("no new images"));
    }
    let decision = workload::decide(ctx, &decided);
    if let Some(warnings) = controller_pass(ctx.config, &decision, kind, &object.metadata, username)
    {
        let mut response = req.admit();
        response.warnings = Some(warnings);
        return (response, WorkloadOutcome::ControllerPass(decision));
    }
    answer_decision(
        req,
        decision,
        rollout.map(|r| (r, kind, object.display_name())),
    )
}

/// Reviews a scale that the bound decides ([`scale_target`]), with `scaled`, the scaled
/// object as the server read it: its template is decided like a new workload's. No built-in
/// controller scales through this subresource, so there is no controller's pass.
pub fn review_scale(
    req: &Request,
    ctx: &Context<'_>,
    target: &ScaleTarget,
    scaled: &Value,
) -> (AdmissionResponse, WorkloadOutcome) {
    let containers = match pod::containers_named(target.kind, &target.name, scaled) {
        Ok(c) => c,
        Err(e) => return (req.deny(e), WorkloadOutcome::Malformed),
    };
    answer_decision(
        req,
        workload::decide(ctx, &containers),
        Some((target.rollout, target.kind, &target.name)),
    )
}

/// The answer to a decided workload: its warnings, and its denial, which says why a write to
/// an existing workload was decided at all (`rollout`, with the kind and name of the workload).
fn answer_decision(
    req: &Request,
    decision: Decision,
    rollout: Option<(Rollout, WorkloadKind, &str)>,
) -> (AdmissionResponse, WorkloadOutcome) {
    let mut response = req.admit();
    if !decision.warnings.is_empty() {
        response.warnings = Some(decision.warnings.clone());
    }
    if let Some(message) = &decision.message {
        response = match rollout {
            None | Some((Rollout::Created, _, _)) => response.deny(message),
            Some((rollout, kind, name)) => response.deny(format!(
                "{kind} {name}: {rollout} is decided like a new workload (what runs keeps running, \
                 but a denied image is not rolled out again): {message}"
            )),
        };
    }
    (response, WorkloadOutcome::Decided(decision))
}

/// What the pinning review did, for logs and metrics.
#[derive(Debug, PartialEq)]
pub enum PinOutcome {
    /// Nothing to do: pinning is off here, not a workload create or update, or no new image
    /// tag has a trusted result with a resolved digest.
    Unchanged(&'static str),
    /// These images were pinned.
    Pinned(Vec<pin::Pinned>),
}

impl PinOutcome {
    /// The verdict label for metrics: `pin` or `skip`.
    pub fn verdict_label(&self) -> &'static str {
        match self {
            PinOutcome::Unchanged(_) => "skip",
            PinOutcome::Pinned(_) => "pin",
        }
    }
}

/// Reviews a workload for digest pinning (`/mutate/pin`): always admits (the validating
/// webhook decides), with a JSONPatch adding the resolved digest to each new image tag that
/// has one, and a warning naming each pin. `lookup` gives an image's trusted result.
pub fn review_pin(
    req: &Request,
    pinning: bool,
    target: impl Fn(&super::pod::Container) -> Option<pin::Target>,
) -> (AdmissionResponse, PinOutcome) {
    let unchanged = |why| (req.admit(), PinOutcome::Unchanged(why));
    if !pinning {
        return unchanged("pinning is off in this namespace");
    }
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return unchanged("not a create or update");
    }
    let Some(kind) = WorkloadKind::from_kind(&req.kind.kind) else {
        return unchanged("not a workload kind");
    };
    let Some(object) = req.object_json() else {
        return unchanged("no object");
    };
    let old_images = old_images(req, kind);
    // A malformed object is left to the validating webhook, which denies it with the reason.
    let Ok(pinned) = pin::pins(kind, object, &old_images, target) else {
        return unchanged("not a readable workload");
    };
    let Some(patch) = pin::patch(&pinned) else {
        return unchanged("nothing to pin");
    };
    match req.admit().with_patch(patch) {
        Ok(response) => (response, PinOutcome::Pinned(pinned)),
        Err(_) => unchanged("the patch could not be encoded"),
    }
}

/// The warnings that admit a denied object anyway, when its own built-in controller created it
/// from a template scangate admitted earlier (scale-out, rescheduling) and the admin did not
/// ask to recheck such objects (`recheckControllerPods`); `None` when the denial stands. The
/// webhook and `scangate check --user` both ask this.
pub fn controller_pass(
    config: &AdmissionConfig,
    decision: &Decision,
    kind: WorkloadKind,
    metadata: &kube::core::ObjectMeta,
    username: Option<&str>,
) -> Option<Vec<String>> {
    if decision.allowed || config.recheck_controller_pods {
        return None;
    }
    let owner = created_by_its_controller(kind, metadata, username)?;
    let mut warnings = vec![format!(
        "admitted: {owner} created it from a template scangate admitted earlier, but its \
         image's verdict has since turned (set recheckControllerPods to deny such pods): {}",
        decision.message.clone().unwrap_or_default()
    )];
    warnings.extend(decision.warnings.iter().cloned());
    Some(warnings)
}

/// The built-in controllers that create objects from a template their owner already had
/// admitted: (created kind, owner kind, the controller's ServiceAccount in kube-system).
const TEMPLATE_CONTROLLERS: [(WorkloadKind, WorkloadKind, &str); 7] = [
    (
        WorkloadKind::Pod,
        WorkloadKind::ReplicaSet,
        "replicaset-controller",
    ),
    (
        WorkloadKind::Pod,
        WorkloadKind::ReplicationController,
        "replication-controller",
    ),
    (
        WorkloadKind::Pod,
        WorkloadKind::StatefulSet,
        "statefulset-controller",
    ),
    (
        WorkloadKind::Pod,
        WorkloadKind::DaemonSet,
        "daemon-set-controller",
    ),
    (WorkloadKind::Pod, WorkloadKind::Job, "job-controller"),
    (
        WorkloadKind::ReplicaSet,
        WorkloadKind::Deployment,
        "deployment-controller",
    ),
    (
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        "cronjob-controller",
    ),
];

/// The controller-manager's own identity, when it runs without per-controller credentials.
const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

/// What a kube-system ServiceAccount's username starts with.
const KUBE_SYSTEM_ACCOUNT: &str = "system:serviceaccount:kube-system:";

/// The users of the built-in controllers that create objects from admitted templates.
pub fn template_controller_users() -> Vec<String> {
    TEMPLATE_CONTROLLERS
        .iter()
        .map(|(_, _, account)| format!("{KUBE_SYSTEM_ACCOUNT}{account}"))
        .chain([CONTROLLER_MANAGER.to_string()])
        .collect()
}

/// `Some("replicaset-controller for ReplicaSet web-5d8f")` when the request comes from the
/// built-in controller that owns the object: its controller owner is of the owner kind, and
/// the request's user is that controller. An object that merely names such an owner gets
/// nothing: the user decides.
pub fn created_by_its_controller(
    kind: WorkloadKind,
    metadata: &kube::core::ObjectMeta,
    username: Option<&str>,
) -> Option<String> {
    let username = username?;
    let owner = metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    TEMPLATE_CONTROLLERS
        .iter()
        .find(|(created, owner_kind, account)| {
            *created == kind
                && owner_kind.as_str() == owner.kind
                && (username.strip_prefix(KUBE_SYSTEM_ACCOUNT) == Some(*account)
                    || username == CONTROLLER_MANAGER)
        })
        .map(|(_, owner_kind, account)| format!("{account} for {owner_kind} {}", owner.name))
}

/// What the scanning review found, for logs and metrics.
#[derive(Debug, PartialEq)]
pub enum ScanningOutcome {
    /// Not evaluated: not a create or update, or no object.
    Skipped,
    Allowed,
    /// Refused, with the reason.
    Denied(String),
}

impl ScanningOutcome {
    /// The verdict label for metrics: `allow`, `deny` or `skip`.
    pub fn verdict_label(&self) -> &'static str {
        match self {
            ScanningOutcome::Skipped => "skip",
            ScanningOutcome::Allowed => "allow",
            ScanningOutcome::Denied(_) => "deny",
        }
    }
}

/// The object's name, else the request's.
pub fn object_name(req: &Request, object: Option<&Value>) -> String {
    object
        .and_then(|object| object.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .unwrap_or(&req.name)
        .to_string()
}

/// Reviews a created or updated scanning object (`object`, the request's object as JSON) with
/// what the server gathered beforehand in `ctx`: the check of a ScanPolicy's Rego, the
/// ScanTemplate writer's Job rights. Other operations are admitted unevaluated.
pub fn review_scanning(
    req: &Request,
    object: Option<&Value>,
    ctx: &scanning::Context<'_>,
) -> (AdmissionResponse, ScanningOutcome) {
    let object = match (&req.operation, object) {
        (Operation::Create | Operation::Update, Some(object)) => object,
        _ => return (req.admit(), ScanningOutcome::Skipped),
    };
    let name = object_name(req, Some(object));
    match scanning::review(&req.kind.kind, &name, object, ctx) {
        Verdict::Allowed { warnings } => {
            let mut response = req.admit();
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            (response, ScanningOutcome::Allowed)
        }
        Verdict::Denied(message) => (req.deny(&message), ScanningOutcome::Denied(message)),
    }
}

/// Reviews a write of a scan's `status` subresource: refuses every writer but scangate's
/// controller (a status is a verdict), then answers with a JSONPatch that sets the enriched
/// status, or a denial saying what is inconsistent.
pub fn review_status(
    req: &Request,
    controller_username: &str,
    now: Timestamp,
) -> AdmissionResponse {
    let writer = req.user_info.username.as_deref().unwrap_or_default();
    if writer != controller_username {
        return req.deny(format!(
            "only scangate's controller ({controller_username}) writes the status of scans; \
                 {writer:?} may not. Scan results come from scan Jobs or from reports pushed with \
                 `scangate report`"
        ));
    }
    let Some(object) = req.object_json() else {
        return req.deny("status request has no object");
    };
    let old = req.old_object_json();
    let new_status = object.get("status").cloned().unwrap_or_else(|| json!({}));
    let old_status = old.and_then(|o| o.get("status"));
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let enriched = match status::enrich(old_status, &new_status, generation, now) {
        Ok(s) => s,
        Err(e) => return req.deny(e),
    };
    let enriched = match serde_json::to_value(&enriched) {
        Ok(v) => v,
        Err(e) => return req.deny(format!("cannot encode the enriched status: {e}")),
    };
    let before = json!({ "status": object.get("status").cloned().unwrap_or(Value::Null) });
    let after = json!({ "status": enriched });
    let patch = json_patch::diff(&before, &after);
    match req.admit().with_patch(patch) {
        Ok(r) => r,
        Err(e) => req.deny(format!("cannot encode the status patch: {e}")),
    }
}

/// Reviews a write of a ScanException: only an approver's exceptions count, so the writer must
/// be one (`exceptions.approvers`/`approverGroups`, or with no list whoever RBAC lets write),
/// and the answer records who wrote it and when, in annotations no one else can set: every
/// write passes here and is stamped anew.
pub fn review_exception_write(
    req: &Request,
    config: &AdmissionConfig,
    now: Timestamp,
) -> AdmissionResponse {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return req.admit();
    }
    let Some(object) = req.object.as_ref() else {
        return req.deny("ScanException request has no object");
    };
    let writer = req.user_info.username.as_deref().unwrap_or_default();
    let groups = req.user_info.groups.as_deref().unwrap_or_default();
    if writer.is_empty() || !config.is_approver(writer, groups) {
        return req.deny(format!(
            "{writer:?} is not an exception approver: only approvers' ScanExceptions count. \
                 Ask an approver (ClusterRole scangate-exception-approver, and the config's \
                 exceptions.approvers or exceptions.approverGroups) to write it"
        ));
    }
    let at = now.round(jiff::Unit::Second).unwrap_or(now).to_string();
    stamp(
        req,
        &object.metadata,
        &[(APPROVED_BY, writer), (APPROVED_AT, &at)],
    )
}

/// The pod the webhook must look up before [`review_report_write`] can decide: the one named
/// by the token of the scanner's ServiceAccount writing a report into a trusted namespace.
pub fn report_pod_to_check(req: &Request, config: &AdmissionConfig) -> Option<PodClaim> {
    let object = req.object.as_ref()?;
    let writer = req.user_info.username.as_deref().unwrap_or_default();
    let groups = req.user_info.groups.as_deref().unwrap_or_default();
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let wants_check = matches!(req.operation, Operation::Create | Operation::Update)
        && is_report(&object.metadata)
        && config.report_writer(namespace, writer, groups) == ReportWriter::Scanner;
    if !wants_check {
        return None;
    }
    reporter::pod_claim(&req.user_info)
}

fn is_report(metadata: &kube::core::ObjectMeta) -> bool {
    metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SCAN_LABEL))
}

/// The guard of ConfigMap writes that the apiserver sends (report ConfigMaps, and any
/// ConfigMap the scanner's ServiceAccount writes): records who stored a report; in a trusted
/// namespace refuses reports but from scangate's controller, `trustedReporters`, and the
/// scanner for its own scan's report from a pod of that scan's Job (`pod`: what the webhook
/// found about the pod its token names, see [`report_pod_to_check`]); and refuses every other
/// ConfigMap the scanner's ServiceAccount writes, anywhere (the admission config among them).
pub fn review_report_write(
    req: &Request,
    config: &AdmissionConfig,
    pod: Option<&ScanPod>,
) -> AdmissionResponse {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return req.admit();
    }
    let Some(object) = req.object.as_ref() else {
        return req.deny("report request has no object");
    };
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let writer = req.user_info.username.as_deref().unwrap_or_default();
    let groups = req.user_info.groups.as_deref().unwrap_or_default();
    let name = object.metadata.name.as_deref().unwrap_or(&req.name);
    if !is_report(&object.metadata) {
        if config.is_scanner(writer) {
            return req.deny(format!(
                "{writer} is scangate's scanner: it may write only its own scan's report \
                     ConfigMap (labelled {SCAN_LABEL}), not ConfigMap {namespace}/{name}"
            ));
        }
        return req.admit();
    }
    let refused = |why: String| {
        req.deny(format!(
            "reports in namespace {namespace} are trusted results: only scangate's scan Jobs \
                 (ServiceAccount {}, from a pod of the scan's own Job), its controller and the \
                 config's trustedReporters may store them; {writer:?} may not: {why}. Push to \
                 your own namespace, or ask an admin to add your pipeline's identity to \
                 trustedReporters",
            config.templates.service_account
        ))
    };
    if writer.is_empty() {
        return refused("the request names no user".into());
    }
    match config.report_writer(namespace, writer, groups) {
        ReportWriter::Untrusted | ReportWriter::Trusted => {}
        ReportWriter::Refused => return refused("it is none of them".into()),
        ReportWriter::Scanner => {
            let Some(claim) = reporter::pod_claim(&req.user_info) else {
                return refused(
                    "its token names no pod (a bound token of the scan Job's pod does)".into(),
                );
            };
            let Some(pod) = pod else {
                return refused(format!("scangate could not look up pod {}", claim.name));
            };
            if let Err(why) = reporter::scanner_may_write(&object.metadata, &claim, pod) {
                return refused(why);
            }
        }
    }
    stamp(req, &object.metadata, &[(REPORTED_BY, writer)])
}

/// Allows the request with a patch that sets these annotations (replacing any value the
/// writer gave them).
fn stamp(
    req: &Request,
    metadata: &kube::core::ObjectMeta,
    annotations: &[(&str, &str)],
) -> AdmissionResponse {
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    let patch: Vec<Value> = match &metadata.annotations {
        None => vec![json!({"op": "add", "path": "/metadata/annotations",
            "value": annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()})],
        Some(_) => annotations
            .iter()
            .map(|(key, value)| {
                json!({"op": "add", "path": format!("/metadata/annotations/{}", escape(key)), "value": value})
            })
            .collect(),
    };
    let patch = match serde_json::from_value::<json_patch::Patch>(Value::Array(patch)) {
        Ok(patch) => patch,
        Err(e) => return req.deny(format!("cannot encode the annotation patch: {e}")),
    };
    match req.admit().with_patch(patch) {
        Ok(response) => response,
        Err(e) => req.deny(format!("cannot encode the annotation patch: {e}")),
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

    fn decoded(body: &[u8]) -> Request {
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

    /// The default config, but an image without a scan is denied.
    fn unscanned_denied() -> AdmissionConfig {
        AdmissionConfig {
            on_unscanned: Action::Deny,
            ..AdmissionConfig::default()
        }
    }

    fn ctx<'a>(config: &'a AdmissionConfig, index: &'a ScanIndex) -> Context<'a> {
        Context {
            config,
            index,
            exceptions: &[],
            namespace: "ns",
            enforcement: Enforcement::Enforce,
            now: Timestamp::UNIX_EPOCH,
            pins_tags: true,
        }
    }

    #[test]
    fn objects_that_cannot_be_read_are_refused_where_they_are_read() {
        let config = unscanned_denied();
        let index = ScanIndex::default();
        let body = |operation: &str, unreadable: &str| {
            let body = review(pod_request(operation, &["a:1"], Some(&["a:1"])));
            String::from_utf8_lossy(&body).replace("\"spec\":{", unreadable)
        };
        // A number out of range where no review of a create looks.
        let outside = "\"spec\":{\"x\":1e400,";
        // A lone surrogate in a container's name.
        let inside = "\"spec\":{\"initContainers\":[{\"name\":\"\\ud800\",\"image\":\"b:1\"}],";
        for operation in ["CREATE", "UPDATE"] {
            for unreadable in [outside, inside] {
                let body = body(operation, unreadable);
                let refused = decode(body.as_bytes()).err();
                assert!(
                    matches!(&refused, Some(Rejection::Identified { uid, message })
                        if uid == "u-1" && message.starts_with(
                            "AdmissionReview request is not valid: the object's spec cannot be read")),
                    "{body}: {refused:?}"
                );
                let (response, outcome) = match decode_workload(body.as_bytes()) {
                    Ok(req) => review_workload(&req, &ctx(&config, &index)),
                    Err(rejection) => {
                        assert_eq!(operation, "UPDATE", "{body}: {rejection:?}");
                        assert_eq!(Some(rejection), refused);
                        continue;
                    }
                };
                assert_eq!(operation, "CREATE");
                assert!(!response.allowed, "{body}");
                let message = &response.result.message;
                if unreadable == outside {
                    assert!(
                        matches!(outcome, WorkloadOutcome::Decided(_)),
                        "{outcome:?}"
                    );
                    assert!(message.contains("a:1"), "{message}");
                } else {
                    assert_eq!(outcome, WorkloadOutcome::Malformed);
                    assert!(
                        message.starts_with("Pod \"p\": the object's spec cannot be read"),
                        "{message}"
                    );
                }
            }
        }
    }

    #[test]
    fn updates_only_decide_new_images() {
        let config = unscanned_denied();
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

    fn deployment(image: &str, replicas: i64, env: Option<&str>) -> Value {
        let mut container = json!({"name": "app", "image": image});
        if let Some(value) = env {
            container["env"] = json!([{"name": "MODE", "value": value}]);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "ns"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}}})
    }

    fn update(kind: &str, resource: &str, sub: Option<&str>, old: Value, new: Value) -> Vec<u8> {
        let (group, version, kind) = match sub {
            Some(_) => ("autoscaling", "v1", "Scale"),
            None => ("apps", "v1", kind),
        };
        review(json!({
            "uid": "u-9",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": "apps", "version": "v1", "resource": resource},
            "subResource": sub,
            "name": "web", "namespace": "ns", "operation": "UPDATE",
            "userInfo": {"username": "tenant"},
            "object": new, "oldObject": old,
        }))
    }

    #[test]
    fn a_template_change_is_decided_in_full_and_scaling_what_runs_is_not() {
        let config = unscanned_denied();
        let index = ScanIndex::default();
        let running = deployment("a:1", 2, None);
        // `kubectl set env`: the image string is unchanged, the template is not.
        let set_env = decoded(&update(
            "Deployment",
            "deployments",
            None,
            running.clone(),
            deployment("a:1", 2, Some("x")),
        ));
        let (response, outcome) = review_workload(&set_env, &ctx(&config, &index));
        assert!(!response.allowed);
        assert!(
            response.result.message.starts_with(
                "Deployment web: a change to its pod template is decided like a new workload"
            ),
            "{}",
            response.result.message
        );
        assert!(matches!(outcome, WorkloadOutcome::Decided(d) if d.verdicts.len() == 1));
        // Scaled out through the object: availability.
        let scaled = decoded(&update(
            "Deployment",
            "deployments",
            None,
            running.clone(),
            deployment("a:1", 5, None),
        ));
        let (response, outcome) = review_workload(&scaled, &ctx(&config, &index));
        assert!(response.allowed);
        assert!(
            matches!(outcome, WorkloadOutcome::Skipped(_)),
            "{outcome:?}"
        );
        // Woken from zero: decided.
        let woken = decoded(&update(
            "Deployment",
            "deployments",
            None,
            deployment("a:1", 0, None),
            deployment("a:1", 1, None),
        ));
        let (response, _) = review_workload(&woken, &ctx(&config, &index));
        assert!(!response.allowed);
        assert!(
            response.result.message.contains("woken from zero replicas"),
            "{}",
            response.result.message
        );
    }

    #[test]
    fn scales_that_revive_a_template_are_decided_on_the_scaled_object() {
        let config = unscanned_denied();
        let index = ScanIndex::default();
        let scale = |replicas: i64| {
            json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                   "metadata": {"name": "web", "namespace": "ns"}, "spec": {"replicas": replicas}})
        };
        // `kubectl scale deployment --replicas=3` of a running Deployment: nothing to read.
        let out = decoded(&update(
            "",
            "deployments",
            Some("scale"),
            scale(1),
            scale(3),
        ));
        assert_eq!(scale_target(&out), None);
        let (response, outcome) = review_workload(&out, &ctx(&config, &index));
        assert!(response.allowed);
        assert!(matches!(outcome, WorkloadOutcome::Skipped(_)));
        // An (old, orphaned) ReplicaSet scaled by a user: its template is decided.
        let revived = decoded(&update(
            "",
            "replicasets",
            Some("scale"),
            json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {}}),
            scale(2),
        ));
        let target = scale_target(&revived);
        assert_eq!(
            target,
            Some(ScaleTarget {
                kind: WorkloadKind::ReplicaSet,
                namespace: "ns".into(),
                name: "web".into(),
                rollout: Rollout::RevisionScaled,
            })
        );
        // Without the object the webhook could not read, it is refused.
        let (response, _) = review_workload(&revived, &ctx(&config, &index));
        assert!(!response.allowed);
        let Some(target) = target else { return };
        let mut replica_set = deployment("a:1", 0, None);
        replica_set["kind"] = json!("ReplicaSet");
        let (response, outcome) =
            review_scale(&revived, &ctx(&config, &index), &target, &replica_set);
        assert!(!response.allowed);
        assert!(
            response
                .result
                .message
                .starts_with("ReplicaSet web: a revision scaled up by a user is decided"),
            "{}",
            response.result.message
        );
        assert!(matches!(outcome, WorkloadOutcome::Decided(_)));
        // Scaled down: nothing starts.
        let down = decoded(&update(
            "",
            "replicasets",
            Some("scale"),
            scale(2),
            scale(0),
        ));
        assert_eq!(scale_target(&down), None);
    }

    #[test]
    fn ephemeral_containers_and_image_volumes_are_decided() {
        let config = unscanned_denied();
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
        assert!(warnings[0].contains("has no trusted scan"), "{warnings:?}");
    }

    /// A Pod of ReplicaSet `web-1`, created by `user`, running `image` (unscanned).
    fn owned_pod(user: &str, owner_kind: &str) -> Request {
        let mut request = pod_request("CREATE", &["bad:1"], None);
        request["userInfo"]["username"] = json!(user);
        request["object"]["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1",
            "kind": owner_kind, "name": "web-1", "uid": "u", "controller": true}]);
        decoded(&review(request))
    }

    #[test]
    fn pods_of_admitted_templates_pass_when_their_controller_creates_them() {
        let config = unscanned_denied();
        let index = ScanIndex::default();
        const RS: &str = "system:serviceaccount:kube-system:replicaset-controller";
        let (response, outcome) =
            review_workload(&owned_pod(RS, "ReplicaSet"), &ctx(&config, &index));
        assert!(response.allowed, "{response:?}");
        assert_eq!(outcome.verdict_label(), "pass");
        let warnings = response.warnings.unwrap_or_default();
        assert!(
            warnings[0].starts_with(
                "admitted: replicaset-controller for ReplicaSet web-1 created it from a template"
            ),
            "{warnings:?}"
        );
        // A tenant claiming the owner, or the wrong controller, gets no pass.
        for (user, owner) in [
            ("alice", "ReplicaSet"),
            (
                "system:serviceaccount:kube-system:job-controller",
                "ReplicaSet",
            ),
            (RS, "StatefulSet"),
        ] {
            let (response, outcome) =
                review_workload(&owned_pod(user, owner), &ctx(&config, &index));
            assert!(!response.allowed, "{user} {owner}");
            assert_eq!(outcome.verdict_label(), "deny");
        }
        // The admin can ask for a recheck.
        let strict = AdmissionConfig {
            recheck_controller_pods: true,
            ..config.clone()
        };
        let (response, _) = review_workload(&owned_pod(RS, "ReplicaSet"), &ctx(&strict, &index));
        assert!(!response.allowed);
    }

    fn exception_request(user: &str, groups: &[&str], annotations: Option<Value>) -> Request {
        let mut metadata = json!({"name": "ex", "namespace": "ns"});
        if let Some(a) = annotations {
            metadata["annotations"] = a;
        }
        decoded(&review(json!({
            "uid": "u-9",
            "kind": {"group": "scanning.scangate.dev", "version": "v1beta1", "kind": "ScanException"},
            "resource": {"group": "scanning.scangate.dev", "version": "v1beta1", "resource": "scanexceptions"},
            "name": "ex", "namespace": "ns", "operation": "CREATE",
            "userInfo": {"username": user, "groups": groups},
            "object": {"apiVersion": "scanning.scangate.dev/v1beta1", "kind": "ScanException",
                       "metadata": metadata,
                       "spec": {"images": ["bad"], "reason": "r", "expires": "2030-01-01T00:00:00Z"}}
        })))
    }

    fn patched(response: &AdmissionResponse, mut object: Value) -> Value {
        let patch: json_patch::Patch =
            serde_json::from_slice(&response.patch.clone().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        json_patch::patch(&mut object, &patch).unwrap_or_else(|e| panic!("{e}"));
        object
    }

    fn report_request(namespace: &str, user: &str, labelled: bool) -> Request {
        scanner_request(namespace, user, labelled, "busybox-report", json!({}))
    }

    /// A ConfigMap write named `name` by `user`, whose token carries `extra`; the object is
    /// owned by ImageScan busybox (uid `scan-uid`).
    fn scanner_request(
        namespace: &str,
        user: &str,
        labelled: bool,
        name: &str,
        extra: Value,
    ) -> Request {
        let labels = if labelled {
            json!({"scanning.scangate.dev/scan": "busybox"})
        } else {
            json!({})
        };
        decoded(&review(json!({
            "uid": "u-10",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": name, "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": user, "extra": extra},
            "object": {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": namespace, "labels": labels,
                                    "annotations": {"scangate.dev/reported-by": "forged"},
                                    "ownerReferences": [{"apiVersion": "scanning.scangate.dev/v1beta1",
                                        "kind": "ImageScan", "name": "busybox", "uid": "scan-uid"}]},
                       "binaryData": {}}
        })))
    }

    #[test]
    fn report_writes_are_recorded_and_trusted_namespaces_take_only_trusted_writers() {
        let config = AdmissionConfig::from_yaml("trustedReporters: [ci-bot]")
            .unwrap_or_else(|e| panic!("{e}"));
        let sys = "scangate-system";
        let refused = review_report_write(&report_request(sys, "tenant", true), &config, None);
        assert!(!refused.allowed);
        assert!(
            refused
                .result
                .message
                .contains("reports in namespace scangate-system are trusted results"),
            "{}",
            refused.result.message
        );
        for writer in [
            "ci-bot",
            "system:serviceaccount:scangate-system:scangate-controller",
        ] {
            let response = review_report_write(&report_request(sys, writer, true), &config, None);
            assert!(response.allowed, "{writer}");
            let object = patched(
                &response,
                json!({"metadata": {"annotations": {"scangate.dev/reported-by": "forged"}}}),
            );
            assert_eq!(
                object["metadata"]["annotations"]["scangate.dev/reported-by"],
                writer
            );
        }
        // A tenant's own namespace: allowed, and recorded.
        let response = review_report_write(&report_request("shop", "tenant", true), &config, None);
        assert!(response.allowed);
        assert!(response.patch.is_some());
        // Not a report: nothing to do.
        let response = review_report_write(&report_request(sys, "tenant", false), &config, None);
        assert!(response.allowed);
        assert!(response.patch.is_none());
    }

    #[test]
    fn the_scanner_writes_only_its_own_scans_report_from_its_jobs_pod() {
        use crate::admission::reporter::{POD_NAME_EXTRA, POD_UID_EXTRA};
        let config = AdmissionConfig::default();
        let sys = "scangate-system";
        let scanner = "system:serviceaccount:scangate-system:scangate-scanner";
        let bound =
            json!({POD_NAME_EXTRA: ["busybox-0a1b2c3d4e-abcde"], POD_UID_EXTRA: ["pod-uid"]});
        let busybox_job_pod = ScanPod::Found {
            uid: "pod-uid".into(),
            job: Some("busybox-0a1b2c3d4e".into()),
            job_owner: Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "scanning.scangate.dev/v1beta1".into(),
                    kind: "ImageScan".into(),
                    name: "busybox".into(),
                    uid: "scan-uid".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                },
            ),
        };
        let own = scanner_request(sys, scanner, true, "busybox-report", bound.clone());
        // Its pod is looked up, and its own report is stored with the writer recorded.
        assert_eq!(
            report_pod_to_check(&own, &config).map(|claim| claim.name),
            Some("busybox-0a1b2c3d4e-abcde".to_string())
        );
        let response = review_report_write(&own, &config, Some(&busybox_job_pod));
        assert!(response.allowed, "{}", response.result.message);
        let object = patched(
            &response,
            json!({"metadata": {"annotations": {"scangate.dev/reported-by": "forged"}}}),
        );
        assert_eq!(
            object["metadata"]["annotations"]["scangate.dev/reported-by"],
            scanner
        );
        // Without a pod in its token (a plain ServiceAccount token): refused, nothing to look up.
        let plain = scanner_request(sys, scanner, true, "busybox-report", json!({}));
        assert_eq!(report_pod_to_check(&plain, &config), None);
        let refused = review_report_write(&plain, &config, None);
        assert!(!refused.allowed);
        assert!(
            refused.result.message.contains("its token names no pod"),
            "{}",
            refused.result.message
        );
        // A pod that was not found, or whose lookup did not happen: refused.
        let refused = review_report_write(&own, &config, Some(&ScanPod::Missing));
        assert!(refused.result.message.contains("does not exist"));
        let refused = review_report_write(&own, &config, None);
        assert!(refused.result.message.contains("could not look up pod"));
        // Another scan's report, from the right pod: refused.
        let other = scanner_request(sys, scanner, true, "alpine-report", bound.clone());
        let refused = review_report_write(&other, &config, Some(&busybox_job_pod));
        assert!(!refused.allowed);
        assert!(
            refused
                .result
                .message
                .contains("whose report is ConfigMap busybox-report"),
            "{}",
            refused.result.message
        );
        // Any ConfigMap that is not a report (the admission config), in any namespace, with
        // or without a pod in its token: refused, and never looked up.
        for namespace in [sys, "shop"] {
            for extra in [json!({}), bound.clone()] {
                let scanner = format!("system:serviceaccount:{namespace}:scangate-scanner");
                let config_write =
                    scanner_request(namespace, &scanner, false, "scangate-config", extra);
                assert_eq!(report_pod_to_check(&config_write, &config), None);
                let refused = review_report_write(&config_write, &config, None);
                assert!(!refused.allowed);
                assert!(
                    refused
                        .result
                        .message
                        .contains("may write only its own scan's report ConfigMap"),
                    "{}",
                    refused.result.message
                );
            }
        }
        // The admin writes the admission config.
        let admin = scanner_request(sys, "kubernetes-admin", false, "scangate-config", json!({}));
        assert!(review_report_write(&admin, &config, None).allowed);
        // In a tenant namespace the scanner's reports count there only, as anyone's.
        let tenant = scanner_request(
            "shop",
            "system:serviceaccount:shop:scangate-scanner",
            true,
            "busybox-report",
            json!({}),
        );
        assert_eq!(report_pod_to_check(&tenant, &config), None);
        assert!(review_report_write(&tenant, &config, None).allowed);
    }

    #[test]
    fn exception_writes_record_the_approver_and_refuse_others() {
        let at: Timestamp = "2026-05-01T10:00:00.5Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let config =
            AdmissionConfig::from_yaml("exceptions: {approvers: [alice], approverGroups: [sec]}")
                .unwrap_or_else(|e| panic!("{e}"));
        let refused =
            review_exception_write(&exception_request("mallory", &["dev"], None), &config, at);
        assert!(!refused.allowed);
        assert!(
            refused
                .result
                .message
                .contains("\"mallory\" is not an exception approver")
        );
        // A forged record is overwritten with the real writer.
        let forged = json!({"scangate.dev/approved-by": "alice", "team": "x"});
        let response = review_exception_write(
            &exception_request("bob", &["sec"], Some(forged.clone())),
            &config,
            at,
        );
        assert!(response.allowed);
        let object = patched(&response, json!({"metadata": {"annotations": forged}}));
        assert_eq!(
            object["metadata"]["annotations"]["scangate.dev/approved-by"],
            "bob"
        );
        assert_eq!(
            object["metadata"]["annotations"]["scangate.dev/approved-at"],
            "2026-05-01T10:00:01Z"
        );
        assert_eq!(object["metadata"]["annotations"]["team"], "x");
        // No annotations yet.
        let response = review_exception_write(&exception_request("alice", &[], None), &config, at);
        let object = patched(&response, json!({"metadata": {}}));
        assert_eq!(
            object["metadata"]["annotations"]["scangate.dev/approved-by"],
            "alice"
        );
    }

    struct NoNames;

    impl scanning::Names for NoNames {
        fn template_exists(&self, _: &str, _: &str) -> bool {
            false
        }

        fn policy_exists(&self, _: &str, _: &str) -> bool {
            false
        }
    }

    fn scanning_request(operation: &str, kind: &str, spec: Value) -> Request {
        let plural = format!("{}s", kind.to_lowercase());
        decoded(&review(json!({
            "uid": "u-7",
            "kind": {"group": "scanning.scangate.dev", "version": "v1beta1", "kind": kind},
            "resource": {"group": "scanning.scangate.dev", "version": "v1beta1", "resource": plural},
            "name": "", "namespace": "shop", "operation": operation,
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "scanning.scangate.dev/v1beta1", "kind": kind,
                       "metadata": {"name": "strict", "namespace": "shop"}, "spec": spec}
        })))
    }

    #[test]
    fn scanning_objects_are_reviewed_with_the_gathered_inputs() {
        let config = AdmissionConfig::default();
        let ctx = |policy_check: Option<Result<(), String>>| scanning::Context {
            config: &config,
            names: &NoNames,
            namespace: "shop",
            now: Timestamp::UNIX_EPOCH,
            policy_check,
            job_rights: &scanning::JobRights::NotChecked,
        };
        let run = |req: &Request, policy_check| {
            review_scanning(req, req.object_json(), &ctx(policy_check))
        };
        let policy = scanning_request("CREATE", "ScanPolicy", json!({"regoFile": "package main"}));
        let (response, outcome) = run(&policy, Some(Ok(())));
        assert!(response.allowed, "{response:?}");
        assert_eq!(
            (response.uid.as_str(), outcome),
            ("u-7", ScanningOutcome::Allowed)
        );
        // The check's refusal is the answer, and it names the object (not the request's "").
        let (response, outcome) = run(&policy, Some(Err("over the memory limit".into())));
        assert!(!response.allowed);
        assert_eq!(outcome.verdict_label(), "deny");
        assert!(
            response.result.message.contains("strict")
                && response.result.message.contains("over the memory limit"),
            "{}",
            response.result.message
        );
        let scan = scanning_request(
            "CREATE",
            "ImageScan",
            json!({"registry": {"image": "NGINX"}}),
        );
        let (response, outcome) = run(&scan, None);
        assert!(!response.allowed);
        assert!(matches!(outcome, ScanningOutcome::Denied(m) if m.contains("spec.registry.image")));
        let delete = scanning_request(
            "DELETE",
            "ImageScan",
            json!({"registry": {"image": "NGINX"}}),
        );
        let (response, outcome) = run(&delete, None);
        assert!(response.allowed);
        assert_eq!(outcome, ScanningOutcome::Skipped);
    }

    const CONTROLLER: &str = "system:serviceaccount:scangate-system:scangate-controller";

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
        let at = "2026-01-01T00:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        // Only the controller writes status: "ci" is refused, whatever it writes.
        let refused = review_status(&decoded(&body), CONTROLLER, at);
        assert!(!refused.allowed);
        assert!(
            refused
                .result
                .message
                .contains("only scangate's controller (system:serviceaccount:scangate-system:scangate-controller) writes the status of scans; \"ci\" may not"),
            "{}",
            refused.result.message
        );
        let response = review_status(&decoded(&body), "ci", at);
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
        let response = review_status(&decoded(&body), "ci", Timestamp::UNIX_EPOCH);
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
                        let _ = review_status(&req, CONTROLLER, Timestamp::UNIX_EPOCH);
                    }
                    Err(rejection) => {
                        let answer = serde_json::to_value(rejection.into_review()).unwrap_or_default();
                        prop_assert_eq!(&answer["response"]["allowed"], &json!(false));
                    }
                }
            }
        }
    }

    #[test]
    fn pinning_patches_new_tags_only_where_it_is_on() {
        let digest = format!("sha256:{}", "2".repeat(64));
        let lookup = |container: &crate::admission::pod::Container| {
            (container.image == "nginx:1.27").then(|| pin::Target {
                digest: digest.clone(),
                scan: "scangate-system/nginx".into(),
            })
        };
        let create = decoded(&review(pod_request(
            "CREATE",
            &["nginx:1.27", "redis:7"],
            None,
        )));
        let (response, outcome) = review_pin(&create, true, lookup);
        assert!(response.allowed);
        let PinOutcome::Pinned(pinned) = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(pinned.len(), 1);
        assert_eq!(pinned[0].path, "/spec/containers/0/image");
        assert_eq!(pinned[0].to, format!("nginx:1.27@{digest}"));
        let patch: Value = serde_json::from_slice(response.patch.as_deref().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(
            patch,
            json!([{"op": "replace", "path": "/spec/containers/0/image",
                    "value": format!("nginx:1.27@{digest}")}])
        );
        assert_eq!(response.warnings, None, "a pin is no warning");
        assert_eq!(outcome.verdict_label(), "pin");

        let (off, outcome) = review_pin(&create, false, lookup);
        assert!(off.allowed && off.patch.is_none());
        assert_eq!(
            outcome,
            PinOutcome::Unchanged("pinning is off in this namespace")
        );
        // An update that keeps the image is not pinned (no rollout from turning pinning on).
        let update = decoded(&review(pod_request(
            "UPDATE",
            &["nginx:1.27"],
            Some(&["nginx:1.27"]),
        )));
        let (kept, outcome) = review_pin(&update, true, lookup);
        assert!(kept.patch.is_none());
        assert_eq!(outcome, PinOutcome::Unchanged("nothing to pin"));
    }
}
