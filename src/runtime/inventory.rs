//! The runtime inventory: the images every Running pod runs, per workload, with the verdict the
//! webhook would give them now. The verdict is the webhook's own pure decision
//! ([`crate::admission::workload::decide`]) over a [`ScanIndex`] of the ImageScans and the
//! active ScanExceptions, with the admission config the controller loaded.
//!
//! - **Which image**: a container's image is pinned to the digest its status reports
//!   (`imageID` `…@sha256:…`), when it reports one: the bits that run are what is decided. An
//!   image volume, or a container whose runtime reported no digest, is decided as written.
//! - **Which workload**: the pod's controller owner; a ReplicaSet that follows the
//!   Deployment convention (named `<deployment>-<pod-template-hash>`, the pod labelled with
//!   that hash) stands for its Deployment. No ReplicaSet is watched for it: a ReplicaSet made by
//!   hand whose pods carry a matching `pod-template-hash` label counts as a Deployment of that
//!   name. A pod with no owner is its own workload.
//! - **The verdict** is what the rules say about the image ([`Action`]), before the namespace's
//!   enforcement mode: an image that would be denied is `fail` in an audit namespace too.
//!
//! - **What ended**: a pod that stopped running (Succeeded, Failed, or deleted while Running)
//!   keeps its images in the runtime view with the time it ended ([`Entry::ended`]), for the
//!   results page's window (the past hour by default, [`ENDED_KEPT`] at most). The API keeps
//!   an ended pod until it is deleted; [`Ended`] remembers the deleted ones, bounded in count
//!   ([`MAX_ENDED`]) and in age. PolicyReports hold the running images only.
//!
//! Everything here is pure; [`super::reports`] writes what it computes.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    Container as PodContainer, ContainerState, ContainerStateTerminated, ContainerStatus,
    EphemeralContainer, Pod, PodSpec, PodStatus, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use prometheus_client::encoding::EncodeLabelValue;

use crate::admission::config::{Action, Origin};
use crate::admission::pod::{self, Container, WorkloadKind};
use crate::admission::workload::{self, Context};
use crate::api::{Phase, Severity};
use crate::image::ImageRef;

/// The label a Deployment's ReplicaSet puts on its pods, and suffixes its own name with.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// How many CVE ids a result names.
pub const TOP_CVES: usize = 5;

/// How long the images of an ended pod stay in the runtime view: the largest window the
/// results page offers.
pub const ENDED_KEPT: SignedDuration = SignedDuration::from_hours(24);

/// How many deleted pods the inventory remembers at most; past it, those that ended first are
/// forgotten first.
pub const MAX_ENDED: usize = 5000;

/// What a running image gets, as PolicyReports spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as PolicyReports spell them
pub enum RuntimeVerdict {
    /// Denied by the rules: a Failed result no exception covers, an unscanned image under
    /// `onUnscanned: deny`, a result in Error under `onError: deny`, an invalid reference.
    fail,
    /// Admitted with a warning by the rules, or only by an exception (the webhook warns: the
    /// image still has its findings, accepted by an approver until the exception ends).
    warn,
    /// Admitted without a decided result: unscanned, pending or in error, under rules that
    /// allow those.
    skip,
    /// Admitted by a Completed result.
    pass,
}

impl RuntimeVerdict {
    pub const ALL: [RuntimeVerdict; 4] = [
        RuntimeVerdict::fail,
        RuntimeVerdict::warn,
        RuntimeVerdict::skip,
        RuntimeVerdict::pass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeVerdict::fail => "fail",
            RuntimeVerdict::warn => "warn",
            RuntimeVerdict::skip => "skip",
            RuntimeVerdict::pass => "pass",
        }
    }

    /// The verdict of the rules' `action` on an image: `decided` when a Completed or Failed
    /// result admitted it, `excepted` when an exception did.
    pub fn of(action: Action, decided: bool, excepted: bool) -> Self {
        match action {
            Action::Deny => RuntimeVerdict::fail,
            Action::Warn => RuntimeVerdict::warn,
            Action::Allow if excepted => RuntimeVerdict::warn,
            Action::Allow if decided => RuntimeVerdict::pass,
            Action::Allow => RuntimeVerdict::skip,
        }
    }
}

/// The object a running pod belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub api_version: String,
}

/// The scan that decided a running image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecidingScan {
    pub namespace: String,
    pub name: String,
    pub origin: Origin,
    pub phase: Phase,
    /// When its result was recorded.
    pub as_of: Timestamp,
}

/// One image of one workload, and what the webhook would say about it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub workload: Workload,
    /// A pod of the workload that runs the image, and the container (or image volume) name.
    pub pod: String,
    pub container: String,
    /// The image as decided (pinned to the running digest when the runtime reported one).
    pub image: String,
    pub verdict: RuntimeVerdict,
    /// Why, in one line (the webhook's reason).
    pub message: String,
    pub scan: Option<DecidingScan>,
    /// The exception that admitted it (`namespace/name`).
    pub exception: Option<String>,
    /// The worst severity among the deciding scan's violations.
    pub severity: Option<Severity>,
    /// The deciding scan's violating CVE ids, worst first, at most [`TOP_CVES`].
    pub cves: Vec<String>,
    /// Whether no trusted result speaks for the image (a first-sight candidate).
    pub unscanned: bool,
    /// The controller that owns the pod (a ReplicaSet, a Job, …), which the pod's Events
    /// concern; `None` for a pod without one.
    pub owner: Option<Owner>,
    /// When the pod stopped running; `None` while it runs.
    pub ended: Option<Timestamp>,
}

/// A pod's controller owner, as the apiserver stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// A Pod as the inventory caches it: names, owners and the `pod-template-hash` label; the
/// images of its containers and image volumes; its phase, and the image IDs and end times
/// (`state.terminated.finishedAt`) of its container statuses.
pub fn strip_pod(pod: &mut Pod) {
    let meta = std::mem::take(&mut pod.metadata);
    pod.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        owner_references: meta.owner_references,
        labels: meta.labels.map(|mut labels| {
            labels.retain(|k, _| k == POD_TEMPLATE_HASH);
            labels
        }),
        ..ObjectMeta::default()
    };
    let container = |c: PodContainer| PodContainer {
        name: c.name,
        image: c.image,
        ..PodContainer::default()
    };
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        containers: spec.containers.into_iter().map(container).collect(),
        init_containers: spec
            .init_containers
            .map(|list| list.into_iter().map(container).collect()),
        ephemeral_containers: spec.ephemeral_containers.map(|list| {
            list.into_iter()
                .map(|c| EphemeralContainer {
                    name: c.name,
                    image: c.image,
                    ..EphemeralContainer::default()
                })
                .collect()
        }),
        volumes: spec.volumes.map(|list| {
            list.into_iter()
                .filter(|v| v.image.is_some())
                .map(|v| Volume {
                    name: v.name,
                    image: v.image,
                    ..Volume::default()
                })
                .collect()
        }),
        ..PodSpec::default()
    });
    let statuses = |list: Option<Vec<ContainerStatus>>| {
        list.map(|list| {
            list.into_iter()
                .map(|s| ContainerStatus {
                    name: s.name,
                    image_id: s.image_id,
                    state: s
                        .state
                        .and_then(|state| state.terminated)
                        .map(|t| ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                finished_at: t.finished_at,
                                ..ContainerStateTerminated::default()
                            }),
                            ..ContainerState::default()
                        }),
                    ..ContainerStatus::default()
                })
                .collect()
        })
    };
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        container_statuses: statuses(status.container_statuses),
        init_container_statuses: statuses(status.init_container_statuses),
        ephemeral_container_statuses: statuses(status.ephemeral_container_statuses),
        ..PodStatus::default()
    });
}

/// Whether the pod is in phase Running.
pub fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// When a pod that ran ended: Succeeded or Failed, at the latest `finishedAt` of its
/// containers. `None` while it runs, or when no container says it ran and finished.
pub fn ended_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    if !matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    [&status.init_container_statuses, &status.container_statuses]
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
}

/// When a deleted pod stopped running, seen deleted at `observed`: then if it was Running, when
/// it ended if it had ([`ended_at`]), `None` if it never ran.
pub fn gone_at(pod: &Pod, observed: Timestamp) -> Option<Timestamp> {
    if is_running(pod) {
        Some(observed)
    } else {
        ended_at(pod)
    }
}

/// The deleted pods that ran, with when they ended: at most [`MAX_ENDED`], none that ended
/// more than [`ENDED_KEPT`] ago.
#[derive(Clone, Debug, Default)]
pub struct Ended {
    /// By pod UID.
    pods: BTreeMap<String, (Timestamp, Pod)>,
}

impl Ended {
    /// Remembers a pod seen deleted at `now`, if it ran.
    pub fn remember(&mut self, pod: Pod, now: Timestamp) {
        let Some(at) = gone_at(&pod, now) else {
            return;
        };
        let uid = pod
            .metadata
            .uid
            .clone()
            .or_else(|| {
                Some(format!(
                    "{}/{}",
                    pod.metadata.namespace.as_deref()?,
                    pod.metadata.name.as_deref()?
                ))
            })
            .unwrap_or_default();
        self.pods.insert(uid, (at, pod));
        self.prune(now);
    }

    /// Forgets the pods that ended more than [`ENDED_KEPT`] before `now`, then, past
    /// [`MAX_ENDED`], those that ended first.
    pub fn prune(&mut self, now: Timestamp) {
        let oldest = now.checked_sub(ENDED_KEPT).unwrap_or(Timestamp::MIN);
        self.pods.retain(|_, (at, _)| *at >= oldest);
        if self.pods.len() > MAX_ENDED {
            let mut ends: Vec<(Timestamp, String)> = self
                .pods
                .iter()
                .map(|(uid, (at, _))| (*at, uid.clone()))
                .collect();
            ends.sort();
            let extra = ends.len() - MAX_ENDED;
            for (_, uid) in ends.into_iter().take(extra) {
                self.pods.remove(&uid);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The namespaces of the remembered pods.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.pods
            .values()
            .filter_map(|(_, p)| p.metadata.namespace.as_deref())
    }

    /// The remembered pods of a namespace, with when they ended.
    pub fn of<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = (Timestamp, &'a Pod)> {
        self.pods
            .values()
            .filter(move |(_, p)| p.metadata.namespace.as_deref() == Some(namespace))
            .map(|(at, p)| (*at, p))
    }
}

/// The workload a pod belongs to (see the module's doc).
pub fn workload_of(pod: &Pod) -> Workload {
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    let owner = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first());
    let Some(owner) = owner else {
        return Workload {
            api_version: "v1".into(),
            kind: WorkloadKind::Pod.as_str().into(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        };
    };
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH));
    let deployment = (owner.kind == WorkloadKind::ReplicaSet.as_str()
        && owner.api_version == "apps/v1")
        .then(|| hash.and_then(|h| owner.name.strip_suffix(h.as_str())?.strip_suffix('-')))
        .flatten()
        .filter(|name| !name.is_empty());
    match deployment {
        Some(name) => Workload {
            api_version: "apps/v1".into(),
            kind: WorkloadKind::Deployment.as_str().into(),
            name: name.into(),
        },
        None => Workload {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
        },
    }
}

/// The pod's controller owner, as the apiserver stored it.
pub fn controller_owner(pod: &Pod) -> Option<Owner> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| Owner {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
        })
}

/// The digest an `imageID` names (`repo@sha256:…`, `docker-pullable://repo@sha256:…`); an
/// image ID that is no repository digest (a local image's config digest) names none.
pub fn running_digest(image_id: &str) -> Option<&str> {
    let (_, digest) = image_id.rsplit_once('@')?;
    digest.starts_with("sha256:").then_some(digest)
}

/// The images a pod runs, in pod order: each container's pinned to the digest its status
/// reports, when it reports one it can be pinned to.
pub fn images_of(pod: &Pod) -> Result<Vec<Container>, pod::Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = serde_json::json!({ "spec": pod.spec });
    let mut containers = pod::containers_named(WorkloadKind::Pod, &name, &spec)?;
    let status = pod.status.as_ref();
    let ids: BTreeMap<&str, &str> = status
        .into_iter()
        .flat_map(|s| {
            [
                &s.init_container_statuses,
                &s.container_statuses,
                &s.ephemeral_container_statuses,
            ]
        })
        .flatten()
        .flatten()
        .map(|s| (s.name.as_str(), s.image_id.as_str()))
        .collect();
    for c in &mut containers {
        if c.place == pod::Place::ImageVolume {
            continue;
        }
        let digest = ids.get(c.name.as_str()).and_then(|id| running_digest(id));
        // An image written with the digest that runs (pinned at admission) is kept as written.
        let pinned = digest.and_then(|d| {
            let written = ImageRef::parse(&c.image).ok()?;
            (written.digest() != Some(d)).then(|| written.with_digest(d).ok())?
        });
        if let Some(pinned) = pinned {
            c.image = pinned.to_string();
        }
    }
    Ok(containers)
}

/// The entries of a namespace's pods (only the Running ones count), one per workload and
/// image, sorted most severe first, then by workload and image. `ctx` is the decision's
/// context for that namespace. A pod whose images cannot be read is skipped with a warning.
pub fn entries<'p>(ctx: &Context<'_>, pods: impl IntoIterator<Item = &'p Pod>) -> Vec<Entry> {
    let mut found: BTreeMap<(Workload, String), Entry> = BTreeMap::new();
    for pod in pods.into_iter().filter(|p| is_running(p)) {
        for entry in pod_entries(ctx, pod, None) {
            // Two pods of a workload may run different digests of a tag: each is an entry;
            // the same image twice keeps the most severe verdict.
            let key = (entry.workload.clone(), entry.image.clone());
            match found.get(&key) {
                Some(old) if old.verdict <= entry.verdict => {}
                _ => {
                    found.insert(key, entry);
                }
            }
        }
    }
    let mut entries: Vec<Entry> = found.into_values().collect();
    entries.sort_by(|a, b| {
        (a.verdict, &a.workload, &a.image).cmp(&(b.verdict, &b.workload, &b.image))
    });
    entries
}

/// The entries of a namespace's pods that ended at or after `since` (each with when it
/// ended), one per workload and image that no `running` entry holds: the latest to end, sorted
/// by workload and image.
pub fn ended_entries<'p>(
    ctx: &Context<'_>,
    ended: impl IntoIterator<Item = (Timestamp, &'p Pod)>,
    running: &[Entry],
    since: Timestamp,
) -> Vec<Entry> {
    let runs: std::collections::BTreeSet<(&Workload, &str)> = running
        .iter()
        .map(|e| (&e.workload, e.image.as_str()))
        .collect();
    let mut found: BTreeMap<(Workload, String), Entry> = BTreeMap::new();
    for (at, pod) in ended.into_iter().filter(|(at, _)| *at >= since) {
        for entry in pod_entries(ctx, pod, Some(at)) {
            if runs.contains(&(&entry.workload, entry.image.as_str())) {
                continue;
            }
            let key = (entry.workload.clone(), entry.image.clone());
            match found.get(&key) {
                Some(old) if old.ended >= entry.ended => {}
                _ => {
                    found.insert(key, entry);
                }
            }
        }
    }
    found.into_values().collect()
}

/// A pod's entries, one per image in pod order, the pod ended at `ended` (or running).
fn pod_entries(ctx: &Context<'_>, pod: &Pod, ended: Option<Timestamp>) -> Vec<Entry> {
    let containers = match images_of(pod) {
        Ok(containers) => containers,
        Err(error) => {
            tracing::warn!(namespace = ctx.namespace, %error, "skipping a pod whose images cannot be read");
            return vec![];
        }
    };
    let workload = workload_of(pod);
    let decision = workload::decide(ctx, &containers);
    let mut out = vec![];
    for (verdict, container) in decision.verdicts.into_iter().zip(&containers) {
        let scan = verdict.decided_by.as_ref().and_then(|d| {
            let indexed = ctx.index.get(&d.namespace, &d.name)?;
            Some((d.origin, indexed))
        });
        let decided =
            scan.is_some_and(|(_, s)| matches!(s.phase, Phase::Completed | Phase::Failed));
        let violations = scan.map(|(_, s)| &s.violations[..]).unwrap_or_default();
        let mut worst: Vec<_> = violations.iter().collect();
        worst.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.id.cmp(&b.id)));
        let mut cves: Vec<String> = vec![];
        for v in worst.iter() {
            if cves.len() == TOP_CVES {
                break;
            }
            if !cves.contains(&v.id) {
                cves.push(v.id.clone());
            }
        }
        let unscanned = verdict.state == workload::ImageState::Unscanned;
        out.push(Entry {
            workload: workload.clone(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            container: container.name.clone(),
            // The reference the pod runs (pinned), not the scan's.
            image: container.image.clone(),
            verdict: RuntimeVerdict::of(verdict.action, decided, verdict.exception.is_some()),
            message: verdict.reason,
            scan: scan.map(|(origin, s)| DecidingScan {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                origin,
                phase: s.phase,
                as_of: s.as_of,
            }),
            exception: verdict.exception,
            severity: worst.first().map(|v| v.severity),
            cves,
            unscanned,
            owner: controller_owner(pod),
            ended,
        });
    }
    out
}

/// The number of entries per verdict.
pub fn counts(entries: &[Entry]) -> BTreeMap<RuntimeVerdict, usize> {
    let mut counts: BTreeMap<RuntimeVerdict, usize> =
        RuntimeVerdict::ALL.iter().map(|v| (*v, 0)).collect();
    for e in entries {
        *counts.entry(e.verdict).or_default() += 1;
    }
    counts
}

/// When the oldest decided result among the entries was recorded.
pub fn oldest_result(entries: &[Entry]) -> Option<Timestamp> {
    entries
        .iter()
        .filter_map(|e| e.scan.as_ref())
        .filter(|s| s.phase.is_decided())
        .map(|s| s.as_of)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::{AdmissionConfig, Enforcement};
    use crate::index::{Exception, ScanIndex};
    use serde_json::json;

    const DIGEST: &str = "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4";
    const OTHER: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const BAD: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const CLEAN: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn running(
        name: &str,
        owner: Option<(&str, &str)>,
        hash: Option<&str>,
        image: &str,
        id: &str,
    ) -> Pod {
        let mut meta = json!({"name": name, "namespace": "shop"});
        if let Some((kind, owner)) = owner {
            meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true}]);
        }
        if let Some(hash) = hash {
            meta["labels"] = json!({POD_TEMPLATE_HASH: hash, "app": "web"});
        }
        pod(json!({
            "metadata": meta,
            "spec": {"containers": [{"name": "app", "image": image}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "app", "image": image, "imageID": id, "ready": true, "restartCount": 0}]},
        }))
    }

    /// An ImageScan of `image` resolved to `digest`, in `phase`, with `cves` violating.
    fn scan(
        name: &str,
        image: &str,
        digest: &str,
        phase: &str,
        cves: &[(&str, &str)],
    ) -> crate::api::ImageScan {
        let violations: Vec<_> = cves
            .iter()
            .map(|(id, severity)| json!({"id": id, "severity": severity, "package": "p", "version": "1"}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": name, "namespace": "scangate-system", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"registry": {"image": image}},
            "status": {
                "phase": phase,
                "scannedAt": "2026-01-02T00:00:00Z",
                "artifact": {"registry": {"image": format!("{image}@{digest}")}},
                "violations": violations,
            },
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn decide(
        pods: &[Pod],
        scans: &[crate::api::ImageScan],
        exceptions: &[Exception],
    ) -> Vec<Entry> {
        let config = AdmissionConfig::default();
        let index = ScanIndex::with_aliases(config.registry_aliases.clone(), scans);
        let ctx = Context {
            config: &config,
            index: &index,
            exceptions,
            namespace: "shop",
            enforcement: Enforcement::Audit,
            now: "2026-01-03T00:00:00Z"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            pins_tags: true,
        };
        entries(&ctx, pods)
    }

    #[test]
    fn a_stripped_pod_keeps_what_the_inventory_reads() {
        let mut p = pod(json!({
            "metadata": {"name": "web-7d9-abc", "namespace": "shop", "uid": "u1",
                "labels": {POD_TEMPLATE_HASH: "7d9", "app": "web"},
                "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": "app:1", "env": [{"name": "X", "value": "y"}]}],
                     "initContainers": [{"name": "init", "image": "init:1"}],
                     "volumes": [{"name": "data", "emptyDir": {}}, {"name": "model", "image": {"reference": "model:1"}}],
                     "nodeName": "n"},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "containerStatuses": [{"name": "app", "image": "app:1", "imageID": format!("app@{DIGEST}"), "ready": true, "restartCount": 3}]},
        }));
        let before = (workload_of(&p), images_of(&p).map_err(|e| e.to_string()));
        strip_pod(&mut p);
        assert_eq!(
            (workload_of(&p), images_of(&p).map_err(|e| e.to_string())),
            before
        );
        assert!(is_running(&p));
        assert_eq!(p.metadata.annotations, None);
        assert_eq!(p.metadata.labels.as_ref().map(|l| l.len()), Some(1));
        let spec = p.spec.as_ref().unwrap_or_else(|| panic!("no spec"));
        assert_eq!(spec.containers[0].env, None);
        assert_eq!(spec.node_name, None);
        assert_eq!(spec.volumes.as_ref().map(|v| v.len()), Some(1));
        assert_eq!(p.status.as_ref().and_then(|s| s.pod_ip.clone()), None);
    }

    #[test]
    fn a_deployments_pods_belong_to_the_deployment() {
        let w = |owner: Option<(&str, &str)>, hash: Option<&str>| {
            let w = workload_of(&running("p", owner, hash, "app:1", ""));
            format!("{}/{}", w.kind, w.name)
        };
        assert_eq!(
            w(Some(("ReplicaSet", "web-7d9")), Some("7d9")),
            "Deployment/web"
        );
        assert_eq!(
            w(Some(("ReplicaSet", "my-web-app-7d9")), Some("7d9")),
            "Deployment/my-web-app"
        );
        // A ReplicaSet without the convention is its own workload.
        assert_eq!(w(Some(("ReplicaSet", "web")), None), "ReplicaSet/web");
        assert_eq!(
            w(Some(("ReplicaSet", "web-abc")), Some("7d9")),
            "ReplicaSet/web-abc"
        );
        assert_eq!(w(Some(("StatefulSet", "db")), None), "StatefulSet/db");
        assert_eq!(w(None, None), "Pod/p");
    }

    #[test]
    fn the_running_digest_is_what_is_decided() {
        assert_eq!(
            running_digest(&format!("docker.io/library/alpine@{DIGEST}")),
            Some(DIGEST)
        );
        assert_eq!(
            running_digest(&format!("docker-pullable://alpine@{DIGEST}")),
            Some(DIGEST)
        );
        assert_eq!(running_digest(DIGEST), None);
        assert_eq!(running_digest(""), None);
        // The image each of a pod's containers is decided as, written `written`, run as `id`.
        let decided = |written: &str, id: &str| -> Vec<String> {
            images_of(&running("p", None, None, written, id))
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|c| c.image)
                .collect()
        };
        let id = format!("docker.io/library/app@{DIGEST}");
        assert_eq!(
            decided("app:1", &id),
            [format!("docker.io/library/app:1@{DIGEST}")]
        );
        // Written with the digest that runs (pinned at admission): kept as written.
        let pinned = format!("app:1@{DIGEST}");
        assert_eq!(decided(&pinned, &id), [pinned.as_str()]);
    }

    #[test]
    fn each_workload_and_image_gets_the_webhooks_verdict() {
        let rs = Some(("ReplicaSet", "web-7d9"));
        let pods = [
            // Two pods of one Deployment: one entry.
            running("web-1", rs, Some("7d9"), "app:1", &format!("app@{DIGEST}")),
            running("web-2", rs, Some("7d9"), "app:1", &format!("app@{DIGEST}")),
            // The same tag, another digest: not what was scanned.
            running("old", None, None, "app:1", &format!("app@{OTHER}")),
            running("bad", None, None, "bad:1", ""),
            running("clean", None, None, "clean:1", ""),
        ];
        let mut pending = running("pending", None, None, "bad:1", "");
        if let Some(s) = pending.status.as_mut() {
            s.phase = Some("Pending".into());
        }
        let scans = [
            scan("app", "app:1", DIGEST, "Completed", &[]),
            scan(
                "bad",
                "bad:1",
                BAD,
                "Failed",
                &[
                    ("CVE-3", "low"),
                    ("CVE-1", "critical"),
                    ("CVE-2", "high"),
                    ("CVE-4", "medium"),
                    ("CVE-5", "low"),
                    ("CVE-6", "low"),
                    ("CVE-1", "critical"),
                ],
            ),
            scan("clean", "clean:1", CLEAN, "Completed", &[]),
        ];
        let all: Vec<Pod> = pods.iter().cloned().chain([pending]).collect();
        let found = decide(&all, &scans, &[]);
        let summary: Vec<(String, String, RuntimeVerdict)> = found
            .iter()
            .map(|e| (e.workload.name.clone(), e.image.clone(), e.verdict))
            .collect();
        // The default rules warn about unscanned images.
        assert_eq!(
            summary,
            [
                ("bad".into(), "bad:1".into(), RuntimeVerdict::fail),
                (
                    "old".into(),
                    format!("docker.io/library/app:1@{OTHER}"),
                    RuntimeVerdict::warn
                ),
                (
                    "web".into(),
                    format!("docker.io/library/app:1@{DIGEST}"),
                    RuntimeVerdict::pass
                ),
                ("clean".into(), "clean:1".into(), RuntimeVerdict::pass),
            ]
        );
        let bad = &found[0];
        assert_eq!(bad.severity, Some(Severity::Critical));
        assert_eq!(bad.cves, ["CVE-1", "CVE-2", "CVE-4", "CVE-3", "CVE-5"]);
        let decider = bad.scan.as_ref().unwrap_or_else(|| panic!("no scan"));
        assert_eq!(
            (decider.name.as_str(), decider.origin, decider.phase),
            ("bad", Origin::Trusted, Phase::Failed)
        );
        assert_eq!(found[1].scan, None, "{:?}", found[1]);
        assert_eq!(
            counts(&found),
            BTreeMap::from([
                (RuntimeVerdict::fail, 1),
                (RuntimeVerdict::warn, 1),
                (RuntimeVerdict::skip, 0),
                (RuntimeVerdict::pass, 2)
            ])
        );
        assert_eq!(
            oldest_result(&found),
            Some(
                "2026-01-02T00:00:00Z"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"))
            )
        );
    }

    #[test]
    fn an_exception_warns_and_allowed_unscanned_images_are_skipped() {
        let exception: crate::api::ScanException = serde_json::from_value(json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ScanException",
            "metadata": {"name": "accepted", "namespace": "shop", "annotations": {
                crate::index::APPROVED_BY: "alice", crate::index::APPROVED_AT: "2026-01-02T00:00:00Z"}},
            "spec": {"images": ["bad:1"], "reason": "accepted", "expires": "2026-01-10T00:00:00Z"},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let scans = [scan("bad", "bad:1", OTHER, "Failed", &[("CVE-1", "high")])];
        let found = decide(
            &[running("bad", None, None, "bad:1", "")],
            &scans,
            &[Exception::from_exception(&exception)],
        );
        assert_eq!(found[0].verdict, RuntimeVerdict::warn, "{:?}", found[0]);
        assert_eq!(found[0].exception.as_deref(), Some("shop/accepted"));
        assert_eq!(
            RuntimeVerdict::of(Action::Allow, false, false),
            RuntimeVerdict::skip
        );
        assert_eq!(
            RuntimeVerdict::of(Action::Allow, true, false),
            RuntimeVerdict::pass
        );
        assert_eq!(
            RuntimeVerdict::of(Action::Warn, true, false),
            RuntimeVerdict::warn
        );
    }

    /// `pod` ended (`phase`) with its container finished at `finished`.
    fn ended(name: &str, image: &str, phase: &str, finished: Option<&str>) -> Pod {
        let mut p = running(name, None, None, image, "");
        p.metadata.uid = Some(format!("uid-{name}"));
        let state = finished.map(|at| json!({"terminated": {"exitCode": 0, "finishedAt": at}}));
        p.status = Some(
            serde_json::from_value(json!({"phase": phase, "containerStatuses": [
                {"name": "app", "image": image, "imageID": "", "ready": false, "restartCount": 0, "state": state}]}))
            .unwrap_or_else(|e| panic!("{e}")),
        );
        p
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_pod_ends_when_its_last_container_finished() {
        let done = ended("job", "app:1", "Succeeded", Some("2026-01-02T10:00:00Z"));
        assert_eq!(ended_at(&done), Some(at("2026-01-02T10:00:00Z")));
        // Stripped, it still says when.
        let mut stripped = done.clone();
        strip_pod(&mut stripped);
        assert_eq!(ended_at(&stripped), Some(at("2026-01-02T10:00:00Z")));
        assert_eq!(
            ended_at(&ended("f", "app:1", "Failed", Some("2026-01-02T09:00:00Z"))),
            Some(at("2026-01-02T09:00:00Z"))
        );
        // Running, or ended with no container that says it ran: no end.
        assert_eq!(ended_at(&running("r", None, None, "app:1", "")), None);
        assert_eq!(ended_at(&ended("x", "app:1", "Failed", None)), None);
        // Deleted: a Running pod ended when it was seen deleted; a Pending one never ran.
        let now = at("2026-01-02T12:00:00Z");
        assert_eq!(
            gone_at(&running("r", None, None, "app:1", ""), now),
            Some(now)
        );
        assert_eq!(gone_at(&done, now), Some(at("2026-01-02T10:00:00Z")));
        let mut pending = running("p", None, None, "app:1", "");
        if let Some(s) = pending.status.as_mut() {
            s.phase = Some("Pending".into());
        }
        assert_eq!(gone_at(&pending, now), None);
    }

    #[test]
    fn deleted_pods_are_remembered_for_a_day_at_most_and_in_bounded_number() {
        let now = at("2026-01-02T12:00:00Z");
        let mut gone = Ended::default();
        gone.remember(
            ended("old", "app:1", "Succeeded", Some("2026-01-01T11:59:59Z")),
            now,
        );
        assert!(gone.is_empty(), "ended more than a day ago");
        gone.remember(ended("never", "app:1", "Failed", None), now);
        assert!(gone.is_empty(), "never ran");
        gone.remember(
            ended("job", "app:1", "Succeeded", Some("2026-01-02T11:50:00Z")),
            now,
        );
        gone.remember(running("web", None, None, "app:1", ""), now);
        assert_eq!(gone.len(), 2);
        assert_eq!(gone.namespaces().collect::<Vec<_>>(), ["shop", "shop"]);
        assert_eq!(gone.of("shop").count(), 2);
        assert_eq!(gone.of("blog").count(), 0);
        // A day later the job is forgotten; the web pod, which ended at `now`, is not yet.
        gone.prune(at("2026-01-03T11:55:00Z"));
        assert_eq!(gone.of("shop").map(|(t, _)| t).collect::<Vec<_>>(), [now]);
        // Past MAX_ENDED, those that ended first go first.
        let mut many = Ended::default();
        for i in 0..MAX_ENDED + 3 {
            let finished = now - SignedDuration::from_secs(i as i64);
            let mut p = ended(&format!("p{i}"), "app:1", "Succeeded", None);
            if let Some(s) = p.status.as_mut()
                && let Some(c) = s.container_statuses.as_mut()
            {
                c[0].state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        finished_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            finished,
                        )),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                });
            }
            many.remember(p, now);
        }
        assert_eq!(many.len(), MAX_ENDED);
        let oldest = many.of("shop").map(|(t, _)| t).min();
        assert_eq!(
            oldest,
            Some(now - SignedDuration::from_secs(MAX_ENDED as i64 - 1))
        );
    }

    #[test]
    fn an_ended_pods_images_are_entries_with_their_end_unless_they_still_run() {
        let scans = [scan("bad", "bad:1", BAD, "Failed", &[("CVE-1", "high")])];
        let config = AdmissionConfig::default();
        let index = ScanIndex::with_aliases(config.registry_aliases.clone(), &scans);
        let ctx = Context {
            config: &config,
            index: &index,
            exceptions: &[],
            namespace: "shop",
            enforcement: Enforcement::Audit,
            now: at("2026-01-03T00:00:00Z"),
            pins_tags: true,
        };
        let still = running("web", None, None, "web:1", "");
        let runs = entries(&ctx, [&still]);
        let first = ended("bad", "bad:1", "Succeeded", Some("2026-01-02T23:00:00Z"));
        let later = ended("bad", "bad:1", "Succeeded", Some("2026-01-02T23:50:00Z"));
        let web = ended("web", "web:1", "Succeeded", Some("2026-01-02T23:55:00Z"));
        let stale = ended("old", "old:1", "Succeeded", Some("2026-01-01T00:00:00Z"));
        let pods = [&first, &later, &web, &stale].map(|p| (ended_at(p).unwrap_or_default(), p));
        let found = ended_entries(&ctx, pods, &runs, at("2026-01-02T00:00:00Z"));
        // One entry per workload and image, the latest end; the image still running is not
        // repeated; what ended before `since` is left out.
        assert_eq!(
            found
                .iter()
                .map(|e| (e.workload.name.as_str(), e.ended))
                .collect::<Vec<_>>(),
            [("bad", Some(at("2026-01-02T23:50:00Z")))]
        );
        assert_eq!(found[0].verdict, RuntimeVerdict::fail);
        assert_eq!(runs[0].ended, None);
    }
}
