//! ScanPolicies evaluated in policy workers (bounded in time, memory and concurrency, off the
//! async runtime), and the active ScanExceptions given to them as `input.exceptions`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::admission::config::AdmissionConfig;
use crate::api::{ScanException, ScanPolicy, ScanPolicySpec};
use crate::image::ImageRef;
use crate::index::Exception;
use crate::policy::{CompatInput, Evaluation, source_name};
use crate::report::VexInput;
use crate::sandbox::{self, Requester, Sandbox};

/// What evaluating a policy on a report gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluated {
    /// The policy ran: its deny messages.
    Ran(Evaluation),
    /// The policy failed on this report (an evaluation error: the same every time).
    Failed(String),
    /// A limit stopped the policy (memory, time, CPU time, stack); the message names it.
    Stopped(String),
    /// The policy does not compile.
    DoesNotCompile(String),
    /// No answer this time (too many evaluations at once, a worker failed): retry later.
    Unavailable(String),
}

impl Evaluated {
    /// Sorts a sandbox error: the policy's own fault, or the pool's.
    #[must_use]
    pub fn from_error(error: &sandbox::Error) -> Self {
        let message = error.to_string();
        if error.is_compile_error() {
            Self::DoesNotCompile(message)
        } else if error.is_a_limit() {
            Self::Stopped(message)
        } else if error.is_the_policys() {
            Self::Failed(message)
        } else {
            Self::Unavailable(message)
        }
    }
}

/// Evaluates ScanPolicies in the sandbox, and remembers which (namespace, name) does not
/// compile at which object (uid) and generation, so a broken policy is not sent to a worker on
/// every reconcile; a policy deleted and created again under the same name is tried again.
pub struct PolicyCache {
    sandbox: Sandbox,
    broken: Mutex<HashMap<PolicyKey, (PolicyVersion, String)>>,
}

/// A policy's namespace and name.
type PolicyKey = (String, String);
/// A policy's uid and generation.
type PolicyVersion = (Option<String>, Option<i64>);

impl PolicyCache {
    /// Evaluations go to `sandbox`.
    #[must_use]
    pub fn new(sandbox: Sandbox) -> Self {
        Self {
            sandbox,
            broken: Mutex::default(),
        }
    }

    /// Evaluates `policy` on `report` (a normalized report with its `exceptions`), in the lane
    /// of `requester`.
    pub async fn evaluate(
        &self,
        requester: &Requester,
        policy: &ScanPolicy,
        report: Value,
    ) -> Evaluated {
        let (key, version) = identity(policy);
        if let Some(error) = self.known_broken(&key, &version) {
            return Evaluated::DoesNotCompile(error);
        }
        let rego = &policy.spec.rego_file;
        let name = source_name(&key.0, &key.1);
        let evaluated = match self
            .sandbox
            .evaluate(requester, &name, rego, CompatInput::detect(rego), report)
            .await
        {
            Ok(evaluation) => Evaluated::Ran(evaluation),
            Err(error) => Evaluated::from_error(&error),
        };
        if let Evaluated::DoesNotCompile(error) = &evaluated
            && let Ok(mut broken) = self.broken.lock()
        {
            broken.insert(key, (version, error.clone()));
        }
        evaluated
    }

    /// The compile error of this version of a policy, when it had one.
    fn known_broken(&self, key: &PolicyKey, version: &PolicyVersion) -> Option<String> {
        let broken = self.broken.lock().ok()?;
        let (seen, error) = broken.get(key)?;
        (seen == version).then(|| error.clone())
    }

    /// Forgets a deleted policy.
    pub fn remove(&self, namespace: &str, name: &str) {
        if let Ok(mut broken) = self.broken.lock() {
            broken.remove(&(namespace.to_string(), name.to_string()));
        }
    }
}

/// scangate's built-in default policy ([`crate::policy::DEFAULT_POLICY`]: denies critical and
/// high) as a ScanPolicy, so a trusted scan that names no policy, when the admission config
/// names no `defaultScanPolicy`, is judged through the same sandbox, limits and errors as any
/// other: `scangate/default`, which messages show as `scangate/default.rego`
/// ([`crate::policy::DEFAULT_POLICY_NAME`]); no uid and no generation, so it is never taken
/// for a ScanPolicy object of that name.
pub fn built_in_policy() -> Arc<ScanPolicy> {
    static BUILT_IN: LazyLock<Arc<ScanPolicy>> = LazyLock::new(|| {
        let mut policy = ScanPolicy::new(
            "default",
            ScanPolicySpec {
                rego_file: crate::policy::DEFAULT_POLICY.to_string(),
            },
        );
        policy.metadata.namespace = Some("scangate".into());
        Arc::new(policy)
    });
    BUILT_IN.clone()
}

/// A policy's key and version.
fn identity(policy: &ScanPolicy) -> (PolicyKey, PolicyVersion) {
    let namespace = policy.metadata.namespace.clone().unwrap_or_default();
    let name = policy.metadata.name.clone().unwrap_or_default();
    let version = (policy.metadata.uid.clone(), policy.metadata.generation);
    ((namespace, name), version)
}

/// What the ScanExceptions that apply to a scan give its policy: `input.exceptions`, `input.vex`,
/// and when the first of them stops applying.
#[derive(Debug, Default)]
pub struct ExceptionsInput {
    /// The exceptions that admit (`{images, cves, reason, expires}`, and `vex` for a
    /// `not_affected` statement), sorted by namespace and name.
    pub exceptions: Vec<Value>,
    /// Every VEX statement, whatever its status, in the same order.
    pub vex: Vec<VexInput>,
    pub first_expiry: Option<Timestamp>,
}

/// The ScanExceptions that apply to a scan of `image` in `scan_namespace` at `now`, as the
/// policy sees them (see [`ExceptionsInput`]). Only approved exceptions within the admin's
/// bounds count, and only those that count where the scan's result counts (see
/// [`AdmissionConfig::exception_counts_for_scan`]).
pub fn exceptions_input<'a>(
    exceptions: impl IntoIterator<Item = &'a ScanException>,
    image: Option<&ImageRef>,
    scan_namespace: &str,
    config: &AdmissionConfig,
    now: Timestamp,
) -> ExceptionsInput {
    let Some(image) = image else {
        return ExceptionsInput::default();
    };
    let max_duration = config.exception_max_duration().unwrap_or_default();
    let mut active: Vec<(&ScanException, Exception)> = exceptions
        .into_iter()
        .map(|e| (e, Exception::from_exception(e)))
        .filter(|(_, parsed)| {
            parsed.is_active(now, max_duration)
                && config.exception_counts_for_scan(scan_namespace, &parsed.namespace)
                && parsed.matches(image)
        })
        .collect();
    active.sort_by(|a, b| (&a.1.namespace, &a.1.name).cmp(&(&b.1.namespace, &b.1.name)));
    let first_expiry = active
        .iter()
        .filter_map(|(_, parsed)| parsed.ends(max_duration))
        .min();
    let exceptions = active
        .iter()
        .filter(|(e, _)| e.spec.admits())
        .map(|(e, _)| {
            let mut entry = json!({
                "images": e.spec.images,
                "cves": e.spec.cves,
                "reason": e.spec.reason,
                "expires": e.spec.expires.0.to_string(),
            });
            if let Some(vex) = &e.spec.vex {
                entry["vex"] = json!(vex);
            }
            entry
        })
        .collect();
    let vex = active
        .iter()
        .filter_map(|(e, parsed)| {
            Some(VexInput {
                exception: format!("{}/{}", parsed.namespace, parsed.name),
                images: e.spec.images.clone(),
                cves: e.spec.cves.clone(),
                statement: e.spec.vex.clone()?,
                expires: e.spec.expires.0.to_string(),
            })
        })
        .collect();
    ExceptionsInput {
        exceptions,
        vex,
        first_expiry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ScanExceptionSpec;
    use crate::index::{APPROVED_AT, APPROVED_BY};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn exception(name: &str, images: &[&str], cves: &[&str], expires: &str) -> ScanException {
        let mut e = ScanException::new(
            name,
            ScanExceptionSpec {
                images: images.iter().map(|s| s.to_string()).collect(),
                cves: cves.iter().map(|s| s.to_string()).collect(),
                reason: format!("{name} reviewed"),
                expires: Time(ts(expires)),
                vex: None,
            },
        );
        e.metadata.namespace = Some("apps".into());
        e.metadata.annotations = Some(
            [
                (APPROVED_BY.to_string(), "alice".to_string()),
                (APPROVED_AT.to_string(), "2025-12-01T00:00:00Z".to_string()),
            ]
            .into(),
        );
        e
    }

    #[test]
    fn the_built_in_policy_is_named_as_scangates_default_policy() {
        let policy = built_in_policy();
        let ((namespace, name), version) = identity(&policy);
        assert_eq!(
            source_name(&namespace, &name),
            crate::policy::DEFAULT_POLICY_NAME
        );
        assert_eq!(version, (None, None));
        assert_eq!(policy.spec.rego_file, crate::policy::DEFAULT_POLICY);
    }

    #[test]
    fn only_active_matching_exceptions_are_given_to_the_policy() {
        let image = ImageRef::parse("busybox:1.32.1").ok();
        let exceptions = [
            exception(
                "b-all",
                &["docker.io/library/busybox"],
                &[],
                "2026-03-01T00:00:00Z",
            ),
            exception(
                "a-one",
                &["busybox:1.32.1"],
                &["CVE-1"],
                "2026-02-01T00:00:00Z",
            ),
            exception("expired", &["busybox"], &[], "2025-01-01T00:00:00Z"),
            exception("other", &["nginx"], &[], "2027-01-01T00:00:00Z"),
        ];
        let config = AdmissionConfig::default();
        let now = ts("2026-01-01T00:00:00Z");
        let given = exceptions_input(&exceptions, image.as_ref(), "apps", &config, now);
        let (input, expiry) = (given.exceptions, given.first_expiry);
        assert_eq!(
            input,
            vec![
                json!({"images": ["busybox:1.32.1"], "cves": ["CVE-1"], "reason": "a-one reviewed", "expires": "2026-02-01T00:00:00Z"}),
                json!({"images": ["docker.io/library/busybox"], "cves": [], "reason": "b-all reviewed", "expires": "2026-03-01T00:00:00Z"}),
            ]
        );
        assert_eq!(expiry, Some(ts("2026-02-01T00:00:00Z")));
        let none = exceptions_input(&exceptions, None, "apps", &config, now);
        assert!(none.exceptions.is_empty() && none.vex.is_empty());
    }

    #[test]
    fn vex_statements_are_all_in_input_vex_and_only_not_affected_in_input_exceptions() {
        use crate::api::{VexJustification, VexStatement, VexStatus};
        let image = ImageRef::parse("busybox:1.32.1").ok();
        let statement = |name: &str, status: VexStatus, expires: &str| {
            let mut e = exception(name, &["busybox:1.32.1"], &["CVE-1"], expires);
            e.spec.vex = Some(VexStatement {
                status,
                justification: (status == VexStatus::NotAffected)
                    .then_some(VexJustification::ComponentNotPresent),
                impact_statement: None,
                action_statement: None,
            });
            e
        };
        let exceptions = [
            statement(
                "a-looking",
                VexStatus::UnderInvestigation,
                "2026-01-15T00:00:00Z",
            ),
            statement("b-fine", VexStatus::NotAffected, "2026-02-01T00:00:00Z"),
        ];
        let now = ts("2026-01-01T00:00:00Z");
        let given = exceptions_input(
            &exceptions,
            image.as_ref(),
            "apps",
            &AdmissionConfig::default(),
            now,
        );
        assert_eq!(
            given.exceptions,
            vec![
                json!({"images": ["busybox:1.32.1"], "cves": ["CVE-1"], "reason": "b-fine reviewed",
                "expires": "2026-02-01T00:00:00Z",
                "vex": {"status": "not_affected", "justification": "component_not_present"}})
            ]
        );
        let vex: Vec<(&str, VexStatus)> = given
            .vex
            .iter()
            .map(|v| (v.exception.as_str(), v.statement.status))
            .collect();
        assert_eq!(
            vex,
            [
                ("apps/a-looking", VexStatus::UnderInvestigation),
                ("apps/b-fine", VexStatus::NotAffected)
            ]
        );
        // A statement's end wakes the controller as an exception's does.
        assert_eq!(given.first_expiry, Some(ts("2026-01-15T00:00:00Z")));
    }

    #[test]
    fn unapproved_stale_or_foreign_exceptions_are_not_given_to_the_policy() {
        let image = ImageRef::parse("busybox:1.32.1").ok();
        let config = AdmissionConfig::default();
        let now = ts("2026-01-01T00:00:00Z");
        let mut unapproved = exception("unapproved", &["busybox"], &[], "2026-02-01T00:00:00Z");
        unapproved.metadata.annotations = None;
        // Approved more than maxDuration (90d) before now: it no longer counts.
        let mut stale = exception("stale", &["busybox"], &[], "2027-01-01T00:00:00Z");
        if let Some(a) = stale.metadata.annotations.as_mut() {
            a.insert(APPROVED_AT.into(), "2025-09-01T00:00:00Z".into());
        }
        let fresh = exception("fresh", &["busybox"], &[], "2026-02-01T00:00:00Z");
        let exceptions = [unapproved, stale, fresh];
        let input = exceptions_input(&exceptions, image.as_ref(), "apps", &config, now).exceptions;
        assert_eq!(input.len(), 1, "{input:?}");
        // An exception in a tenant namespace never changes a trusted scan's result.
        let input = exceptions_input(&exceptions, image.as_ref(), "scangate-system", &config, now)
            .exceptions;
        assert!(input.is_empty(), "{input:?}");
    }

    #[test]
    fn sandbox_errors_are_sorted_by_whose_fault_they_are() {
        use crate::sandbox::{Bytes, Error, Stage};
        let compile = Error::Rejected {
            stage: Stage::Compile,
            message: "policy shop/x.rego has a syntax error".into(),
        };
        assert!(matches!(
            Evaluated::from_error(&compile),
            Evaluated::DoesNotCompile(m) if m.contains("syntax error")
        ));
        let memory = Error::MemoryLimit {
            name: "shop/x.rego".into(),
            limit: Bytes(1 << 28),
        };
        assert!(matches!(
            Evaluated::from_error(&memory),
            Evaluated::Stopped(m) if m.contains("memory limit of 256 MiB")
        ));
        let failed = Error::Rejected {
            stage: Stage::Evaluate,
            message: "policy shop/x.rego: division by zero".into(),
        };
        assert!(matches!(
            Evaluated::from_error(&failed),
            Evaluated::Failed(m) if m.contains("division by zero")
        ));
        let busy = Error::Busy {
            running: 2,
            waiting: 4,
        };
        assert!(matches!(
            Evaluated::from_error(&busy),
            Evaluated::Unavailable(m) if m.contains("retry")
        ));
    }

    #[tokio::test]
    async fn a_broken_generation_is_remembered_until_the_policy_changes() {
        // A worker program that does not exist: only remembered errors can answer.
        let sandbox = Sandbox::new(
            "/nonexistent/scangate".into(),
            crate::sandbox::Limits::default(),
        );
        let cache = PolicyCache::new(sandbox);
        let mut policy = ScanPolicy::new(
            "strict",
            crate::api::ScanPolicySpec {
                rego_file: "package main\ndeny contains x if {".into(),
            },
        );
        policy.metadata.namespace = Some("apps".into());
        policy.metadata.generation = Some(1);
        let (key, version) = identity(&policy);
        if let Ok(mut broken) = cache.broken.lock() {
            broken.insert(key, (version, "does not compile".into()));
        }
        assert_eq!(
            cache
                .evaluate(&Requester::Trusted, &policy, json!({}))
                .await,
            Evaluated::DoesNotCompile("does not compile".into())
        );
        policy.metadata.generation = Some(2);
        assert!(matches!(
            cache.evaluate(&Requester::Trusted, &policy, json!({})).await,
            Evaluated::Unavailable(m) if m.contains("cannot run the policy worker")
        ));
        cache.remove("apps", "strict");
        assert!(cache.broken.lock().map(|b| b.is_empty()).unwrap_or(false));
    }
}
