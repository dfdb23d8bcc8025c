use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use scangate::cli::{Cli, Command, LogArgs, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Crds => {
            let yaml = scangate::api::crds_yaml().context("rendering the CRDs as YAML")?;
            print!("{yaml}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhook(_) => not_built("webhook"),
        Command::Controller(_) => not_built("controller"),
        Command::Check(_) => not_built("check"),
        Command::Report(_) => not_built("report"),
        Command::Policy(_) => not_built("policy"),
        Command::Certs(_) => not_built("certs"),
    }
}

fn not_built(command: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`scangate {command}` is not built yet in this version")
}

fn init_tracing(log: &LogArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_filter)
        .with_context(|| format!("invalid --log-filter {:?}", log.log_filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
