//! Scan Jobs: deterministic names, construction from a ScanTemplate, and what a Job's status
//! says. Pure functions; the cluster I/O lives in `reconcile`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile, EnvVar,
    KeyToPath, LocalObjectReference, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    ProjectedVolumeSource, SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::kinds::{ScanKind, env};
use crate::admission::config::TemplateRules;
use crate::image::ImageRef;
use crate::report::{SCAN_LABEL, scan_label_value};

/// Annotations recording what a Job was created for.
pub mod annotation {
    pub const SCAN_GENERATION: &str = "scanning.scangate.dev/scan-generation";
    pub const TEMPLATE_GENERATION: &str = "scanning.scangate.dev/template-generation";
    /// The `scannedAt` of the scan when the Job was created (`-` before the first scan): a
    /// rescan gets a new round, hence a new Job name.
    pub const ROUND: &str = "scanning.scangate.dev/round";
    /// Retries of a failed scan within one round: 0, 1, 2...
    pub const ATTEMPT: &str = "scanning.scangate.dev/attempt";
}

/// Labels every scan Job and its pod carry besides the scan label.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "scangate");

/// The volume and mount path of a git SSH key.
pub const GIT_SSH_VOLUME: &str = "scangate-git-ssh";
pub const GIT_SSH_MOUNT_PATH: &str = "/etc/scangate/git";
/// The key of the SSH private key in a `kubernetes.io/ssh-auth` Secret.
pub const GIT_SSH_KEY_FILE: &str = "ssh-privatekey";

/// The volume holding the scanner's ServiceAccount token, mounted into the uploading
/// container only, where Kubernetes clients look for it.
pub const SCANNER_TOKEN_VOLUME: &str = "scangate-scanner-token";
pub const SCANNER_TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The lifetime the token is requested with: the kubelet's default for its own token volume
/// (3607 s; the kubelet refreshes it before it expires).
const SCANNER_TOKEN_SECONDS: i64 = 3607;

/// The longest Job name whose pods still get a valid `job-name` label.
const MAX_JOB_NAME: usize = 63;
/// Hex digits of the hash in a Job name.
const HASH_LEN: usize = 10;

/// What a Job is for: the scan (by uid) at a generation, the template at a generation, the
/// round and the attempt. Equal keys give equal Job names, so a restarted controller finds the
/// Job it created instead of creating another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobKey {
    pub scan_uid: String,
    pub scan_generation: i64,
    pub template_generation: i64,
    pub round: String,
    pub attempt: u32,
}

/// `<scan>-<hash of the key>`, at most 63 characters.
pub fn job_name(scan_name: &str, key: &JobKey) -> String {
    let hash: String = Sha256::digest(
        format!(
            "{}/{}/{}/{}/{}",
            key.scan_uid, key.scan_generation, key.template_generation, key.round, key.attempt
        )
        .as_bytes(),
    )
    .iter()
    .take(HASH_LEN / 2)
    .map(|b| format!("{b:02x}"))
    .collect();
    let mut prefix_len = scan_name.len().min(MAX_JOB_NAME - HASH_LEN - 1);
    while !scan_name.is_char_boundary(prefix_len) {
        prefix_len -= 1;
    }
    let prefix = scan_name[..prefix_len].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{hash}")
}

/// The owner reference of everything the controller creates for a scan.
pub fn owner_reference<K: ScanKind>(scan: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: scan.name_any(),
        uid: scan.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Builds the scan Job from the template's PodSpec: owner reference and labels, the target in
/// `SCAN_*` environment variables of every (init) container, the image pull secret, the git
/// SSH key mounted read-only, `restartPolicy: Never` unless set, the scanner's ServiceAccount
/// (`rules.serviceAccount`) unless the template names it, its token mounted only into the last
/// container (the one that uploads the report, `scangate report`; the containers that unpack
/// the scanned content get none), no retries by the Job controller (scangate retries), the
/// deadline `rules.activeDeadline`, and a TTL after it finishes. `resolved` is the image the
/// Job scans in place of the spec's (its tag pinned to the digest the registry served).
pub fn build_job<K: ScanKind>(
    scan: &K,
    template: &PodSpec,
    key: &JobKey,
    ttl_after_finished: Duration,
    rules: &TemplateRules,
    resolved: Option<&ImageRef>,
) -> Job {
    let service_account = rules.service_account.as_str();
    let name = scan.name_any();
    let namespace = scan.namespace().unwrap_or_default();
    let mut labels = BTreeMap::from([
        (SCAN_LABEL.to_string(), scan_label_value(&name)),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ]);
    // A first-sight scan's Job takes a first-sight slot (the queue counts it by this label).
    if let Some(first_sight) = scan.labels().get(super::naming::LABEL) {
        labels.insert(super::naming::LABEL.to_string(), first_sight.clone());
    }
    let annotations = BTreeMap::from([
        (
            annotation::SCAN_GENERATION.to_string(),
            key.scan_generation.to_string(),
        ),
        (
            annotation::TEMPLATE_GENERATION.to_string(),
            key.template_generation.to_string(),
        ),
        (annotation::ROUND.to_string(), key.round.clone()),
        (annotation::ATTEMPT.to_string(), key.attempt.to_string()),
    ]);

    let mut pod = template.clone();
    if pod.restart_policy.is_none() {
        pod.restart_policy = Some("Never".into());
    }
    if pod
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        pod.service_account_name = Some(service_account.into());
    }
    let mut vars: Vec<(String, String)> = scan
        .target_env()
        .into_iter()
        .map(|(k, v)| match (k, resolved) {
            (env::IMAGE, Some(image)) => (k.to_string(), image.to_string()),
            _ => (k.to_string(), v),
        })
        .collect();
    vars.push((env::NAME.into(), name.clone()));
    vars.push((env::NAMESPACE.into(), namespace.clone()));
    let ssh_secret = scan.git().and_then(|g| g.ssh_key_secret.clone());
    if ssh_secret.is_some() {
        vars.push((
            env::GIT_SSH_KEY.into(),
            format!("{GIT_SSH_MOUNT_PATH}/{GIT_SSH_KEY_FILE}"),
        ));
    }
    let containers = pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten());
    for container in containers {
        set_env(container, &vars);
        if ssh_secret.is_some() {
            let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
            mounts.retain(|m| m.name != GIT_SSH_VOLUME);
            mounts.push(VolumeMount {
                name: GIT_SSH_VOLUME.into(),
                mount_path: GIT_SSH_MOUNT_PATH.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
    if let Some(secret) = ssh_secret {
        let volumes = pod.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != GIT_SSH_VOLUME);
        volumes.push(Volume {
            name: GIT_SSH_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                default_mode: Some(0o400),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    mount_token_in_uploader_only(&mut pod);
    if let Some(secret) = scan.image_pull_secret() {
        let secrets = pod.image_pull_secrets.get_or_insert_with(Vec::new);
        if !secrets.iter().any(|s| s.name == secret) {
            secrets.push(LocalObjectReference {
                name: secret.to_string(),
            });
        }
    }

    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, key)),
            namespace: Some(namespace),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(scan)]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(
                i64::try_from(rules.active_deadline().as_secs()).unwrap_or(i64::MAX),
            ),
            ttl_seconds_after_finished: Some(
                i32::try_from(ttl_after_finished.as_secs()).unwrap_or(i32::MAX),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Turns the pod-wide ServiceAccount token off and mounts a projected token (with the cluster
/// CA and the namespace, as the kubelet's own token volume has) into the last container only.
/// Token volumes the template projects itself are removed, with their mounts: the scanner's
/// token reaches no other container.
fn mount_token_in_uploader_only(pod: &mut PodSpec) {
    pod.automount_service_account_token = Some(false);
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    let projects_token = |volume: &Volume| {
        volume.name == SCANNER_TOKEN_VOLUME
            || volume.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.service_account_token.is_some())
            })
    };
    let removed: Vec<String> = volumes
        .iter()
        .filter(|v| projects_token(v))
        .map(|v| v.name.clone())
        .collect();
    volumes.retain(|v| !projects_token(v));
    volumes.push(Volume {
        name: SCANNER_TOKEN_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(SCANNER_TOKEN_SECONDS),
                        audience: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
        }),
        ..Volume::default()
    });
    let containers = pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten());
    for container in containers {
        if let Some(mounts) = container.volume_mounts.as_mut() {
            mounts
                .retain(|m| !removed.contains(&m.name) && m.mount_path != SCANNER_TOKEN_MOUNT_PATH);
        }
    }
    if let Some(uploader) = pod.containers.last_mut() {
        uploader
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: SCANNER_TOKEN_VOLUME.into(),
                mount_path: SCANNER_TOKEN_MOUNT_PATH.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
    }
}

/// Sets `vars` in a container, replacing variables of the same name the template set.
fn set_env(container: &mut Container, vars: &[(String, String)]) {
    let env = container.env.get_or_insert_with(Vec::new);
    env.retain(|e| !vars.iter().any(|(name, _)| *name == e.name));
    env.extend(vars.iter().map(|(name, value)| EnvVar {
        name: name.clone(),
        value: Some(value.clone()),
        value_from: None,
    }));
}

/// Where a Job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Running,
    /// `Complete=True`; `message` is its type and reason.
    Complete {
        message: String,
        at: Timestamp,
    },
    /// `Failed=True`; `message` is its type and reason, `error` its message.
    Failed {
        message: String,
        error: String,
        at: Timestamp,
    },
}

/// A scan Job as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSummary {
    pub name: String,
    pub scan_generation: Option<i64>,
    pub template_generation: Option<i64>,
    pub round: Option<String>,
    pub attempt: u32,
    pub state: JobState,
    pub created: Timestamp,
}

impl JobSummary {
    /// Reads a Job the controller created (its annotations) and its status.
    pub fn from_job(job: &Job) -> JobSummary {
        let annotations = job.metadata.annotations.as_ref();
        let get = |key: &str| annotations.and_then(|a| a.get(key)).cloned();
        let created = job
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        JobSummary {
            name: job.name_any(),
            scan_generation: get(annotation::SCAN_GENERATION).and_then(|g| g.parse().ok()),
            template_generation: get(annotation::TEMPLATE_GENERATION).and_then(|g| g.parse().ok()),
            round: get(annotation::ROUND),
            attempt: get(annotation::ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            state: job_state(job, created),
            created,
        }
    }

    pub fn is_for(&self, key: &JobKey) -> bool {
        self.scan_generation == Some(key.scan_generation)
            && self.template_generation == Some(key.template_generation)
            && self.round.as_deref() == Some(key.round.as_str())
    }
}

/// The state of a Job from its terminal condition, if it has one.
pub fn job_state(job: &Job, created: Timestamp) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let terminal = conditions
        .iter()
        .rfind(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"));
    let Some(c) = terminal else {
        return JobState::Running;
    };
    let message = match c.reason.as_deref() {
        Some(reason) if !reason.is_empty() => format!("{}: {reason}", c.type_),
        _ => c.type_.clone(),
    };
    let at = c
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| {
            job.status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0)
        })
        .unwrap_or(created);
    if c.type_ == "Complete" {
        JobState::Complete { message, at }
    } else {
        let deadline = job.spec.as_ref().and_then(|s| s.active_deadline_seconds);
        let error = match (c.reason.as_deref(), deadline) {
            (Some(DEADLINE_EXCEEDED), Some(seconds)) => deadline_message(seconds),
            _ => c
                .message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the scan job failed".into()),
        };
        JobState::Failed { message, error, at }
    }
}

/// The reason of a Job's `Failed` condition when it ran past `activeDeadlineSeconds`.
const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// Why a scan Job stopped at its deadline, and where that deadline is set.
fn deadline_message(seconds: i64) -> String {
    let readable = match seconds {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    format!(
        "the scan job ran longer than its deadline of {readable} (activeDeadlineSeconds \
         {seconds}) and was stopped; the admission config key {} sets the deadline",
        TemplateRules::ACTIVE_DEADLINE_KEY
    )
}

/// How long to wait before retrying a failed scan: the error-retry delay, doubled per attempt
/// already made, at most 64 times.
pub fn retry_delay(error_retry: Duration, attempt: u32) -> Duration {
    error_retry.saturating_mul(1 << attempt.min(6))
}

/// When a scan that finished at `scanned_at` is due again, if it has a rescan interval.
pub fn rescan_at(scanned_at: Option<Timestamp>, interval: Option<Duration>) -> Option<Timestamp> {
    let interval = jiff::SignedDuration::try_from(interval?).ok()?;
    scanned_at?.checked_add(interval).ok()
}

/// The time from `now` until `at`, zero when it has passed.
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// What the previous status says about the last scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Previous {
    /// A scan finished (`Scanning=False`) for this scan and template generation.
    pub done: bool,
    /// `scannedAt`, as a round key and for the rescan schedule.
    pub scanned_at: Option<Timestamp>,
    /// When `Succeeded` turned `False`, if it is.
    pub failed_at: Option<Timestamp>,
    /// The `scangate.dev/rescan` value a scan was last started for.
    pub handled_rescan: Option<String>,
}

/// Everything [`plan`] decides from.
#[derive(Clone, Debug)]
pub struct PlanInputs {
    pub scan_uid: String,
    pub scan_generation: i64,
    pub template_generation: i64,
    /// The scan's Jobs (owned by it).
    pub jobs: Vec<JobSummary>,
    pub previous: Previous,
    /// A readable report ConfigMap exists.
    pub report_ok: bool,
    pub rescan_interval: Option<Duration>,
    /// The scan's `scangate.dev/rescan` annotation: a value not handled yet asks for a rescan
    /// now, and every value is a round of its own.
    pub rescan_request: Option<String>,
    /// Since when the scan's tag names other content than its last result was for (the
    /// controller resolved it again and it moved): that content is due for a scan.
    pub tag_moved_since: Option<Timestamp>,
    pub suspend: bool,
    pub error_retry: Duration,
    pub now: Timestamp,
}

/// What to do about the scan Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobAction {
    /// The latest Job of this round tells the scan's state.
    Use(JobSummary),
    /// Start a Job with this key.
    Create(JobKey),
    /// No Job to look at or to start (done, or suspended).
    Idle,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub action: JobAction,
    /// Come back then (a retry or a rescan), even if nothing changes.
    pub requeue_at: Option<Timestamp>,
    /// With [`JobAction::Create`], when the Job became due if the schedule says (a rescan or
    /// a retry): the scan's place in the queue.
    pub due_since: Option<Timestamp>,
}

/// The round key of a `scannedAt`.
pub fn round_of(scanned_at: Option<Timestamp>) -> String {
    scanned_at
        .map(|t| t.as_second().to_string())
        .unwrap_or_else(|| "-".into())
}

/// The round key of a `scannedAt` and a `scangate.dev/rescan` value: the value's hash follows
/// the time, so each new value is a new round.
pub fn round_with(scanned_at: Option<Timestamp>, rescan: Option<&str>) -> String {
    let round = round_of(scanned_at);
    match rescan {
        None => round,
        Some(value) => {
            let hash: String = Sha256::digest(value.as_bytes())
                .iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{round}+{hash}")
        }
    }
}

/// Decides whether a Job must be started, or which one tells the scan's state.
///
/// A round is the scan's `scannedAt` when the Job starts: while a scan runs `scannedAt` does not
/// change, so the name is stable; a finished scan moves `scannedAt` forward and a rescan is a
/// new round. Within a round, a failed Job is retried with the next attempt number, once the
/// status has shown the failure for [`retry_delay`]. A spec or template change is a new key,
/// hence a new Job.
pub fn plan(p: &PlanInputs) -> Plan {
    let key = |attempt| JobKey {
        scan_uid: p.scan_uid.clone(),
        scan_generation: p.scan_generation,
        template_generation: p.template_generation,
        round: round_with(p.previous.scanned_at, p.rescan_request.as_deref()),
        attempt,
    };
    let latest = p
        .jobs
        .iter()
        .filter(|j| j.is_for(&key(0)))
        .max_by_key(|j| (j.attempt, j.created));
    let rescan = rescan_at(p.previous.scanned_at, p.rescan_interval);
    match latest {
        Some(job) => match &job.state {
            JobState::Running => Plan {
                action: JobAction::Use(job.clone()),
                requeue_at: None,
                due_since: None,
            },
            JobState::Complete { .. } if p.report_ok => Plan {
                action: JobAction::Use(job.clone()),
                requeue_at: None,
                due_since: None,
            },
            JobState::Complete { at, .. } | JobState::Failed { at, .. } => {
                // The failure is shown (Succeeded=False) before it is retried: the retry
                // counts from when the status recorded it.
                let Some(recorded) = p.previous.failed_at else {
                    return Plan {
                        action: JobAction::Use(job.clone()),
                        requeue_at: None,
                        due_since: None,
                    };
                };
                let retry = recorded
                    .max(*at)
                    .checked_add(
                        jiff::SignedDuration::try_from(retry_delay(p.error_retry, job.attempt))
                            .unwrap_or(jiff::SignedDuration::MAX),
                    )
                    .unwrap_or(Timestamp::MAX);
                if p.now >= retry && !p.suspend {
                    Plan {
                        action: JobAction::Create(key(job.attempt + 1)),
                        requeue_at: None,
                        due_since: Some(retry),
                    }
                } else {
                    Plan {
                        action: JobAction::Use(job.clone()),
                        requeue_at: (!p.suspend).then_some(retry),
                        due_since: None,
                    }
                }
            }
        },
        None => {
            let rescan_due = rescan.is_some_and(|at| p.now >= at);
            let retry_at = p.previous.failed_at.and_then(|at| {
                at.checked_add(jiff::SignedDuration::try_from(p.error_retry).ok()?)
                    .ok()
            });
            let retry_due = retry_at.is_some_and(|at| p.now >= at);
            let requested =
                p.rescan_request.is_some() && p.rescan_request != p.previous.handled_rescan;
            let needed = !p.previous.done
                || rescan_due
                || retry_due
                || requested
                || p.tag_moved_since.is_some();
            if needed && !p.suspend {
                let due = [
                    rescan.filter(|_| rescan_due),
                    retry_at.filter(|_| retry_due),
                    p.tag_moved_since,
                ];
                Plan {
                    action: JobAction::Create(key(0)),
                    requeue_at: None,
                    due_since: due.into_iter().flatten().min(),
                }
            } else if p.suspend {
                Plan {
                    action: JobAction::Idle,
                    requeue_at: None,
                    due_since: None,
                }
            } else {
                let next = [rescan, retry_at].into_iter().flatten().min();
                Plan {
                    action: JobAction::Idle,
                    requeue_at: next,
                    due_since: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        BlobSpec, GitSpec, ImageScan, ImageScanSpec, RegistrySpec, ScanSettings, SourceScan,
        SourceScanSpec,
    };
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn image_scan(pull_secret: Option<&str>) -> ImageScan {
        let mut scan = ImageScan::new(
            "nginx-scan",
            ImageScanSpec {
                results_from: None,
                registry: RegistrySpec {
                    image: "nginx:1.27".into(),
                    image_pull_secret: pull_secret.map(Into::into),
                },
                scan: ScanSettings {
                    scan_template: Some("grype".into()),
                    ..ScanSettings::default()
                },
            },
        );
        scan.metadata.namespace = Some("apps".into());
        scan.metadata.uid = Some("uid-1".into());
        scan.metadata.generation = Some(3);
        scan
    }

    fn template() -> PodSpec {
        PodSpec {
            init_containers: Some(vec![Container {
                name: "fetch".into(),
                image: Some("fetcher".into()),
                ..Container::default()
            }]),
            containers: vec![Container {
                name: "scan".into(),
                image: Some("grype".into()),
                env: Some(vec![
                    EnvVar {
                        name: "SCAN_IMAGE".into(),
                        value: Some("overridden".into()),
                        value_from: None,
                    },
                    EnvVar {
                        name: "KEEP".into(),
                        value: Some("me".into()),
                        value_from: None,
                    },
                ]),
                ..Container::default()
            }],
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: "registry".into(),
            }]),
            ..PodSpec::default()
        }
    }

    fn key(attempt: u32) -> JobKey {
        JobKey {
            scan_uid: "uid-1".into(),
            scan_generation: 3,
            template_generation: 1,
            round: "-".into(),
            attempt,
        }
    }

    fn env_of(container: &Container) -> BTreeMap<String, String> {
        container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn job_names_are_deterministic_short_and_distinct() {
        let a = job_name("nginx-scan", &key(0));
        assert_eq!(a, job_name("nginx-scan", &key(0)));
        assert!(a.starts_with("nginx-scan-"), "{a}");
        assert_eq!(a.len(), "nginx-scan-".len() + HASH_LEN);
        assert_ne!(a, job_name("nginx-scan", &key(1)));
        let mut other = key(0);
        other.template_generation = 2;
        assert_ne!(a, job_name("nginx-scan", &other));
        other = key(0);
        other.round = "1767225600".into();
        assert_ne!(a, job_name("nginx-scan", &other));
        let long = job_name(&format!("{}-x", "a".repeat(80)), &key(0));
        assert!(long.len() <= 63, "{long}");
        assert!(long.starts_with("aaaa"));
        // A prefix never ends in a dash before the hash.
        let dashed = job_name(&format!("{}-{}", "b".repeat(51), "c".repeat(20)), &key(0));
        assert!(!dashed.contains("--"), "{dashed}");
    }

    #[test]
    fn builds_the_job_from_the_template() {
        let scan = image_scan(Some("pull-me"));
        let job = build_job(
            &scan,
            &template(),
            &key(0),
            Duration::from_secs(3600),
            &TemplateRules::default(),
            None,
        );
        assert_eq!(job.metadata.name, Some(job_name("nginx-scan", &key(0))));
        assert_eq!(job.metadata.namespace.as_deref(), Some("apps"));
        let owner = &job.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(owner.kind, "ImageScan");
        assert_eq!(owner.api_version, "scanning.scangate.dev/v1beta1");
        assert_eq!(owner.name, "nginx-scan");
        assert_eq!(owner.uid, "uid-1");
        assert_eq!(owner.controller, Some(true));
        let labels = job.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(SCAN_LABEL).map(String::as_str),
            Some("nginx-scan")
        );
        let annotations = job.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations
                .get(annotation::SCAN_GENERATION)
                .map(String::as_str),
            Some("3")
        );
        assert_eq!(
            annotations.get(annotation::ATTEMPT).map(String::as_str),
            Some("0")
        );

        let spec = job.spec.unwrap_or_default();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
        let pod_labels = spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .unwrap_or_default();
        assert_eq!(
            pod_labels.get(SCAN_LABEL).map(String::as_str),
            Some("nginx-scan")
        );
        assert_eq!(spec.active_deadline_seconds, Some(3600));
        let pod = spec.template.spec.unwrap_or_default();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        // The scanner's token: not in the pod at large, only in the last container (the
        // uploader), never in the containers that fetch and unpack what is scanned.
        assert_eq!(pod.automount_service_account_token, Some(false));
        let token_mounts = |c: &Container| {
            c.volume_mounts
                .iter()
                .flatten()
                .filter(|m| m.name == SCANNER_TOKEN_VOLUME)
                .map(|m| (m.mount_path.clone(), m.read_only))
                .collect::<Vec<_>>()
        };
        let uploader = pod.containers.last().cloned().unwrap_or_default();
        assert_eq!(
            token_mounts(&uploader),
            vec![(SCANNER_TOKEN_MOUNT_PATH.to_string(), Some(true))]
        );
        for other in pod.init_containers.iter().flatten() {
            assert_eq!(token_mounts(other), vec![], "{}", other.name);
        }
        let token_volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == SCANNER_TOKEN_VOLUME)
            .and_then(|v| v.projected.clone())
            .and_then(|p| p.sources)
            .unwrap_or_default();
        assert!(
            token_volume
                .iter()
                .any(|s| s.service_account_token.is_some())
        );
        assert!(token_volume.iter().any(|s| s.config_map.is_some()));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("scangate-scanner")
        );
        let pull: Vec<String> = pod
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(pull, ["registry", "pull-me"]);
        for container in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let env = env_of(container);
            assert_eq!(env["SCAN_IMAGE"], "nginx:1.27", "{}", container.name);
            assert_eq!(env["SCAN_NAME"], "nginx-scan");
            assert_eq!(env["SCAN_NAMESPACE"], "apps");
            assert_eq!(env["SCAN_GIT_URL"], "");
            assert_eq!(env["SCAN_GIT_REVISION"], "");
            assert_eq!(env["SCAN_BLOB_URL"], "");
            assert!(!env.contains_key("SCAN_GIT_SSH_KEY"));
        }
        assert_eq!(env_of(&pod.containers[0])["KEEP"], "me");
        assert_eq!(
            pod.containers[0]
                .env
                .iter()
                .flatten()
                .filter(|e| e.name == "SCAN_IMAGE")
                .count(),
            1
        );
        let volumes: Vec<String> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect();
        assert_eq!(volumes, vec![SCANNER_TOKEN_VOLUME.to_string()]);
    }

    #[test]
    fn a_template_cannot_hand_the_token_to_another_container() {
        let mut template = template();
        template.automount_service_account_token = Some(true);
        template.volumes = Some(vec![Volume {
            name: "my-token".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "t".into(),
                        ..ServiceAccountTokenProjection::default()
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        }]);
        let scan_container = Container {
            name: "unpack".into(),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "my-token".into(),
                    mount_path: "/t".into(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "other".into(),
                    mount_path: SCANNER_TOKEN_MOUNT_PATH.into(),
                    ..VolumeMount::default()
                },
            ]),
            ..Container::default()
        };
        template.init_containers = Some(vec![scan_container]);
        let job = build_job(
            &image_scan(None),
            &template,
            &key(0),
            Duration::from_secs(60),
            &TemplateRules::default(),
            None,
        );
        let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
        assert_eq!(pod.automount_service_account_token, Some(false));
        let volumes: Vec<String> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect();
        assert_eq!(volumes, vec![SCANNER_TOKEN_VOLUME.to_string()]);
        let unpack = pod.init_containers.unwrap_or_default();
        assert_eq!(unpack[0].volume_mounts, Some(vec![]));
    }

    #[test]
    fn a_resolved_tag_is_scanned_by_its_digest() {
        let digest = format!("sha256:{}", "d".repeat(64));
        let pinned =
            ImageRef::parse(&format!("nginx:1.27@{digest}")).unwrap_or_else(|e| panic!("{e}"));
        let job = build_job(
            &image_scan(None),
            &template(),
            &key(0),
            Duration::from_secs(60),
            &TemplateRules::default(),
            Some(&pinned),
        );
        let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
        for container in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            assert_eq!(
                env_of(container)["SCAN_IMAGE"],
                format!("docker.io/library/nginx:1.27@{digest}")
            );
        }
    }

    #[test]
    fn keeps_the_service_account_the_template_names() {
        let mut spec = template();
        spec.service_account_name = Some("scanner".into());
        let job = build_job(
            &image_scan(None),
            &spec,
            &key(0),
            Duration::from_secs(60),
            &TemplateRules::default(),
            None,
        );
        let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
        assert_eq!(pod.service_account_name.as_deref(), Some("scanner"));
    }

    #[test]
    fn keeps_a_restart_policy_the_template_sets_and_adds_no_duplicate_pull_secret() {
        let mut spec = template();
        spec.restart_policy = Some("OnFailure".into());
        let job = build_job(
            &image_scan(Some("registry")),
            &spec,
            &key(0),
            Duration::from_secs(60),
            &TemplateRules::default(),
            None,
        );
        let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
        assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
        assert_eq!(pod.image_pull_secrets.map(|s| s.len()), Some(1));
    }

    #[test]
    fn mounts_the_git_ssh_key_read_only() {
        let mut scan = SourceScan::new(
            "repo",
            SourceScanSpec {
                blob: None,
                git: Some(GitSpec {
                    url: "git@github.com:org/repo.git".into(),
                    revision: Some("main".into()),
                    ssh_key_secret: Some("deploy-key".into()),
                    known_hosts: Some("github.com ssh-ed25519 AAAA".into()),
                    username: None,
                }),
                scan: ScanSettings::default(),
            },
        );
        scan.metadata.namespace = Some("src".into());
        scan.metadata.uid = Some("uid-2".into());
        let job = build_job(
            &scan,
            &template(),
            &key(0),
            Duration::from_secs(60),
            &TemplateRules::default(),
            None,
        );
        let owner = &job.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(owner.kind, "SourceScan");
        let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
        let volume = &pod.volumes.clone().unwrap_or_default()[0];
        assert_eq!(volume.name, GIT_SSH_VOLUME);
        assert_eq!(
            volume
                .secret
                .as_ref()
                .and_then(|s| s.secret_name.as_deref()),
            Some("deploy-key")
        );
        for container in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let mount = &container.volume_mounts.clone().unwrap_or_default()[0];
            assert_eq!(mount.mount_path, GIT_SSH_MOUNT_PATH);
            assert_eq!(mount.read_only, Some(true));
            let env = env_of(container);
            assert_eq!(env["SCAN_GIT_URL"], "git@github.com:org/repo.git");
            assert_eq!(env["SCAN_GIT_REVISION"], "main");
            assert_eq!(env["SCAN_GIT_SSH_KEY"], "/etc/scangate/git/ssh-privatekey");
            assert_eq!(env["SCAN_GIT_KNOWN_HOSTS"], "github.com ssh-ed25519 AAAA");
            assert_eq!(env["SCAN_IMAGE"], "");
        }
        // No pull secret for source scans.
        assert_eq!(pod.image_pull_secrets.map(|s| s.len()), Some(1));

        let blob = SourceScan::new(
            "blob",
            SourceScanSpec {
                blob: Some(BlobSpec {
                    url: "https://example.com/src.tgz".into(),
                }),
                git: None,
                scan: ScanSettings::default(),
            },
        );
        let job = build_job(
            &blob,
            &template(),
            &key(0),
            Duration::from_secs(60),
            &TemplateRules::default(),
            None,
        );
        let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
        assert_eq!(
            env_of(&pod.containers[0])["SCAN_BLOB_URL"],
            "https://example.com/src.tgz"
        );
    }

    fn job_with(
        conditions: &[(&str, &str, Option<&str>, Option<&str>)],
        annotations: &[(&str, &str)],
    ) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("j".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                creation_timestamp: Some(Time(ts("2026-01-01T00:00:00Z"))),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s, reason, message)| JobCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            reason: reason.map(Into::into),
                            message: message.map(Into::into),
                            last_transition_time: Some(Time(ts("2026-01-01T00:05:00Z"))),
                            ..JobCondition::default()
                        })
                        .collect(),
                ),
                ..JobStatus::default()
            }),
        }
    }

    #[test]
    fn reads_job_states() {
        let running = job_with(&[], &[]);
        assert_eq!(JobSummary::from_job(&running).state, JobState::Running);
        let complete = job_with(
            &[
                (
                    "SuccessCriteriaMet",
                    "True",
                    Some("CompletionsReached"),
                    None,
                ),
                ("Complete", "True", Some("CompletionsReached"), None),
            ],
            &[(annotation::ATTEMPT, "2"), (annotation::ROUND, "-")],
        );
        let summary = JobSummary::from_job(&complete);
        assert_eq!(summary.attempt, 2);
        assert_eq!(summary.round.as_deref(), Some("-"));
        assert_eq!(
            summary.state,
            JobState::Complete {
                message: "Complete: CompletionsReached".into(),
                at: ts("2026-01-01T00:05:00Z")
            }
        );
        let failed = job_with(
            &[
                ("FailureTarget", "True", Some("BackoffLimitExceeded"), None),
                (
                    "Failed",
                    "True",
                    Some("BackoffLimitExceeded"),
                    Some("Job has reached the specified backoff limit"),
                ),
            ],
            &[],
        );
        assert_eq!(
            JobSummary::from_job(&failed).state,
            JobState::Failed {
                message: "Failed: BackoffLimitExceeded".into(),
                error: "Job has reached the specified backoff limit".into(),
                at: ts("2026-01-01T00:05:00Z")
            }
        );
        // Past its deadline: the message says the deadline and the key that sets it.
        let mut late = job_with(
            &[(
                "Failed",
                "True",
                Some("DeadlineExceeded"),
                Some("Job was active longer than specified deadline"),
            )],
            &[],
        );
        late.spec = Some(JobSpec {
            active_deadline_seconds: Some(5400),
            ..JobSpec::default()
        });
        assert_eq!(
            JobSummary::from_job(&late).state,
            JobState::Failed {
                message: "Failed: DeadlineExceeded".into(),
                error: "the scan job ran longer than its deadline of 90m (activeDeadlineSeconds \
                        5400) and was stopped; the admission config key templates.activeDeadline \
                        sets the deadline"
                    .into(),
                at: ts("2026-01-01T00:05:00Z")
            }
        );
        assert!(deadline_message(3600).contains("deadline of 1h "));
        assert!(deadline_message(45).contains("deadline of 45s "));
    }

    fn summary(attempt: u32, state: JobState) -> JobSummary {
        JobSummary {
            name: format!("job-{attempt}"),
            scan_generation: Some(3),
            template_generation: Some(1),
            round: Some("-".into()),
            attempt,
            state,
            created: ts("2026-01-01T00:00:00Z"),
        }
    }

    fn inputs(jobs: Vec<JobSummary>, previous: Previous, now: &str) -> PlanInputs {
        PlanInputs {
            scan_uid: "uid-1".into(),
            scan_generation: 3,
            template_generation: 1,
            jobs,
            previous,
            report_ok: false,
            rescan_interval: None,
            rescan_request: None,
            tag_moved_since: None,
            suspend: false,
            error_retry: Duration::from_secs(60),
            now: ts(now),
        }
    }

    #[test]
    fn a_new_scan_gets_a_job_and_a_running_one_is_followed() {
        let p = plan(&inputs(vec![], Previous::default(), "2026-01-01T00:00:00Z"));
        assert_eq!(p.action, JobAction::Create(key(0)));
        let running = summary(0, JobState::Running);
        let p = plan(&inputs(
            vec![running.clone()],
            Previous::default(),
            "2026-01-01T00:00:00Z",
        ));
        assert_eq!(p.action, JobAction::Use(running));
        // Suspended: nothing starts.
        let mut suspended = inputs(vec![], Previous::default(), "2026-01-01T00:00:00Z");
        suspended.suspend = true;
        assert_eq!(plan(&suspended).action, JobAction::Idle);
    }

    #[test]
    fn jobs_of_another_generation_or_round_do_not_count() {
        let mut old = summary(0, JobState::Running);
        old.scan_generation = Some(2);
        let p = plan(&inputs(
            vec![old],
            Previous::default(),
            "2026-01-01T00:00:00Z",
        ));
        assert_eq!(p.action, JobAction::Create(key(0)));
    }

    #[test]
    fn a_complete_job_with_a_report_is_used_and_a_failed_one_retried_with_backoff() {
        let complete = summary(
            0,
            JobState::Complete {
                message: "Complete".into(),
                at: ts("2026-01-01T00:05:00Z"),
            },
        );
        let mut with_report = inputs(
            vec![complete.clone()],
            Previous::default(),
            "2026-01-01T00:06:00Z",
        );
        with_report.report_ok = true;
        assert_eq!(plan(&with_report).action, JobAction::Use(complete.clone()));
        // Without a report it is a failure: first shown, not retried at once...
        let unseen = plan(&inputs(
            vec![complete.clone()],
            Previous::default(),
            "2026-01-01T01:00:00Z",
        ));
        assert_eq!(unseen.action, JobAction::Use(complete.clone()));
        assert_eq!(unseen.requeue_at, None);
        // ...then retried once the status has shown it for the error-retry delay.
        let shown = |at: &str| Previous {
            done: true,
            scanned_at: None,
            failed_at: Some(ts(at)),
            handled_rescan: None,
        };
        let early = plan(&inputs(
            vec![complete.clone()],
            shown("2026-01-01T00:05:10Z"),
            "2026-01-01T00:05:30Z",
        ));
        assert_eq!(early.action, JobAction::Use(complete.clone()));
        assert_eq!(early.requeue_at, Some(ts("2026-01-01T00:06:10Z")));
        let due = plan(&inputs(
            vec![complete],
            shown("2026-01-01T00:05:10Z"),
            "2026-01-01T00:06:10Z",
        ));
        assert_eq!(due.action, JobAction::Create(key(1)));
        // The second failure waits twice as long.
        let failed = summary(
            1,
            JobState::Failed {
                message: "Failed".into(),
                error: "boom".into(),
                at: ts("2026-01-01T01:00:00Z"),
            },
        );
        let p = plan(&inputs(
            vec![failed.clone()],
            shown("2026-01-01T01:00:00Z"),
            "2026-01-01T01:01:00Z",
        ));
        assert_eq!(p.requeue_at, Some(ts("2026-01-01T01:02:00Z")));
        let p = plan(&inputs(
            vec![failed.clone()],
            shown("2026-01-01T01:00:00Z"),
            "2026-01-01T01:02:00Z",
        ));
        assert_eq!(p.action, JobAction::Create(key(2)));
        // Suspended: no retry.
        let mut suspended = inputs(
            vec![failed],
            shown("2026-01-01T01:00:00Z"),
            "2026-01-01T02:00:00Z",
        );
        suspended.suspend = true;
        assert_eq!(plan(&suspended).requeue_at, None);
        assert!(matches!(plan(&suspended).action, JobAction::Use(_)));
        assert_eq!(
            retry_delay(Duration::from_secs(60), 10),
            Duration::from_secs(3840)
        );
    }

    #[test]
    fn rescans_when_the_interval_elapsed_since_scanned_at() {
        let scanned = ts("2026-01-01T00:00:00Z");
        let done = Previous {
            done: true,
            scanned_at: Some(scanned),
            failed_at: None,
            handled_rescan: None,
        };
        let mut p = inputs(vec![], done.clone(), "2026-01-01T23:00:00Z");
        p.rescan_interval = Some(Duration::from_secs(86_400));
        let waiting = plan(&p);
        assert_eq!(waiting.action, JobAction::Idle);
        assert_eq!(waiting.requeue_at, Some(ts("2026-01-02T00:00:00Z")));
        p.now = ts("2026-01-02T00:00:00Z");
        let mut expected = key(0);
        expected.round = scanned.as_second().to_string();
        assert_eq!(plan(&p).action, JobAction::Create(expected));
        // Without an interval a finished scan stays finished.
        p.rescan_interval = None;
        assert_eq!(plan(&p).action, JobAction::Idle);
        assert_eq!(plan(&p).requeue_at, None);
        assert_eq!(rescan_at(Some(scanned), None), None);
        assert_eq!(until(ts("2026-01-02T00:00:00Z"), scanned), Duration::ZERO);
    }

    #[test]
    fn a_new_rescan_value_is_a_new_round_once() {
        let scanned = ts("2026-01-01T00:00:00Z");
        let mut done = Previous {
            done: true,
            scanned_at: Some(scanned),
            failed_at: None,
            handled_rescan: None,
        };
        let mut p = inputs(vec![], done.clone(), "2026-01-01T01:00:00Z");
        p.rescan_request = Some("2026-01-01T01:00:00Z".into());
        let mut expected = key(0);
        expected.round = round_with(Some(scanned), Some("2026-01-01T01:00:00Z"));
        assert_ne!(expected.round, round_of(Some(scanned)));
        assert_eq!(plan(&p).action, JobAction::Create(expected.clone()));
        // Its Job runs: followed, not created again.
        let mut running = summary(0, JobState::Running);
        running.round = Some(expected.round.clone());
        p.jobs = vec![running.clone()];
        assert_eq!(plan(&p).action, JobAction::Use(running));
        // Handled and finished: nothing more.
        done.handled_rescan = p.rescan_request.clone();
        done.scanned_at = Some(ts("2026-01-01T01:05:00Z"));
        p.previous = done;
        p.jobs = vec![];
        assert_eq!(plan(&p).action, JobAction::Idle);
    }

    #[test]
    fn a_moved_tag_is_scanned_once_in_the_round_of_the_last_result() {
        let scanned = ts("2026-01-01T00:00:00Z");
        let moved = ts("2026-01-01T00:10:00Z");
        let mut p = inputs(
            vec![],
            Previous {
                done: true,
                scanned_at: Some(scanned),
                failed_at: None,
                handled_rescan: None,
            },
            "2026-01-01T00:10:01Z",
        );
        p.tag_moved_since = Some(moved);
        let mut expected = key(0);
        expected.round = round_of(Some(scanned));
        let due = plan(&p);
        assert_eq!(due.action, JobAction::Create(expected.clone()));
        // Its place in the queue: since the move was found.
        assert_eq!(due.due_since, Some(moved));
        // Its Job runs (the result is still the old content's): followed, not created again.
        let mut running = summary(0, JobState::Running);
        running.round = Some(expected.round);
        p.jobs = vec![running.clone()];
        assert_eq!(plan(&p).action, JobAction::Use(running));
        // Suspended: nothing starts.
        p.jobs = vec![];
        p.suspend = true;
        assert_eq!(plan(&p).action, JobAction::Idle);
    }

    #[test]
    fn a_failure_whose_job_is_gone_is_retried() {
        let previous = Previous {
            done: true,
            scanned_at: None,
            failed_at: Some(ts("2026-01-01T00:00:00Z")),
            handled_rescan: None,
        };
        let p = plan(&inputs(vec![], previous.clone(), "2026-01-01T00:00:30Z"));
        assert_eq!(p.action, JobAction::Idle);
        assert_eq!(p.requeue_at, Some(ts("2026-01-01T00:01:00Z")));
        let p = plan(&inputs(vec![], previous, "2026-01-01T00:01:00Z"));
        assert_eq!(p.action, JobAction::Create(key(0)));
    }
}
