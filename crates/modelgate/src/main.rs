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

/// mimalloc instead of glibc's malloc: the proxy path allocates ~50 times
/// per request, and mimalloc's thread-local free lists make each allocation
/// and free a few instructions (see bench/RESULTS.md, "round 5, upfast").
/// Built without transparent huge pages (`no_thp`): with them its arenas
/// are backed by 2 MiB pages and idle RSS grows by ~9 MB.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
