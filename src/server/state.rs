//! What the webhook decides from, kept in memory and fed by watches (or files): the admission
//! config, the scan index, exceptions, namespace enforcement modes, and which templates and
//! policies exist. Request handlers only read it: no network call on the request path.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::admission::config::{AdmissionConfig, Enforcement};
use crate::api::{ImageScan, ScanException};
use crate::index::{Exception, ScanIndex, ScanKey};

use super::metrics::Metrics;

/// The parts that must be loaded before the webhook answers `/readyz` with 200. A watched part
/// is unset again while its watch resyncs after an error (changes may have been missed).
#[derive(Debug, Default)]
pub struct Readiness {
    pub config: AtomicBool,
    pub scans: AtomicBool,
    pub exceptions: AtomicBool,
    pub namespaces: AtomicBool,
    pub templates: AtomicBool,
    pub policies: AtomicBool,
    /// Set on SIGTERM: not ready for new connections, while reviews are still answered.
    pub shutting_down: AtomicBool,
}

/// The kinds of which the webhook keeps only which exist (namespace and name), for the scans
/// and templates that name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    Templates,
    Policies,
}

/// What `/readyz` says.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadyStatus {
    Ready,
    /// Stopping: a front should send new connections to another replica.
    ShuttingDown,
    /// These parts are not loaded (or are resyncing).
    Waiting(Vec<&'static str>),
}

impl Readiness {
    pub fn status(&self) -> ReadyStatus {
        if self.shutting_down.load(Ordering::Acquire) {
            return ReadyStatus::ShuttingDown;
        }
        let missing = self.missing();
        if missing.is_empty() {
            ReadyStatus::Ready
        } else {
            ReadyStatus::Waiting(missing)
        }
    }

    /// The names of the parts not loaded yet.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("config", &self.config),
            ("scans", &self.scans),
            ("exceptions", &self.exceptions),
            ("namespaces", &self.namespaces),
            ("templates", &self.templates),
            ("policies", &self.policies),
        ]
        .into_iter()
        .filter(|(_, flag)| !flag.load(Ordering::Acquire))
        .map(|(name, _)| name)
        .collect()
    }

    /// The parts a workload decision reads that are not loaded yet (the config, scans,
    /// exceptions, namespace modes). Until they are, a workload review is answered 503, so the
    /// webhook's `failurePolicy` applies, never a verdict from a partial index ("unscanned").
    pub fn missing_for_workloads(&self) -> Vec<&'static str> {
        self.missing()
            .into_iter()
            .filter(|part| !matches!(*part, "templates" | "policies"))
            .collect()
    }

    /// The flag of a kind whose names only are kept.
    pub fn named(&self, kind: Named) -> &AtomicBool {
        match kind {
            Named::Templates => &self.templates,
            Named::Policies => &self.policies,
        }
    }

    pub fn set(flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
    }

    pub fn unset(flag: &AtomicBool) {
        flag.store(false, Ordering::Release);
    }
}

/// The webhook's shared state.
pub struct WebhookState {
    config: RwLock<Arc<AdmissionConfig>>,
    scans: RwLock<ScanIndex>,
    exceptions: RwLock<HashMap<ScanKey, Exception>>,
    /// The exceptions as one shared list, rebuilt on each change, so a review takes a pointer.
    exception_list: RwLock<Arc<Vec<Exception>>>,
    namespace_modes: RwLock<HashMap<String, Enforcement>>,
    /// Namespaces whose `scangate.dev/pin-digests` label chooses pinning there.
    namespace_pins: RwLock<HashMap<String, bool>>,
    templates: RwLock<HashSet<ScanKey>>,
    policies: RwLock<HashSet<ScanKey>>,
    pub ready: Readiness,
    pub metrics: Metrics,
}

/// Reads a lock, recovering the data if a writer panicked (the data is replaced whole or
/// updated one entry at a time, so it is never half-written).
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>, f: impl FnOnce(&mut T)) {
    let mut guard = lock
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut guard);
}

fn key(meta: &kube::core::ObjectMeta) -> ScanKey {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl WebhookState {
    pub fn new(config: AdmissionConfig) -> Self {
        WebhookState {
            scans: RwLock::new(ScanIndex::with_aliases(config.registry_aliases.clone(), [])),
            config: RwLock::new(Arc::new(config)),
            exceptions: RwLock::default(),
            exception_list: RwLock::default(),
            namespace_modes: RwLock::default(),
            namespace_pins: RwLock::default(),
            templates: RwLock::default(),
            policies: RwLock::default(),
            ready: Readiness::default(),
            metrics: Metrics::new(),
        }
    }

    pub fn config(&self) -> Arc<AdmissionConfig> {
        read(&self.config).clone()
    }

    /// Installs a new config; new registry aliases key the scan index again.
    pub fn set_config(&self, config: AdmissionConfig) {
        if self.scans().aliases() != &config.registry_aliases {
            let aliases = config.registry_aliases.clone();
            write(&self.scans, |index| index.set_aliases(aliases));
        }
        write(&self.config, |c| *c = Arc::new(config));
        Readiness::set(&self.ready.config);
    }

    pub fn scans(&self) -> RwLockReadGuard<'_, ScanIndex> {
        read(&self.scans)
    }

    pub fn exceptions(&self) -> Arc<Vec<Exception>> {
        read(&self.exception_list).clone()
    }

    fn publish_exceptions(&self) {
        let list: Vec<Exception> = read(&self.exceptions).values().cloned().collect();
        write(&self.exception_list, |shared| *shared = Arc::new(list));
    }

    /// The enforcement mode of a namespace: its label, else the config's default.
    pub fn enforcement(&self, namespace: &str, config: &AdmissionConfig) -> Enforcement {
        read(&self.namespace_modes)
            .get(namespace)
            .copied()
            .unwrap_or(config.default_enforcement)
    }

    pub fn template_exists(&self, namespace: &str, name: &str) -> bool {
        self.named_exists(Named::Templates, namespace, name)
    }

    pub fn policy_exists(&self, namespace: &str, name: &str) -> bool {
        self.named_exists(Named::Policies, namespace, name)
    }

    fn named_exists(&self, kind: Named, namespace: &str, name: &str) -> bool {
        read(self.named(kind)).contains(&(namespace.to_string(), name.to_string()))
    }

    fn named(&self, kind: Named) -> &RwLock<HashSet<ScanKey>> {
        match kind {
            Named::Templates => &self.templates,
            Named::Policies => &self.policies,
        }
    }

    // Updates, one per watched kind. `replace_*` installs a full list (a watch's initial list,
    // or files) and marks that part ready.

    pub fn replace_scans(&self, scans: &[ImageScan]) {
        write(&self.scans, |index| {
            *index = ScanIndex::with_aliases(index.aliases().clone(), scans)
        });
        self.metrics.index_scans.set(self.scans().len() as i64);
        Readiness::set(&self.ready.scans);
    }

    pub fn apply_scan(&self, scan: &ImageScan) {
        write(&self.scans, |index| index.upsert(scan));
        self.metrics.index_scans.set(self.scans().len() as i64);
    }

    pub fn delete_scan(&self, scan: &ImageScan) {
        write(&self.scans, |index| index.remove(scan));
        self.metrics.index_scans.set(self.scans().len() as i64);
    }

    pub fn replace_exceptions(&self, exceptions: &[ScanException]) {
        let parsed = exceptions
            .iter()
            .map(|e| (key(&e.metadata), Exception::from_exception(e)))
            .collect();
        write(&self.exceptions, |map| *map = parsed);
        self.publish_exceptions();
        Readiness::set(&self.ready.exceptions);
    }

    pub fn apply_exception(&self, exception: &ScanException) {
        let parsed = Exception::from_exception(exception);
        write(&self.exceptions, |map| {
            map.insert(key(&exception.metadata), parsed);
        });
        self.publish_exceptions();
    }

    pub fn delete_exception(&self, exception: &ScanException) {
        write(&self.exceptions, |map| {
            map.remove(&key(&exception.metadata));
        });
        self.publish_exceptions();
    }

    /// Whether admission pins digests in a namespace: its label, else the config's
    /// `pinDigests`, else whether it is in `enforce` mode.
    pub fn pin_digests(&self, namespace: &str, config: &AdmissionConfig) -> bool {
        let label = read(&self.namespace_pins).get(namespace).copied();
        config.pins_tags(self.enforcement(namespace, config), label)
    }

    /// Records a namespace's mode and pinning choice from its labels (none, or an unknown
    /// value: the config's default).
    pub fn apply_namespace(&self, meta: &kube::core::ObjectMeta) {
        let name = meta.name.clone().unwrap_or_default();
        let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key));
        let pin =
            label(crate::admission::pin::LABEL).and_then(|v| crate::admission::pin::from_label(v));
        write(&self.namespace_pins, |pins| match pin {
            Some(pin) => {
                pins.insert(name.clone(), pin);
            }
            None => {
                pins.remove(&name);
            }
        });
        let mode = label(Enforcement::LABEL).and_then(|v| Enforcement::from_label(v));
        write(&self.namespace_modes, |modes| match mode {
            Some(mode) => {
                modes.insert(name, mode);
            }
            None => {
                modes.remove(&name);
            }
        });
    }

    pub fn replace_namespaces<'a>(
        &self,
        metas: impl IntoIterator<Item = &'a kube::core::ObjectMeta>,
    ) {
        write(&self.namespace_modes, |modes| modes.clear());
        write(&self.namespace_pins, |pins| pins.clear());
        for meta in metas {
            self.apply_namespace(meta);
        }
        Readiness::set(&self.ready.namespaces);
    }

    pub fn delete_namespace(&self, meta: &kube::core::ObjectMeta) {
        let name = meta.name.clone().unwrap_or_default();
        write(&self.namespace_pins, |pins| {
            pins.remove(&name);
        });
        write(&self.namespace_modes, |modes| {
            modes.remove(&name);
        });
    }

    pub fn replace_named<'a>(
        &self,
        kind: Named,
        metas: impl IntoIterator<Item = &'a kube::core::ObjectMeta>,
    ) {
        let keys = metas.into_iter().map(key).collect();
        write(self.named(kind), |set| *set = keys);
        Readiness::set(self.ready.named(kind));
    }

    pub fn apply_named(&self, kind: Named, meta: &kube::core::ObjectMeta) {
        write(self.named(kind), |set| {
            set.insert(key(meta));
        });
    }

    pub fn delete_named(&self, kind: Named, meta: &kube::core::ObjectMeta) {
        write(self.named(kind), |set| {
            set.remove(&key(meta));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::Origin;
    use crate::api::{ImageScanSpec, RegistrySpec};
    use crate::image::ImageRef;

    #[test]
    fn readiness_waits_for_every_part_and_ends_on_shutdown() {
        let state = WebhookState::new(AdmissionConfig::default());
        assert_eq!(
            state.ready.status(),
            ReadyStatus::Waiting(vec![
                "config",
                "scans",
                "exceptions",
                "namespaces",
                "templates",
                "policies"
            ])
        );
        state.set_config(AdmissionConfig::default());
        state.replace_scans(&[]);
        state.replace_exceptions(&[]);
        // Workload decisions read no templates or policies.
        assert_eq!(state.ready.missing_for_workloads(), ["namespaces"]);
        state.replace_namespaces([]);
        assert!(state.ready.missing_for_workloads().is_empty());
        state.replace_named(Named::Templates, []);
        state.replace_named(Named::Policies, []);
        assert_eq!(state.ready.status(), ReadyStatus::Ready);
        // A watch that resyncs makes its part missing again, until its next full list.
        Readiness::unset(&state.ready.scans);
        assert_eq!(state.ready.status(), ReadyStatus::Waiting(vec!["scans"]));
        state.replace_scans(&[]);
        assert_eq!(state.ready.status(), ReadyStatus::Ready);
        Readiness::set(&state.ready.shutting_down);
        assert_eq!(state.ready.status(), ReadyStatus::ShuttingDown);
    }

    #[test]
    fn new_registry_aliases_key_the_index_again() {
        let state = WebhookState::new(AdmissionConfig::default());
        let mut scan = ImageScan::new(
            "busybox",
            ImageScanSpec {
                results_from: None,
                registry: RegistrySpec {
                    image: "mirror.example:5000/library/busybox:1.32.1".into(),
                    image_pull_secret: None,
                },
                scan: Default::default(),
            },
        );
        scan.metadata.namespace = Some("a".into());
        state.replace_scans(&[scan]);
        let hub = ImageRef::parse("busybox:1.32.1").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            state
                .scans()
                .lookup(&hub, |_| Some(Origin::Trusted))
                .trusted
                .result
                .is_none()
        );
        let config =
            AdmissionConfig::from_yaml("registryAliases: {mirror.example:5000: docker.io}")
                .unwrap_or_else(|e| panic!("{e}"));
        state.set_config(config.clone());
        assert!(
            state
                .scans()
                .lookup(&hub, |_| Some(Origin::Trusted))
                .trusted
                .result
                .is_some()
        );
        assert_eq!(state.scans().aliases(), &config.registry_aliases);
        state.set_config(AdmissionConfig::default());
        assert!(
            state
                .scans()
                .lookup(&hub, |_| Some(Origin::Trusted))
                .trusted
                .result
                .is_none()
        );
    }
}
