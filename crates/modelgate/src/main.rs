//! The `modelgate` command: parse arguments, run the subcommand, exit with a
//! clear message and a non-zero code on failure — never a panic.

mod check;
mod cli;
mod demo;
mod import;
mod keys;
mod manifests;
mod usage;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("modelgate: {e:#}");
            ExitCode::from(1)
        }
    }
}
