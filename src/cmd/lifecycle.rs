//! `scangate pause|resume|cancel NAME` (also `kubectl scangate pause …`): the scan lifecycle
//! from the command line, with the caller's credentials ([`super::annotate`]), so RBAC decides
//! (a tenant may patch the scans of its namespaces; scans in scangate's namespace, only admins).
//!
//! - `pause` sets `spec.suspend: true`: a round not finished is paused (its Job suspended, or
//!   its place in the queue kept) until resumed, or canceled by the pause limit;
//! - `resume` sets `spec.suspend: false`: the paused round goes on with the same Job;
//! - `cancel` sets the `scangate.dev/cancel` annotation to the current time: the round is
//!   canceled for good (its Job deleted); only `scangate rescan` starts a new one.

use clap::Args;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::annotate::{self, ScanRef, Selection};
use crate::api::annotation;

#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// The scan: NAME or imagescan/NAME (an ImageScan), or sourcescan/NAME.
    #[arg(env = "SCANGATE_LIFECYCLE_SCAN", value_name = "NAME|KIND/NAME")]
    pub scan: String,
    /// The namespace, like kubectl's -n (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "SCANGATE_NAMESPACE")]
    pub namespace: Option<String>,
}

pub use annotate::{Error, Result};

/// What to do to the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Cancel,
}

/// The merge patch of an action at `now`.
pub fn patch(action: Action, now: Timestamp) -> Value {
    match action {
        Action::Pause => json!({"spec": {"suspend": true}}),
        Action::Resume => json!({"spec": {"suspend": false}}),
        Action::Cancel => annotate::request_patch(annotation::CANCEL, now),
    }
}

/// What to print once the action is recorded on the scan.
pub fn done_message(action: Action, scan: &ScanRef, now: Timestamp) -> String {
    let target = format!("{} {}/{}", scan.kind, scan.namespace, scan.name);
    match action {
        Action::Pause => format!(
            "{target}: pause requested (spec.suspend=true); a round not finished is paused until \
             `scangate resume`, or canceled by the controller's pause limit; a finished one only \
             stops rescanning\n"
        ),
        Action::Resume => format!(
            "{target}: resume requested (spec.suspend=false); a paused round goes on with its \
             Job (a canceled one does not: `scangate rescan` starts a new round)\n"
        ),
        Action::Cancel => format!(
            "{target}: cancel requested ({}={now}); the round is canceled for good and its Job \
             deleted; `scangate rescan` starts a new round\n",
            annotation::CANCEL
        ),
    }
}

/// Patches the scan; returns what to print.
pub async fn run(action: Action, args: &LifecycleArgs) -> Result<String> {
    let (client, default_namespace) = super::cluster_client().await?;
    let namespace = args.namespace.clone().unwrap_or(default_namespace);
    let Selection::One(scan) = annotate::selection(Some(&args.scan), &namespace, false)? else {
        return Err(Error::Target {
            target: args.scan.clone(),
        });
    };
    let now = Timestamp::now();
    annotate::patch_scans(&client, std::slice::from_ref(&scan), &patch(action, now)).await?;
    Ok(done_message(action, &scan, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_and_resume_set_suspend_cancel_annotates() {
        let now: Timestamp = "2026-01-01T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            patch(Action::Pause, now),
            json!({"spec": {"suspend": true}})
        );
        assert_eq!(
            patch(Action::Resume, now),
            json!({"spec": {"suspend": false}})
        );
        assert_eq!(
            patch(Action::Cancel, now),
            json!({"metadata": {"annotations": {"scangate.dev/cancel": "2026-01-01T00:00:00Z"}}})
        );
    }
}
