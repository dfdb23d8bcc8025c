//! The ValidatingWebhookConfiguration and MutatingWebhookConfiguration that route requests to
//! the webhook: one definition of the rules, for the cluster install (a Service, CA injected by
//! cert-manager) and for a webhook on loopback (a URL and the local CA).
//!
//! Choices, and why:
//! - `failurePolicy: Fail` everywhere by default: scangate is an enforcement point, and failing
//!   open would let any image in whenever the webhook is unreachable. Its own namespace and
//!   kube-system are excluded from the workload webhook, so scangate and the control plane can
//!   always start; the guards of scangate's own objects (status writes, exceptions, templates,
//!   policies) apply in every namespace and always fail closed. With the verdict mirror on
//!   (`scangate controller --mirror`: the apiserver itself denies known-bad digests), the
//!   workload and pin webhooks may fail open (`--workload-failure-policy Ignore`): during an
//!   outage unscanned and newly judged content gets in, known-bad digests do not.
//! - `timeoutSeconds`: 5 for workloads (decisions are in-memory lookups, well under a
//!   millisecond; 5 s only covers a slow network), 10 for scanning objects (a ScanPolicy is
//!   checked in a policy worker killed at `--policy-time-limit`, 2 s by default, with at most
//!   `--policy-concurrency` 2 running and `--policy-queue` 4 waiting, so the longest check ends
//!   within three rounds, about 6 s; raise the time limit and this together), 5 for status.
//! - `sideEffects: None`: the webhook only decides and writes nothing (first-sight scans and
//!   Events come from the controller, from what runs); dry-run requests are answered the same.
//! - `matchPolicy: Equivalent`: workloads sent through another API version are still checked.
//! - The workload webhook also sees `UPDATE` of the `scale` subresources of Deployments,
//!   ReplicaSets, StatefulSets and ReplicationControllers: scaling from zero, or a user scaling a
//!   revision, starts a template running again and is decided (docs/admission.md, Availability with a
//!   bound). The pin webhook does not: a Scale object has no image to pin.

use std::path::PathBuf;

use clap::Args;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct WebhookConfigArgs {
    /// Send reviews to this base URL (e.g. https://127.0.0.1:8443 for a webhook on loopback).
    #[arg(long, env = "SCANGATE_WEBHOOK_URL", conflicts_with = "service")]
    pub url: Option<String>,
    /// Send reviews to this Service, as NAMESPACE/NAME (port 443).
    #[arg(
        long,
        env = "SCANGATE_WEBHOOK_SERVICE",
        default_value = "scangate-system/scangate-webhook"
    )]
    pub service: String,
    /// PEM CA bundle that signed the webhook's certificate.
    #[arg(long, env = "SCANGATE_WEBHOOK_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Without --ca-file: the cert-manager Certificate (NAMESPACE/NAME) whose CA is injected.
    #[arg(
        long,
        env = "SCANGATE_WEBHOOK_CERTIFICATE",
        default_value = "scangate-system/scangate-webhook"
    )]
    pub certificate: String,
    /// Namespaces the webhooks never apply to.
    #[arg(
        long,
        env = "SCANGATE_EXCLUDED_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system,scangate-system"
    )]
    pub exclude_namespaces: Vec<String>,
    /// What the apiserver does with a workload when the webhook cannot answer: `Fail` (deny) or
    /// `Ignore` (admit; choose it only with the controller's verdict mirror on, `--mirror`).
    #[arg(
        long,
        env = "SCANGATE_WORKLOAD_FAILURE_POLICY",
        value_enum,
        default_value_t = FailurePolicy::Fail
    )]
    pub workload_failure_policy: FailurePolicy,
    /// The scanner's ServiceAccount name (admission config `templates.serviceAccount`): its
    /// writes of ConfigMaps that are not reports go to the report guard, which refuses them.
    #[arg(
        long,
        env = "SCANGATE_SCANNER_SERVICE_ACCOUNT",
        default_value = crate::admission::config::DEFAULT_SCANNER_SERVICE_ACCOUNT
    )]
    pub scanner_service_account: String,
}

/// A webhook's `failurePolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailurePolicy {
    /// Deny when the webhook cannot answer.
    #[value(name = "Fail")]
    Fail,
    /// Admit when the webhook cannot answer.
    #[value(name = "Ignore")]
    Ignore,
}

impl FailurePolicy {
    fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Fail => "Fail",
            FailurePolicy::Ignore => "Ignore",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the CA file {path}: {source}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--service {0:?} must be NAMESPACE/NAME")]
    Service(String),
    #[error("cannot render the webhook configurations: {0}")]
    Render(#[from] serde_json::Error),
    #[error("cannot render the webhook configurations as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `scangate webhook-config`: both configurations as YAML, for the Service (CA injected by
/// cert-manager) or a URL and a CA file.
pub fn run(args: &WebhookConfigArgs) -> Result<String> {
    let ca = match &args.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| Error::ReadCa {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let target = match &args.url {
        Some(url) => Target::Url(url),
        None => {
            let (namespace, name) = args
                .service
                .split_once('/')
                .ok_or_else(|| Error::Service(args.service.clone()))?;
            Target::Service { namespace, name }
        }
    };
    let excluded: Vec<&str> = args.exclude_namespaces.iter().map(String::as_str).collect();
    let ca = match &ca {
        Some(pem) => Ca::Bundle(pem),
        None => Ca::CertManager(&args.certificate),
    };
    configurations_yaml(
        NAME,
        &target,
        &Namespaces::Except(&excluded),
        &ca,
        args.workload_failure_policy,
        &args.scanner_service_account,
    )
}

/// Where the apiserver sends reviews.
pub enum Target<'a> {
    /// A Service in the cluster: `namespace/name`, port 443.
    Service { namespace: &'a str, name: &'a str },
    /// A URL, e.g. `https://127.0.0.1:8443` for a webhook on loopback.
    Url(&'a str),
}

/// Which namespaces the webhooks apply to.
pub enum Namespaces<'a> {
    /// Every namespace but these (kube-system and scangate's own, in an install).
    Except(&'a [&'a str]),
    /// Only namespaces with this label (for tests sharing a cluster).
    Labelled { key: &'a str, value: &'a str },
}

/// The name prefix of both configurations and of each webhook.
pub const NAME: &str = "scangate";

fn client_config(target: &Target<'_>, path: &str, ca_bundle: Option<&[u8]>) -> Value {
    let mut config = match target {
        Target::Service { namespace, name } => {
            json!({"service": {"namespace": namespace, "name": name, "path": path, "port": 443}})
        }
        Target::Url(base) => json!({"url": format!("{}{path}", base.trim_end_matches('/'))}),
    };
    if let Some(ca) = ca_bundle {
        config["caBundle"] = json!(ByteString(ca.to_vec()));
    }
    config
}

fn namespace_selector(namespaces: &Namespaces<'_>) -> Value {
    match namespaces {
        Namespaces::Except(names) => json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": names}
        ]}),
        Namespaces::Labelled { key, value } => json!({"matchLabels": {*key: *value}}),
    }
}

/// The workload webhook's namespaces, but those whose label turns pinning off.
fn pin_selector(namespaces: &Namespaces<'_>) -> Value {
    let mut selector = namespace_selector(namespaces);
    let off =
        json!({"key": crate::admission::pin::LABEL, "operator": "NotIn", "values": ["false"]});
    match selector
        .get_mut("matchExpressions")
        .and_then(Value::as_array_mut)
    {
        Some(expressions) => expressions.push(off),
        None => selector["matchExpressions"] = json!([off]),
    }
    selector
}

/// The guards of scangate's own objects (status writes, exceptions, templates and policies)
/// apply in every namespace, scangate's own included: a verdict is only worth what its writer
/// can be trusted with.
fn guard_selector(namespaces: &Namespaces<'_>) -> Value {
    match namespaces {
        Namespaces::Except(_) => json!({}),
        labelled @ Namespaces::Labelled { .. } => namespace_selector(labelled),
    }
}

fn webhook(
    name: &str,
    path: &str,
    rules: Value,
    timeout: i32,
    target: &Target<'_>,
    selector: Value,
    ca_bundle: Option<&[u8]>,
) -> Value {
    json!({
        "name": format!("{name}.scangate.dev"),
        "admissionReviewVersions": ["v1"],
        "clientConfig": client_config(target, path, ca_bundle),
        "rules": rules,
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": timeout,
        "namespaceSelector": selector,
    })
}

/// Where the CA bundle comes from.
pub enum Ca<'a> {
    /// PEM bytes, written into `caBundle`.
    Bundle(&'a [u8]),
    /// cert-manager's CA injector fills `caBundle` from this Certificate (`namespace/name`).
    CertManager(&'a str),
}

/// Both configurations, named `name` (normally [`NAME`]); the workload and pin webhooks with
/// `workload_failure`, every other one failing closed; `scanner` is the scanner's
/// ServiceAccount name, whose other ConfigMap writes the report guard refuses.
pub fn configurations(
    name: &str,
    target: &Target<'_>,
    namespaces: &Namespaces<'_>,
    ca: &Ca<'_>,
    workload_failure: FailurePolicy,
    scanner: &str,
) -> Result<(ValidatingWebhookConfiguration, MutatingWebhookConfiguration)> {
    let (ca_bundle, annotations) = match ca {
        Ca::Bundle(pem) => (Some(*pem), json!({})),
        Ca::CertManager(certificate) => {
            (None, json!({"cert-manager.io/inject-ca-from": certificate}))
        }
    };
    let metadata = json!({"name": name, "labels": {"app.kubernetes.io/name": "scangate"}, "annotations": annotations});
    let create_update = json!(["CREATE", "UPDATE"]);
    let workloads = json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": create_update,
         "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers"], "scope": "Namespaced"},
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": create_update,
         "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"], "scope": "Namespaced"},
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": create_update,
         "resources": ["jobs", "cronjobs"], "scope": "Namespaced"},
    ]);
    let scanning = json!([
        {"apiGroups": [crate::api::GROUP], "apiVersions": [crate::api::VERSION], "operations": create_update,
         "resources": ["imagescans", "sourcescans", "scantemplates", "scanpolicies", "scanexceptions"],
         "scope": "Namespaced"},
    ]);
    let status = json!([
        {"apiGroups": [crate::api::GROUP], "apiVersions": [crate::api::VERSION], "operations": ["UPDATE"],
         "resources": ["imagescans/status", "sourcescans/status"], "scope": "Namespaced"},
    ]);
    // Scaling up can start a template running again (from zero replicas, or an old or
    // orphaned ReplicaSet): the workload webhook decides those scales too. Pinning has nothing
    // to pin in a Scale object.
    let mut validated = workloads.clone();
    if let Some(rules) = validated.as_array_mut() {
        rules.extend([
            json!({"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                   "resources": ["replicationcontrollers/scale"], "scope": "Namespaced"}),
            json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                   "resources": ["deployments/scale", "replicasets/scale", "statefulsets/scale"],
                   "scope": "Namespaced"}),
        ]);
    }
    let mut workloads_webhook = webhook(
        "workloads",
        "/validate/workloads",
        validated,
        5,
        target,
        namespace_selector(namespaces),
        ca_bundle,
    );
    workloads_webhook["failurePolicy"] = json!(workload_failure.as_str());
    let validating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [
            workloads_webhook,
            webhook("scanning", "/validate/scanning", scanning, 10, target, guard_selector(namespaces), ca_bundle),
        ],
    });
    let exceptions = json!([
        {"apiGroups": [crate::api::GROUP], "apiVersions": [crate::api::VERSION], "operations": create_update,
         "resources": ["scanexceptions"], "scope": "Namespaced"},
    ]);
    let mut status_webhook = webhook(
        "scan-status",
        "/mutate/scan-status",
        status,
        5,
        target,
        guard_selector(namespaces),
        ca_bundle,
    );
    status_webhook["reinvocationPolicy"] = json!("Never");
    let mut exceptions_webhook = webhook(
        "exceptions",
        "/mutate/exceptions",
        exceptions,
        5,
        target,
        guard_selector(namespaces),
        ca_bundle,
    );
    exceptions_webhook["reinvocationPolicy"] = json!("Never");
    // Only report ConfigMaps (labelled with their scan): the guard never sees other ConfigMaps.
    let reports = json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": create_update,
         "resources": ["configmaps"], "scope": "Namespaced"},
    ]);
    let mut reports_webhook = webhook(
        "reports",
        "/mutate/reports",
        reports,
        5,
        target,
        guard_selector(namespaces),
        ca_bundle,
    );
    reports_webhook["reinvocationPolicy"] = json!("Never");
    reports_webhook["objectSelector"] = json!({"matchExpressions": [
        {"key": crate::report::SCAN_LABEL, "operator": "Exists"}
    ]});
    // Every other ConfigMap the scanner's ServiceAccount (of any namespace) writes, so the
    // guard refuses it: the scanner may write only its own scan's report, never the admission
    // config. RBAC cannot limit `create` to names, hence this. The match condition keeps
    // everyone else's ConfigMap writes (the admin's config, the control plane's) off the
    // webhook, so they never wait for it or fail with it.
    let mut scanner_webhook = webhook(
        "scanner-configmaps",
        "/mutate/reports",
        json!([
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": create_update,
             "resources": ["configmaps"], "scope": "Namespaced"},
        ]),
        5,
        target,
        guard_selector(namespaces),
        ca_bundle,
    );
    scanner_webhook["reinvocationPolicy"] = json!("Never");
    scanner_webhook["objectSelector"] = json!({"matchExpressions": [
        {"key": crate::report::SCAN_LABEL, "operator": "DoesNotExist"}
    ]});
    scanner_webhook["matchConditions"] = json!([{
        "name": "scanner",
        "expression": scanner_condition(scanner),
    }]);
    // Digest pinning: the workload webhook's kinds and failure policy, in the namespaces it
    // covers but those labelled `scangate.dev/pin-digests=false` (the webhook decides the
    // unlabelled ones from `pinDigests` and their mode). Again when a later mutating webhook
    // changed the object: an image it writes is pinned too (a pinned image is left as it is).
    let mut pin_webhook = webhook(
        "pin",
        "/mutate/pin",
        workloads,
        5,
        target,
        pin_selector(namespaces),
        ca_bundle,
    );
    pin_webhook["reinvocationPolicy"] = json!("IfNeeded");
    pin_webhook["failurePolicy"] = json!(workload_failure.as_str());
    let mutating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [status_webhook, exceptions_webhook, reports_webhook, scanner_webhook, pin_webhook],
    });
    Ok((
        serde_json::from_value(validating)?,
        serde_json::from_value(mutating)?,
    ))
}

/// The CEL match condition of requests by the ServiceAccount named `scanner`, in any
/// namespace (the name is a DNS label: no quote or colon to escape).
fn scanner_condition(scanner: &str) -> String {
    format!(
        "request.userInfo.username.startsWith('system:serviceaccount:') && \
         request.userInfo.username.endsWith(':{scanner}')"
    )
}

/// Both configurations as one YAML stream.
pub fn configurations_yaml(
    name: &str,
    target: &Target<'_>,
    namespaces: &Namespaces<'_>,
    ca: &Ca<'_>,
    workload_failure: FailurePolicy,
    scanner: &str,
) -> Result<String> {
    let (validating, mutating) =
        configurations(name, target, namespaces, ca, workload_failure, scanner)?;
    Ok(format!(
        "---\n{}---\n{}",
        serde_yaml::to_string(&validating)?,
        serde_yaml::to_string(&mutating)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_every_workload_kind_and_subresource() {
        let (validating, mutating) = configurations(
            NAME,
            &Target::Url("https://127.0.0.1:8443/"),
            &Namespaces::Except(&["kube-system", "scangate-system"]),
            &Ca::Bundle(b"CA"),
            FailurePolicy::Fail,
            "scangate-scanner",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let webhooks = validating.webhooks.unwrap_or_default();
        let workloads = &webhooks[0];
        assert_eq!(
            workloads.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/validate/workloads")
        );
        assert_eq!(
            workloads.client_config.ca_bundle,
            Some(ByteString(b"CA".to_vec()))
        );
        assert_eq!(workloads.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(workloads.side_effects, "None");
        let resources: Vec<String> = workloads
            .rules
            .iter()
            .flatten()
            .flat_map(|r| r.resources.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            resources,
            [
                "pods",
                "pods/ephemeralcontainers",
                "replicationcontrollers",
                "deployments",
                "replicasets",
                "statefulsets",
                "daemonsets",
                "jobs",
                "cronjobs",
                "replicationcontrollers/scale",
                "deployments/scale",
                "replicasets/scale",
                "statefulsets/scale"
            ]
        );
        let scale_operations: Vec<String> = workloads
            .rules
            .iter()
            .flatten()
            .filter(|r| {
                r.resources
                    .iter()
                    .flatten()
                    .any(|resource| resource.ends_with("/scale"))
            })
            .flat_map(|r| r.operations.clone().unwrap_or_default())
            .collect();
        assert_eq!(scale_operations, ["UPDATE", "UPDATE"]);
        let excluded = workloads
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_expressions.clone())
            .unwrap_or_default();
        assert_eq!(excluded[0].operator, "NotIn");
        assert_eq!(
            excluded[0].values,
            Some(vec![
                "kube-system".to_string(),
                "scangate-system".to_string()
            ])
        );
        assert_eq!(
            webhooks[1].client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/validate/scanning")
        );
        let mutating = mutating.webhooks.unwrap_or_default();
        let status = &mutating[0];
        // The guards apply in every namespace, scangate's own included.
        assert_eq!(status.namespace_selector, Some(Default::default()));
        assert_eq!(
            mutating[1].client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/mutate/exceptions")
        );
        assert_eq!(mutating[1].namespace_selector, Some(Default::default()));
        let reports = &mutating[2];
        assert_eq!(
            reports.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/mutate/reports")
        );
        let selector = reports.object_selector.clone().unwrap_or_default();
        assert_eq!(
            selector.match_expressions.unwrap_or_default()[0].key,
            "scanning.scangate.dev/scan"
        );
        assert_eq!(webhooks[1].namespace_selector, Some(Default::default()));
        // The scanner's other ConfigMap writes: unlabelled ones, by its ServiceAccount only.
        let scanner = &mutating[3];
        assert_eq!(
            scanner.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/mutate/reports")
        );
        assert_eq!(scanner.failure_policy.as_deref(), Some("Fail"));
        let selector = scanner.object_selector.clone().unwrap_or_default();
        let expression = &selector.match_expressions.unwrap_or_default()[0];
        assert_eq!(
            (expression.key.as_str(), expression.operator.as_str()),
            ("scanning.scangate.dev/scan", "DoesNotExist")
        );
        let conditions = scanner.match_conditions.clone().unwrap_or_default();
        assert_eq!(
            conditions[0].expression,
            "request.userInfo.username.startsWith('system:serviceaccount:') && \
             request.userInfo.username.endsWith(':scangate-scanner')"
        );
        let pin = &mutating[4];
        assert_eq!(
            pin.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/mutate/pin")
        );
        // Pinning: the workload kinds, without their scale subresources.
        assert_eq!(
            pin.rules.as_deref(),
            workloads.rules.as_ref().map(|rules| &rules[..3])
        );
        assert_eq!(pin.failure_policy, workloads.failure_policy);
        assert_eq!(pin.reinvocation_policy.as_deref(), Some("IfNeeded"));
        let pin_selector = pin
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_expressions.clone())
            .unwrap_or_default();
        assert_eq!(pin_selector[0], excluded[0]);
        assert_eq!(pin_selector[1].key, "scangate.dev/pin-digests");
        assert_eq!(pin_selector[1].operator, "NotIn");
        assert_eq!(pin_selector[1].values, Some(vec!["false".to_string()]));
        assert_eq!(
            status.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/mutate/scan-status")
        );
        let status_resources = status.rules.clone().unwrap_or_default()[0]
            .resources
            .clone();
        assert_eq!(
            status_resources,
            Some(vec![
                "imagescans/status".to_string(),
                "sourcescans/status".to_string()
            ])
        );
    }

    #[test]
    fn service_targets() {
        let yaml = configurations_yaml(
            NAME,
            &Target::Service {
                namespace: "scangate-system",
                name: "scangate-webhook",
            },
            &Namespaces::Labelled {
                key: "e2e",
                value: "1",
            },
            &Ca::CertManager("scangate-system/scangate-webhook"),
            FailurePolicy::Ignore,
            "scangate-scanner",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(yaml.contains("cert-manager.io/inject-ca-from: scangate-system/scangate-webhook"));
        // Failing open is for the workload and pin webhooks only: the guards fail closed.
        assert_eq!(yaml.matches("failurePolicy: Ignore").count(), 2, "{yaml}");
        assert_eq!(yaml.matches("failurePolicy: Fail").count(), 5, "{yaml}");
        assert!(yaml.contains("namespace: scangate-system"));
        assert!(yaml.contains("path: /validate/workloads"));
        assert!(yaml.contains("e2e: '1'"), "{yaml}");
        assert!(!yaml.contains("caBundle"));
    }
}
