//! Loads a key file into a `KeyStore` and prints the wall time and the
//! process's RSS (issue 14, P5: profile the 1M-key load without a server).
//! `cargo run --release -p modelgate-authn --example load_keys -- FILE [RUNS]`

use std::time::Instant;

use modelgate_authn::KeyStore;

/// The server's allocator, so the figures match `modelgate serve`.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: load_keys FILE [RUNS]");
        return std::process::ExitCode::FAILURE;
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(1);
    for _ in 0..runs {
        let t = Instant::now();
        match KeyStore::load(std::path::Path::new(&path)) {
            Ok(store) => println!(
                "{} keys in {:.3} s, RSS {:.0} MB",
                store.len(),
                t.elapsed().as_secs_f64(),
                rss_mb()
            ),
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
