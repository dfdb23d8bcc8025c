//! `scangate policy-worker`: the child side. It lowers its own limits before reading anything,
//! then answers requests, one JSON [`Request`] per line on stdin, one JSON [`Answer`] per line
//! on stdout, until stdin ends; then it exits 0. It keeps the policies it compiled for
//! evaluations ([`Session`]), so a policy is compiled once per worker, not once per report.
//! Before each request it sets its CPU-time backstop to what it has used plus the limit of one
//! request. A request it cannot read is exit status 3 with the reason on stderr.

use std::collections::HashMap;
use std::io::{BufRead, Write};
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
    /// The `RLIMIT_CPU` soft limit (SIGXCPU) of one request, in seconds, above what the worker
    /// used before it.
    pub cpu_seconds: u64,
    /// regorus's own timer, per evaluation.
    pub time: Duration,
}

/// Runs the worker: limits, then requests and answers until stdin ends.
#[must_use]
pub fn run(limits: WorkerLimits) -> ExitCode {
    if let Err(e) = set_limits(&limits) {
        eprintln!("error: cannot set the policy worker's limits: {e}");
        return ExitCode::from(EXIT_BAD_REQUEST);
    }
    let mut session = Session::new(limits.time);
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: cannot read the request: {e}");
                return ExitCode::from(EXIT_BAD_REQUEST);
            }
        }
        // Without its CPU time to count from, the worker answers this request and ends.
        let counted = set_cpu_backstop(limits.cpu_seconds);
        let request: Request = match serde_json::from_slice(&line) {
            Ok(request) => request,
            Err(e) => {
                eprintln!("error: the request is not a policy worker request: {e}");
                return ExitCode::from(EXIT_BAD_REQUEST);
            }
        };
        let answer = session.answer(request);
        let written = serde_json::to_vec(&answer)
            .map_err(std::io::Error::from)
            .and_then(|mut json| {
                json.push(b'\n');
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&json)?;
                stdout.flush()
            });
        if let Err(e) = written {
            eprintln!("error: cannot write the answer: {e}");
            return ExitCode::from(EXIT_BAD_REQUEST);
        }
        if counted.is_err() {
            return ExitCode::SUCCESS;
        }
    }
}

/// Lowers this process's memory and core-dump limits, and makes it the OOM killer's first
/// choice, before the webhook or the controller, should the container run out of memory.
fn set_limits(limits: &WorkerLimits) -> std::io::Result<()> {
    // Best effort: without /proc (not Linux, or not mounted) the rlimits still hold.
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    rlimit::setrlimit(Resource::CORE, 0, 0)?;
    // The first request's backstop, should its CPU time not be readable.
    let (_, hard) = rlimit::getrlimit(Resource::CPU)?;
    rlimit::setrlimit(Resource::CPU, limits.cpu_seconds.min(hard), hard)?;
    rlimit::setrlimit(Resource::DATA, limits.memory_bytes, limits.memory_bytes)
}

/// Sets the CPU-time soft limit to the CPU time used so far plus `seconds`: the next request
/// gets `seconds` of CPU, then SIGXCPU ends the worker. The hard limit stays, so the soft one
/// can move up again for the request after.
fn set_cpu_backstop(seconds: u64) -> std::io::Result<()> {
    let used = cpu_seconds_used()?;
    let (_, hard) = rlimit::getrlimit(Resource::CPU)?;
    rlimit::setrlimit(Resource::CPU, used.saturating_add(seconds).min(hard), hard)
}

/// This process's CPU time (user and system), in whole seconds rounded up, from
/// `/proc/self/stat` (in USER_HZ, 100 per second on Linux).
fn cpu_seconds_used() -> std::io::Result<u64> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let ticks = parse_cpu_ticks(&stat)
        .ok_or_else(|| std::io::Error::other("/proc/self/stat has no CPU times"))?;
    Ok(ticks.div_ceil(USER_HZ))
}

/// `utime + stime` of a `/proc/PID/stat` line: fields 14 and 15, counted after the command
/// name (which may hold spaces and parentheses, so after its last `)`).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

/// The most compiled policies a worker keeps; past it, it forgets them all and starts again.
const MAX_COMPILED: usize = 64;

/// A worker's answers, with the policies it compiled for evaluations (by source name, Rego and
/// input shape), and regorus's timer at `time` per evaluation.
#[derive(Debug)]
pub struct Session {
    time: Duration,
    compiled: HashMap<(String, String, CompatInput), CompiledPolicy>,
}

impl Session {
    #[must_use]
    pub fn new(time: Duration) -> Self {
        Self {
            time,
            compiled: HashMap::new(),
        }
    }

    /// Does what the request asks.
    pub fn answer(&mut self, request: Request) -> Answer {
        match request {
            Request::Check { name, rego } => {
                let options = PolicyOptions::default()
                    .with_timeout(self.time)
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
            } => match self.compiled(name, rego, input) {
                Ok(policy) => match policy.evaluate(&report) {
                    Ok(evaluation) => Answer::Evaluated {
                        deny: evaluation.deny,
                    },
                    Err(e) => refusal(&e),
                },
                Err(e) => refusal(&e),
            },
        }
    }

    /// The policy compiled, from earlier requests or now.
    fn compiled(
        &mut self,
        name: String,
        rego: String,
        input: CompatInput,
    ) -> policy::Result<&CompiledPolicy> {
        let key = (name, rego, input);
        if !self.compiled.contains_key(&key) {
            let options = PolicyOptions::default()
                .with_timeout(self.time)
                .with_input(input);
            let policy = CompiledPolicy::compile(&key.0, &key.1, options)?;
            if self.compiled.len() >= MAX_COMPILED {
                self.compiled.clear();
            }
            self.compiled.insert(key.clone(), policy);
        }
        self.compiled
            .get(&key)
            .ok_or_else(|| policy::Error::Compile {
                name: key.0.clone(),
                message: "the compiled policy was not kept".into(),
            })
    }
}

/// Answers one request in a session of its own (the tests' and examples' way in).
#[must_use]
pub fn answer(request: Request, time: Duration) -> Answer {
    Session::new(time).answer(request)
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
    fn a_session_compiles_a_policy_once_and_keeps_evaluating_it() {
        let mut session = Session::new(Duration::from_secs(2));
        let evaluate = |session: &mut Session, severity: &str| {
            session.answer(Request::Evaluate {
                name: "shop/x.rego".into(),
                rego: STRICT.into(),
                input: CompatInput::Normalized,
                report: json!({"vulnerabilities": [{"id": "CVE-1", "severity": severity}]}),
            })
        };
        assert_eq!(
            evaluate(&mut session, "critical"),
            Answer::Evaluated {
                deny: vec!["CVE-1".into()]
            }
        );
        assert_eq!(session.compiled.len(), 1);
        assert_eq!(
            evaluate(&mut session, "low"),
            Answer::Evaluated { deny: vec![] }
        );
        assert_eq!(session.compiled.len(), 1, "compiled once");
    }

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        let stat = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 300 0 0 0 250 51 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(301));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(cpu_seconds_used().is_ok());
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
