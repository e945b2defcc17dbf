//! `fledge`: validate, migrate and simulate Flagger-compatible canaries, and print the CRDs.

mod migrate;
mod simulate;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Fledge: progressive delivery for Kubernetes, compatible with Flagger's resources.
#[derive(Parser, Debug)]
#[command(name = "fledge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check Canary, MetricTemplate and AlertProvider manifests; other kinds are skipped.
    Validate(validate::Args),
    /// Print the flagger.app/v1beta1 form of legacy (v1alpha3) canaries.
    Migrate(migrate::Args),
    /// Print the CustomResourceDefinitions to install.
    Crd,
    /// Run the real analysis engine against an in-memory world and print the timeline.
    Simulate(simulate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Migrate(args) => migrate::run(&args),
        Command::Crd => fledge_api::crd::to_yaml()
            .map(|yaml| {
                print!("{yaml}");
                ExitCode::SUCCESS
            })
            .map_err(anyhow::Error::from),
        Command::Simulate(args) => simulate::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
