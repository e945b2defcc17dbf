//! `fledge migrate`: prints the `flagger.app/v1beta1` form of legacy canaries.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::validate::read_input;

/// Arguments of `fledge migrate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The manifest to convert; `-` reads standard input.
    pub file: PathBuf,
}

/// Prints the converted stream on stdout and what changed on stderr.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = read_input(&args.file)?;
    match fledge_api::legacy::migrate_yaml(&text) {
        Ok((converted, changes)) => {
            print!("{converted}");
            for change in changes {
                eprintln!("# {change}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{}: {err}", args.file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
