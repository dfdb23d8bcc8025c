//! Scans on first sight, and the Events of verdicts that turned, from what the apiserver stored
//! and runs (the inventory's watches), never from an admission review: a review anyone can
//! forge to the webhook's port, a Running pod only the apiserver can report.
//!
//! - **First sight**: an image a Running pod runs with no trusted result gets an ImageScan in
//!   scangate's namespace (named from the normalized image, so every namespace meets at one
//!   name), labelled [`LABEL`] and [`FOR_NAMESPACE`] (the namespace whose pods it was made for).
//!   Budgets: at most `firstSight.perNamespace` undecided first-sight scans per namespace, and
//!   `firstSight.perMinute` in all (a token bucket), shared out among namespaces in turn; their
//!   Jobs run in their own slots ([`crate::scan::queue`]). A first-sight scan no Running pod has used
//!   for `firstSight.unusedAfter` is deleted; "used" is counted from when this controller's
//!   term first saw the scan, so a restart never deletes early.
//! - **VerdictTurned**: a Running pod of a controller (a ReplicaSet, a Job, …) whose image the
//!   rules now deny gets a Warning Event on that owner, once per owner, image and result.
//!
//! The decisions ([`plan`], [`unused`], [`turned`]) are pure; [`Effects`] writes them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scan::naming::{FOR_NAMESPACE, LABEL, scan_name};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::ObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, ResourceExt};

use super::inventory::{Entry, RuntimeVerdict};
use super::metrics::{FirstSightOutcome, Metrics};
use crate::admission::config::{AdmissionConfig, FirstSightRules};
use crate::api::{ImageScan, ImageScanSpec, RegistrySpec, ScanSettings};
use crate::image::ImageRef;
use crate::rate::{Rate, TokenBucket};
use crate::scan::events::{MAX_NOTE_BYTES, summarise};

/// How long one create or delete may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The Event reason of a running pod whose image's verdict turned.
pub const VERDICT_TURNED: &str = "VerdictTurned";

/// The ImageScan of `image` in `namespace` (scangate's), with the configured template and
/// policy, made for the pods of `for_namespace`.
pub fn image_scan(
    image: &ImageRef,
    rules: &FirstSightRules,
    namespace: &str,
    for_namespace: &str,
) -> ImageScan {
    let metadata = ObjectMeta {
        name: Some(scan_name(image)),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([
            (LABEL.to_string(), "true".to_string()),
            (FOR_NAMESPACE.to_string(), for_namespace.to_string()),
        ])),
        ..ObjectMeta::default()
    };
    let spec = ImageScanSpec {
        results_from: None,
        registry: RegistrySpec {
            image: image.to_string(),
            image_pull_secret: None,
        },
        scan: ScanSettings {
            scan_template: rules.template.clone(),
            scan_policy: rules.policy.clone(),
            ..ScanSettings::default()
        },
    };
    ImageScan {
        metadata,
        spec,
        status: None,
    }
}

/// A first-sight scan that exists, as the budgets count it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub name: String,
    /// The namespace it was made for (its [`FOR_NAMESPACE`] label).
    pub for_namespace: Option<String>,
    /// Whether it has a decided result (Completed, Failed, Error).
    pub decided: bool,
}

impl Existing {
    /// The scan as a first-sight scan: labelled [`LABEL`], in scangate's namespace (no one else
    /// can write there); `None` for any other scan.
    pub fn of(scan: &ImageScan, scangate_namespace: &str) -> Option<Existing> {
        let labels = scan.labels();
        if scan.namespace().as_deref() != Some(scangate_namespace)
            || labels.get(LABEL).map(String::as_str) != Some("true")
        {
            return None;
        }
        Some(Existing {
            name: scan.name_any(),
            for_namespace: labels.get(FOR_NAMESPACE).cloned(),
            decided: scan
                .status
                .as_ref()
                .is_some_and(|s| s.phase.is_some_and(|p| p.is_decided())),
        })
    }
}

/// A first-sight scan to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The namespace whose running pods need it.
    pub namespace: String,
    pub image: ImageRef,
}

/// The namespaces whose pods get no first-sight scans: scangate's own (its scan Jobs' pods)
/// and kube-system, which the workload webhooks skip too.
pub fn skipped(scangate_namespace: &str) -> [&str; 2] {
    [scangate_namespace, "kube-system"]
}

/// The images each namespace's running pods run with no trusted result, from the inventory's
/// entries (deduplicated, in order), but those of the `skipped` namespaces.
pub fn candidates(
    latest: &BTreeMap<String, Vec<Entry>>,
    skipped: &[&str],
) -> BTreeMap<String, Vec<ImageRef>> {
    latest
        .iter()
        .filter(|(ns, _)| !skipped.contains(&ns.as_str()))
        .map(|(ns, entries)| {
            let mut seen = BTreeSet::new();
            let images = entries
                .iter()
                .filter(|e| e.unscanned)
                .filter_map(|e| ImageRef::parse(&e.image).ok())
                .filter(|image| seen.insert(image.to_string()))
                .collect();
            (ns.clone(), images)
        })
        .filter(|(_, images): &(String, Vec<ImageRef>)| !images.is_empty())
        .collect()
}

/// The scans to create now, in turn across namespaces (one of each namespace's in each round),
/// each namespace within `per_namespace` undecided first-sight scans made for it; an image with
/// a first-sight scan already (made for any namespace) is not asked again.
pub fn plan(
    candidates: &BTreeMap<String, Vec<ImageRef>>,
    existing: &[Existing],
    per_namespace: usize,
) -> Vec<Request> {
    let mut names: BTreeSet<String> = existing.iter().map(|e| e.name.clone()).collect();
    let mut room: BTreeMap<&str, usize> = candidates
        .keys()
        .map(|ns| {
            let undecided = existing
                .iter()
                .filter(|e| !e.decided && e.for_namespace.as_deref() == Some(ns))
                .count();
            (ns.as_str(), per_namespace.saturating_sub(undecided))
        })
        .collect();
    let mut queues: Vec<(&str, std::slice::Iter<'_, ImageRef>)> = candidates
        .iter()
        .map(|(ns, images)| (ns.as_str(), images.iter()))
        .collect();
    let mut requests = vec![];
    while !queues.is_empty() {
        queues.retain_mut(|(ns, images)| {
            let left = room.entry(ns).or_default();
            if *left == 0 {
                return false;
            }
            for image in images.by_ref() {
                if names.insert(scan_name(image)) {
                    *left -= 1;
                    requests.push(Request {
                        namespace: ns.to_string(),
                        image: image.clone(),
                    });
                    return true;
                }
            }
            false
        });
    }
    requests
}

/// The first-sight scans to delete: those not `in_use` whose last use (or, when never seen in
/// use, the first time this term saw them) is `after` or more before `now`. `last_used` is
/// brought up to date: in-use scans are used `now`, new ones seen `now`, gone ones forgotten.
pub fn unused(
    existing: &[Existing],
    in_use: &BTreeSet<String>,
    last_used: &mut HashMap<String, Timestamp>,
    now: Timestamp,
    after: Duration,
) -> Vec<String> {
    let names: BTreeSet<&str> = existing.iter().map(|e| e.name.as_str()).collect();
    last_used.retain(|name, _| names.contains(name.as_str()));
    let mut stale = vec![];
    for name in names {
        let seen = last_used.entry(name.to_string()).or_insert(now);
        if in_use.contains(name) {
            *seen = now;
            continue;
        }
        let idle = Duration::try_from(now.duration_since(*seen)).unwrap_or_default();
        if idle >= after {
            stale.push(name.to_string());
        }
    }
    stale
}

/// The scans of scangate's namespace the entries use: the scan that decides an image, and the
/// first-sight name of every image (its scan, pending or not).
pub fn in_use<'e>(
    entries: impl IntoIterator<Item = &'e Entry>,
    scangate_namespace: &str,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for e in entries {
        if let Some(scan) = e
            .scan
            .as_ref()
            .filter(|s| s.namespace == scangate_namespace)
        {
            names.insert(scan.name.clone());
        }
        if let Ok(image) = ImageRef::parse(&e.image) {
            names.insert(scan_name(&image));
        }
    }
    names
}

/// A VerdictTurned Event to record once.
#[derive(Clone, Debug, PartialEq)]
pub struct Turned {
    /// Owner uid, image, and the deciding result (`namespace/name@recorded`): a new result
    /// is a new Event.
    pub key: (String, String, String),
    pub owner: ObjectReference,
    pub note: String,
}

/// The Events of a namespace's entries whose image the rules now deny although a controller's
/// pod runs it.
pub fn turned(namespace: &str, entries: &[Entry]) -> Vec<Turned> {
    let mut found: BTreeMap<(String, String, String), Turned> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.verdict == RuntimeVerdict::fail) {
        let Some(owner) = &e.owner else { continue };
        let result = e
            .scan
            .as_ref()
            .map(|s| format!("{}/{}@{}", s.namespace, s.name, s.as_of))
            .unwrap_or_default();
        let key = (owner.uid.clone(), e.image.clone(), result);
        let note = summarise(
            &format!(
                "Pod {} runs {} (container {}), which scangate now denies: ",
                e.pod, e.image, e.container
            ),
            std::slice::from_ref(&e.message),
            "",
            MAX_NOTE_BYTES,
        );
        found.entry(key.clone()).or_insert_with(|| Turned {
            key,
            owner: ObjectReference {
                api_version: Some(owner.api_version.clone()),
                kind: Some(owner.kind.clone()),
                name: Some(owner.name.clone()),
                uid: Some(owner.uid.clone()),
                namespace: Some(namespace.to_string()),
                ..ObjectReference::default()
            },
            note,
        });
    }
    found.into_values().collect()
}

/// The writes of first sight and VerdictTurned, and what they remember between recomputes.
pub struct Effects {
    client: Client,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    bucket: Option<TokenBucket>,
    last_used: HashMap<String, Timestamp>,
    /// The VerdictTurned Events recorded, per namespace, of what runs now.
    announced: HashMap<String, BTreeSet<(String, String, String)>>,
}

impl Effects {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: crate::scan::CONTROLLER_NAME.into(),
                instance: None,
            },
        );
        Effects {
            client,
            metrics,
            recorder,
            bucket: None,
            last_used: HashMap::new(),
            announced: HashMap::new(),
        }
    }

    /// Records the VerdictTurned Events of a namespace's entries not recorded yet; forgets
    /// those of pods that no longer run.
    pub async fn verdicts_turned(&mut self, namespace: &str, entries: &[Entry]) {
        let events = turned(namespace, entries);
        let announced = self.announced.entry(namespace.to_string()).or_default();
        let current: BTreeSet<_> = events.iter().map(|t| t.key.clone()).collect();
        announced.retain(|k| current.contains(k));
        for t in events {
            if announced.contains(&t.key) {
                continue;
            }
            let event = Event {
                type_: EventType::Warning,
                reason: VERDICT_TURNED.into(),
                note: Some(t.note),
                action: "Run".into(),
                secondary: None,
            };
            match self.recorder.publish(&event, &t.owner).await {
                Ok(()) => {
                    announced.insert(t.key);
                }
                Err(error) => {
                    tracing::warn!(%namespace, %error, "cannot record a VerdictTurned Event; tried again at the next change");
                }
            }
        }
        if announced.is_empty() {
            self.announced.remove(namespace);
        }
    }

    /// Creates the first-sight scans the running pods need, within the budgets, and deletes
    /// the unused ones: every one when the inventory sees every namespace (`watched` is
    /// `None`), else only those made for the namespace it sees (`--namespace`), as it cannot
    /// tell whether another namespace's pods use the others. Returns whether candidates wait
    /// (for a token or a budget), so the caller comes back.
    pub async fn first_sight(
        &mut self,
        config: &AdmissionConfig,
        watched: Option<&str>,
        latest: &BTreeMap<String, Vec<Entry>>,
        scans: &[Arc<ImageScan>],
    ) -> bool {
        let rules = &config.first_sight;
        let namespace = config.scangate_namespace.as_str();
        let existing: Vec<Existing> = scans
            .iter()
            .filter_map(|s| Existing::of(s, namespace))
            .collect();
        let api: Api<ImageScan> = Api::namespaced(self.client.clone(), namespace);
        if let Ok(Some(after)) = rules.unused_after() {
            let in_use = in_use(latest.values().flatten(), namespace);
            let now = Timestamp::now();
            let collectable: Vec<Existing> = existing
                .iter()
                .filter(|e| watched.is_none() || e.for_namespace.as_deref() == watched)
                .cloned()
                .collect();
            for name in unused(&collectable, &in_use, &mut self.last_used, now, after) {
                let deleted =
                    tokio::time::timeout(CALL_TIMEOUT, api.delete(&name, &DeleteParams::default()))
                        .await;
                match deleted {
                    Ok(Ok(_)) | Ok(Err(kube::Error::Api(_))) => {
                        tracing::info!(scan = %name, "deleted a first-sight scan no running pod used");
                        self.last_used.remove(&name);
                        self.metrics.count_first_sight(FirstSightOutcome::deleted);
                    }
                    _ => {
                        tracing::warn!(scan = %name, "cannot delete an unused first-sight scan; tried again later")
                    }
                }
            }
        }
        if rules.template.is_none() {
            return false;
        }
        let per_namespace = usize::try_from(rules.per_namespace()).unwrap_or(usize::MAX);
        let requests = plan(
            &candidates(latest, &skipped(namespace)),
            &existing,
            per_namespace,
        );
        let rate = Rate::per_minute(rules.per_minute());
        let bucket = self
            .bucket
            .get_or_insert_with(|| TokenBucket::full(rate, Instant::now()));
        let mut waiting = false;
        for request in requests {
            if !bucket.try_take(rate, Instant::now()) {
                self.metrics.count_first_sight(FirstSightOutcome::limited);
                waiting = true;
                break;
            }
            let scan = image_scan(&request.image, rules, namespace, &request.namespace);
            let created =
                tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &scan)).await;
            let outcome = match created {
                Ok(Ok(_)) => {
                    tracing::info!(image = %request.image, for_namespace = %request.namespace, "created a scan on first sight");
                    FirstSightOutcome::created
                }
                Ok(Err(kube::Error::Api(status))) if status.is_already_exists() => {
                    FirstSightOutcome::exists
                }
                Ok(Err(error)) => {
                    tracing::warn!(image = %request.image, %error, "cannot create a scan on first sight; the controller needs create on imagescans in scangate's namespace");
                    waiting = true;
                    FirstSightOutcome::failed
                }
                Err(_) => {
                    tracing::warn!(image = %request.image, "the apiserver did not answer a first-sight create in time");
                    waiting = true;
                    FirstSightOutcome::failed
                }
            };
            self.metrics.count_first_sight(outcome);
        }
        waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::Origin;
    use crate::api::Phase;
    use crate::runtime::inventory::{DecidingScan, Owner, Workload};

    fn image(reference: &str) -> ImageRef {
        ImageRef::parse(reference).unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn entry(pod: &str, reference: &str, verdict: RuntimeVerdict, unscanned: bool) -> Entry {
        Entry {
            workload: Workload {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            pod: pod.into(),
            container: "app".into(),
            image: reference.into(),
            verdict,
            message: "the image has a failed trusted scan".into(),
            scan: (!unscanned).then(|| DecidingScan {
                namespace: "scangate-system".into(),
                name: "alpine".into(),
                origin: Origin::Trusted,
                phase: Phase::Failed,
                as_of: at("2026-01-02T00:00:00Z"),
            }),
            exception: None,
            severity: None,
            cves: vec![],
            unscanned,
            owner: Some(Owner {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web-7d9".into(),
                uid: "u1".into(),
            }),
            ended: None,
        }
    }

    #[test]
    fn names_are_one_per_normalized_image() {
        let a = scan_name(&image("nginx:1.27"));
        assert_eq!(a, scan_name(&image("docker.io/library/nginx:1.27")));
        assert_ne!(a, scan_name(&image("nginx:1.26")));
        assert!(a.starts_with("first-sight-nginx-"), "{a}");
        let long = scan_name(&image(
            "registry.example/team/a_very_long.repository-name-that-goes-on-and-on:1",
        ));
        assert!(long.len() <= 53, "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{long}"
        );
        assert!(
            long.starts_with("first-sight-a-very-long-repository-n"),
            "{long}"
        );
    }

    #[test]
    fn scans_carry_the_template_policy_and_labels() {
        let rules = FirstSightRules {
            template: Some("trivy".into()),
            policy: Some("strict".into()),
            ..FirstSightRules::default()
        };
        let scan = image_scan(&image("busybox:1"), &rules, "scangate-system", "shop");
        assert_eq!(scan.metadata.namespace.as_deref(), Some("scangate-system"));
        let labels = scan.labels();
        assert_eq!(labels.get(LABEL).map(String::as_str), Some("true"));
        assert_eq!(labels.get(FOR_NAMESPACE).map(String::as_str), Some("shop"));
        assert_eq!(scan.spec.registry.image, "docker.io/library/busybox:1");
        assert_eq!(scan.spec.scan.scan_template.as_deref(), Some("trivy"));
        assert_eq!(scan.spec.scan.scan_policy.as_deref(), Some("strict"));
        // Only labelled scans in scangate's namespace count as first-sight scans.
        let found = Existing::of(&scan, "scangate-system");
        assert_eq!(
            found,
            Some(Existing {
                name: scan_name(&image("busybox:1")),
                for_namespace: Some("shop".into()),
                decided: false,
            })
        );
        assert_eq!(Existing::of(&scan, "elsewhere"), None);
    }

    #[test]
    fn candidates_are_the_unscanned_images_of_running_pods() {
        let latest = BTreeMap::from([
            (
                "shop".to_string(),
                vec![
                    entry("a", "docker.io/library/app:1", RuntimeVerdict::warn, true),
                    entry("b", "docker.io/library/app:1", RuntimeVerdict::warn, true),
                    entry(
                        "c",
                        "docker.io/library/alpine:3",
                        RuntimeVerdict::fail,
                        false,
                    ),
                ],
            ),
            (
                "clean".to_string(),
                vec![entry("d", "alpine:3", RuntimeVerdict::pass, false)],
            ),
        ]);
        let found = candidates(&latest, &skipped("scangate-system"));
        assert_eq!(found.len(), 1);
        assert_eq!(found["shop"], [image("app:1")]);
        // Scangate's own pods (its scan Jobs) get none.
        assert!(candidates(&latest, &skipped("shop")).is_empty());
        let names = in_use(latest.values().flatten(), "scangate-system");
        assert!(names.contains("alpine"), "{names:?}");
        assert!(names.contains(&scan_name(&image("app:1"))), "{names:?}");
    }

    #[test]
    fn one_namespaces_flood_leaves_the_others_their_budget() {
        let flood: Vec<ImageRef> = (0..1000)
            .map(|i| image(&format!("registry.example/flood/app-{i}:1")))
            .collect();
        let candidates = BTreeMap::from([
            ("a-flood".to_string(), flood),
            ("b-quiet".to_string(), vec![image("quiet:1")]),
            ("c-busy".to_string(), vec![image("busy:1"), image("busy:2")]),
        ]);
        // The flood already holds 2 undecided scans; one of them decided frees its place.
        let existing = [
            Existing {
                name: "first-sight-x".into(),
                for_namespace: Some("a-flood".into()),
                decided: false,
            },
            Existing {
                name: "first-sight-y".into(),
                for_namespace: Some("a-flood".into()),
                decided: false,
            },
            Existing {
                name: "first-sight-z".into(),
                for_namespace: Some("a-flood".into()),
                decided: true,
            },
        ];
        let requests = plan(&candidates, &existing, 3);
        let summary: Vec<(&str, String)> = requests
            .iter()
            .map(|r| (r.namespace.as_str(), r.image.to_string()))
            .collect();
        // In turn: one of each namespace per round; the flood gets 3 - 2 = 1.
        assert_eq!(
            summary,
            [
                ("a-flood", "registry.example/flood/app-0:1".to_string()),
                ("b-quiet", "docker.io/library/quiet:1".to_string()),
                ("c-busy", "docker.io/library/busy:1".to_string()),
                ("c-busy", "docker.io/library/busy:2".to_string()),
            ]
        );
        // An image with a scan already, or asked by two namespaces, is asked once.
        let shared = BTreeMap::from([
            ("a".to_string(), vec![image("quiet:1"), image("shared:1")]),
            ("b".to_string(), vec![image("shared:1")]),
        ]);
        let existing = [Existing {
            name: scan_name(&image("quiet:1")),
            for_namespace: Some("c".into()),
            decided: false,
        }];
        let requests = plan(&shared, &existing, 10);
        assert_eq!(
            requests,
            [Request {
                namespace: "a".into(),
                image: image("shared:1"),
            }]
        );
    }

    #[test]
    fn a_scan_unused_for_the_configured_time_is_deleted() {
        let existing = |names: &[&str]| -> Vec<Existing> {
            names
                .iter()
                .map(|n| Existing {
                    name: n.to_string(),
                    for_namespace: None,
                    decided: true,
                })
                .collect()
        };
        let hour = Duration::from_secs(3600);
        let mut last_used = HashMap::new();
        let start = at("2026-01-01T00:00:00Z");
        let used = BTreeSet::from(["a".to_string()]);
        // First seen now: nothing is deleted early after a restart.
        assert!(unused(&existing(&["a", "b"]), &used, &mut last_used, start, hour).is_empty());
        let later = at("2026-01-01T01:00:00Z");
        assert_eq!(
            unused(&existing(&["a", "b"]), &used, &mut last_used, later, hour),
            ["b"]
        );
        // "a" stops being used: an hour after its last use, it goes too.
        let none = BTreeSet::new();
        assert!(
            unused(
                &existing(&["a"]),
                &none,
                &mut last_used,
                at("2026-01-01T01:59:59Z"),
                hour
            )
            .is_empty()
        );
        assert_eq!(
            unused(
                &existing(&["a"]),
                &none,
                &mut last_used,
                at("2026-01-01T02:00:00Z"),
                hour
            ),
            ["a"]
        );
        // Gone scans are forgotten.
        assert!(unused(&[], &none, &mut last_used, later, hour).is_empty());
        assert!(last_used.is_empty());
    }

    #[test]
    fn a_controllers_pod_that_runs_a_denied_image_gets_one_event_per_result() {
        let mut bare = entry(
            "solo",
            "docker.io/library/alpine:3",
            RuntimeVerdict::fail,
            false,
        );
        bare.owner = None;
        let entries = [
            entry(
                "web-1",
                "docker.io/library/alpine:3",
                RuntimeVerdict::fail,
                false,
            ),
            entry(
                "web-2",
                "docker.io/library/alpine:3",
                RuntimeVerdict::fail,
                false,
            ),
            entry(
                "web-3",
                "docker.io/library/app:1",
                RuntimeVerdict::warn,
                true,
            ),
            bare,
        ];
        let events = turned("shop", &entries);
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(event.owner.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(event.owner.namespace.as_deref(), Some("shop"));
        assert!(event.note.contains("failed trusted scan"), "{}", event.note);
        assert!(event.note.len() <= MAX_NOTE_BYTES);
        assert_eq!(
            event.key.2,
            "scangate-system/alpine@2026-01-02T00:00:00Z".to_string()
        );
    }
}
