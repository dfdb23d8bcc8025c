//! Availability with a bound, on the real apiserver with kwok running the pods, tried as a
//! tenant would (a user bound to `edit` in its namespace, `kubectl --as`): after alpine's
//! trusted result turns Failed, what runs keeps running and scales out, but nothing the tenant
//! does rolls alpine out again: not a template change (`set env`, `rollout restart`), not a
//! Deployment stockpiled at zero replicas, not an old ReplicaSet orphaned and scaled, not a
//! suspended CronJob resumed. An exception that expires likewise leaves its workload running
//! and covers no new rollout.

mod common;

use std::process::Output;
use std::time::Duration;

use common::cluster::{cluster, deployment, stderr};
use common::enforced::Enforced;
use common::fixtures::{ALPINE, BUSYBOX, FAILED, PASSED};

const WAIT: Duration = Duration::from_secs(60);

/// kubectl as `user` in the tenant's namespace.
fn tenant_kubectl(env: &Enforced, user: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["-n", env.ns.name.as_str()];
    all.extend_from_slice(args);
    env.kubectl_as(user, &all, stdin)
}

fn assert_admitted(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} was refused: {}", stderr(out));
}

/// Asserts that the webhook denied `out` as a rollout of a denied image, with `why` in the
/// message.
fn assert_denied(out: &Output, what: &str, why: &str) {
    let message = stderr(out);
    assert!(!out.status.success(), "{what} was admitted");
    assert!(
        message.contains("denied the request") && message.contains(why),
        "{what}: {message}"
    );
    assert!(message.contains("failed trusted scan"), "{what}: {message}");
}

/// The ReplicaSets of Deployment `app`: (name, spec.replicas, has an owner).
fn replica_sets(env: &Enforced, app: &str) -> Vec<(String, i64, bool)> {
    let out = env.ns.kubectl_ok(&[
        "get",
        "replicasets",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.replicas} {.metadata.ownerReferences[0].kind}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let name = fields.next()?.to_string();
            let replicas = fields.next()?.parse().ok()?;
            let owned = fields.next().is_some_and(|kind| !kind.is_empty());
            Some((name, replicas, owned))
        })
        .collect()
}

/// The names of the pods a selector picks, with their phase.
fn pods(env: &Enforced, selector: &str) -> Vec<(String, String)> {
    let out = env.ns.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let name = fields.next()?.to_string();
            let phase = fields.next()?.to_string();
            // Pods on their way out do not count.
            fields
                .next()
                .is_none_or(str::is_empty)
                .then_some((name, phase))
        })
        .collect()
}

fn running(env: &Enforced, selector: &str) -> usize {
    pods(env, selector)
        .iter()
        .filter(|(_, phase)| phase == "Running")
        .count()
}

#[test]
fn after_the_verdict_turns_what_runs_scales_and_nothing_rolls_out_again() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-rollout", &[]);
    let tenant = env.tenant();
    env.trusted_scan("alpine", "alpine:3.10", ALPINE, PASSED);

    // While alpine passes: a Deployment with two revisions (the first left as an old
    // ReplicaSet at zero), a Deployment stockpiled at zero replicas, a suspended CronJob.
    env.cluster.eventually("alpine to be admitted", WAIT, || {
        tenant_kubectl(
            &env,
            &tenant,
            &["apply", "-f", "-"],
            Some(&deployment("web", "alpine:3.10")),
        )
        .status
        .success()
        .then_some(())
    });
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
        None,
    );
    assert_admitted(&out, "the first revision's rollout");
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["set", "env", "deployment/web", "MODE=b"],
        None,
    );
    assert_admitted(&out, "a template change while alpine passes");
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
        None,
    );
    assert_admitted(&out, "the second revision's rollout");
    let old_revision = env
        .cluster
        .eventually("the old revision at zero", WAIT, || {
            let sets = replica_sets(&env, "web");
            (sets.len() == 2)
                .then(|| sets.into_iter().find(|(_, replicas, _)| *replicas == 0))
                .flatten()
                .map(|(name, _, _)| name)
        });
    let idle = deployment("idle", "alpine:3.10").replace("replicas: 1", "replicas: 0");
    let out = tenant_kubectl(&env, &tenant, &["apply", "-f", "-"], Some(&idle));
    assert_admitted(&out, "a Deployment at zero replicas");
    let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  schedule: \"* * * * *\"\n  suspend: true\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: job, image: \"alpine:3.10\"}]\n";
    let out = tenant_kubectl(&env, &tenant, &["apply", "-f", "-"], Some(cron));
    assert_admitted(&out, "a suspended CronJob");

    // New CVEs: alpine's trusted result turns Failed, as the controller would write it.
    let out = env.write_status(&env.system.name, "alpine", FAILED);
    assert_admitted(&out, "the controller's status write");
    env.cluster.eventually("alpine to be denied", WAIT, || {
        let out = tenant_kubectl(
            &env,
            &tenant,
            &["run", "probe", "--image=alpine:3.10", "--dry-run=server"],
            None,
        );
        (!out.status.success()).then_some(())
    });

    // Availability: scaling what runs reaches its replicas (the ReplicaSet controller's pods
    // are admitted from the template admitted earlier).
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["scale", "deployment", "web", "--replicas=3"],
        None,
    );
    assert_admitted(&out, "kubectl scale of the admitted Deployment");
    env.cluster.eventually("3 ready replicas of web", WAIT, || {
        let ready = env.ns.kubectl_ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        (ready == "3" && running(&env, "app=web") == 3).then_some(())
    });

    // A change to the template, whatever it changes, is decided like a new workload.
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["set", "env", "deployment/web", "MODE=c"],
        None,
    );
    assert_denied(
        &out,
        "kubectl set env",
        "a change to its pod template is decided like a new workload",
    );
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["rollout", "restart", "deployment/web"],
        None,
    );
    assert_denied(
        &out,
        "kubectl rollout restart",
        "a change to its pod template",
    );
    let out = tenant_kubectl(&env, &tenant, &["rollout", "undo", "deployment/web"], None);
    assert_denied(&out, "kubectl rollout undo", "a change to its pod template");

    // A Deployment stockpiled at zero cannot be woken, through the scale subresource or the
    // object.
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["scale", "deployment", "idle", "--replicas=2"],
        None,
    );
    assert_denied(
        &out,
        "kubectl scale of a Deployment at zero",
        "woken from zero replicas",
    );
    let out = tenant_kubectl(
        &env,
        &tenant,
        &[
            "patch",
            "deployment",
            "idle",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ],
        None,
    );
    assert_denied(
        &out,
        "a patch waking a Deployment",
        "woken from zero replicas",
    );

    // A suspended CronJob cannot be resumed into Jobs.
    let out = tenant_kubectl(
        &env,
        &tenant,
        &[
            "patch",
            "cronjob",
            "nightly",
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":false}}"#,
        ],
        None,
    );
    assert_denied(
        &out,
        "resuming the CronJob",
        "resumed from suspended or paused",
    );
    let suspended = env.ns.kubectl_ok(&[
        "get",
        "cronjob",
        "nightly",
        "-o",
        "jsonpath={.spec.suspend}",
    ]);
    assert_eq!(suspended, "true");
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["create", "job", "now", "--from=cronjob/nightly"],
        None,
    );
    assert_denied(&out, "a Job made from the CronJob", "failed trusted scan");

    // Orphaned, the old revision cannot be scaled back up: no pod of it is created.
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["delete", "deployment", "web", "--cascade=orphan"],
        None,
    );
    assert_admitted(&out, "deleting the Deployment, orphaning its ReplicaSets");
    env.cluster
        .eventually("the ReplicaSets orphaned", WAIT, || {
            let sets = replica_sets(&env, "web");
            (sets.len() == 2 && sets.iter().all(|(_, _, owned)| !owned)).then_some(())
        });
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["scale", "replicaset", &old_revision, "--replicas=2"],
        None,
    );
    assert_denied(
        &out,
        "kubectl scale of the old ReplicaSet",
        "a revision scaled up by a user",
    );
    let out = tenant_kubectl(
        &env,
        &tenant,
        &[
            "patch",
            "replicaset",
            &old_revision,
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ],
        None,
    );
    assert_denied(
        &out,
        "a patch scaling the old ReplicaSet",
        "a revision scaled up by a user",
    );
    let hash = env.ns.kubectl_ok(&[
        "get",
        "replicaset",
        &old_revision,
        "-o",
        "jsonpath={.metadata.labels.pod-template-hash}",
    ]);
    assert!(
        !hash.is_empty(),
        "the old revision has no pod-template-hash"
    );
    let replicas = env.ns.kubectl_ok(&[
        "get",
        "replicaset",
        &old_revision,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "0");
    // The orphaned current revision still reschedules what it runs: a lost pod comes back.
    let current = pods(&env, "app=web");
    let (lost, _) = current.first().expect("a pod of web").clone();
    env.ns.kubectl_ok(&["delete", "pod", &lost, "--wait=false"]);
    env.cluster.eventually("the lost pod replaced", WAIT, || {
        let now = pods(&env, "app=web");
        (now.len() == 3 && now.iter().all(|(name, _)| *name != lost)).then_some(())
    });
    // Give the ReplicaSet controller time to act on anything it was allowed to, then look.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        pods(&env, &format!("pod-template-hash={hash}")).is_empty(),
        "the old revision has pods"
    );
}

#[test]
fn an_expired_exception_keeps_what_runs_and_covers_no_new_rollout() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-rollout-ex", &[]);
    let tenant = env.tenant();
    let approver = format!("approver-{}", env.ns.name);
    env.bind(&env.ns.name, &approver, "scangate-exception-approver");
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, FAILED);
    let legacy = deployment("legacy", "busybox:1.32.1");
    env.cluster.eventually("busybox to be denied", WAIT, || {
        let out = tenant_kubectl(
            &env,
            &tenant,
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&legacy),
        );
        (!out.status.success()).then_some(())
    });
    // An approver's exception, for the next 40 seconds: the Deployment is admitted under it.
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(40))
        .expect("in 40 s");
    let exception = format!(
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata: {{name: legacy}}\nspec:\n  images: [busybox]\n  reason: ticket SEC-2\n  expires: \"{expires}\"\n"
    );
    let out = tenant_kubectl(&env, &approver, &["apply", "-f", "-"], Some(&exception));
    assert_admitted(&out, "the approver's exception");
    env.cluster
        .eventually("the exception to admit busybox", WAIT, || {
            tenant_kubectl(&env, &tenant, &["apply", "-f", "-"], Some(&legacy))
                .status
                .success()
                .then_some(())
        });
    env.cluster.eventually("a running pod of legacy", WAIT, || {
        (running(&env, "app=legacy") == 1).then_some(())
    });
    // Expired: it admits nothing new.
    env.cluster
        .eventually("the exception to expire", Duration::from_secs(90), || {
            let out = tenant_kubectl(
                &env,
                &tenant,
                &["run", "probe", "--image=busybox:1.32.1", "--dry-run=server"],
                None,
            );
            (!out.status.success()).then_some(())
        });
    // What runs stays available and scales out.
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["scale", "deployment", "legacy", "--replicas=2"],
        None,
    );
    assert_admitted(&out, "kubectl scale after the exception expired");
    env.cluster
        .eventually("2 running pods of legacy", WAIT, || {
            (running(&env, "app=legacy") == 2).then_some(())
        });
    // A new rollout is not covered.
    let out = tenant_kubectl(
        &env,
        &tenant,
        &["set", "env", "deployment/legacy", "MODE=b"],
        None,
    );
    assert_denied(
        &out,
        "kubectl set env after the exception expired",
        "a change to its pod template is decided like a new workload",
    );
}
