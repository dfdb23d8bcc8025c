//! What the parent and a worker say to each other (a JSON request per line on the worker's
//! stdin, a JSON answer per line on its stdout), and how the parent reads the way a worker
//! ended. Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Bytes, Error, Limits, Result, Seconds};
use crate::policy::CompatInput;

/// What a worker is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "camelCase")]
pub enum Request {
    /// The admission check: compile, then evaluate on scangate's sample reports.
    Check {
        /// Source name of the policy (`<namespace>/<name>.rego`).
        name: String,
        /// The Rego.
        rego: String,
    },
    /// Evaluate the policy on one report.
    Evaluate {
        /// Source name of the policy.
        name: String,
        /// The Rego.
        rego: String,
        /// The shape of `input` the policy expects.
        input: CompatInput,
        /// The normalized report (with its `exceptions`).
        report: Value,
    },
}

impl Request {
    /// The policy's source name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Check { name, .. } | Self::Evaluate { name, .. } => name,
        }
    }
}

/// Where a policy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Parsing, the contract's shape, or regorus's preparation.
    Compile,
    /// Running it (on a report, or on the samples of the admission check).
    Evaluate,
}

/// What a worker answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "camelCase")]
pub enum Answer {
    /// The admission check passed.
    Passed,
    /// The evaluation's deny messages.
    Evaluated {
        /// Sorted and deduplicated.
        deny: Vec<String>,
    },
    /// The policy is wrong; the message names it.
    Rejected {
        /// Where it failed.
        stage: Stage,
        /// regorus's or scangate's message.
        message: String,
    },
    /// regorus's own timer stopped the evaluation.
    TimedOut,
}

/// The signals a worker may end by (Linux numbering).
const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// It was still running at the time limit, and the parent killed it.
    KilledAtDeadline,
}

/// Everything the parent saw of a finished worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub ended: Ended,
    /// Its standard output, up to the most the parent reads.
    pub stdout: Vec<u8>,
    /// Whether it wrote more than that.
    pub stdout_overflowed: bool,
    /// Its standard error, up to the most the parent reads.
    pub stderr: Vec<u8>,
}

/// The most of a worker's standard output the parent reads.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The most of a worker's standard error the parent reads.
pub const MAX_STDERR_BYTES: usize = 16 * 1024;

/// What Rust's runtime prints when an allocation fails, just before it aborts.
const ALLOCATION_FAILED: &str = "memory allocation of";
/// What Rust's runtime prints when a thread overflows its stack, before it aborts.
const STACK_OVERFLOW: &str = "has overflowed its stack";

/// Reads a finished worker: its answer, or the error that names the limit it hit.
pub fn read(finished: &Finished, name: &str, limits: &Limits) -> Result<Answer> {
    let stderr = String::from_utf8_lossy(&finished.stderr);
    let name = name.to_owned();
    match finished.ended {
        Ended::KilledAtDeadline => Err(Error::TimeLimit {
            name,
            limit: Seconds(limits.time),
        }),
        Ended::Signaled(SIGXCPU) => Err(Error::CpuLimit {
            name,
            seconds: limits.cpu_seconds(),
        }),
        Ended::Signaled(SIGABRT) if stderr.contains(ALLOCATION_FAILED) => Err(Error::MemoryLimit {
            name,
            limit: Bytes(limits.memory_bytes),
        }),
        Ended::Signaled(SIGABRT) if stderr.contains(STACK_OVERFLOW) => {
            Err(Error::StackOverflow { name })
        }
        Ended::Signaled(SIGKILL) => Err(Error::Crashed {
            name,
            how: "was killed by SIGKILL (by the system, e.g. its memory limit)".into(),
            stderr: last_line(&stderr),
        }),
        Ended::Signaled(signal) => Err(Error::Crashed {
            name,
            how: format!("was killed by signal {signal}"),
            stderr: last_line(&stderr),
        }),
        Ended::Exited(0) => decode(finished, name),
        Ended::Exited(code) => Err(Error::Crashed {
            name,
            how: format!("exited with status {code}"),
            stderr: last_line(&stderr),
        }),
    }
}

/// The answer of a worker that exited normally.
fn decode(finished: &Finished, name: String) -> Result<Answer> {
    if finished.stdout_overflowed {
        return Err(Error::Garbled {
            name,
            reason: format!("over {}", Bytes(MAX_ANSWER_BYTES as u64)),
        });
    }
    decode_answer(&finished.stdout, &name)
}

/// One answer a worker wrote (a line, or all it wrote before it exited).
pub fn decode_answer(bytes: &[u8], name: &str) -> Result<Answer> {
    serde_json::from_slice(bytes).map_err(|e| Error::Garbled {
        name: name.to_owned(),
        reason: format!("{e}; it starts with {:?}", excerpt(bytes)),
    })
}

/// The last non-empty line of a worker's stderr, shortened.
fn last_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default()
        .trim();
    line.chars().take(MAX_QUOTED_CHARS).collect()
}

/// The first characters of an output, for messages.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(MAX_QUOTED_CHARS)
        .collect()
}

/// The longest excerpt of a worker's output quoted in a message.
const MAX_QUOTED_CHARS: usize = 200;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits {
            memory_bytes: 256 * 1024 * 1024,
            time: Duration::from_secs(2),
            concurrency: 2,
            queue: 4,
            per_tenant: None,
        }
    }

    fn finished(ended: Ended, stdout: &str, stderr: &str) -> Finished {
        Finished {
            ended,
            stdout: stdout.as_bytes().to_vec(),
            stdout_overflowed: false,
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    fn message(result: Result<Answer>) -> String {
        match result {
            Err(e) => e.to_string(),
            Ok(answer) => panic!("expected an error, got {answer:?}"),
        }
    }

    #[test]
    fn requests_and_answers_round_trip_as_tagged_json() -> serde_json::Result<()> {
        let request = Request::Evaluate {
            name: "shop/x.rego".into(),
            rego: "package main".into(),
            input: CompatInput::CycloneDxBom,
            report: json!({"vulnerabilities": []}),
        };
        let text = serde_json::to_value(&request)?;
        assert_eq!(text["task"], "evaluate");
        assert_eq!(serde_json::from_value::<Request>(text)?, request);
        assert_eq!(request.name(), "shop/x.rego");
        let answer = Answer::Rejected {
            stage: Stage::Compile,
            message: "m".into(),
        };
        let text = serde_json::to_value(&answer)?;
        assert_eq!(
            text,
            json!({"answer": "rejected", "stage": "compile", "message": "m"})
        );
        assert_eq!(serde_json::from_value::<Answer>(text)?, answer);
        Ok(())
    }

    #[test]
    fn an_answer_is_read_from_a_clean_exit() {
        let done = finished(
            Ended::Exited(0),
            r#"{"answer":"evaluated","deny":["a"]}"#,
            "",
        );
        assert_eq!(
            read(&done, "shop/x.rego", &limits()).ok(),
            Some(Answer::Evaluated {
                deny: vec!["a".into()]
            })
        );
        let passed = finished(Ended::Exited(0), r#"{"answer":"passed"}"#, "");
        assert_eq!(
            read(&passed, "shop/x.rego", &limits()).ok(),
            Some(Answer::Passed)
        );
    }

    #[test]
    fn a_kill_at_the_deadline_is_the_time_limit() {
        let text = message(read(
            &finished(Ended::KilledAtDeadline, "", ""),
            "shop/x.rego",
            &limits(),
        ));
        assert!(
            text.contains("policy shop/x.rego exceeded the time limit of 2 s"),
            "{text}"
        );
    }

    #[test]
    fn sigxcpu_is_the_cpu_limit() {
        let text = message(read(
            &finished(Ended::Signaled(SIGXCPU), "", ""),
            "shop/x.rego",
            &limits(),
        ));
        assert!(
            text.contains("exceeded the CPU-time limit of 3 s"),
            "{text}"
        );
    }

    #[test]
    fn an_abort_after_a_failed_allocation_is_the_memory_limit() {
        let stderr = "memory allocation of 16000000000000 bytes failed\n";
        let text = message(read(
            &finished(Ended::Signaled(SIGABRT), "", stderr),
            "shop/x.rego",
            &limits(),
        ));
        assert!(
            text.contains("policy shop/x.rego exceeded the memory limit of 256 MiB"),
            "{text}"
        );
    }

    #[test]
    fn a_stack_overflow_is_named() {
        let stderr =
            "\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n";
        assert!(matches!(
            read(
                &finished(Ended::Signaled(SIGABRT), "", stderr),
                "x",
                &limits()
            ),
            Err(Error::StackOverflow { .. })
        ));
    }

    #[test]
    fn other_deaths_are_crashes_quoting_stderr() {
        let text = message(read(
            &finished(Ended::Signaled(11), "", "something\nlast words\n\n"),
            "shop/x.rego",
            &limits(),
        ));
        assert!(text.contains("was killed by signal 11"), "{text}");
        assert!(text.contains("\"last words\""), "{text}");
        let text = message(read(
            &finished(Ended::Signaled(SIGABRT), "", "no clue"),
            "x",
            &limits(),
        ));
        assert!(text.contains("signal 6"), "{text}");
        let text = message(read(
            &finished(Ended::Exited(3), "", "error: bad request"),
            "x",
            &limits(),
        ));
        assert!(text.contains("exited with status 3"), "{text}");
        assert!(text.contains("bad request"), "{text}");
        let text = message(read(
            &finished(Ended::Signaled(SIGKILL), "", ""),
            "x",
            &limits(),
        ));
        assert!(text.contains("SIGKILL"), "{text}");
        assert!(!text.contains("it said"), "{text}");
    }

    #[test]
    fn garbage_is_an_unreadable_answer() {
        let text = message(read(
            &finished(Ended::Exited(0), "hello, world", ""),
            "shop/x.rego",
            &limits(),
        ));
        assert!(text.contains("unreadable answer"), "{text}");
        assert!(text.contains("hello, world"), "{text}");
        let mut big = finished(Ended::Exited(0), "{\"answer\":", "");
        big.stdout_overflowed = true;
        let text = message(read(&big, "x", &limits()));
        assert!(text.contains("unreadable answer (over 4 MiB)"), "{text}");
        let empty = message(read(&finished(Ended::Exited(0), "", ""), "x", &limits()));
        assert!(empty.contains("unreadable answer"), "{empty}");
    }
}
