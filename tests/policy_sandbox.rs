//! The policy sandbox with real worker processes (the scangate binary, and small stand-in
//! programs that misbehave): every refusal names its limit, and no worker failure panics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use scangate::policy::CompatInput;
use scangate::sandbox::{Error, Limits, Requester, Sandbox, Stage};
use serde_json::json;

const SCANGATE: &str = env!("CARGO_BIN_EXE_scangate");

const STRICT: &str = "package main\nimport rego.v1\n\
    deny contains msg if {\n\tsome v in input.vulnerabilities\n\tv.severity == \"critical\"\n\tmsg := v.id\n}\n";

/// The policy of the issue: a 24 TB allocation in one builtin call.
const HUGE_RANGE: &str = "package main\nimport rego.v1\ndeny contains \"x\" if count(numbers.range(1, 1000000000000)) > 0\n";

/// A hundred million numbers (2.4 GB): far past the limit, though a machine might grant it.
const LARGE_RANGE: &str =
    "package main\nimport rego.v1\ndeny contains \"x\" if count(numbers.range(1, 100000000)) > 0\n";

/// Twenty million numbers (480 MB): past the limit, yet within the 1 GiB arena mimalloc maps at
/// its start, so it is refused only because a worker keeps the system allocator.
const MID_RANGE: &str =
    "package main\nimport rego.v1\ndeny contains \"x\" if count(numbers.range(1, 20000000)) > 0\n";

/// Ten billion iterations of nested comprehensions.
const CPU_BOMB: &str = "package main\nimport rego.v1\n\
    deny contains msg if {\n\tn := count([1 | some a in numbers.range(1, 100000); some b in numbers.range(1, 100000)])\n\tmsg := sprintf(\"%d\", [n])\n}\n";

fn limits() -> Limits {
    Limits {
        memory_bytes: 256 * 1024 * 1024,
        time: Duration::from_secs(2),
        concurrency: 2,
        queue: 2,
        per_tenant: None,
    }
}

/// A tenant's checks (the lane most tests exercise).
fn shop() -> Requester {
    Requester::Tenant("shop".into())
}

fn scangate() -> Sandbox {
    Sandbox::new(SCANGATE.into(), limits())
}

/// An executable shell script standing in for the worker.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    path
}

fn message<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

#[tokio::test]
async fn a_good_policy_passes_and_evaluates() {
    let sandbox = scangate();
    assert!(
        sandbox
            .check(&shop(), "shop/strict.rego", STRICT)
            .await
            .is_ok()
    );
    let report = json!({"vulnerabilities": [{"id": "CVE-1", "severity": "critical"}]});
    let evaluation = sandbox
        .evaluate(
            &shop(),
            "shop/strict.rego",
            STRICT,
            CompatInput::Normalized,
            report,
        )
        .await;
    assert_eq!(evaluation.ok().map(|e| e.deny), Some(vec!["CVE-1".into()]));
}

#[tokio::test]
async fn a_broken_policy_is_rejected_with_its_own_message() {
    match scangate()
        .check(&shop(), "shop/x.rego", "package main\ndeny contains x if {")
        .await
    {
        Err(Error::Rejected {
            stage: Stage::Compile,
            message,
        }) => assert!(message.contains("shop/x.rego"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn memory_bombs_are_refused_naming_the_memory_limit() {
    let sandbox = scangate();
    for rego in [HUGE_RANGE, LARGE_RANGE, MID_RANGE] {
        let text = message(sandbox.check(&shop(), "shop/bomb.rego", rego).await);
        assert!(
            text.contains("policy shop/bomb.rego exceeded the memory limit of 256 MiB"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_cpu_bomb_is_refused_naming_the_time_limit() {
    let text = message(scangate().check(&shop(), "shop/cpu.rego", CPU_BOMB).await);
    assert!(
        text.contains("policy shop/cpu.rego exceeded the time limit of 2 s"),
        "{text}"
    );
}

#[tokio::test]
async fn a_worker_still_running_at_the_deadline_is_killed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sleeper = script(dir.path(), "sleeper", "exec sleep 600");
    let sandbox = Sandbox::new(sleeper, limits());
    let text = message(sandbox.check(&shop(), "shop/x.rego", STRICT).await);
    assert!(text.contains("exceeded the time limit of 2 s"), "{text}");
}

#[tokio::test]
async fn workers_that_misbehave_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cases = [
        (
            "garbage",
            "read -r request; echo 'hello, world'",
            "unreadable answer",
        ),
        (
            "wrong-kind",
            "read -r request; echo '{\"answer\":\"evaluated\",\"deny\":[]}'",
            "wrong kind",
        ),
        (
            "exits",
            "echo 'error: no' >&2; exit 7",
            "exited with status 7",
        ),
        ("segfaults", "kill -SEGV $$", "was killed by signal 11"),
        ("oom-killed", "kill -KILL $$", "SIGKILL"),
        ("cpu", "kill -XCPU $$", "exceeded the CPU-time limit of 3 s"),
    ];
    for (name, body, expected) in cases {
        let sandbox = Sandbox::new(script(dir.path(), name, body), limits());
        let text = message(sandbox.check(&shop(), "shop/x.rego", STRICT).await);
        assert!(text.contains(expected), "{name}: {text}");
    }
    let missing = Sandbox::new(dir.path().join("absent"), limits());
    let text = message(missing.check(&shop(), "shop/x.rego", STRICT).await);
    assert!(text.contains("cannot run the policy worker"), "{text}");
}

/// A pool whose worker sleeps until its 1 s time limit, each user at most `per_tenant` checks.
fn sleepers(dir: &Path, per_tenant: Option<usize>) -> std::sync::Arc<Sandbox> {
    let sleeper = script(dir, "sleeper", "exec sleep 600");
    std::sync::Arc::new(Sandbox::new(
        sleeper,
        Limits {
            time: Duration::from_secs(1),
            per_tenant,
            ..limits()
        },
    ))
}

/// Starts a check of `sandbox` as `requester`.
fn check(
    sandbox: &std::sync::Arc<Sandbox>,
    requester: Requester,
    i: usize,
) -> tokio::task::JoinHandle<Result<(), Error>> {
    let sandbox = sandbox.clone();
    tokio::spawn(async move {
        sandbox
            .check(&requester, &format!("shop/p{i}.rego"), STRICT)
            .await
    })
}

#[tokio::test]
async fn beyond_the_queue_checks_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sandbox = sleepers(dir.path(), None);
    // 2 running + 2 waiting are taken; the other 6 are refused.
    let checks: Vec<_> = (0..10).map(|i| check(&sandbox, shop(), i)).collect();
    let mut busy = 0;
    let mut timed_out = 0;
    for check in checks {
        match check.await {
            Ok(Err(Error::Busy { running, waiting })) => {
                assert_eq!((running, waiting), (2, 2));
                busy += 1;
            }
            Ok(Err(Error::TimeLimit { .. })) => timed_out += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((busy, timed_out), (6, 4));
}

#[tokio::test]
async fn one_users_checks_cannot_hold_up_others_or_the_admins() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sandbox = sleepers(dir.path(), Some(2));
    let check = |requester, i| check(&sandbox, requester, i);
    let mallory = Requester::Tenant("mallory".into());
    let floods: Vec<_> = (0..16).map(|i| check(mallory.clone(), i)).collect();
    tokio::task::yield_now().await;
    let admin = check(Requester::Trusted, 100);
    let alice = check(Requester::Tenant("alice".into()), 101);
    let (mut refused, mut ran) = (0, 0);
    for flood in floods {
        match flood.await {
            Ok(Err(Error::TenantBusy { tenant, most })) => {
                assert_eq!((tenant.as_str(), most), ("mallory", 2));
                refused += 1;
            }
            Ok(Err(Error::TimeLimit { .. })) => ran += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((refused, ran), (14, 2));
    // The admin's check and another user's got a worker (the stand-in then hits its time limit).
    for other in [admin, alice] {
        match other.await {
            Ok(Err(Error::TimeLimit { .. })) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_worker_answers_again_until_it_fails_and_lanes_keep_their_own() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Answers with how many requests it has read; sleeps past the time limit on the third.
    let counter = script(
        dir.path(),
        "counter",
        "n=0\nwhile read -r request; do n=$((n+1)); [ $n = 3 ] && exec sleep 600; \
         echo \"{\\\"answer\\\":\\\"evaluated\\\",\\\"deny\\\":[\\\"$n\\\"]}\"; done",
    );
    let sandbox = Sandbox::new(counter, limits());
    let evaluate = |requester: Requester| {
        let sandbox = &sandbox;
        async move {
            sandbox
                .evaluate(
                    &requester,
                    "shop/x.rego",
                    STRICT,
                    CompatInput::Normalized,
                    json!({}),
                )
                .await
                .map(|e| e.deny)
        }
    };
    let seen = |n: &str| vec![n.to_string()];
    assert_eq!(evaluate(shop()).await.ok(), Some(seen("1")));
    assert_eq!(
        evaluate(shop()).await.ok(),
        Some(seen("2")),
        "the same worker"
    );
    // Trusted work never runs in a tenant's worker.
    assert_eq!(evaluate(Requester::Trusted).await.ok(), Some(seen("1")));
    let text = message(evaluate(shop()).await);
    assert!(text.contains("exceeded the time limit of 2 s"), "{text}");
    assert_eq!(evaluate(shop()).await.ok(), Some(seen("1")), "a new worker");
}

#[tokio::test]
async fn a_real_worker_killed_by_a_limit_is_replaced() {
    let sandbox = scangate();
    let report = json!({"vulnerabilities": [{"id": "CVE-1", "severity": "critical"}]});
    let shop = shop();
    let evaluate = |rego: &'static str| {
        sandbox.evaluate(
            &shop,
            "shop/x.rego",
            rego,
            CompatInput::Normalized,
            report.clone(),
        )
    };
    assert_eq!(
        evaluate(STRICT).await.ok().map(|e| e.deny),
        Some(vec!["CVE-1".into()])
    );
    let text = message(evaluate(HUGE_RANGE).await);
    assert!(
        text.contains("exceeded the memory limit of 256 MiB"),
        "{text}"
    );
    assert_eq!(
        evaluate(STRICT).await.ok().map(|e| e.deny),
        Some(vec!["CVE-1".into()])
    );
}
