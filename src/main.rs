use std::process::ExitCode;

use anyhow::Context;
use scangate::admission::config::AdmissionConfig;
use scangate::api::Phase;
use scangate::cli::{CheckArgs, Cli, Command, LogArgs, LogFormat, PolicyCommand};
use scangate::webhooks;

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
            runtime()?.block_on(scangate::controller::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => check(args),
        Command::Report(args) => match args.to_configmap {
            Some(target) => {
                let report = scangate::cmd::read_report(&args.file)?;
                let stored = runtime()?.block_on(
                    scangate::controller::upload::upload_to_cluster(&report, &target),
                )?;
                eprintln!("stored the report in ConfigMap {stored}");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                println!("{}", scangate::cmd::report_json(&args.file)?);
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Policy(PolicyCommand::Eval(args)) => {
            let eval = scangate::cmd::policy_eval(&args.policy, &args.report)?;
            print!("{}", eval.text);
            Ok(match eval.phase {
                Phase::Completed => ExitCode::SUCCESS,
                Phase::Failed => ExitCode::from(EXIT_VIOLATED),
                _ => ExitCode::from(2),
            })
        }
        Command::WebhookConfig(args) => {
            let ca = match &args.ca_file {
                Some(path) => Some(
                    std::fs::read(path)
                        .with_context(|| format!("cannot read the CA file {}", path.display()))?,
                ),
                None => None,
            };
            let target = match &args.url {
                Some(url) => webhooks::Target::Url(url),
                None => {
                    let (namespace, name) = args.service.split_once('/').with_context(|| {
                        format!("--service {:?} must be NAMESPACE/NAME", args.service)
                    })?;
                    webhooks::Target::Service { namespace, name }
                }
            };
            let excluded: Vec<&str> = args.exclude_namespaces.iter().map(String::as_str).collect();
            let ca = match &ca {
                Some(pem) => webhooks::Ca::Bundle(pem),
                None => webhooks::Ca::CertManager(&args.certificate),
            };
            let yaml = webhooks::configurations_yaml(
                webhooks::NAME,
                &target,
                &webhooks::Namespaces::Except(&excluded),
                &ca,
            )
            .map_err(|e| anyhow::anyhow!("cannot render the webhook configurations: {e}"))?;
            print!("{yaml}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(args) => {
            let hosts: Vec<String> = if args.hosts.is_empty() {
                scangate::certs::DEFAULT_HOSTS
                    .iter()
                    .map(|h| h.to_string())
                    .collect()
            } else {
                args.hosts
            };
            scangate::certs::generate(&hosts, args.days)?.write(&args.out_dir)?;
            eprintln!(
                "wrote ca.crt, ca.key, tls.crt and tls.key for {} to {}",
                hosts.join(", "),
                args.out_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exit codes of the offline commands: compliant, violated, could not decide.
const EXIT_VIOLATED: u8 = 1;

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = AdmissionConfig::load(args.config.as_deref())?;
    let objects = match &args.scans {
        Some(path) => scangate::check::read_manifests(path)?,
        None => vec![],
    };
    let world = scangate::check::World::from_objects(config, &objects, jiff::Timestamp::now())?;
    let sources = args
        .manifests
        .iter()
        .flat_map(|path| scangate::check::sources(path, args.recursive))
        .collect();
    let outcome = scangate::check::check(&world, sources, args.user.as_deref());
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
