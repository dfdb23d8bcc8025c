//! ScanPolicies compiled once per (namespace, name, generation), and the active
//! ScanExceptions given to them as `input.exceptions`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde_json::{Value, json};

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
    entries: Mutex<HashMap<(String, String), ((Option<String>, Option<i64>), Compiled)>>,
}

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

/// The ScanExceptions that apply to `image` at `now`, as the policy's `input.exceptions`
/// (`{images, cves, reason, expires}`, sorted by name), and when the first of them expires.
pub fn exceptions_input(
    exceptions: &[ScanException],
    image: Option<&ImageRef>,
    now: Timestamp,
) -> (Vec<Value>, Option<Timestamp>) {
    let Some(image) = image else {
        return (vec![], None);
    };
    let mut active: Vec<(&ScanException, Exception)> = exceptions
        .iter()
        .map(|e| (e, Exception::from_exception(e)))
        .filter(|(_, parsed)| parsed.is_active(now) && parsed.matches(image))
        .collect();
    active.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let first_expiry = active.iter().map(|(_, parsed)| parsed.expires).min();
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
