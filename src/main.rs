use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::Context;
use mimalloc::MiMalloc;
use scangate::admission::config::AdmissionConfig;
use scangate::api::Phase;
use scangate::cli::{Cli, Command, EXIT_PIPE_CLOSED, LogArgs, LogFormat, Written, write_output};
use scangate::cmd::{self, check::CheckArgs, policy_eval::PolicyCommand, vex::VexCommand};
use scangate::sandbox::SYSTEM_ALLOCATOR_ENV;

/// The process's allocator, chosen at its first allocation: mimalloc, or the C library's `malloc`
/// in a policy worker (whose environment holds [`SYSTEM_ALLOCATOR_ENV`]). mimalloc was chosen by
/// measurement (BENCHMARKS.md): glibc's malloc took 18-27 % of the webhook's request path, and
/// the controller's heap did not shrink back after a burst of verdicts. A worker's memory limit
/// was set and proven against glibc's malloc (`scangate::sandbox`).
#[global_allocator]
static ALLOCATOR: ProcessAllocator = ProcessAllocator;

struct ProcessAllocator;

const UNDECIDED: u8 = 0;
const MIMALLOC: u8 = 1;
const SYSTEM: u8 = 2;
static CHOSEN: AtomicU8 = AtomicU8::new(UNDECIDED);

impl ProcessAllocator {
    fn system() -> bool {
        match CHOSEN.load(Ordering::Relaxed) {
            MIMALLOC => false,
            SYSTEM => true,
            _ => {
                // The first allocation comes before `main` starts any thread; and were two to
                // race, both would read the same environment and store the same choice.
                // SAFETY: `getenv` with a NUL-terminated name; it does not allocate, so it
                // cannot recurse into this allocator.
                let system = !unsafe { libc::getenv(SYSTEM_ALLOCATOR_ENV.as_ptr()) }.is_null();
                CHOSEN.store(if system { SYSTEM } else { MIMALLOC }, Ordering::Relaxed);
                system
            }
        }
    }
}

/// mimalloc's `mi_option_purge_delay`: its place in mimalloc's `mi_option_t`, which
/// libmimalloc-sys does not name (a test below checks it against mimalloc's default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The controller gives memory it frees back to the system at once, not after mimalloc's
/// default delay of a second. With the default, the process that had just decided 10,000 scans
/// held 188-190 MiB in three runs of four; with no delay, 161-165 MiB in three, as little as a
/// fresh process holding the same scans (BENCHMARKS.md). The webhook keeps the default (not
/// measured with 0): each request frees memory the next one reuses, and giving it back at once
/// could cost the request path.
fn purge_freed_memory_at_once() {
    if !ProcessAllocator::system() {
        // SAFETY: sets one of mimalloc's options; called before the runtime starts any thread,
        // as mimalloc asks of `mi_option_set`.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
    }
}

// SAFETY: every call goes to one allocator, the same for the whole life of the process, so a
// block is always freed or resized by the allocator that gave it.
unsafe impl GlobalAlloc for ProcessAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe {
            if Self::system() {
                System.alloc(layout)
            } else {
                MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe {
            if Self::system() {
                System.alloc_zeroed(layout)
            } else {
                MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe {
            if Self::system() {
                System.dealloc(ptr, layout);
            } else {
                MiMalloc.dealloc(ptr, layout);
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe {
            if Self::system() {
                System.realloc(ptr, layout, new_size)
            } else {
                MiMalloc.realloc(ptr, layout, new_size)
            }
        }
    }
}

fn main() -> ExitCode {
    // The one TLS provider of the process: the webhook's servers and every client (kube, HTTP)
    // take it from here. Nothing can have installed another one before `main`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse_args();
    if let Err(e) = init_tracing(&cli.log) {
        say(&format!("error: {e:#}\n"));
        return ExitCode::from(2);
    }
    match run(cli.command) {
        Ok(done) => finish(done),
        Err(e) => {
            say(&format!("error: {e:#}\n"));
            ExitCode::from(2)
        }
    }
}

/// What a command prints and the status it exits with. Commands only build their text;
/// [`finish`] writes it, the one place output meets a pipe that may have closed.
struct Done {
    stdout: String,
    stderr: String,
    code: ExitCode,
}

impl Done {
    fn out(stdout: impl Into<String>, code: ExitCode) -> Self {
        Done {
            stdout: stdout.into(),
            stderr: String::new(),
            code,
        }
    }

    fn err(stderr: impl Into<String>) -> Self {
        Done {
            stdout: String::new(),
            stderr: stderr.into(),
            code: ExitCode::SUCCESS,
        }
    }
}

/// Writes a command's output, then its messages. A reader that stopped reading
/// (`scangate report x | head`) ends the command quietly with the status a shell shows for
/// grep or jq in its place; the messages still go to standard error.
fn finish(done: Done) -> ExitCode {
    let written = write_output(&mut std::io::stdout().lock(), &done.stdout);
    say(&done.stderr);
    match written {
        Written::All => done.code,
        Written::PipeClosed => ExitCode::from(EXIT_PIPE_CLOSED),
        Written::Failed(e) => {
            say(&format!("error: cannot write the output: {e}\n"));
            ExitCode::from(2)
        }
    }
}

/// Writes to standard error. When that fails too there is nobody left to tell.
fn say(text: &str) {
    let _ = write_output(&mut std::io::stderr().lock(), text);
}

fn run(command: Command) -> anyhow::Result<Done> {
    Ok(match command {
        Command::PolicyWorker(args) => Done::out("", scangate::sandbox::worker::run(args.limits())),
        Command::Crds => {
            let yaml = scangate::api::crds_yaml().context("rendering the CRDs as YAML")?;
            Done::out(yaml, ExitCode::SUCCESS)
        }
        Command::Webhook(args) => {
            runtime()?.block_on(scangate::server::run_webhook(args))?;
            Done::out("", ExitCode::SUCCESS)
        }
        Command::Controller(args) => {
            purge_freed_memory_at_once();
            runtime()?.block_on(scangate::controller::run(*args))?;
            Done::out("", ExitCode::SUCCESS)
        }
        Command::Check(args) => check(args)?,
        Command::Why(args) => {
            let (report, exit) = runtime()?.block_on(cmd::why::run(&args))?;
            Done::out(report, ExitCode::from(exit as u8))
        }
        Command::Status(args) => Done::out(
            runtime()?.block_on(cmd::status::run(&args))?,
            ExitCode::SUCCESS,
        ),
        Command::Rescan(args) => Done::out(
            runtime()?.block_on(cmd::rescan::run(&args))?,
            ExitCode::SUCCESS,
        ),
        Command::Pause(args) => Done::out(
            runtime()?.block_on(cmd::lifecycle::run(cmd::lifecycle::Action::Pause, &args))?,
            ExitCode::SUCCESS,
        ),
        Command::Resume(args) => Done::out(
            runtime()?.block_on(cmd::lifecycle::run(cmd::lifecycle::Action::Resume, &args))?,
            ExitCode::SUCCESS,
        ),
        Command::Cancel(args) => Done::out(
            runtime()?.block_on(cmd::lifecycle::run(cmd::lifecycle::Action::Cancel, &args))?,
            ExitCode::SUCCESS,
        ),
        Command::Scan(args) => Done::out(
            runtime()?.block_on(cmd::scan::run(&args))?,
            ExitCode::SUCCESS,
        ),
        Command::Reevaluate(args) => Done::out(
            runtime()?.block_on(cmd::reevaluate::run(&args))?,
            ExitCode::SUCCESS,
        ),
        Command::Report(args) => {
            let report = cmd::report::read_report(&args.file, args.image.as_deref())?;
            match args.to_configmap {
                Some(target) => {
                    let stored = runtime()?
                        .block_on(scangate::scan::upload::upload_to_cluster(&report, &target))?;
                    Done::err(format!("stored the report in ConfigMap {stored}\n"))
                }
                None => Done::out(cmd::report::report_json(&report)? + "\n", ExitCode::SUCCESS),
            }
        }
        Command::Policy(PolicyCommand::Eval(args)) => {
            let eval = cmd::policy_eval::policy_eval(&args.policy, &args.report)?;
            let code = match eval.phase {
                Phase::Completed => ExitCode::SUCCESS,
                Phase::Failed => ExitCode::from(EXIT_VIOLATED),
                _ => ExitCode::from(2),
            };
            Done::out(eval.text, code)
        }
        Command::Vex(VexCommand::Import(args)) => Done::out(
            runtime()?.block_on(cmd::vex::import(&args))?,
            ExitCode::SUCCESS,
        ),
        Command::Vex(VexCommand::Export(args)) => {
            let (document, notes) = runtime()?.block_on(cmd::vex::export(&args))?;
            Done {
                stdout: document,
                stderr: notes,
                code: ExitCode::SUCCESS,
            }
        }
        Command::WebhookConfig(args) => {
            Done::out(cmd::webhook_config::run(&args)?, ExitCode::SUCCESS)
        }
        Command::Certs(args) => Done::err(cmd::certs::run(&args)? + "\n"),
    })
}

/// Exit codes of the offline commands: compliant, violated, could not decide.
const EXIT_VIOLATED: u8 = 1;

fn check(args: CheckArgs) -> anyhow::Result<Done> {
    let config = AdmissionConfig::load(args.config.as_deref())?;
    let objects = match &args.scans {
        Some(path) => cmd::check::read_manifests(path)?,
        None => vec![],
    };
    let world = cmd::check::World::from_objects(config, &objects, jiff::Timestamp::now())?;
    let sources = args
        .manifests
        .iter()
        .flat_map(|path| cmd::check::sources(path, args.recursive))
        .collect();
    let outcome = cmd::check::check(&world, sources, args.user.as_deref());
    let stderr: String = outcome
        .errors
        .iter()
        .map(|error| format!("error: {error}\n"))
        .collect();
    Ok(Done {
        code: ExitCode::from(outcome.exit() as u8),
        stdout: outcome.report,
        stderr,
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_tracing(log: &LogArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_filter)
        .with_context(|| format!("invalid --log-filter {:?}", log.log_filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match log.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_defaults_to_a_second() {
        // SAFETY: reads one of mimalloc's options; no test in this binary sets one.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            delay, 1000,
            "option {MI_OPTION_PURGE_DELAY} is not purge_delay"
        );
    }
}
