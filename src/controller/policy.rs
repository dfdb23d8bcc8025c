//! ScanPolicies compiled once per (namespace, name, generation), and the active
//! ScanExceptions given to them as `input.exceptions`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::admission::config::AdmissionConfig;
use crate::api::{ScanException, ScanPolicy};
use crate::image::ImageRef;
use crate::index::Exception;
use crate::policy::{CompatInput, CompiledPolicy, PolicyOptions, source_name};

/// A compiled policy, or why it does not compile.
pub type Compiled = Arc<Result<CompiledPolicy, String>>;

/// Compiled policies by namespace and name, each for the object (uid) and generation it was
/// compiled at: a policy deleted and created again under the same name is compiled again.
#[derive(Default)]
pub struct PolicyCache {
    entries: Mutex<HashMap<PolicyKey, (PolicyVersion, Compiled)>>,
}

/// A policy's namespace and name.
type PolicyKey = (String, String);
/// A policy's uid and generation.
type PolicyVersion = (Option<String>, Option<i64>);

impl PolicyCache {
    /// The compiled policy, compiling it when this generation has not been seen.
    pub fn get(&self, policy: &ScanPolicy) -> Compiled {
        let namespace = policy.metadata.namespace.clone().unwrap_or_default();
        let name = policy.metadata.name.clone().unwrap_or_default();
        let generation = (policy.metadata.uid.clone(), policy.metadata.generation);
        let key = (namespace, name);
        if let Ok(entries) = self.entries.lock()
            && let Some((g, compiled)) = entries.get(&key)
            && *g == generation
        {
            return compiled.clone();
        }
        let rego = &policy.spec.rego_file;
        let options = PolicyOptions::default().with_input(CompatInput::detect(rego));
        let compiled: Compiled = Arc::new(
            CompiledPolicy::compile(&source_name(&key.0, &key.1), rego, options)
                .map_err(|e| e.to_string()),
        );
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, (generation, compiled.clone()));
        }
        compiled
    }

    /// Forgets a deleted policy.
    pub fn remove(&self, namespace: &str, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(namespace.to_string(), name.to_string()));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ScanExceptions that apply to a scan of `image` in `scan_namespace` at `now`, as the
/// policy's `input.exceptions` (`{images, cves, reason, expires}`, sorted by name), and when the
/// first of them stops applying. Only approved exceptions within the admin's bounds count, and
/// only those that count where the scan's result counts (see
/// [`AdmissionConfig::exception_counts_for_scan`]).
pub fn exceptions_input(
    exceptions: &[ScanException],
    image: Option<&ImageRef>,
    scan_namespace: &str,
    config: &AdmissionConfig,
    now: Timestamp,
) -> (Vec<Value>, Option<Timestamp>) {
    let Some(image) = image else {
        return (vec![], None);
    };
    let max_duration = config.exception_max_duration().unwrap_or_default();
    let mut active: Vec<(&ScanException, Exception)> = exceptions
        .iter()
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
    let input = active
        .into_iter()
        .map(|(e, _)| {
            json!({
                "images": e.spec.images,
                "cves": e.spec.cves,
                "reason": e.spec.reason,
                "expires": e.spec.expires.0.to_string(),
            })
        })
        .collect();
    (input, first_expiry)
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
        let (input, expiry) = exceptions_input(&exceptions, image.as_ref(), "apps", &config, now);
        assert_eq!(
            input,
            vec![
                json!({"images": ["busybox:1.32.1"], "cves": ["CVE-1"], "reason": "a-one reviewed", "expires": "2026-02-01T00:00:00Z"}),
                json!({"images": ["docker.io/library/busybox"], "cves": [], "reason": "b-all reviewed", "expires": "2026-03-01T00:00:00Z"}),
            ]
        );
        assert_eq!(expiry, Some(ts("2026-02-01T00:00:00Z")));
        let (none, _) = exceptions_input(&exceptions, None, "apps", &config, now);
        assert!(none.is_empty());
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
        let (input, _) = exceptions_input(&exceptions, image.as_ref(), "apps", &config, now);
        assert_eq!(input.len(), 1, "{input:?}");
        // An exception in a tenant namespace never changes a trusted scan's result.
        let (input, _) =
            exceptions_input(&exceptions, image.as_ref(), "scangate-system", &config, now);
        assert!(input.is_empty(), "{input:?}");
    }

    #[test]
    fn compiles_once_per_generation() {
        let mut policy = ScanPolicy::new(
            "strict",
            crate::api::ScanPolicySpec {
                rego_file: crate::policy::DEFAULT_POLICY.into(),
            },
        );
        policy.metadata.namespace = Some("apps".into());
        policy.metadata.generation = Some(1);
        let cache = PolicyCache::default();
        let first = cache.get(&policy);
        assert!(first.is_ok());
        assert!(Arc::ptr_eq(&first, &cache.get(&policy)));
        policy.metadata.generation = Some(2);
        policy.spec.rego_file = "package main\ndeny contains x if {".into();
        let broken = cache.get(&policy);
        assert!(!Arc::ptr_eq(&first, &broken));
        assert!(broken.as_ref().as_ref().is_err());
        assert_eq!(cache.len(), 1);
        cache.remove("apps", "strict");
        assert!(cache.is_empty());
    }
}
