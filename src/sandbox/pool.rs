//! The parent's side: a bounded pool of policy workers, awaited without blocking the runtime.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use super::fair::{ByLane, LaneLimits, Lanes, Requester};
use super::protocol::{self, Answer, Ended, Finished, MAX_ANSWER_BYTES, MAX_STDERR_BYTES};
use super::{Error, Limits, Request, Result, SYSTEM_ALLOCATOR_ENV, Seconds};
use crate::policy::{CompatInput, Evaluation};

/// The hidden subcommand that runs a worker.
pub const WORKER_COMMAND: &str = "policy-worker";

/// Runs policy checks and evaluations in long-lived worker processes (each answers requests
/// one at a time and keeps the policies it compiled; one that hits a limit or misbehaves is
/// killed and replaced): trusted work and tenants' work each
/// at most `concurrency` at once and `queue` more waiting, tenants in turn and each within
/// `per_tenant`; refuses the rest at once. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Sandbox {
    program: PathBuf,
    limits: Limits,
    lanes: Arc<Lanes>,
    /// Workers waiting for their next request, per lane, so a trusted evaluation never runs in
    /// a process a tenant's policy ran in.
    idle: ByLane<Mutex<Vec<Worker>>>,
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
            idle: ByLane::default(),
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

    /// Waits for a worker of the requester's lane (or refuses at once), asks it, reads its
    /// answer. Policy errors and regorus's own timeout come back as errors.
    async fn run(&self, requester: &Requester, request: &Request) -> Result<Answer> {
        let name = request.name();
        let _turn = self.lanes.acquire(requester).await?;
        let mut body = serde_json::to_vec(request).map_err(|cause| Error::Encode {
            name: name.to_owned(),
            cause,
        })?;
        body.push(b'\n');
        let idle = self.idle.of(requester);
        let worker = match idle.lock().ok().and_then(|mut workers| workers.pop()) {
            Some(worker) => worker,
            None => self.spawn(name)?,
        };
        let (answer, worker) = worker.ask(&body, name, &self.limits).await;
        if let Some(worker) = worker
            && let Ok(mut workers) = idle.lock()
        {
            workers.push(worker);
        }
        match answer? {
            Answer::Rejected { stage, message } => Err(Error::Rejected { stage, message }),
            Answer::TimedOut => Err(Error::TimeLimit {
                name: name.to_owned(),
                limit: Seconds(self.limits.time),
            }),
            answer => Ok(answer),
        }
    }

    /// Starts a worker with the pool's limits.
    fn spawn(&self, name: &str) -> Result<Worker> {
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
            .env(OsStr::from_bytes(SYSTEM_ALLOCATOR_ENV.to_bytes()), "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_error(std::io::Error::other(
                "the worker's pipes were not opened",
            )));
        };
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            // Read all along, so a worker that writes there never blocks on a full pipe.
            stderr: tokio::spawn(read_bounded(stderr, MAX_STDERR_BYTES)),
            answered: 0,
        })
    }
}

/// The most requests one worker answers before it is replaced (memory a long life leaves
/// behind is returned with the process).
const MAX_ANSWERS_PER_WORKER: u32 = 10_000;

/// How long a worker that closed its output may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A running worker process.
#[derive(Debug)]
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: JoinHandle<(Vec<u8>, bool)>,
    answered: u32,
}

impl Worker {
    /// Sends one request line and reads one answer line within the time limit. The worker
    /// comes back when it answered and may answer again; one that was killed, died, or said
    /// something that is not an answer is gone, and how it ended is the error.
    async fn ask(
        mut self,
        body: &[u8],
        name: &str,
        limits: &Limits,
    ) -> (Result<Answer>, Option<Self>) {
        let mut line = Vec::new();
        let exchange = async {
            // A worker that died closed its stdin; reading its output then says how it ended.
            let _ = self.stdin.write_all(body).await;
            let _ = self.stdin.flush().await;
            let limit = u64::try_from(MAX_ANSWER_BYTES).unwrap_or(u64::MAX);
            (&mut self.stdout)
                .take(limit.saturating_add(1))
                .read_until(b'\n', &mut line)
                .await
        };
        let read = tokio::time::timeout(limits.time, exchange).await;
        let complete = line.last() == Some(&b'\n');
        match read {
            Err(_) => {
                self.kill().await;
                let finished = Finished {
                    ended: Ended::KilledAtDeadline,
                    stdout: Vec::new(),
                    stdout_overflowed: false,
                    stderr: Vec::new(),
                };
                (protocol::read(&finished, name, limits), None)
            }
            Ok(Ok(_)) if complete => match protocol::decode_answer(&line, name) {
                Ok(answer) => {
                    self.answered += 1;
                    let again = self.answered < MAX_ANSWERS_PER_WORKER;
                    (Ok(answer), again.then_some(self))
                }
                Err(garbled) => {
                    self.kill().await;
                    (Err(garbled), None)
                }
            },
            Ok(_) => {
                let overflowed = line.len() > MAX_ANSWER_BYTES;
                let finished = self.ended(line, overflowed).await;
                (protocol::read(&finished, name, limits), None)
            }
        }
    }

    /// How a worker that stopped answering ended, with what it wrote.
    async fn ended(mut self, stdout: Vec<u8>, stdout_overflowed: bool) -> Finished {
        let ended = match tokio::time::timeout(EXIT_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => ended(status),
            Ok(Err(_)) | Err(_) => {
                self.kill().await;
                Ended::KilledAtDeadline
            }
        };
        let (stderr, _) = tokio::time::timeout(EXIT_GRACE, self.stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Finished {
            ended,
            stdout,
            stdout_overflowed,
            stderr,
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
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
