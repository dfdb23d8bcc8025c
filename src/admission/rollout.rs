//! Availability with a bound: which workload writes are decided, and how much of each. What the
//! built-in controllers create from a template that was admitted stays available (scale-out,
//! rescheduling; `review::controller_pass`); everything a user does that starts a template
//! running again is decided like a new workload: a changed pod template (whatever changed), a
//! workload woken from zero replicas, a ReplicaSet or ReplicationController (a revision) given
//! more replicas, a suspended Job or CronJob or a paused Deployment resumed. So an image whose
//! verdict turned, or whose exception expired, keeps its running replicas and no more
//! rollouts. docs/admission.md, *Availability with a bound*, gives the reasons.

use std::fmt;

use serde_json::Value;

use super::pod::WorkloadKind;

/// A write to a workload, as far as the bound cares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Write<'a> {
    /// A new object.
    Create,
    /// An update of the object itself (`old` and `new` are whole objects).
    Update {
        kind: WorkloadKind,
        old: &'a Value,
        new: &'a Value,
        /// The request's user is the built-in controller that owns the object (the
        /// deployment-controller updating its ReplicaSet).
        by_its_controller: bool,
    },
    /// An update of the `scale` subresource (`kubectl scale`, an autoscaler): only the replica
    /// counts are in the request, the template is the scaled object's.
    Scale {
        kind: WorkloadKind,
        from: i64,
        to: i64,
    },
    /// A delete or a connect: nothing starts.
    Other,
}

/// Why a write is decided in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// A new workload.
    Created,
    /// A user's change to the pod template (an image, an env var, a restart annotation).
    TemplateChanged,
    /// From zero replicas (or parallelism) to more: nothing of it was running.
    Woken,
    /// A ReplicaSet or ReplicationController given more replicas by a user: a revision is
    /// scaled by its Deployment, so a user scaling one revives it (an old or orphaned one too).
    RevisionScaled,
    /// A suspended Job or CronJob, or a paused Deployment, resumed.
    Resumed,
}

impl fmt::Display for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rollout::Created => "a new workload",
            Rollout::TemplateChanged => "a change to its pod template",
            Rollout::Woken => "woken from zero replicas",
            Rollout::RevisionScaled => "a revision scaled up by a user",
            Rollout::Resumed => "resumed from suspended or paused",
        })
    }
}

/// How much of a write is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Nothing starts that was not admitted already; the reason, for logs.
    Skip(&'static str),
    /// A Pod's update: only images it did not run before (a pod is no template: its running
    /// containers keep their images, an ephemeral debug container adds one).
    NewImages,
    /// Every image of the template, as for a new workload.
    Full(Rollout),
}

/// The bound, as a table: how much of `write` is decided.
pub fn scope(write: &Write<'_>) -> Scope {
    match *write {
        Write::Other => Scope::Skip("not a create or update"),
        Write::Create => Scope::Full(Rollout::Created),
        Write::Update {
            kind: WorkloadKind::Pod,
            ..
        } => Scope::NewImages,
        Write::Update {
            kind,
            old,
            new,
            by_its_controller,
        } => {
            if template(kind, old) != template(kind, new) {
                Scope::Full(Rollout::TemplateChanged)
            } else if by_its_controller {
                Scope::Skip("its controller's update of an admitted template")
            } else if let Some(rollout) = revival(kind, old, new) {
                Scope::Full(rollout)
            } else {
                Scope::Skip("the template is unchanged and nothing more of it starts")
            }
        }
        Write::Scale { kind, from, to } => match scaled(kind, from, to) {
            Some(rollout) => Scope::Full(rollout),
            None => Scope::Skip("scaled within what was running"),
        },
    }
}

/// The object's pod template (for a CronJob its Job template), the part a rollout runs;
/// `None` for a Pod, which has none, or an object without one.
fn template(kind: WorkloadKind, object: &Value) -> Option<&Value> {
    let path = match kind {
        WorkloadKind::Pod => return None,
        WorkloadKind::CronJob => "/spec/jobTemplate",
        WorkloadKind::Deployment
        | WorkloadKind::ReplicaSet
        | WorkloadKind::StatefulSet
        | WorkloadKind::DaemonSet
        | WorkloadKind::Job
        | WorkloadKind::ReplicationController => "/spec/template",
    };
    object.pointer(path)
}

/// Whether a user's update that keeps the template starts more of it than was running.
fn revival(kind: WorkloadKind, old: &Value, new: &Value) -> Option<Rollout> {
    let int = |object: &Value, field: &str, default: i64| {
        object
            .pointer(field)
            .and_then(Value::as_i64)
            .unwrap_or(default)
    };
    let flag = |object: &Value, field: &str| {
        object
            .pointer(field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let resumed = |field: &str| flag(old, field) && !flag(new, field);
    match kind {
        WorkloadKind::Deployment if resumed("/spec/paused") => Some(Rollout::Resumed),
        WorkloadKind::Job | WorkloadKind::CronJob if resumed("/spec/suspend") => {
            Some(Rollout::Resumed)
        }
        // A Job's parallelism defaults to 1.
        WorkloadKind::Job => scaled(
            kind,
            int(old, "/spec/parallelism", 1),
            int(new, "/spec/parallelism", 1),
        ),
        // Replicas default to 1.
        WorkloadKind::Deployment
        | WorkloadKind::StatefulSet
        | WorkloadKind::ReplicaSet
        | WorkloadKind::ReplicationController => scaled(
            kind,
            int(old, "/spec/replicas", 1),
            int(new, "/spec/replicas", 1),
        ),
        WorkloadKind::Pod | WorkloadKind::DaemonSet | WorkloadKind::CronJob => None,
    }
}

/// The workload kind whose `scale` subresource `resource` (a plural) is.
pub fn scalable(resource: &str) -> Option<WorkloadKind> {
    match resource {
        "deployments" => Some(WorkloadKind::Deployment),
        "replicasets" => Some(WorkloadKind::ReplicaSet),
        "statefulsets" => Some(WorkloadKind::StatefulSet),
        "replicationcontrollers" => Some(WorkloadKind::ReplicationController),
        _ => None,
    }
}

/// Whether scaling `kind` from `from` to `to` (replicas, a Job's parallelism) is a rollout:
/// up from zero for anything, and any scale-up of a revision.
fn scaled(kind: WorkloadKind, from: i64, to: i64) -> Option<Rollout> {
    if to <= from {
        return None;
    }
    match kind {
        WorkloadKind::ReplicaSet | WorkloadKind::ReplicationController => {
            Some(Rollout::RevisionScaled)
        }
        _ if from <= 0 => Some(Rollout::Woken),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: i64) -> Value {
        json!({"spec": {"replicas": replicas, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    fn update(kind: WorkloadKind, old: &Value, new: &Value, by_its_controller: bool) -> Scope {
        scope(&Write::Update {
            kind,
            old,
            new,
            by_its_controller,
        })
    }

    use WorkloadKind::{CronJob, DaemonSet, Deployment, Job, Pod, ReplicaSet, StatefulSet};

    #[test]
    fn creates_are_decided_in_full_and_deletes_not_at_all() {
        assert_eq!(scope(&Write::Create), Scope::Full(Rollout::Created));
        assert!(matches!(scope(&Write::Other), Scope::Skip(_)));
    }

    #[test]
    fn any_template_change_is_decided_in_full_whoever_makes_it() {
        let old = deployment("alpine:3", 2);
        let mut env = old.clone();
        env["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}]);
        let mut restarted = old.clone();
        restarted["spec"]["template"]["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "2026-12-07T01:00:00Z"});
        for (new, by_its_controller) in [(&env, false), (&restarted, false), (&env, true)] {
            for kind in [Deployment, ReplicaSet, StatefulSet, DaemonSet, Job] {
                assert_eq!(
                    update(kind, &old, new, by_its_controller),
                    Scope::Full(Rollout::TemplateChanged),
                    "{kind} {new}"
                );
            }
        }
        let cron = |command: &str| {
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "alpine:3", "command": [command]}]}}}}}})
        };
        assert_eq!(
            update(CronJob, &cron("true"), &cron("false"), false),
            Scope::Full(Rollout::TemplateChanged)
        );
    }

    #[test]
    fn scaling_what_runs_is_availability_waking_or_scaling_a_revision_is_a_rollout() {
        // (kind, from, to, what it is)
        let table = [
            (Deployment, 1, 3, None),
            (Deployment, 3, 1, None),
            (Deployment, 0, 2, Some(Rollout::Woken)),
            (StatefulSet, 2, 5, None),
            (StatefulSet, 0, 1, Some(Rollout::Woken)),
            (ReplicaSet, 0, 2, Some(Rollout::RevisionScaled)),
            (ReplicaSet, 1, 2, Some(Rollout::RevisionScaled)),
            (ReplicaSet, 2, 0, None),
            (
                WorkloadKind::ReplicationController,
                1,
                2,
                Some(Rollout::RevisionScaled),
            ),
            (Job, 0, 1, Some(Rollout::Woken)),
            (Job, 1, 4, None),
        ];
        for (kind, from, to, expected) in table {
            let expected = expected.map_or_else(|| "skip".to_string(), |r| r.to_string());
            let show = |scope: Scope| match scope {
                Scope::Full(rollout) => rollout.to_string(),
                Scope::Skip(_) => "skip".to_string(),
                Scope::NewImages => "new images".to_string(),
            };
            // Through the scale subresource, and through the object itself.
            assert_eq!(
                show(scope(&Write::Scale { kind, from, to })),
                expected,
                "{kind} scale {from}->{to}"
            );
            let (field, object) = match kind {
                Job => ("parallelism", json!({"spec": {"template": {}}})),
                _ => ("replicas", deployment("alpine:3", 0)),
            };
            let with = |n: i64| {
                let mut o = object.clone();
                o["spec"][field] = json!(n);
                o
            };
            assert_eq!(
                show(update(kind, &with(from), &with(to), false)),
                expected,
                "{kind} update {from}->{to}"
            );
        }
    }

    #[test]
    fn its_controller_scaling_a_revision_is_availability() {
        let (old, new) = (deployment("alpine:3", 0), deployment("alpine:3", 3));
        assert!(matches!(
            update(ReplicaSet, &old, &new, true),
            Scope::Skip(_)
        ));
        assert_eq!(
            update(ReplicaSet, &old, &new, false),
            Scope::Full(Rollout::RevisionScaled)
        );
    }

    #[test]
    fn resuming_is_a_rollout_suspending_is_not() {
        let with = |field: &str, on: bool| {
            let mut o = deployment("alpine:3", 1);
            o["spec"][field] = json!(on);
            o
        };
        let table = [
            (CronJob, "suspend", true, false, Some(Rollout::Resumed)),
            (CronJob, "suspend", false, true, None),
            (Job, "suspend", true, false, Some(Rollout::Resumed)),
            (Deployment, "paused", true, false, Some(Rollout::Resumed)),
            (Deployment, "paused", false, true, None),
        ];
        for (kind, field, from, to, expected) in table {
            let got = update(kind, &with(field, from), &with(field, to), false);
            match expected {
                Some(rollout) => assert_eq!(got, Scope::Full(rollout), "{kind} {field}"),
                None => assert!(matches!(got, Scope::Skip(_)), "{kind} {field}: {got:?}"),
            }
        }
        // Without the field, a CronJob is not suspended.
        let plain = json!({"spec": {"jobTemplate": {}}});
        assert!(matches!(
            update(CronJob, &plain, &plain, false),
            Scope::Skip(_)
        ));
    }

    #[test]
    fn metadata_changes_and_pods_decide_nothing_new() {
        let old = deployment("alpine:3", 2);
        let mut relabelled = old.clone();
        relabelled["metadata"] = json!({"labels": {"team": "a"}, "ownerReferences": []});
        for kind in [Deployment, ReplicaSet, StatefulSet, DaemonSet, CronJob] {
            assert!(
                matches!(update(kind, &old, &relabelled, false), Scope::Skip(_)),
                "{kind}"
            );
        }
        assert_eq!(update(Pod, &old, &relabelled, false), Scope::NewImages);
    }
}
