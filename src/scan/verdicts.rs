//! Verdicts out: when the admission config's `attestations.sign` is set, the verdict of a
//! trusted ImageScan (in scangate's namespace or a `trustedScanNamespaces` one) that is
//! Completed or Failed is signed as an in-toto Simple Verification Result ([`crate::svr`]) and
//! pushed to the image's registry as cosign attaches attestations, once per digest and verdict,
//! recorded in `status.verdictAttestation`. A failed push is tried again with backoff, at most
//! [`MAX_ATTEMPTS`] times per digest and verdict in the controller's lifetime; its error is in
//! `status.verdictAttestation.error`, and the verdict never changes because of it.
//!
//! [`next`] decides (pure); [`sign_verdict`] reads the key and push Secrets, pushes and records.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};

use super::kinds::ScanKind;
use super::metrics::{ApiResource, Verb};
use super::plan::Observed;
use super::reconcile::Context;
use super::writes::backoff;
use crate::api::{Phase, ScanStatus, VerdictAttestation};
use crate::image::ImageRef;
use crate::svr::{self, PolicyRef, Verdict, VerdictKey};

/// The most pushes of one digest's verdict tried in the controller's lifetime.
pub const MAX_ATTEMPTS: u32 = 5;
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A verdict to sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// `repository@sha256:…`, as the status's artifact names it.
    pub image: String,
    pub digest: String,
    pub verdict: Phase,
}

/// The pushes tried for one scan's current digest and verdict, and failed.
#[derive(Clone, Debug)]
pub struct Tries {
    pub digest: String,
    pub verdict: Phase,
    pub failed: u32,
    pub last: Instant,
    /// What the status records once a push succeeded: kept until a status write has it, so
    /// a failed status write does not push again.
    pub pushed: Option<VerdictAttestation>,
}

/// What to do about a scan's verdict now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Nothing,
    Push(Due),
    /// A push failed: try again after this long.
    Wait(Duration),
}

/// The verdict `status` holds that is not signed yet, if any: Completed or Failed, on a
/// digest, and not the one `status.verdictAttestation` records as pushed.
pub fn unsigned(status: &ScanStatus) -> Option<Due> {
    let verdict = status
        .phase
        .filter(|p| matches!(p, Phase::Completed | Phase::Failed))?;
    let image = status.artifact.as_ref()?.registry.as_ref()?.image.clone();
    let digest = image
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .filter(|d| d.starts_with("sha256:"))?;
    let done = status
        .verdict_attestation
        .as_ref()
        .is_some_and(|v| v.digest == digest && v.verdict == verdict && v.pushed_at.is_some());
    (!done).then_some(Due {
        image,
        digest,
        verdict,
    })
}

/// Whether to push now: `signs` when signing is on and the scan is trusted; `tries` the
/// failed pushes of this scan so far, `since_last` the time since the last one.
pub fn next(status: &ScanStatus, signs: bool, tries: Option<&Tries>, since_last: Duration) -> Next {
    if !signs {
        return Next::Nothing;
    }
    let Some(due) = unsigned(status) else {
        return Next::Nothing;
    };
    match tries.filter(|t| t.digest == due.digest && t.verdict == due.verdict) {
        None => Next::Push(due),
        Some(t) if t.failed >= MAX_ATTEMPTS => Next::Nothing,
        Some(t) => {
            let wait = backoff(t.failed, MAX_BACKOFF);
            if since_last >= wait {
                Next::Push(due)
            } else {
                Next::Wait(wait - since_last)
            }
        }
    }
}

/// What the status records of a push.
pub fn record(
    due: &Due,
    pushed: Result<String, String>,
    failed: u32,
    now: Time,
) -> VerdictAttestation {
    match pushed {
        Ok(reference) => VerdictAttestation {
            digest: due.digest.clone(),
            verdict: due.verdict,
            pushed_at: Some(now),
            reference: Some(reference),
            error: None,
            failed_attempts: None,
        },
        Err(error) => VerdictAttestation {
            digest: due.digest.clone(),
            verdict: due.verdict,
            pushed_at: None,
            reference: None,
            error: Some(if failed >= MAX_ATTEMPTS {
                format!(
                    "{error} (gave up after {MAX_ATTEMPTS} attempts; the next verdict, or a \
                     restart of the controller, tries again)"
                )
            } else {
                error
            }),
            failed_attempts: Some(i64::from(failed)),
        },
    }
}

/// The failed pushes per scan (`kind/namespace/name`).
pub type Attempts = Mutex<HashMap<String, Tries>>;

/// Signs and pushes the scan's verdict when [`next`] says so, recording it in the status to
/// write (`write`, made from the current status when nothing else changed). Returns when to
/// look again after a failed push.
pub async fn sign_verdict<K: ScanKind>(
    scan: &K,
    key: &str,
    o: &Observed,
    write: &mut Option<ScanStatus>,
    ctx: &Context,
) -> Option<Duration> {
    let sign = ctx.config.attestations.sign.as_ref()?;
    let status = write.as_ref().or(o.previous.as_ref())?;
    let signs = ctx.config.is_trusted_namespace(&o.namespace);
    let tries = ctx.verdict_attempts.lock().ok()?.get(key).cloned();
    if let (Some(due), Some(recorded)) = (
        unsigned(status),
        tries.as_ref().and_then(|t| t.pushed.as_ref()),
    ) && recorded.digest == due.digest
        && recorded.verdict == due.verdict
    {
        // Pushed, but the status write that records it has not gone through yet.
        let mut updated = status.clone();
        updated.verdict_attestation = Some(recorded.clone());
        *write = Some(updated);
        return None;
    }
    let since_last = tries.as_ref().map_or(Duration::MAX, |t| t.last.elapsed());
    let due = match next(status, signs, tries.as_ref(), since_last) {
        Next::Nothing => return None,
        Next::Wait(after) => return Some(after),
        Next::Push(due) => due,
    };
    let pushed = push(&due, status, sign, ctx).await;
    let failed = match (&pushed, &tries) {
        (Ok(_), _) => 0,
        (Err(_), Some(t)) if t.digest == due.digest && t.verdict == due.verdict => t.failed + 1,
        (Err(_), _) => 1,
    };
    let recorded = record(&due, pushed.clone(), failed, Time(o.now));
    if let Ok(mut attempts) = ctx.verdict_attempts.lock() {
        attempts.insert(
            key.to_string(),
            Tries {
                digest: due.digest.clone(),
                verdict: due.verdict,
                failed,
                last: Instant::now(),
                pushed: pushed.is_ok().then(|| recorded.clone()),
            },
        );
    }
    match &pushed {
        Ok(reference) => {
            tracing::info!(%reference, verdict = ?due.verdict, "verdict attestation pushed")
        }
        Err(error) => tracing::warn!(%error, failed, "verdict attestation not pushed"),
    }
    let retry = (pushed.is_err() && failed < MAX_ATTEMPTS).then(|| backoff(failed, MAX_BACKOFF));
    let mut updated = status.clone();
    updated.verdict_attestation = Some(recorded);
    tracing::debug!(scan = %scan.name_any(), "verdict attestation recorded");
    *write = Some(updated);
    retry
}

/// Reads the key, signs the verdict and pushes it; the error says what went wrong for the
/// status.
async fn push(
    due: &Due,
    status: &ScanStatus,
    sign: &crate::admission::config::SignRules,
    ctx: &Context,
) -> Result<String, String> {
    let namespace = &ctx.config.scangate_namespace;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.requested(Verb::get, ApiResource::secrets);
    let secret = secrets
        .get_opt(&sign.key_secret)
        .await
        .map_err(|e| {
            format!(
                "the verdict signing Secret {namespace}/{} cannot be read: {e}",
                sign.key_secret
            )
        })?
        .ok_or_else(|| {
            format!(
                "the verdict signing Secret {namespace}/{} does not exist: create it with \
                 `cosign generate-key-pair k8s://{namespace}/{}`",
                sign.key_secret, sign.key_secret
            )
        })?;
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let key = VerdictKey::from_secret(&data).map_err(|e| e.to_string())?;
    let image = ImageRef::parse(&due.image).map_err(|e| e.to_string())?;
    let push_config = match &sign.push_secret {
        Some(name) => Some(
            super::reconcile::pull_secret(name, namespace, ctx)
                .await
                .map_err(|e| format!("the push secret: {e}"))?,
        ),
        None => None,
    };
    let credentials = push_config
        .as_ref()
        .and_then(|c| c.credentials_for(image.registry()));
    let rego = policy_rego(status, ctx);
    let verdict = Verdict {
        image: &due.image,
        digest: &due.digest,
        phase: due.verdict,
        cve_count: &status.cve_count.clone().unwrap_or_default(),
        policy: status.policy.as_ref().map(|p| PolicyRef {
            name: &p.name,
            generation: status.observed_policy_generation,
            rego: rego.as_deref(),
        }),
        input: status.attestation.as_ref(),
        time: jiff::Timestamp::now(),
    };
    let envelope = key.envelope(&svr::statement(&verdict));
    ctx.registry
        .push_attestation(&image, credentials, &envelope, svr::SVR_V01)
        .await
        .map_err(|e| e.to_string())
}

/// The Rego of the policy that judged the report: scangate's built-in one, or the
/// ScanPolicy's from the cache.
fn policy_rego(status: &ScanStatus, ctx: &Context) -> Option<String> {
    let policy = status.policy.as_ref()?;
    if policy.source == crate::api::PolicySource::BuiltIn {
        return Some(crate::policy::DEFAULT_POLICY.to_string());
    }
    let (namespace, name) = policy.name.split_once('/')?;
    let found = ctx.caches.policy(namespace, name)?;
    Some(found.spec.rego_file.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Artifact, RegistryArtifact};

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn status(phase: Phase, digest: &str) -> ScanStatus {
        ScanStatus {
            phase: Some(phase),
            artifact: Some(Artifact {
                registry: Some(RegistryArtifact {
                    image: format!("r.example/team/app@{digest}"),
                    ..RegistryArtifact::default()
                }),
                ..Artifact::default()
            }),
            ..ScanStatus::default()
        }
    }

    fn now() -> Time {
        Time("2026-12-07T08:00:00Z".parse().unwrap())
    }

    #[test]
    fn completed_and_failed_digests_are_signed_once_per_digest_and_verdict() {
        let failed = status(Phase::Failed, DIGEST);
        let Next::Push(due) = next(&failed, true, None, Duration::MAX) else {
            panic!("a Failed digest is signed");
        };
        assert_eq!(due.digest, DIGEST);
        assert_eq!(due.image, format!("r.example/team/app@{DIGEST}"));
        let mut pushed = failed.clone();
        pushed.verdict_attestation = Some(record(
            &due,
            Ok("r.example/team/app:sha256-1.att".into()),
            0,
            now(),
        ));
        assert_eq!(next(&pushed, true, None, Duration::MAX), Next::Nothing);
        // The same digest turned Completed: signed again; another digest too.
        let mut completed = pushed.clone();
        completed.phase = Some(Phase::Completed);
        assert!(
            matches!(next(&completed, true, None, Duration::MAX), Next::Push(d) if d.verdict == Phase::Completed)
        );
        let mut moved = pushed.clone();
        moved.artifact = status(Phase::Failed, OTHER).artifact;
        assert!(
            matches!(next(&moved, true, None, Duration::MAX), Next::Push(d) if d.digest == OTHER)
        );
    }

    #[test]
    fn no_signature_without_signing_a_trusted_scan_a_decided_verdict_or_a_digest() {
        assert_eq!(
            next(&status(Phase::Failed, DIGEST), false, None, Duration::MAX),
            Next::Nothing
        );
        for phase in [Phase::Pending, Phase::Scanning, Phase::Error] {
            assert_eq!(
                next(&status(phase, DIGEST), true, None, Duration::MAX),
                Next::Nothing
            );
        }
        let mut by_tag = status(Phase::Completed, DIGEST);
        by_tag.artifact = Some(Artifact {
            registry: Some(RegistryArtifact {
                image: "r.example/team/app:1".into(),
                ..RegistryArtifact::default()
            }),
            ..Artifact::default()
        });
        assert_eq!(next(&by_tag, true, None, Duration::MAX), Next::Nothing);
        let source = ScanStatus {
            phase: Some(Phase::Completed),
            ..ScanStatus::default()
        };
        assert_eq!(next(&source, true, None, Duration::MAX), Next::Nothing);
    }

    #[test]
    fn failed_pushes_are_retried_with_backoff_a_bounded_number_of_times() {
        let failed = status(Phase::Failed, DIGEST);
        let tries = |n| Tries {
            digest: DIGEST.into(),
            verdict: Phase::Failed,
            failed: n,
            last: Instant::now(),
            pushed: None,
        };
        let wait = backoff(1, MAX_BACKOFF);
        assert_eq!(
            next(&failed, true, Some(&tries(1)), Duration::ZERO),
            Next::Wait(wait)
        );
        assert!(matches!(
            next(&failed, true, Some(&tries(1)), wait),
            Next::Push(_)
        ));
        assert!(backoff(3, MAX_BACKOFF) > wait);
        assert_eq!(
            next(&failed, true, Some(&tries(MAX_ATTEMPTS)), Duration::MAX),
            Next::Nothing
        );
        // Tries of another digest do not hold this one back.
        let other = Tries {
            digest: OTHER.into(),
            ..tries(MAX_ATTEMPTS)
        };
        assert!(matches!(
            next(&failed, true, Some(&other), Duration::ZERO),
            Next::Push(_)
        ));
    }

    #[test]
    fn the_record_says_where_or_why_not_and_never_the_verdict_changes() {
        let due = Due {
            image: format!("r.example/team/app@{DIGEST}"),
            digest: DIGEST.into(),
            verdict: Phase::Failed,
        };
        let ok = record(&due, Ok("r.example/team/app:sha256-1.att".into()), 0, now());
        assert_eq!(
            ok.reference.as_deref(),
            Some("r.example/team/app:sha256-1.att")
        );
        assert_eq!(ok.pushed_at, Some(now()));
        assert_eq!(ok.error, None);
        let failed = record(&due, Err("registry refused".into()), 2, now());
        assert_eq!(failed.pushed_at, None);
        assert_eq!(failed.failed_attempts, Some(2));
        assert_eq!(failed.error.as_deref(), Some("registry refused"));
        let gave_up = record(&due, Err("registry refused".into()), MAX_ATTEMPTS, now());
        assert!(gave_up.error.unwrap().contains("gave up after 5 attempts"));
        assert_eq!(gave_up.verdict, Phase::Failed);
    }
}
