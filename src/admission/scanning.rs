//! Validation of scangate's own objects at admission, so a broken template, policy, exception
//! or scan is refused on `kubectl apply` instead of failing a scan later.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use super::config::{AdmissionConfig, TemplateRules};
use crate::api::{
    ImageScanSpec, ScanExceptionSpec, ScanPolicySpec, ScanSettings, ScanTemplateSpec,
    SourceScanSpec, parse_duration,
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

/// Everything a scanning review reads.
pub struct Context<'a> {
    pub config: &'a AdmissionConfig,
    pub names: &'a dyn Names,
    pub namespace: &'a str,
    pub now: Timestamp,
    /// For a ScanPolicy: what the check of its Rego (compile and contract, run by the caller in
    /// a policy worker) found; `Err` carries the message. `None` when it was not run.
    pub policy_check: Option<Result<(), String>>,
}

/// Reviews a created or updated scanning object of `kind`.
pub fn review(kind: &str, name: &str, object: &Value, ctx: &Context<'_>) -> Verdict {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let denied = |what: &str, e: serde_json::Error| {
        Verdict::Denied(format!("{kind} {name:?} has an invalid {what}: {e}"))
    };
    match kind {
        "ScanTemplate" => match serde_json::from_value::<ScanTemplateSpec>(spec) {
            Ok(spec) => template(name, &spec, &ctx.config.templates),
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

fn template(name: &str, spec: &ScanTemplateSpec, rules: &TemplateRules) -> Verdict {
    let pod: &PodSpec = &spec.template;
    let deny = |problem: String| Verdict::Denied(format!("ScanTemplate {name:?}: {problem}"));
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
        let privileged = c
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);
        if privileged && !rules.allow_privileged {
            return deny(format!(
                "container {:?} is privileged; scanners do not need it (an admin can allow it with templates.allowPrivileged)",
                c.name
            ));
        }
    }
    let host_path = pod.volumes.iter().flatten().find(|v| v.host_path.is_some());
    if let Some(volume) = host_path
        && !rules.allow_host_path
    {
        return deny(format!(
            "volume {:?} mounts a hostPath; use an emptyDir (an admin can allow it with templates.allowHostPath)",
            volume.name
        ));
    }
    if pod.host_network == Some(true) && !rules.allow_host_network {
        return deny(
            "hostNetwork is refused (an admin can allow it with templates.allowHostNetwork)".into(),
        );
    }
    if pod.host_pid == Some(true) && !rules.allow_host_pid {
        return deny(
            "hostPID is refused (an admin can allow it with templates.allowHostPID)".into(),
        );
    }
    Verdict::allowed()
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
        if let Err(e) = ImagePattern::parse(pattern) {
            return deny(format!("spec.images has {pattern:?}: {e}"));
        }
    }
    if let Some(empty) = spec.cves.iter().position(|c| c.trim().is_empty()) {
        return deny(format!("spec.cves[{empty}] is empty"));
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
        run_with(kind, spec, &AdmissionConfig::default())
    }

    fn run_with(kind: &str, spec: Value, config: &AdmissionConfig) -> Verdict {
        let ctx = Context {
            config,
            names: &Known,
            namespace: "shop",
            now: "2026-11-23T00:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            policy_check: check_policy(&spec),
        };
        review(kind, "x", &json!({"spec": spec}), &ctx)
    }

    fn denied(v: Verdict) -> String {
        match v {
            Verdict::Denied(m) => m,
            other => panic!("allowed: {other:?}"),
        }
    }

    fn pod(extra: Value) -> Value {
        let mut pod = json!({"containers": [{"name": "scan", "image": "anchore/grype:v0.94.0"}]});
        if let (Some(p), Some(e)) = (pod.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({"template": pod})
    }

    #[test]
    fn templates() {
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
        let privileged = json!({"containers": [{"name": "p", "image": "i", "securityContext": {"privileged": true}}]});
        assert!(
            denied(run("ScanTemplate", json!({"template": privileged}))).contains("privileged")
        );
        assert!(
            denied(run(
                "ScanTemplate",
                pod(json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}))
            ))
            .contains("hostPath")
        );
        assert!(
            denied(run("ScanTemplate", pod(json!({"hostNetwork": true})))).contains("hostNetwork")
        );
        assert!(denied(run("ScanTemplate", pod(json!({"hostPID": true})))).contains("hostPID"));
        let mut config = AdmissionConfig::default();
        config.templates.allow_host_pid = true;
        config.templates.allow_privileged = true;
        assert_eq!(
            run_with("ScanTemplate", pod(json!({"hostPID": true})), &config),
            Verdict::allowed()
        );
        assert_eq!(
            run_with("ScanTemplate", json!({"template": privileged}), &config),
            Verdict::allowed()
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
