//! The scan queue: at most `--max-running-jobs` scan Jobs run at once, and at most
//! `--max-running-jobs-per-namespace` in one namespace. First-sight scans (in scangate's
//! namespace, labelled [`naming::LABEL`], as their Jobs are) have their own pool of
//! `firstSight.maxRunning` slots beside those, so a flood of new images never takes the admin's
//! slots, nor the admin's scans theirs. A scan that needs a Job asks for a slot
//! ([`Queue::admit`]); the scans waiting get the free slots oldest request first (then by
//! namespace and name), a namespace at its limit not holding up the others. The decision is
//! [`grants`], pure; the [`Queue`] only keeps, behind one lock, who waits and the slots granted
//! whose Job the cache does not show yet, so two reconciles never take the same slot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::job::{JobState, job_state};
use super::kinds::Kind;
use super::kinds::ScanKind;
use super::metrics::Metrics;
use super::naming;
use super::triggers::{Triggers, owners};
use crate::api::{ImageScan, SourceScan};
use crate::report::SCAN_LABEL;

/// A queued scan shows a new place at most this often (and comes back after this long even
/// if no slot frees), so a moving queue does not rewrite every waiting scan's status at every
/// step.
pub const QUEUED_RECHECK: Duration = Duration::from_secs(30);

/// A slot granted whose Job the cache does not show within this long is given back (the
/// reconcile that took it failed before creating the Job).
const RESERVATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The concurrency limits on running scan Jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Scan Jobs running at once, in all namespaces.
    pub total: usize,
    /// Scan Jobs running at once in one namespace.
    pub per_namespace: usize,
    /// First-sight scan Jobs running at once, in their own pool.
    pub first_sight: usize,
}

/// Which slots a scan's Job takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pool {
    /// The shared slots: `total`, and `per_namespace` in its namespace.
    Shared,
    /// The first-sight slots.
    FirstSight,
}

impl Pool {
    /// A first-sight scan's (or Job's) pool: labelled [`naming::LABEL`] in scangate's
    /// namespace, which only scangate and the admin write; anything else is shared (a tenant's
    /// labelled Job elsewhere takes its own namespace's slots).
    pub fn of(
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
        first_sight_namespace: &str,
    ) -> Pool {
        if namespace == first_sight_namespace
            && labels.get(naming::LABEL).map(String::as_str) == Some("true")
        {
            Pool::FirstSight
        } else {
            Pool::Shared
        }
    }
}

/// A scan, as the queue knows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScanId {
    pub namespace: String,
    pub name: String,
    pub kind: Kind,
}

impl ScanId {
    pub fn of<K: ScanKind>(scan: &K) -> ScanId {
        ScanId {
            namespace: scan.namespace().unwrap_or_default(),
            name: scan.name_any(),
            kind: Kind::of::<K>(),
        }
    }
}

/// A scan waiting for a slot since its request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Waiting {
    /// When the scan asked for a Job (its creation, or when its rescan or retry became due).
    pub since: Timestamp,
    pub id: ScanId,
    pub pool: Pool,
}

/// Scan Jobs running (or granted a slot), per namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Running {
    pub per_namespace: BTreeMap<String, usize>,
    /// First-sight Jobs, which count in their own pool only.
    pub first_sight: usize,
}

impl Running {
    /// What counts against the global limit: each namespace at most its own limit. The
    /// controller never runs more there, so only Jobs someone else made (a tenant with `edit`
    /// can create labelled Jobs owned by its scans) go beyond it, and they must not take the
    /// other namespaces' slots.
    pub fn total(&self, limits: Limits) -> usize {
        self.per_namespace
            .values()
            .map(|n| (*n).min(limits.per_namespace))
            .sum()
    }

    pub fn add(&mut self, namespace: &str, pool: Pool) {
        match pool {
            Pool::Shared => *self.per_namespace.entry(namespace.to_string()).or_default() += 1,
            Pool::FirstSight => self.first_sight += 1,
        }
    }

    fn in_namespace(&self, namespace: &str) -> usize {
        self.per_namespace.get(namespace).copied().unwrap_or(0)
    }
}

/// Whether a scan may start its Job now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Start,
    /// Not yet: the scan is `position` (from 1) of `waiting`, oldest request first. `show`:
    /// whether to show this place now, or keep the one the status shows (shown less than
    /// [`QUEUED_RECHECK`] ago).
    Queued {
        position: usize,
        waiting: usize,
        limits: Limits,
        show: bool,
    },
}

impl Decision {
    /// The Scanning condition's message while queued.
    pub fn message(position: usize, waiting: usize, limits: Limits) -> String {
        format!(
            "queued: {position} of {waiting} waiting; limit {} running, {} per namespace",
            limits.total, limits.per_namespace
        )
    }
}

/// The waiting scans (sorted: oldest request first) that get a slot now, in order: a shared
/// scan takes one while the total and its namespace are under their limits, a first-sight scan
/// while its pool is.
pub fn grants<'a>(limits: Limits, running: &Running, waiting: &'a [Waiting]) -> Vec<&'a ScanId> {
    let mut running = running.clone();
    let mut granted = vec![];
    for w in waiting {
        let free = match w.pool {
            Pool::Shared => {
                running.total(limits) < limits.total
                    && running.in_namespace(&w.id.namespace) < limits.per_namespace
            }
            Pool::FirstSight => running.first_sight < limits.first_sight,
        };
        if free {
            running.add(&w.id.namespace, w.pool);
            granted.push(&w.id);
        }
    }
    granted
}

/// Whether `me` (one of `waiting`, sorted) may start now, and where it stands if not.
pub fn decide(limits: Limits, running: &Running, waiting: &[Waiting], me: &ScanId) -> Decision {
    if grants(limits, running, waiting).contains(&me) {
        return Decision::Start;
    }
    let position = waiting.iter().position(|w| w.id == *me).unwrap_or(0) + 1;
    Decision::Queued {
        position,
        waiting: waiting.len().max(position),
        limits,
        show: true,
    }
}

/// A slot granted to a scan, for its Job `job`.
#[derive(Debug)]
struct Reservation {
    job: String,
    pool: Pool,
    at: Instant,
}

#[derive(Debug, Default)]
struct State {
    waiting: HashMap<ScanId, (Timestamp, Pool)>,
    reserved: HashMap<ScanId, Reservation>,
    /// When each waiting scan's place was last shown.
    shown: HashMap<ScanId, Instant>,
    /// Scan Jobs running per the cache, when it was last looked at.
    jobs_running: usize,
}

/// How many scans wait for a slot, per kind (every kind, zero included).
pub fn queued_by_kind<'a>(waiting: impl IntoIterator<Item = &'a ScanId>) -> BTreeMap<Kind, usize> {
    let mut counts = BTreeMap::from([(Kind::ImageScan, 0), (Kind::SourceScan, 0)]);
    for id in waiting {
        *counts.entry(id.kind).or_default() += 1;
    }
    counts
}

impl State {
    fn sorted(&self) -> Vec<Waiting> {
        let mut waiting: Vec<Waiting> = self
            .waiting
            .iter()
            .map(|(id, (since, pool))| Waiting {
                since: *since,
                id: id.clone(),
                pool: *pool,
            })
            .collect();
        waiting.sort();
        waiting
    }

    /// The scan Jobs running per the cache (but those of `except`, a scan about to replace
    /// its own), plus the slots granted whose Job the cache does not show yet; reservations
    /// the cache shows, or that timed out, are dropped.
    fn running(
        &mut self,
        jobs: &Store<Job>,
        except: Option<&ScanId>,
        first_sight_namespace: &str,
    ) -> Running {
        let mut running = Running::default();
        let mut cached = HashSet::new();
        let mut jobs_running = 0;
        for job in jobs.state() {
            let namespace = job.namespace().unwrap_or_default();
            cached.insert((namespace.clone(), job.name_any()));
            let (images, sources) = owners(&job.metadata);
            let owner = images
                .first()
                .map(|i| (Kind::ImageScan, i.name.clone()))
                .or_else(|| sources.first().map(|s| (Kind::SourceScan, s.name.clone())));
            let Some((kind, name)) = owner else { continue };
            if !job.labels().contains_key(SCAN_LABEL) {
                continue;
            }
            let id = ScanId {
                namespace: namespace.clone(),
                name,
                kind,
            };
            let created = job
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH);
            if job_state(&job, created) == JobState::Running {
                jobs_running += 1;
                if Some(&id) != except {
                    running.add(
                        &namespace,
                        Pool::of(&namespace, job.labels(), first_sight_namespace),
                    );
                }
            }
        }
        self.jobs_running = jobs_running;
        self.reserved.retain(|id, r| {
            !cached.contains(&(id.namespace.clone(), r.job.clone()))
                && r.at.elapsed() < RESERVATION_TIMEOUT
        });
        for (id, reservation) in &self.reserved {
            if Some(id) != except {
                running.add(&id.namespace, reservation.pool);
            }
        }
        running
    }
}

/// Who waits for a slot, and the slots granted; one per term as leader. Its gauges
/// (`scangate_scans_queued`, `scangate_scan_jobs_running`) follow every change, and are zero
/// when the term ends.
pub struct Queue {
    limits: Limits,
    /// Scangate's namespace, where first-sight scans are.
    first_sight_namespace: String,
    state: Mutex<State>,
    triggers: Triggers,
    metrics: Arc<Metrics>,
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.metrics.set_queue(&queued_by_kind([]), 0);
    }
}

impl Queue {
    pub fn new(
        limits: Limits,
        first_sight_namespace: &str,
        triggers: Triggers,
        metrics: Arc<Metrics>,
    ) -> Self {
        Queue {
            limits,
            first_sight_namespace: first_sight_namespace.to_string(),
            state: Mutex::default(),
            triggers,
            metrics,
        }
    }

    /// Sets the gauges from the state.
    fn publish(&self, state: &State) {
        self.metrics
            .set_queue(&queued_by_kind(state.waiting.keys()), state.jobs_running);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks for a slot of `pool` for scan `id`'s Job `job`, waiting since `since` (an earlier
    /// request of the same scan keeps its place). `Start` reserves the slot until the cache
    /// shows the Job; the scans ahead that would get a slot now are sent to their controllers.
    pub fn admit(
        &self,
        id: &ScanId,
        pool: Pool,
        since: Timestamp,
        job: &str,
        jobs: &Store<Job>,
    ) -> Decision {
        let (decision, wake) = {
            let mut state = self.lock();
            if state.reserved.get(id).is_some_and(|r| r.job == job) {
                // Granted already; the cache does not show the Job yet.
                return Decision::Start;
            }
            let running = state.running(jobs, Some(id), &self.first_sight_namespace);
            let since = state
                .waiting
                .get(id)
                .map_or(since, |(earlier, _)| (*earlier).min(since));
            state.waiting.insert(id.clone(), (since, pool));
            let waiting = state.sorted();
            let mut decision = decide(self.limits, &running, &waiting, id);
            if let Decision::Queued { show, .. } = &mut decision {
                let recent = state
                    .shown
                    .get(id)
                    .is_some_and(|at| at.elapsed() < QUEUED_RECHECK);
                *show = !recent;
                if !recent {
                    state.shown.insert(id.clone(), Instant::now());
                }
            }
            if decision == Decision::Start {
                state.waiting.remove(id);
                state.shown.remove(id);
                state.reserved.insert(
                    id.clone(),
                    Reservation {
                        job: job.to_string(),
                        pool,
                        at: Instant::now(),
                    },
                );
            }
            let wake: Vec<ScanId> = grants(self.limits, &running, &waiting)
                .into_iter()
                .filter(|w| *w != id)
                .cloned()
                .collect();
            self.publish(&state);
            (decision, wake)
        };
        self.send(wake);
        decision
    }

    /// Gives back the slot of a scan whose Job was not created.
    pub fn release(&self, id: &ScanId) {
        self.lock().reserved.remove(id);
    }

    /// The scan needs no slot (it runs, finished, is suspended or deleted): it leaves the
    /// queue, and the scans that may start in its place are woken.
    pub fn leave(&self, id: &ScanId, jobs: &Store<Job>) {
        let left = {
            let mut state = self.lock();
            state.shown.remove(id);
            let left = state.waiting.remove(id).is_some();
            if left {
                self.publish(&state);
            }
            left
        };
        if left {
            self.wake(jobs, |_| true);
        }
    }

    /// Sends the waiting scans that may start now to their controllers (after a Job changed or
    /// went); first forgets those for which `exists` is false (deleted scans).
    pub fn wake(&self, jobs: &Store<Job>, exists: impl Fn(&ScanId) -> bool) {
        let wake: Vec<ScanId> = {
            let mut state = self.lock();
            state.waiting.retain(|id, _| exists(id));
            let State { waiting, shown, .. } = &mut *state;
            shown.retain(|id, _| waiting.contains_key(id));
            let running = state.running(jobs, None, &self.first_sight_namespace);
            self.publish(&state);
            if state.waiting.is_empty() {
                return;
            }
            let waiting = state.sorted();
            grants(self.limits, &running, &waiting)
                .into_iter()
                .cloned()
                .collect()
        };
        self.send(wake);
    }

    /// Triggers reconciles of `scans`; a full channel drops the trigger (queued scans come back
    /// on their own after a while).
    fn send(&self, scans: Vec<ScanId>) {
        for id in scans {
            let sent = match id.kind {
                Kind::ImageScan => self
                    .triggers
                    .images
                    .clone()
                    .try_send(ObjectRef::<ImageScan>::new(&id.name).within(&id.namespace))
                    .is_ok(),
                Kind::SourceScan => self
                    .triggers
                    .sources
                    .clone()
                    .try_send(ObjectRef::<SourceScan>::new(&id.name).within(&id.namespace))
                    .is_ok(),
            };
            if !sent {
                tracing::debug!(namespace = %id.namespace, name = %id.name, "queue trigger dropped: the controller's queue is full");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn id(namespace: &str, name: &str) -> ScanId {
        ScanId {
            namespace: namespace.into(),
            name: name.into(),
            kind: Kind::ImageScan,
        }
    }

    fn waiting(entries: &[(&str, &str, &str)]) -> Vec<Waiting> {
        let mut w: Vec<Waiting> = entries
            .iter()
            .map(|(at, ns, name)| Waiting {
                since: ts(at),
                id: id(ns, name),
                pool: Pool::Shared,
            })
            .collect();
        w.sort();
        w
    }

    fn running(entries: &[(&str, usize)]) -> Running {
        Running {
            per_namespace: entries.iter().map(|(ns, n)| (ns.to_string(), *n)).collect(),
            first_sight: 0,
        }
    }

    const LIMITS: Limits = Limits {
        total: 3,
        per_namespace: 2,
        first_sight: 1,
    };

    #[test]
    fn the_oldest_requests_get_the_free_slots() {
        let w = waiting(&[
            ("2026-01-01T00:00:03Z", "a", "c"),
            ("2026-01-01T00:00:01Z", "b", "x"),
            ("2026-01-01T00:00:02Z", "a", "b"),
            // Same time: by namespace then name.
            ("2026-01-01T00:00:02Z", "a", "a"),
        ]);
        let granted: Vec<&str> = grants(LIMITS, &running(&[("c", 1)]), &w)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(granted, ["x", "a"]);
        assert_eq!(
            decide(LIMITS, &running(&[("c", 1)]), &w, &id("a", "a")),
            Decision::Start
        );
        assert_eq!(
            decide(LIMITS, &running(&[("c", 1)]), &w, &id("a", "c")),
            Decision::Queued {
                position: 4,
                waiting: 4,
                limits: LIMITS,
                show: true,
            }
        );
        // Nothing free: nobody starts.
        assert!(grants(LIMITS, &running(&[("c", 2), ("d", 1)]), &w).is_empty());
    }

    #[test]
    fn jobs_beyond_a_namespaces_limit_do_not_take_the_others_slots() {
        // A tenant made 9 labelled Jobs of its own in namespace t: t counts as its limit (2),
        // so the third global slot is still free for the others.
        let w = waiting(&[
            ("2026-01-01T00:00:01Z", "t", "mine"),
            ("2026-01-01T00:00:02Z", "scangate-system", "trusted"),
        ]);
        let granted: Vec<&str> = grants(LIMITS, &running(&[("t", 9)]), &w)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(granted, ["trusted"]);
    }

    #[test]
    fn a_namespace_at_its_limit_does_not_hold_up_the_others() {
        let w = waiting(&[
            ("2026-01-01T00:00:01Z", "a", "1"),
            ("2026-01-01T00:00:02Z", "a", "2"),
            ("2026-01-01T00:00:03Z", "b", "3"),
        ]);
        let granted: Vec<&str> = grants(LIMITS, &running(&[("a", 1)]), &w)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(granted, ["1", "3"]);
        assert_eq!(
            decide(LIMITS, &running(&[("a", 1)]), &w, &id("a", "2")),
            Decision::Queued {
                position: 2,
                waiting: 3,
                limits: LIMITS,
                show: true,
            }
        );
    }

    #[test]
    fn first_sight_scans_have_their_own_slots() {
        let mut w = waiting(&[
            ("2026-01-01T00:00:01Z", "scangate-system", "fs-1"),
            ("2026-01-01T00:00:02Z", "scangate-system", "fs-2"),
            ("2026-01-01T00:00:03Z", "scangate-system", "admin-rescan"),
            ("2026-01-01T00:00:04Z", "shop", "tenant"),
        ]);
        for x in w.iter_mut().filter(|x| x.id.name.starts_with("fs-")) {
            x.pool = Pool::FirstSight;
        }
        // The first-sight pool (1) holds one; the admin's and the tenant's scans get theirs.
        let granted: Vec<&str> = grants(LIMITS, &running(&[]), &w)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(granted, ["fs-1", "admin-rescan", "tenant"]);
        // A full first-sight pool holds up no one else; full shared slots hold up no
        // first-sight scan.
        let busy = Running {
            first_sight: 1,
            ..running(&[])
        };
        let granted: Vec<&str> = grants(LIMITS, &busy, &w)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(granted, ["admin-rescan", "tenant"]);
        let full = running(&[("a", 2), ("b", 1)]);
        let granted: Vec<&str> = grants(LIMITS, &full, &w)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(granted, ["fs-1"]);
        // Only a labelled scan of scangate's namespace is in the first-sight pool.
        let labelled =
            std::collections::BTreeMap::from([(naming::LABEL.to_string(), "true".to_string())]);
        assert_eq!(
            Pool::of("scangate-system", &labelled, "scangate-system"),
            Pool::FirstSight
        );
        assert_eq!(Pool::of("shop", &labelled, "scangate-system"), Pool::Shared);
        assert_eq!(
            Pool::of("scangate-system", &Default::default(), "scangate-system"),
            Pool::Shared
        );
    }

    #[test]
    fn the_queued_message_says_the_place_and_the_limits() {
        assert_eq!(
            Decision::message(3, 12, LIMITS),
            "queued: 3 of 12 waiting; limit 3 running, 2 per namespace"
        );
    }

    /// Many scans asking at once from many threads, Jobs "appearing" in a store only later:
    /// the slots granted never exceed the limits.
    #[test]
    fn concurrent_requests_never_exceed_the_limits() {
        use kube::runtime::reflector;
        let (store, _writer) = reflector::store::<Job>();
        let (triggers, _images, _sources) = super::super::triggers::triggers();
        let queue = std::sync::Arc::new(Queue::new(
            LIMITS,
            "scangate-system",
            triggers,
            Arc::default(),
        ));
        let started = std::sync::Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (queue, store, started) = (queue.clone(), store.clone(), started.clone());
                std::thread::spawn(move || {
                    let me = id(["a", "b", "c"][i % 3], &format!("s{i}"));
                    for _ in 0..50 {
                        let at = ts("2026-01-01T00:00:00Z");
                        if queue.admit(&me, Pool::Shared, at, &format!("job-{i}"), &store)
                            == Decision::Start
                        {
                            started
                                .lock()
                                .unwrap_or_else(|e| panic!("{e}"))
                                .push(me.clone());
                            return;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap_or_else(|_| panic!("thread"));
        }
        let started = started.lock().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(started.len(), LIMITS.total);
        for ns in ["a", "b", "c"] {
            assert!(started.iter().filter(|s| s.namespace == ns).count() <= 2);
        }
        let waiting = queue.lock().waiting.len();
        assert_eq!(waiting, 16 - LIMITS.total);
    }

    #[test]
    fn a_waiting_scan_shows_its_place_at_most_every_recheck() {
        use kube::runtime::reflector;
        let (store, _writer) = reflector::store::<Job>();
        let (triggers, _images, _sources) = super::super::triggers::triggers();
        let queue = Queue::new(
            Limits {
                total: 1,
                per_namespace: 1,
                first_sight: 1,
            },
            "scangate-system",
            triggers,
            Arc::default(),
        );
        let at = ts("2026-01-01T00:00:00Z");
        assert_eq!(
            queue.admit(&id("a", "1"), Pool::Shared, at, "j1", &store),
            Decision::Start
        );
        let shows = |name: &str| match queue.admit(&id("a", name), Pool::Shared, at, name, &store) {
            Decision::Queued { show, .. } => show,
            Decision::Start => panic!("{name} started"),
        };
        assert!(shows("2"));
        assert!(!shows("2"), "shown a moment ago");
        assert!(shows("3"));
        // Leaving and coming back shows the place again.
        queue.leave(&id("a", "2"), &store);
        assert!(shows("2"));
        // The slot given back goes to the oldest waiting scan.
        queue.release(&id("a", "1"));
        let first = queue.admit(&id("a", "3"), Pool::Shared, at, "3", &store);
        assert!(
            matches!(first, Decision::Queued { position: 2, .. }),
            "{first:?}"
        );
        assert_eq!(
            queue.admit(&id("a", "2"), Pool::Shared, at, "2", &store),
            Decision::Start
        );
    }

    /// The gauges follow the queue: scans waiting per kind, and the scan Jobs the cache shows
    /// running (a slot granted is not a Job yet); zero when the queue goes with its term.
    #[test]
    fn the_gauges_follow_the_waiting_scans_and_the_running_jobs() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        use kube::runtime::{reflector, watcher};
        let (store, mut writer) = reflector::store::<Job>();
        let (triggers, _images, _sources) = super::super::triggers::triggers();
        let metrics = Arc::new(Metrics::new());
        let queue = Queue::new(
            Limits {
                total: 1,
                per_namespace: 1,
                first_sight: 1,
            },
            "scangate-system",
            triggers,
            metrics.clone(),
        );
        let gauges = || {
            let queued = |kind: &str| {
                metrics
                    .scans_queued
                    .get_or_create(&super::super::metrics::KindLabels { kind: kind.into() })
                    .get()
            };
            (
                queued("ImageScan"),
                queued("SourceScan"),
                metrics.scan_jobs_running.get(),
            )
        };
        let at = ts("2026-01-01T00:00:00Z");
        assert_eq!(
            queue.admit(&id("a", "1"), Pool::Shared, at, "j1", &store),
            Decision::Start
        );
        let source = ScanId {
            kind: Kind::SourceScan,
            ..id("a", "repo")
        };
        for scan in [id("a", "2"), id("b", "3"), source.clone()] {
            assert_ne!(
                queue.admit(&scan, Pool::Shared, at, "j", &store),
                Decision::Start
            );
        }
        assert_eq!(gauges(), (2, 1, 0));

        // The granted scan's Job shows in the cache, running.
        let mut job = Job::default();
        job.metadata.name = Some("j1".into());
        job.metadata.namespace = Some("a".into());
        job.metadata.labels = Some([(SCAN_LABEL.to_string(), "1".to_string())].into());
        job.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "scanning.scangate.dev/v1beta1".into(),
            kind: "ImageScan".into(),
            name: "1".into(),
            uid: "uid-1".into(),
            ..OwnerReference::default()
        }]);
        writer.apply_watcher_event(&watcher::Event::Apply(job));
        queue.wake(&store, |_| true);
        assert_eq!(gauges(), (2, 1, 1));
        queue.leave(&id("b", "3"), &store);
        queue.leave(&source, &store);
        assert_eq!(gauges(), (1, 0, 1));
        drop(queue);
        assert_eq!(gauges(), (0, 0, 0));
    }
}
