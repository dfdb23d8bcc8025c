//! `scangate policy-worker`: the child side. It lowers its own limits before reading anything,
//! reads one [`Request`] from stdin, writes one [`Answer`] on stdout, and exits 0. A request it
//! cannot read is exit status 3 with the reason on stderr.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use rlimit::Resource;

use super::protocol::{Answer, Request, Stage};
use crate::policy::{self, CompatInput, CompiledPolicy, PolicyOptions};

/// The exit status of a worker that could not set its limits or read its request.
pub const EXIT_BAD_REQUEST: u8 = 3;

/// The limits a worker sets on itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLimits {
    /// `RLIMIT_DATA`, in bytes.
    pub memory_bytes: u64,
    /// `RLIMIT_CPU` soft limit, in seconds (SIGXCPU); the hard limit is one second more.
    pub cpu_seconds: u64,
    /// regorus's own timer, per evaluation.
    pub time: Duration,
}

/// Runs the worker: limits, request, answer.
#[must_use]
pub fn run(limits: WorkerLimits) -> ExitCode {
    if let Err(e) = set_limits(&limits) {
        eprintln!("error: cannot set the policy worker's limits: {e}");
        return ExitCode::from(EXIT_BAD_REQUEST);
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("error: cannot read the request: {e}");
        return ExitCode::from(EXIT_BAD_REQUEST);
    }
    let request: Request = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("error: the request is not a policy worker request: {e}");
            return ExitCode::from(EXIT_BAD_REQUEST);
        }
    };
    drop(bytes);
    let answer = answer(request, limits.time);
    let written = serde_json::to_vec(&answer)
        .map_err(std::io::Error::from)
        .and_then(|json| {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&json)?;
            stdout.flush()
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the answer: {e}");
            ExitCode::from(EXIT_BAD_REQUEST)
        }
    }
}

/// Lowers this process's memory, CPU and core-dump limits, and makes it the OOM killer's first
/// choice, before the webhook or the controller, should the container run out of memory.
fn set_limits(limits: &WorkerLimits) -> std::io::Result<()> {
    // Best effort: without /proc (not Linux, or not mounted) the rlimits still hold.
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    rlimit::setrlimit(Resource::CORE, 0, 0)?;
    rlimit::setrlimit(
        Resource::CPU,
        limits.cpu_seconds,
        limits.cpu_seconds.saturating_add(1),
    )?;
    rlimit::setrlimit(Resource::DATA, limits.memory_bytes, limits.memory_bytes)
}

/// Does what the request asks, with regorus's timer at `time` per evaluation.
#[must_use]
pub fn answer(request: Request, time: Duration) -> Answer {
    match request {
        Request::Check { name, rego } => {
            let options = PolicyOptions::default()
                .with_timeout(time)
                .with_input(CompatInput::detect(&rego));
            match policy::check_contract_with(&name, &rego, options) {
                Ok(_) => Answer::Passed,
                Err(e) => refusal(&e),
            }
        }
        Request::Evaluate {
            name,
            rego,
            input,
            report,
        } => {
            let options = PolicyOptions::default()
                .with_timeout(time)
                .with_input(input);
            match CompiledPolicy::compile(&name, &rego, options)
                .and_then(|policy| policy.evaluate(&report))
            {
                Ok(evaluation) => Answer::Evaluated {
                    deny: evaluation.deny,
                },
                Err(e) => refusal(&e),
            }
        }
    }
}

/// The answer for a policy error.
fn refusal(error: &policy::Error) -> Answer {
    use policy::Error as E;
    match error {
        E::Timeout { .. } => Answer::TimedOut,
        E::SampleReport { cause, .. } if matches!(**cause, E::Timeout { .. }) => Answer::TimedOut,
        E::Syntax { .. }
        | E::NotPackageMain { .. }
        | E::MissingDeny { .. }
        | E::DenyIsAFunction { .. }
        | E::Compile { .. } => Answer::Rejected {
            stage: Stage::Compile,
            message: error.to_string(),
        },
        E::Evaluation { .. }
        | E::Panic { .. }
        | E::DenyNotACollection { .. }
        | E::DenyNotStrings { .. }
        | E::Input { .. }
        | E::SampleReport { .. } => Answer::Rejected {
            stage: Stage::Evaluate,
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STRICT: &str = "package main\nimport rego.v1\n\
        deny contains msg if {\n\tsome v in input.vulnerabilities\n\tv.severity == \"critical\"\n\tmsg := v.id\n}\n";

    fn check(rego: &str) -> Answer {
        answer(
            Request::Check {
                name: "shop/x.rego".into(),
                rego: rego.into(),
            },
            Duration::from_secs(2),
        )
    }

    #[test]
    fn a_good_policy_passes_the_check() {
        assert_eq!(check(STRICT), Answer::Passed);
    }

    #[test]
    fn a_broken_policy_is_rejected_at_compile() {
        match check("package other\nimport rego.v1\ndeny contains 1 if true\n") {
            Answer::Rejected {
                stage: Stage::Compile,
                message,
            } => assert!(message.contains("package main"), "{message}"),
            other => panic!("{other:?}"),
        }
        match check("package main\nimport rego.v1\ndeny contains 1 if true\n") {
            Answer::Rejected {
                stage: Stage::Evaluate,
                message,
            } => assert!(message.contains("a number (1)"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn evaluation_gives_the_deny_messages() {
        let request = Request::Evaluate {
            name: "shop/x.rego".into(),
            rego: STRICT.into(),
            input: CompatInput::Normalized,
            report: json!({"vulnerabilities": [
                {"id": "CVE-2", "severity": "critical"},
                {"id": "CVE-1", "severity": "critical"},
                {"id": "CVE-3", "severity": "low"},
            ]}),
        };
        assert_eq!(
            answer(request, Duration::from_secs(2)),
            Answer::Evaluated {
                deny: vec!["CVE-1".into(), "CVE-2".into()]
            }
        );
    }

    #[test]
    fn regorus_timer_is_a_timeout() {
        let slow = "package main\nimport rego.v1\n\
            deny contains msg if {\n\tn := count([1 | some a in numbers.range(1, 100000); some b in numbers.range(1, 100000)])\n\tmsg := sprintf(\"%d\", [n])\n}\n";
        let request = Request::Check {
            name: "shop/slow.rego".into(),
            rego: slow.into(),
        };
        assert_eq!(answer(request, Duration::from_millis(50)), Answer::TimedOut);
    }
}
