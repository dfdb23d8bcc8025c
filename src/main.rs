use std::process::ExitCode;

use anyhow::Context;
use scangate::admission::config::AdmissionConfig;
use scangate::api::Phase;
use scangate::cli::{Cli, Command, LogArgs, LogFormat};
use scangate::cmd::{self, check::CheckArgs, policy_eval::PolicyCommand};

fn main() -> ExitCode {
    // The one TLS provider of the process: the webhook's servers and every client (kube, HTTP)
    // take it from here. Nothing can have installed another one before `main`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse_args();
    if let Err(e) = init_tracing(&cli.log) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::PolicyWorker(args) => Ok(scangate::sandbox::worker::run(args.limits())),
        Command::Crds => {
            let yaml = scangate::api::crds_yaml().context("rendering the CRDs as YAML")?;
            print!("{yaml}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhook(args) => {
            runtime()?.block_on(scangate::server::run_webhook(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Controller(args) => {
            runtime()?.block_on(scangate::controller::run(*args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => check(args),
        Command::Why(args) => {
            let (report, exit) = runtime()?.block_on(cmd::why::run(&args))?;
            print!("{report}");
            Ok(ExitCode::from(exit as u8))
        }
        Command::Status(args) => {
            print!("{}", runtime()?.block_on(cmd::status::run(&args))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rescan(args) => {
            print!("{}", runtime()?.block_on(cmd::rescan::run(&args))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => {
            print!("{}", runtime()?.block_on(cmd::scan::run(&args))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Reevaluate(args) => {
            print!("{}", runtime()?.block_on(cmd::reevaluate::run(&args))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => match args.to_configmap {
            Some(target) => {
                let report = cmd::report::read_report(&args.file)?;
                let stored = runtime()?.block_on(
                    scangate::controller::upload::upload_to_cluster(&report, &target),
                )?;
                eprintln!("stored the report in ConfigMap {stored}");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                println!("{}", cmd::report::report_json(&args.file)?);
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Policy(PolicyCommand::Eval(args)) => {
            let eval = cmd::policy_eval::policy_eval(&args.policy, &args.report)?;
            print!("{}", eval.text);
            Ok(match eval.phase {
                Phase::Completed => ExitCode::SUCCESS,
                Phase::Failed => ExitCode::from(EXIT_VIOLATED),
                _ => ExitCode::from(2),
            })
        }
        Command::WebhookConfig(args) => {
            print!("{}", cmd::webhook_config::run(&args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(args) => {
            eprintln!("{}", cmd::certs::run(&args)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exit codes of the offline commands: compliant, violated, could not decide.
const EXIT_VIOLATED: u8 = 1;

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
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
    print!("{}", outcome.report);
    for error in &outcome.errors {
        eprintln!("error: {error}");
    }
    Ok(ExitCode::from(outcome.exit() as u8))
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
