//! ScanPolicy Rego compiled and run in a child process with OS limits, so that no policy can
//! stop the webhook or the controller (*Trust model* point 8).
//!
//! # Why a child process
//!
//! regorus 0.14 bounds time cooperatively ([`crate::policy`] sets its execution timer), but it
//! cannot bound memory in this build: its memory limit needs the `allocator-memory-limits`
//! feature (mimalloc as the global allocator, one process-wide budget checked between
//! allocations), and builtins allocate up front (`numbers.range(1, 1e12)` asks for its whole
//! array in one allocation, which aborts the process before any check). Its instruction limit
//! exists only in the RVM, not in the interpreter scangate uses. So each check or evaluation runs
//! in `scangate policy-worker`, a child of the same binary with an empty environment, which
//! first lowers its own limits (with the `rlimit` crate) and only then reads its request:
//!
//! - **memory**: `RLIMIT_DATA` (heap and private mappings; the program's own code does not
//!   count, unlike `RLIMIT_AS`), so an allocation past it fails and the worker aborts;
//! - **CPU time**: `RLIMIT_CPU`, the time limit rounded up to whole seconds plus one second,
//!   as a backstop should the parent not be there to kill it;
//! - **core dumps**: none (`RLIMIT_CORE` 0);
//! - **OOM score**: `oom_score_adj` 1000, so a container out of memory loses a worker first.
//!
//! A worker also keeps the C library's `malloc` ([`SYSTEM_ALLOCATOR_ENV`]), where the webhook and
//! the controller use mimalloc: these limits were set and proven against the system allocator.
//!
//! The parent ([`Sandbox`]) kills a worker still running at the wall-clock time limit. Trusted
//! work (scangate's namespace, trusted namespaces) and tenants' work each run at most
//! `concurrency` workers at once with at most `queue` more waiting, so no tenant can delay the
//! admin's checks or trusted scans' verdicts; waiting tenants are served in turn, and the
//! webhook bounds each user's checks in progress ([`fair`]). Anything beyond is refused at
//! once. Every refusal names the limit it hit.
//!
//! - [`protocol`]: the request and answer, and the pure reading of how a worker ended;
//! - [`worker`]: the child's side;
//! - [`Sandbox`]: the parent's side.

pub mod fair;
mod pool;
pub mod protocol;
pub mod worker;

use std::ffi::CStr;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Set in a worker's environment: the scangate binary then allocates with the C library's
/// `malloc` instead of mimalloc (`src/main.rs` reads it at the process's first allocation).
/// With mimalloc a worker mapped a 1 GiB arena at its start, before it lowered `RLIMIT_DATA`,
/// so a policy could allocate past the memory limit inside that arena (a 480 MB allocation
/// passed a 256 MiB limit), and a CPU-bound policy that also grows a collection was refused
/// for memory instead of time.
pub const SYSTEM_ALLOCATOR_ENV: &CStr = c"SCANGATE_SYSTEM_ALLOCATOR";

pub use fair::Requester;
pub use pool::Sandbox;
pub use protocol::{Answer, Request, Stage};

/// The limits of policy work in one process (the webhook, or the controller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most memory one worker may allocate, in bytes.
    pub memory_bytes: u64,
    /// The wall-clock time one worker may run.
    pub time: Duration,
    /// Workers running at once, per lane (trusted work, tenants' work).
    pub concurrency: usize,
    /// Checks waiting for a worker, beyond which checks are refused at once.
    pub queue: usize,
    /// Checks one tenant may have running or waiting; `None`: only the lane's bounds.
    pub per_tenant: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * MIB,
            time: Duration::from_secs(2),
            concurrency: 2,
            queue: 4,
            per_tenant: None,
        }
    }
}

impl Limits {
    /// The CPU-time backstop, in whole seconds: the time limit rounded up, plus one.
    #[must_use]
    pub fn cpu_seconds(&self) -> u64 {
        let whole = self.time.as_secs();
        let rounded = if self.time.subsec_nanos() > 0 {
            whole + 1
        } else {
            whole
        };
        rounded.saturating_add(1)
    }
}

const MIB: u64 = 1024 * 1024;

/// A byte count as people read it: `256 MiB`, or bytes when not whole MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= MIB && self.0.is_multiple_of(MIB) {
            write!(f, "{} MiB", self.0 / MIB)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// A duration as people read it: `2 s`, `1500 ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{} s", self.0.as_secs())
        } else {
            write!(f, "{} ms", self.0.as_millis())
        }
    }
}

/// Why a policy check or evaluation gave no answer. Each message names the limit or the failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every worker is busy and the queue is full.
    #[error(
        "too many policy checks in progress ({running} running and {waiting} waiting, the most \
         scangate allows at once); retry in a few seconds"
    )]
    Busy {
        /// The concurrency limit.
        running: usize,
        /// The queue limit.
        waiting: usize,
    },

    /// One tenant has its most checks in progress.
    #[error(
        "too many policy checks in progress for {tenant} ({most} running or waiting, the most \
         one user may have at once); retry when one has finished"
    )]
    TenantBusy {
        /// The user (or namespace) whose checks these are.
        tenant: String,
        /// The bound.
        most: usize,
    },

    /// The worker ran out of its memory limit.
    #[error(
        "policy {name} exceeded the memory limit of {limit} and was stopped: build smaller \
         collections (e.g. no `numbers.range` over millions of numbers), or ask the admin to \
         raise --policy-memory-limit-mib"
    )]
    MemoryLimit {
        /// Source name of the policy.
        name: String,
        /// The limit.
        limit: Bytes,
    },

    /// The worker was still running at the wall-clock limit, or regorus's own timer stopped it.
    #[error(
        "policy {name} exceeded the time limit of {limit} and was stopped: remove unbounded or \
         nested iterations from the policy, or ask the admin to raise --policy-time-limit"
    )]
    TimeLimit {
        /// Source name of the policy.
        name: String,
        /// The limit.
        limit: Seconds,
    },

    /// The worker used up its CPU-time backstop.
    #[error(
        "policy {name} exceeded the CPU-time limit of {seconds} s and was stopped: remove \
         unbounded or nested iterations from the policy, or ask the admin to raise \
         --policy-time-limit"
    )]
    CpuLimit {
        /// Source name of the policy.
        name: String,
        /// The limit.
        seconds: u64,
    },

    /// The worker overflowed its stack (rules nested or recursing too deeply).
    #[error(
        "policy {name} nested too deeply and overflowed the stack of its worker: flatten the \
         rules that call each other"
    )]
    StackOverflow {
        /// Source name of the policy.
        name: String,
    },

    /// The policy itself is wrong (syntax, contract, evaluation error): regorus's message.
    #[error("{message}")]
    Rejected {
        /// Whether it failed to compile or while being evaluated.
        stage: Stage,
        /// The message, naming the policy.
        message: String,
    },

    /// The worker ended without an answer.
    #[error(
        "the worker checking policy {name} {how} without an answer{}; this is a scangate bug \
         if it repeats, please report it with the policy",
        stderr_suffix(.stderr)
    )]
    Crashed {
        /// Source name of the policy.
        name: String,
        /// `exited with status 3`, `was killed by signal 11`.
        how: String,
        /// The last line the worker wrote on stderr.
        stderr: String,
    },

    /// The worker answered something that is not an answer.
    #[error(
        "the worker checking policy {name} gave an unreadable answer ({reason}); this is a \
         scangate bug, please report it with the policy"
    )]
    Garbled {
        /// Source name of the policy.
        name: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The worker could not be started or talked to.
    #[error(
        "cannot run the policy worker {program} for policy {name}: {cause}; check that the \
         scangate binary is still in place and the process may start children"
    )]
    Spawn {
        /// Source name of the policy.
        name: String,
        /// The program started.
        program: PathBuf,
        /// Why.
        cause: std::io::Error,
    },

    /// This program's own path is unknown, so it cannot start its workers.
    #[error("cannot find scangate's own executable to run policy workers: {0}")]
    CurrentExe(std::io::Error),

    /// The request could not be encoded.
    #[error("cannot encode the request for policy {name}: {cause}")]
    Encode {
        /// Source name of the policy.
        name: String,
        /// Why.
        cause: serde_json::Error,
    },
}

impl Error {
    /// Whether the policy itself is at fault (it does not compile, fails, or exceeds a limit),
    /// as opposed to the pool being busy or a worker failing: those are worth retrying.
    #[must_use]
    pub const fn is_the_policys(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. }
                | Self::MemoryLimit { .. }
                | Self::TimeLimit { .. }
                | Self::CpuLimit { .. }
                | Self::StackOverflow { .. }
        )
    }

    /// Whether a limit stopped the policy (memory, time, CPU time, stack): the same policy on
    /// the same input may pass another time (the time limit depends on the machine's load).
    #[must_use]
    pub const fn is_a_limit(&self) -> bool {
        matches!(
            self,
            Self::MemoryLimit { .. }
                | Self::TimeLimit { .. }
                | Self::CpuLimit { .. }
                | Self::StackOverflow { .. }
        )
    }

    /// Whether the policy does not compile.
    #[must_use]
    pub const fn is_compile_error(&self) -> bool {
        matches!(
            self,
            Self::Rejected {
                stage: Stage::Compile,
                ..
            }
        )
    }
}

/// ` (it said: "…")` when the worker wrote something on stderr.
fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (it said: {stderr:?})")
    }
}

/// The sandbox's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_people_write_them() {
        assert_eq!(Bytes(256 * MIB).to_string(), "256 MiB");
        assert_eq!(Bytes(1000).to_string(), "1000 bytes");
        assert_eq!(Seconds(Duration::from_secs(2)).to_string(), "2 s");
        assert_eq!(Seconds(Duration::from_millis(1500)).to_string(), "1500 ms");
    }

    #[test]
    fn the_cpu_backstop_is_above_the_time_limit() {
        let limits = |time| Limits {
            time,
            ..Limits::default()
        };
        assert_eq!(limits(Duration::from_secs(2)).cpu_seconds(), 3);
        assert_eq!(limits(Duration::from_millis(1500)).cpu_seconds(), 3);
        assert_eq!(limits(Duration::from_millis(10)).cpu_seconds(), 2);
    }

    #[test]
    fn refusals_name_the_limit() {
        let memory = Error::MemoryLimit {
            name: "shop/x.rego".into(),
            limit: Bytes(256 * MIB),
        };
        assert!(
            memory
                .to_string()
                .contains("exceeded the memory limit of 256 MiB"),
            "{memory}"
        );
        let time = Error::TimeLimit {
            name: "shop/x.rego".into(),
            limit: Seconds(Duration::from_secs(2)),
        };
        assert!(
            time.to_string().contains("exceeded the time limit of 2 s"),
            "{time}"
        );
        let busy = Error::Busy {
            running: 2,
            waiting: 4,
        };
        assert!(
            busy.to_string()
                .starts_with("too many policy checks in progress"),
            "{busy}"
        );
        assert!(busy.to_string().contains("retry"), "{busy}");
    }
}
