//! The parent's side: a bounded pool of policy workers, awaited without blocking the runtime.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::fair::{LaneLimits, Lanes, Requester};
use super::protocol::{self, Answer, Ended, Finished, MAX_ANSWER_BYTES, MAX_STDERR_BYTES};
use super::{Error, Limits, Request, Result, Seconds};
use crate::policy::{CompatInput, Evaluation};

/// The hidden subcommand that runs a worker.
pub const WORKER_COMMAND: &str = "policy-worker";

/// Runs policy checks and evaluations in worker processes: trusted work and tenants' work each
/// at most `concurrency` at once and `queue` more waiting, tenants in turn and each within
/// `per_tenant`; refuses the rest at once. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Sandbox {
    program: PathBuf,
    limits: Limits,
    lanes: Arc<Lanes>,
}

impl Sandbox {
    /// A pool whose workers run `program policy-worker …` (the scangate binary).
    #[must_use]
    pub fn new(program: PathBuf, limits: Limits) -> Self {
        let lanes = Lanes::new(LaneLimits {
            running: limits.concurrency.max(1),
            waiting: limits.queue,
            per_tenant: limits.per_tenant,
        });
        Self {
            program,
            limits,
            lanes,
        }
    }

    /// A pool whose workers run this very program.
    pub fn for_this_program(limits: Limits) -> Result<Self> {
        let program = std::env::current_exe().map_err(Error::CurrentExe)?;
        Ok(Self::new(program, limits))
    }

    /// The limits every worker runs under.
    #[must_use]
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The admission check of a ScanPolicy's Rego: it compiles and runs on the sample reports.
    pub async fn check(&self, requester: &Requester, name: &str, rego: &str) -> Result<()> {
        let request = Request::Check {
            name: name.to_owned(),
            rego: rego.to_owned(),
        };
        match self.run(requester, &request).await? {
            Answer::Passed => Ok(()),
            other => Err(unexpected(name, other)),
        }
    }

    /// Evaluates a policy on a normalized report.
    pub async fn evaluate(
        &self,
        requester: &Requester,
        name: &str,
        rego: &str,
        input: CompatInput,
        report: Value,
    ) -> Result<Evaluation> {
        let request = Request::Evaluate {
            name: name.to_owned(),
            rego: rego.to_owned(),
            input,
            report,
        };
        match self.run(requester, &request).await? {
            Answer::Evaluated { deny } => Ok(Evaluation { deny }),
            other => Err(unexpected(name, other)),
        }
    }

    /// Waits for a worker of the requester's lane (or refuses at once), runs it, reads its
    /// answer. Policy errors and regorus's own timeout come back as errors.
    async fn run(&self, requester: &Requester, request: &Request) -> Result<Answer> {
        let name = request.name();
        let _worker = self.lanes.acquire(requester).await?;
        let body = serde_json::to_vec(request).map_err(|cause| Error::Encode {
            name: name.to_owned(),
            cause,
        })?;
        let finished = self.spawn(name, &body).await?;
        match protocol::read(&finished, name, &self.limits)? {
            Answer::Rejected { stage, message } => Err(Error::Rejected { stage, message }),
            Answer::TimedOut => Err(Error::TimeLimit {
                name: name.to_owned(),
                limit: Seconds(self.limits.time),
            }),
            answer => Ok(answer),
        }
    }

    /// Starts a worker, gives it the request, and collects its output until it ends or the
    /// time limit passes (then kills it).
    async fn spawn(&self, name: &str, body: &[u8]) -> Result<Finished> {
        let spawn_error = |cause| Error::Spawn {
            name: name.to_owned(),
            program: self.program.clone(),
            cause,
        };
        let mut child = Command::new(&self.program)
            .arg(WORKER_COMMAND)
            .arg(format!("--memory-bytes={}", self.limits.memory_bytes))
            .arg(format!("--cpu-seconds={}", self.limits.cpu_seconds()))
            .arg(format!("--time-limit-ms={}", self.limits.time.as_millis()))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_error(std::io::Error::other(
                "the worker's pipes were not opened",
            )));
        };
        let write = async move {
            // A worker that dies early closes its stdin; how it ended says why.
            let _ = stdin.write_all(body).await;
        };
        let work = async {
            let ((), out, err, status) = tokio::join!(
                write,
                read_bounded(stdout, MAX_ANSWER_BYTES),
                read_bounded(stderr, MAX_STDERR_BYTES),
                child.wait(),
            );
            (out, err, status)
        };
        let ((stdout, stdout_overflowed), (stderr, _), status) =
            match tokio::time::timeout(self.limits.time, work).await {
                Ok(done) => done,
                Err(_) => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Ok(Finished {
                        ended: Ended::KilledAtDeadline,
                        stdout: Vec::new(),
                        stdout_overflowed: false,
                        stderr: Vec::new(),
                    });
                }
            };
        let status = status.map_err(spawn_error)?;
        Ok(Finished {
            ended: ended(status),
            stdout,
            stdout_overflowed,
            stderr,
        })
    }
}

/// How a process ended.
fn ended(status: std::process::ExitStatus) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Exited(code),
        (None, Some(signal)) => Ended::Signaled(signal),
        (None, None) => Ended::Exited(-1),
    }
}

/// Reads a pipe to its end, keeping at most `limit` bytes; whether there was more.
async fn read_bounded(mut pipe: impl AsyncRead + Unpin, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut overflowed = false;
    let mut buffer = [0u8; 8192];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return (kept, overflowed),
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                let take = n.min(room);
                kept.extend_from_slice(buffer.get(..take).unwrap_or_default());
                overflowed |= take < n;
            }
        }
    }
}

/// An answer of the wrong kind for the request.
fn unexpected(name: &str, answer: Answer) -> Error {
    Error::Garbled {
        name: name.to_owned(),
        reason: format!("an answer of the wrong kind: {answer:?}"),
    }
}
