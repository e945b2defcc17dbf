//! `fledge`: validate, migrate and simulate Flagger-compatible canaries, and print the CRDs.

mod simulate;

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
    /// Run the real analysis engine against an in-memory world and print the timeline.
    Simulate(simulate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
