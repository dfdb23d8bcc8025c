//! Validation of scangate's own objects at admission, so a broken template, policy, exception
//! or scan is refused on `kubectl apply` instead of failing a scan later.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use super::config::{AdmissionConfig, TemplateRules};
use super::pod_security;
use crate::api::{
    ImageScanSpec, ScanExceptionSpec, ScanPolicySpec, ScanSettings, ScanTemplateSpec,
    SourceScanSpec, VexStatement, VexStatus, parse_duration,
};
use crate::image::ImageRef;
use crate::index::ImagePattern;

/// What the review of a scanning object says.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed { warnings: Vec<String> },
    Denied(String),
}

impl Verdict {
    fn allowed() -> Self {
        Verdict::Allowed { warnings: vec![] }
    }
}

/// Which templates and policies exist, for warnings about dangling names.
pub trait Names {
    fn template_exists(&self, namespace: &str, name: &str) -> bool;
    fn policy_exists(&self, namespace: &str, name: &str) -> bool;
}

/// Whether the user writing a ScanTemplate may create Jobs in its namespace, as a
/// SubjectAccessReview answered: a template runs a Job there, so its writer must be allowed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobRights {
    /// Not asked: the object is not a ScanTemplate, or the webhook runs without a cluster.
    NotChecked,
    Allowed,
    Denied {
        user: String,
    },
    /// The apiserver did not answer (an error or the time limit).
    Unknown {
        user: String,
        error: String,
    },
}

impl JobRights {
    /// The answer of the review [`job_access_review`] asked, for `user`.
    pub fn from_answer(user: &str, answer: Option<&SubjectAccessReviewStatus>) -> JobRights {
        if answer.is_some_and(|a| a.allowed) {
            JobRights::Allowed
        } else {
            JobRights::Denied { user: user.into() }
        }
    }
}

/// The SubjectAccessReview that asks whether `user` may create Jobs in `namespace`.
pub fn job_access_review(user: &UserInfo, namespace: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some("create".into()),
                group: Some("batch".into()),
                resource: Some("jobs".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// Everything a scanning review reads.
pub struct Context<'a> {
    pub config: &'a AdmissionConfig,
    pub names: &'a dyn Names,
    pub namespace: &'a str,
    pub now: Timestamp,
    /// For a ScanPolicy: what the check of its Rego (compile and contract, run by the caller in
    /// a policy worker) found; `Err` carries the message. `None` when it was not run.
    pub policy_check: Option<Result<(), String>>,
    /// Whether the writer may create Jobs in `namespace` (for ScanTemplates).
    pub job_rights: &'a JobRights,
}

/// Reviews a created or updated scanning object of `kind`.
pub fn review(kind: &str, name: &str, object: &Value, ctx: &Context<'_>) -> Verdict {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let denied = |what: &str, e: serde_json::Error| {
        Verdict::Denied(format!("{kind} {name:?} has an invalid {what}: {e}"))
    };
    match kind {
        "ScanTemplate" => match serde_json::from_value::<ScanTemplateSpec>(spec) {
            Ok(spec) => template(name, &spec, ctx),
            Err(e) => denied("spec (spec.template must be a PodSpec)", e),
        },
        "ScanPolicy" => match serde_json::from_value::<ScanPolicySpec>(spec) {
            Ok(_) => match &ctx.policy_check {
                Some(Ok(())) => Verdict::allowed(),
                Some(Err(message)) => Verdict::Denied(format!("ScanPolicy {name:?}: {message}")),
                None => Verdict::Denied(format!(
                    "ScanPolicy {name:?}: its Rego could not be checked; retry"
                )),
            },
            Err(e) => denied("spec", e),
        },
        "ScanException" => match serde_json::from_value::<ScanExceptionSpec>(spec) {
            Ok(spec) => exception(name, &spec, ctx),
            Err(e) => denied("spec (images, reason and expires are required)", e),
        },
        "ImageScan" => match serde_json::from_value::<ImageScanSpec>(spec) {
            Ok(spec) => image_scan(name, &spec, ctx),
            Err(e) => denied("spec", e),
        },
        "SourceScan" => match serde_json::from_value::<SourceScanSpec>(spec) {
            Ok(spec) => source_scan(name, &spec, ctx),
            Err(e) => denied("spec", e),
        },
        other => Verdict::Denied(format!("{other} is not a scangate kind")),
    }
}

fn template(name: &str, spec: &ScanTemplateSpec, ctx: &Context<'_>) -> Verdict {
    let deny = |problem: String| Verdict::Denied(format!("ScanTemplate {name:?}: {problem}"));
    match ctx.job_rights {
        JobRights::NotChecked | JobRights::Allowed => {}
        JobRights::Denied { user } => {
            return Verdict::Denied(format!(
                "user {user:?} cannot create Jobs in namespace {}, so it cannot create a ScanTemplate that runs one (ScanTemplate {name:?}); ask an admin to create it",
                ctx.namespace
            ));
        }
        JobRights::Unknown { user, error } => {
            return deny(format!(
                "cannot check that user {user:?} may create Jobs in namespace {} (a SubjectAccessReview): {error}; try again",
                ctx.namespace
            ));
        }
    }
    let pod: &PodSpec = &spec.template;
    if pod.containers.is_empty() {
        return deny(
            "spec.template has no containers; add the scanner and `scangate report`".into(),
        );
    }
    let all = pod
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("initContainers", c));
    let all = all.chain(pod.containers.iter().map(|c| ("containers", c)));
    for (section, c) in all {
        if c.image.as_deref().is_none_or(str::is_empty) {
            return deny(format!("spec.template.{section} {:?} has no image", c.name));
        }
    }
    match template_pod(name, pod, &ctx.config.templates) {
        Ok(()) => Verdict::allowed(),
        Err(message) => Verdict::Denied(message),
    }
}

/// Whether a ScanTemplate's pod may run: it passes the configured Pod Security level and names
/// no ServiceAccount but the scanner's. `Err` lists every problem. The webhook refuses such a
/// template; the controller runs no Job from one (a template written before the rule).
pub fn template_pod(name: &str, pod: &PodSpec, rules: &TemplateRules) -> Result<(), String> {
    let level = rules.pod_security;
    let violations = pod_security::check(pod, level, "spec.template");
    let mut problems = vec![];
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        problems.push(format!(
            "would run a pod that Pod Security {:?} forbids: {}",
            level.as_str(),
            list.join("; ")
        ));
    }
    let named = [
        ("serviceAccountName", pod.service_account_name.as_deref()),
        ("serviceAccount", pod.service_account.as_deref()),
    ];
    for (field, account) in named {
        if let Some(account) = account.filter(|a| !a.is_empty() && *a != rules.service_account) {
            problems.push(format!(
                "spec.template.{field} is {account:?}, but a scan pod may only run as the scanner's ServiceAccount {:?} (templates.serviceAccount); leave it unset and the controller sets it",
                rules.service_account
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("ScanTemplate {name:?} {}", problems.join("; and ")))
    }
}

fn exception(name: &str, spec: &ScanExceptionSpec, ctx: &Context<'_>) -> Verdict {
    let deny = |problem: String| Verdict::Denied(format!("ScanException {name:?}: {problem}"));
    if spec.reason.trim().is_empty() {
        return deny("spec.reason is empty; say why the exception is granted and by whom".into());
    }
    if spec.images.is_empty() {
        return deny("spec.images is empty; list the images it applies to".into());
    }
    for pattern in &spec.images {
        match ImagePattern::parse(pattern) {
            Err(e) => return deny(format!("spec.images has {pattern:?}: {e}")),
            Ok(parsed) if parsed.is_catch_all() && !ctx.config.exceptions.allow_catch_all => {
                return deny(format!(
                    "spec.images has {pattern:?}, which covers every image of a registry or \
                     more; name the repositories (e.g. `ghcr.io/org/app`), or an admin can allow \
                     such patterns with exceptions.allowCatchAll"
                ));
            }
            Ok(_) => {}
        }
    }
    if let Some(empty) = spec.cves.iter().position(|c| c.trim().is_empty()) {
        return deny(format!("spec.cves[{empty}] is empty"));
    }
    if let Some(vex) = &spec.vex
        && let Err(problem) = vex_problem(vex, &spec.cves)
    {
        return deny(problem);
    }
    let expires = spec.expires.0;
    if expires <= ctx.now {
        return deny(format!(
            "spec.expires {expires} is in the past; an exception must expire in the future"
        ));
    }
    let max = match ctx.config.exception_max_duration() {
        Ok(max) => max,
        Err(e) => return deny(e.to_string()),
    };
    let limit = Duration::try_from(expires.duration_since(ctx.now)).unwrap_or(Duration::MAX);
    if limit > max {
        return deny(format!(
            "spec.expires {expires} is more than {} from now, the most the admin allows (exceptions.maxDuration)",
            ctx.config.exceptions.max_duration
        ));
    }
    Verdict::allowed()
}

/// What is wrong with a ScanException's VEX statement, by OpenVEX's rules and scangate's: it
/// names its CVEs (a statement is about vulnerabilities, never a whole image), `not_affected`
/// says why with a justification label, `affected` says what to do.
fn vex_problem(vex: &VexStatement, cves: &[String]) -> Result<(), String> {
    if cves.is_empty() {
        return Err(
            "spec.cves is empty; a VEX statement (spec.vex) is about the CVEs it lists: \
             name them (a plain exception, without spec.vex, covers a whole image)"
                .into(),
        );
    }
    match (vex.status, vex.justification) {
        (VexStatus::NotAffected, None) => {
            return Err(
                "spec.vex.justification is required with status not_affected: one of \
                 component_not_present, vulnerable_code_not_present, \
                 vulnerable_code_not_in_execute_path, \
                 vulnerable_code_cannot_be_controlled_by_adversary, \
                 inline_mitigations_already_exist"
                    .into(),
            );
        }
        (status, Some(_)) if status != VexStatus::NotAffected => {
            return Err(format!(
                "spec.vex.justification is for status not_affected only, not {status}; remove it \
                 (say more in spec.vex.impactStatement or actionStatement)"
            ));
        }
        _ => {}
    }
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    if vex.status == VexStatus::Affected && blank(&vex.action_statement) {
        return Err(
            "spec.vex.actionStatement is required with status affected: say what to do to \
             remediate or mitigate it (OpenVEX)"
                .into(),
        );
    }
    Ok(())
}

fn settings(kind: &str, name: &str, settings: &ScanSettings, ctx: &Context<'_>) -> Verdict {
    if let Some(interval) = &settings.rescan_interval
        && let Err(e) = parse_duration(interval)
    {
        return Verdict::Denied(format!("{kind} {name:?}: spec.rescanInterval: {e}"));
    }
    let mut warnings = vec![];
    if let Some(t) = &settings.scan_template
        && !ctx.names.template_exists(ctx.namespace, t)
    {
        warnings.push(format!(
            "ScanTemplate {t:?} does not exist in namespace {}; the scan stays Pending until it does",
            ctx.namespace
        ));
    }
    if let Some(p) = &settings.scan_policy
        && !ctx.names.policy_exists(ctx.namespace, p)
    {
        warnings.push(format!(
            "ScanPolicy {p:?} does not exist in namespace {}; the scan is Error until it does",
            ctx.namespace
        ));
    }
    Verdict::Allowed { warnings }
}

fn image_scan(name: &str, spec: &ImageScanSpec, ctx: &Context<'_>) -> Verdict {
    if let Err(e) = ImageRef::parse(&spec.registry.image) {
        return Verdict::Denied(format!("ImageScan {name:?}: spec.registry.image: {e}"));
    }
    if spec.results_from == Some(crate::api::ResultsFrom::Attestation)
        && let Some(template) = &spec.scan.scan_template
    {
        return Verdict::Denied(format!(
            "ImageScan {name:?}: spec.resultsFrom is Attestation, so no scan Job runs: remove \
             spec.scanTemplate ({template:?}), or set resultsFrom: Report to scan with it"
        ));
    }
    settings("ImageScan", name, &spec.scan, ctx)
}

/// Git URLs: `https://`, `http://`, `ssh://`, `git://`, or scp-like `user@host:path`.
fn valid_git_url(url: &str) -> bool {
    let has_scheme = ["https://", "http://", "ssh://", "git://"].iter().any(|s| {
        url.strip_prefix(s)
            .is_some_and(|rest| rest.len() > 2 && rest.contains('/'))
    });
    let scp_like = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once(':'))
        .is_some_and(|(host, path)| !host.is_empty() && !path.is_empty() && !host.contains('/'));
    !url.contains(char::is_whitespace) && (has_scheme || scp_like)
}

fn source_scan(name: &str, spec: &SourceScanSpec, ctx: &Context<'_>) -> Verdict {
    let deny = |problem: &str| Verdict::Denied(format!("SourceScan {name:?}: {problem}"));
    match (&spec.git, &spec.blob) {
        (Some(_), Some(_)) => return deny("give spec.git or spec.blob, not both"),
        (None, None) => return deny("give spec.git (url, revision) or spec.blob (url)"),
        (Some(git), None) if !valid_git_url(&git.url) => {
            return deny(
                "spec.git.url is not a git URL (https://, ssh://, git:// or user@host:path)",
            );
        }
        (None, Some(blob))
            if !(blob.url.starts_with("https://") || blob.url.starts_with("http://")) =>
        {
            return deny("spec.blob.url must be an http(s) URL");
        }
        _ => {}
    }
    settings("SourceScan", name, &spec.scan, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::pod_security::Level;
    use serde_json::json;

    struct Known;
    impl Names for Known {
        fn template_exists(&self, _: &str, name: &str) -> bool {
            name == "grype"
        }
        fn policy_exists(&self, _: &str, name: &str) -> bool {
            name == "strict"
        }
    }

    /// What the policy worker would say: only `package main` passes.
    fn check_policy(spec: &Value) -> Option<Result<(), String>> {
        let rego = spec.get("regoFile")?.as_str()?;
        Some(if rego.contains("package main") {
            Ok(())
        } else {
            Err("policy.rego:1:1: the package must be `main`".into())
        })
    }

    fn run(kind: &str, spec: Value) -> Verdict {
        run_with(kind, spec, &AdmissionConfig::default(), &JobRights::Allowed)
    }

    fn run_with(
        kind: &str,
        spec: Value,
        config: &AdmissionConfig,
        job_rights: &JobRights,
    ) -> Verdict {
        let ctx = Context {
            config,
            names: &Known,
            namespace: "shop",
            now: "2026-11-23T00:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            policy_check: check_policy(&spec),
            job_rights,
        };
        review(kind, "x", &json!({"spec": spec}), &ctx)
    }

    fn denied(v: Verdict) -> String {
        match v {
            Verdict::Denied(m) => m,
            other => panic!("allowed: {other:?}"),
        }
    }

    /// A template whose pod passes `restricted`, with `extra` added to the PodSpec.
    fn pod(extra: Value) -> Value {
        let mut pod = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "scan", "image": "anchore/grype:v0.94.0", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        });
        if let (Some(p), Some(e)) = (pod.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({"template": pod})
    }

    #[test]
    fn templates_need_containers_with_images() {
        assert_eq!(run("ScanTemplate", pod(json!({}))), Verdict::allowed());
        assert!(
            denied(run("ScanTemplate", json!({"template": {"containers": []}})))
                .contains("no containers")
        );
        assert!(
            denied(run(
                "ScanTemplate",
                json!({"template": {"containers": [{"name": "a"}]}})
            ))
            .contains("\"a\" has no image")
        );
        assert!(
            denied(run("ScanTemplate", json!({"template": "nope"}))).contains("must be a PodSpec")
        );
    }

    #[test]
    fn templates_must_pass_the_configured_pod_security_level() {
        // Issue 10, attack 6: host IPC, SYS_ADMIN, a hostPath, root, no seccomp.
        let attack = json!({"template": {
            "serviceAccountName": "default",
            "hostIPC": true,
            "volumes": [{"name": "token", "secret": {"secretName": "s"}}, {"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "scan", "image": "i", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
        }});
        let message = denied(run("ScanTemplate", attack.clone()));
        assert!(
            message.starts_with(
                "ScanTemplate \"x\" would run a pod that Pod Security \"restricted\" forbids: spec.template.hostIPC: control \"Host Namespaces\" (baseline) requires it unset or false; "
            ),
            "{message}"
        );
        for part in [
            "spec.template.volumes[1].hostPath: control \"Volume Types\" (restricted)",
            "spec.template.containers[0].securityContext.allowPrivilegeEscalation: control \"Privilege Escalation\" (restricted) requires false",
            "spec.template.containers[0].securityContext.runAsNonRoot: control \"Running as Non-root\" (restricted)",
            "spec.template.containers[0].securityContext.seccompProfile.type: control \"Seccomp\" (restricted)",
            "spec.template.containers[0].securityContext.capabilities.drop: control \"Capabilities\" (restricted) requires it to include ALL",
            "spec.template.containers[0].securityContext.capabilities.add: control \"Capabilities\" (restricted) allows adding only NET_BIND_SERVICE; found SYS_ADMIN",
            "; and spec.template.serviceAccountName is \"default\", but a scan pod may only run as the scanner's ServiceAccount \"scangate-scanner\"",
        ] {
            assert!(message.contains(part), "{part} not in {message}");
        }
        assert!(!message.contains("volumes[0]"), "{message}");

        // Lowered to baseline, the restricted controls no longer apply.
        let mut config = AdmissionConfig::default();
        config.templates.pod_security = Level::Baseline;
        let message = denied(run_with(
            "ScanTemplate",
            attack,
            &config,
            &JobRights::Allowed,
        ));
        assert!(
            message.contains("Pod Security \"baseline\" forbids"),
            "{message}"
        );
        assert!(
            message.contains("control \"HostPath Volumes\" (baseline)"),
            "{message}"
        );
        assert!(
            message.contains("control \"Capabilities\" (baseline)"),
            "{message}"
        );
        assert!(!message.contains("(restricted)"), "{message}");
        let root = pod(json!({"securityContext": {"runAsUser": 0}}));
        assert_eq!(
            run_with("ScanTemplate", root.clone(), &config, &JobRights::Allowed),
            Verdict::allowed()
        );
        assert!(denied(run("ScanTemplate", root)).contains("Running as Non-root user"));
    }

    #[test]
    fn templates_may_name_only_the_scanner_service_account() {
        let named = |account: &str| pod(json!({"serviceAccountName": account}));
        assert_eq!(
            run("ScanTemplate", named("scangate-scanner")),
            Verdict::allowed()
        );
        let message = denied(run("ScanTemplate", named("default")));
        assert_eq!(
            message,
            "ScanTemplate \"x\" spec.template.serviceAccountName is \"default\", but a scan pod may only run as the scanner's ServiceAccount \"scangate-scanner\" (templates.serviceAccount); leave it unset and the controller sets it"
        );
        assert!(
            denied(run("ScanTemplate", pod(json!({"serviceAccount": "admin"}))))
                .contains("spec.template.serviceAccount is \"admin\"")
        );
        let mut config = AdmissionConfig::default();
        config.templates.service_account = "scanner".into();
        assert_eq!(
            run_with(
                "ScanTemplate",
                named("scanner"),
                &config,
                &JobRights::Allowed
            ),
            Verdict::allowed()
        );
    }

    #[test]
    fn template_writers_must_be_allowed_to_create_jobs() {
        let ok = pod(json!({}));
        let config = AdmissionConfig::default();
        assert_eq!(
            run_with("ScanTemplate", ok.clone(), &config, &JobRights::NotChecked),
            Verdict::allowed()
        );
        let refused = JobRights::Denied {
            user: "alice".into(),
        };
        assert_eq!(
            denied(run_with("ScanTemplate", ok.clone(), &config, &refused)),
            "user \"alice\" cannot create Jobs in namespace shop, so it cannot create a ScanTemplate that runs one (ScanTemplate \"x\"); ask an admin to create it"
        );
        let unknown = JobRights::Unknown {
            user: "alice".into(),
            error: "timed out after 2s".into(),
        };
        let message = denied(run_with("ScanTemplate", ok, &config, &unknown));
        assert!(
            message.contains("cannot check that user \"alice\" may create Jobs in namespace shop")
        );
        assert!(message.contains("timed out after 2s"));
    }

    #[test]
    fn the_access_review_asks_for_the_writer_to_create_jobs() {
        let user = UserInfo {
            username: Some("alice".into()),
            uid: Some("u-1".into()),
            groups: Some(vec!["team".into(), "system:authenticated".into()]),
            extra: Some([("scopes".to_string(), vec!["a".to_string()])].into()),
        };
        let review = job_access_review(&user, "shop");
        assert_eq!(
            serde_json::to_value(&review.spec).unwrap_or_default(),
            json!({
                "user": "alice", "uid": "u-1", "groups": ["team", "system:authenticated"],
                "extra": {"scopes": ["a"]},
                "resourceAttributes": {"namespace": "shop", "verb": "create", "group": "batch", "resource": "jobs"},
            })
        );
        let yes = SubjectAccessReviewStatus {
            allowed: true,
            ..SubjectAccessReviewStatus::default()
        };
        assert_eq!(
            JobRights::from_answer("alice", Some(&yes)),
            JobRights::Allowed
        );
        assert_eq!(
            JobRights::from_answer("alice", None),
            JobRights::Denied {
                user: "alice".into()
            }
        );
    }

    #[test]
    fn exceptions() {
        let ok = json!({"images": ["nginx"], "cves": ["CVE-2024-1"], "reason": "r", "expires": "2026-12-01T00:00:00Z"});
        assert_eq!(run("ScanException", ok.clone()), Verdict::allowed());
        let mut past = ok.clone();
        past["expires"] = json!("2026-01-01T00:00:00Z");
        assert!(denied(run("ScanException", past)).contains("is in the past"));
        let mut far = ok.clone();
        far["expires"] = json!("2027-06-01T00:00:00Z");
        assert!(denied(run("ScanException", far)).contains("more than 90d from now"));
        let mut no_reason = ok.clone();
        no_reason["reason"] = json!(" ");
        assert!(denied(run("ScanException", no_reason)).contains("spec.reason is empty"));
        let mut no_expiry = ok.clone();
        no_expiry.as_object_mut().map(|o| o.remove("expires"));
        assert!(denied(run("ScanException", no_expiry)).contains("expires are required"));
        let mut bad_image = ok;
        bad_image["images"] = json!(["Not Valid"]);
        assert!(denied(run("ScanException", bad_image)).contains("spec.images has \"Not Valid\""));
    }

    #[test]
    fn vex_statements_follow_openvex_and_name_their_cves() {
        let ok = json!({"images": ["nginx"], "cves": ["CVE-2024-1"], "reason": "r",
            "expires": "2026-12-01T00:00:00Z",
            "vex": {"status": "not_affected", "justification": "vulnerable_code_not_present"}});
        assert_eq!(run("ScanException", ok.clone()), Verdict::allowed());
        for status in ["under_investigation", "fixed"] {
            let mut other = ok.clone();
            other["vex"] = json!({"status": status});
            assert_eq!(run("ScanException", other), Verdict::allowed(), "{status}");
        }
        let mut whole_image = ok.clone();
        whole_image["cves"] = json!([]);
        assert!(denied(run("ScanException", whole_image)).contains("spec.cves is empty"));
        let mut unjustified = ok.clone();
        unjustified["vex"] = json!({"status": "not_affected", "impactStatement": "trust me"});
        assert!(
            denied(run("ScanException", unjustified))
                .contains("spec.vex.justification is required with status not_affected")
        );
        let mut misplaced = ok.clone();
        misplaced["vex"]["status"] = json!("fixed");
        assert!(
            denied(run("ScanException", misplaced))
                .contains("justification is for status not_affected only, not fixed")
        );
        let mut affected = ok.clone();
        affected["vex"] = json!({"status": "affected"});
        assert!(
            denied(run("ScanException", affected.clone())).contains("actionStatement is required")
        );
        affected["vex"]["actionStatement"] = json!("upgrade to 1.2");
        assert_eq!(run("ScanException", affected), Verdict::allowed());
        // Not an OpenVEX label: refused as the object's shape.
        let mut unknown = ok;
        unknown["vex"] = json!({"status": "maybe"});
        assert!(matches!(run("ScanException", unknown), Verdict::Denied(_)));
    }

    #[test]
    fn policies_are_decided_by_the_check_given() {
        assert_eq!(
            run("ScanPolicy", json!({"regoFile": "package main"})),
            Verdict::allowed()
        );
        assert!(
            denied(run("ScanPolicy", json!({"regoFile": "package x"}))).contains("policy.rego:1:1")
        );
        assert!(denied(run("ScanPolicy", json!({}))).contains("regoFile"));
        let config = AdmissionConfig::default();
        let unchecked = Context {
            config: &config,
            names: &Known,
            namespace: "shop",
            now: Timestamp::UNIX_EPOCH,
            policy_check: None,
            job_rights: &JobRights::Allowed,
        };
        let spec = json!({"spec": {"regoFile": "package main"}});
        assert!(denied(review("ScanPolicy", "x", &spec, &unchecked)).contains("retry"));
    }

    #[test]
    fn image_scans() {
        let ok = json!({"registry": {"image": "nginx:1"}, "scanTemplate": "grype", "scanPolicy": "strict", "rescanInterval": "24h"});
        assert_eq!(run("ImageScan", ok.clone()), Verdict::allowed());
        let mut bad = ok.clone();
        bad["registry"]["image"] = json!("NGINX");
        assert!(denied(run("ImageScan", bad)).contains("spec.registry.image"));
        let mut bad = ok.clone();
        bad["rescanInterval"] = json!("daily");
        assert!(denied(run("ImageScan", bad)).contains("spec.rescanInterval"));
        let mut both = ok.clone();
        both["resultsFrom"] = json!("Attestation");
        assert!(denied(run("ImageScan", both.clone())).contains("remove spec.scanTemplate"));
        both.as_object_mut().map(|o| o.remove("scanTemplate"));
        assert!(matches!(run("ImageScan", both), Verdict::Allowed { .. }));
        let mut dangling = ok;
        dangling["scanTemplate"] = json!("missing");
        dangling["scanPolicy"] = json!("gone");
        match run("ImageScan", dangling) {
            Verdict::Allowed { warnings } => {
                assert_eq!(warnings.len(), 2);
                assert!(
                    warnings[0]
                        .contains("ScanTemplate \"missing\" does not exist in namespace shop")
                );
                assert!(warnings[1].contains("ScanPolicy \"gone\" does not exist"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn source_scans() {
        for url in [
            "https://github.com/a/b.git",
            "ssh://git@host/a/b",
            "git@github.com:a/b.git",
        ] {
            assert_eq!(
                run("SourceScan", json!({"git": {"url": url}})),
                Verdict::allowed(),
                "{url}"
            );
        }
        for url in ["github.com/a/b", "https://", "not a url"] {
            assert!(
                denied(run("SourceScan", json!({"git": {"url": url}}))).contains("not a git URL"),
                "{url}"
            );
        }
        assert!(denied(run("SourceScan", json!({}))).contains("give spec.git"));
        assert!(
            denied(run(
                "SourceScan",
                json!({"git": {"url": "https://h/a"}, "blob": {"url": "https://h/a.tgz"}})
            ))
            .contains("not both")
        );
        assert!(
            denied(run("SourceScan", json!({"blob": {"url": "ftp://h/a.tgz"}})))
                .contains("http(s)")
        );
    }
}
