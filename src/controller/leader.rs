//! Leader election with a coordination.k8s.io/v1 Lease: one replica runs the controller, the
//! others wait. The holder renews the lease every `renew_every`; a lease not renewed for
//! `duration` may be taken over. Updates carry the lease's resourceVersion, so two replicas
//! never both win.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

use super::{Error, Result};

/// How the lease is held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica: the pod name, else the host name.
    pub identity: String,
    /// A lease not renewed for this long is free.
    pub duration: Duration,
    /// How often the holder renews, and a candidate retries.
    pub renew_every: Duration,
}

/// What to do with the lease as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No lease: create it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Someone else's, expired or released: take it over.
    TakeOver,
    /// Someone else holds it.
    Wait { holder: String },
}

/// Decides from the lease's spec.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = spec.lease_duration_seconds.unwrap_or(15).max(1);
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    let expired = match renewed {
        Some(at) => at
            .checked_add(jiff::SignedDuration::from_secs(i64::from(duration)))
            .map(|until| now >= until)
            .unwrap_or(true),
        None => true,
    };
    if expired {
        Decision::TakeOver
    } else {
        Decision::Wait { holder }
    }
}

fn spec_for(config: &LeaseConfig, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let ours = previous
        .and_then(|p| p.holder_identity.as_deref())
        .is_some_and(|h| h == config.identity);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(config.duration.as_secs()).unwrap_or(15)),
        acquire_time: if ours {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours || previous.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// One attempt to take or keep the lease: `Ok(true)` when this replica holds it now.
pub async fn try_hold(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool> {
    let now = Timestamp::now();
    let current = api.get_opt(&config.name).await?;
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    match decide(spec, &config.identity, now) {
        Decision::Wait { .. } => Ok(false),
        Decision::Create => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec_for(config, None, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
                Err(e) => Err(Error::Kube(e)),
            }
        }
        Decision::Renew | Decision::TakeOver => {
            let Some(mut lease) = current else {
                return Ok(false);
            };
            lease.spec = Some(spec_for(config, lease.spec.as_ref(), now));
            match api
                .replace(&config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
                Err(e) => Err(Error::Kube(e)),
            }
        }
    }
}

/// Waits until this replica holds the lease.
pub async fn acquire(api: &Api<Lease>, config: &LeaseConfig) {
    let mut waiting_logged = false;
    loop {
        match try_hold(api, config).await {
            Ok(true) => {
                tracing::info!(lease = %config.name, identity = %config.identity, "acquired the leader lease");
                return;
            }
            Ok(false) => {
                if !waiting_logged {
                    tracing::info!(lease = %config.name, "another replica leads; standing by");
                    waiting_logged = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read or take the leader lease"),
        }
        tokio::time::sleep(config.renew_every).await;
    }
}

/// Renews the lease until it is lost; returns when another replica may have taken over.
pub async fn keep(api: &Api<Lease>, config: &LeaseConfig) -> Error {
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(config.renew_every).await;
        match try_hold(api, config).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => return Error::LeaseLost(config.name.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the leader lease");
                // Stop before another replica may consider the lease expired.
                if last_renewed.elapsed() + config.renew_every >= config.duration {
                    return Error::LeaseLost(config.name.clone());
                }
            }
        }
    }
}

/// Gives the lease up, so a standby replica takes over at once.
pub async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let ours = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .is_some_and(|h| h == config.identity);
    if !ours {
        return;
    }
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
    }
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => tracing::info!(lease = %config.name, "released the leader lease"),
        Err(e) => tracing::warn!(error = %e, "cannot release the leader lease"),
    }
}

/// This replica's identity: `POD_NAME`, else `HOSTNAME`, else /etc/hostname.
pub fn default_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| format!("scangate-controller-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn lease(holder: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(ts(renewed))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        let now = ts("2026-01-01T00:00:20Z");
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(
            decide(Some(&lease("a", "2026-01-01T00:00:19Z")), "a", now),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease("b", "2026-01-01T00:00:19Z")), "a", now),
            Decision::Wait { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&lease("b", "2026-01-01T00:00:04Z")), "a", now),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&lease("", "2026-01-01T00:00:19Z")), "a", now),
            Decision::TakeOver
        );
    }

    #[test]
    fn taking_over_counts_a_transition() {
        let config = LeaseConfig {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
        };
        let now = ts("2026-01-01T00:00:20Z");
        let mut previous = lease("b", "2026-01-01T00:00:00Z");
        previous.lease_transitions = Some(3);
        let spec = spec_for(&config, Some(&previous), now);
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(4));
        let renewed = spec_for(&config, Some(&spec), now);
        assert_eq!(renewed.lease_transitions, Some(4));
    }
}
