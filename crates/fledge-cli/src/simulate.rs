//! `fledge simulate`: the engine against an in-memory world (built with the engine).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `fledge simulate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Canary manifest.
    pub canary: PathBuf,
}

/// Runs the simulation.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fledge simulate arrives with fledge-engine")
}
