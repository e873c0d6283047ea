//! Subcommands and their wiring.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use modelgate_config::{Config, ConfigErrors, LogFormat};

#[derive(Parser)]
#[command(
    name = "modelgate",
    version,
    about = "Authentication and authorization in front of ML model endpoints, and a small model server."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway described by a configuration file, or by Kubernetes
    /// manifests (`--manifests`, converted as `modelgate import` does and
    /// re-imported when they change). Give one or the other, not both.
    Serve {
        #[arg(long, short, env = "MODELGATE_CONFIG")]
        config: Option<PathBuf>,
        /// A manifest file or folder (repeatable): Istio, Authorino and KServe
        /// objects, imported at start and on every change.
        #[arg(long = "manifests", value_name = "FILE|DIR")]
        manifests: Vec<PathBuf>,
        /// With --manifests: where the generated configuration is written
        /// (default: a private folder under the temporary directory).
        #[arg(long, value_name = "FILE", requires = "manifests")]
        imported_config: Option<PathBuf>,
        #[command(flatten)]
        import: crate::import::ImportOptions,
    },
    /// Check a configuration file; print every error with its key and a fix (exit 2 if invalid).
    Validate {
        #[arg(long, short, env = "MODELGATE_CONFIG")]
        config: PathBuf,
        /// The file the running server was started with: also list the changed
        /// keys a reload cannot apply (listen.*, admin.address, log.level,
        /// log.format, runtime.*), which need a restart.
        #[arg(long)]
        running: Option<PathBuf>,
    },
    /// Serve the bundled iris model behind API-key auth and print a key and curl lines to try it.
    Demo(crate::demo::DemoArgs),
    /// Manage API keys in the key file (picked up live by a running server).
    Keys(crate::keys::KeysArgs),
    /// Show what the gateway would decide for a described request, and why
    /// (exit 0 allow, 1 deny, 2 bad input).
    Check(Box<crate::check::CheckArgs>),
    /// Convert Istio, Authorino and KServe manifests into a configuration (stdout) and a report (stderr).
    Import(crate::import::ImportArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            manifests,
            imported_config,
            import,
        } => match (config, manifests.is_empty()) {
            (Some(_), true) if !import.is_unset() => {
                eprintln!(
                    "modelgate serve: --upstream, --var, --keys-file, --jwks-uri, --namespace and --domain go with --manifests; with --config, edit the file"
                );
                Ok(ExitCode::from(2))
            }
            (Some(config), true) => serve(&config),
            (None, false) => crate::manifests::serve(manifests, import, imported_config),
            (Some(_), false) => {
                eprintln!(
                    "modelgate serve: give --config or --manifests, not both (MODELGATE_CONFIG counts as --config); `modelgate import` writes a file to edit and serve with --config"
                );
                Ok(ExitCode::from(2))
            }
            (None, true) => {
                eprintln!(
                    "modelgate serve: pass --config FILE (or MODELGATE_CONFIG), or --manifests DIR"
                );
                Ok(ExitCode::from(2))
            }
        },
        Command::Validate { config, running } => Ok(validate(&config, running.as_deref())),
        Command::Keys(args) => crate::keys::run(args),
        Command::Demo(args) => crate::demo::run(args),
        Command::Check(args) => Ok(crate::check::run(*args)),
        Command::Import(args) => crate::import::run(args),
    }
}

fn load(path: &Path) -> Result<Config, ConfigErrors> {
    modelgate_config::load_file(path)
}

fn validate(path: &Path, running: Option<&Path>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let problems = modelgate_app::check_startable(&config);
    if !problems.is_empty() {
        eprintln!(
            "{}: {} error{} in configuration",
            path.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in problems {
            eprintln!("  - {p}");
        }
        return ExitCode::from(2);
    }
    println!(
        "{}: OK ({} listener{}, {} model{})",
        path.display(),
        config.listeners.len(),
        if config.listeners.len() == 1 { "" } else { "s" },
        config.models.len(),
        if config.models.len() == 1 { "" } else { "s" },
    );
    match running.map(load) {
        None => {}
        Some(Err(e)) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
        Some(Ok(r)) => {
            let keys = modelgate_config::restart_required(&r, &config);
            if keys.is_empty() {
                println!("a reload applies every change");
            }
            for k in keys {
                println!("needs a restart: {k} (a reload keeps the running value)");
            }
        }
    }
    ExitCode::SUCCESS
}

fn init_tracing(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level).with_context(|| {
        format!(
            "log.level: invalid filter {:?}; use e.g. info or modelgate_app=debug",
            config.log.level
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    serve_config(config, path.to_path_buf(), None)
}

/// Serves a loaded configuration until SIGTERM/SIGINT.
pub fn serve_config(
    config: Config,
    config_path: PathBuf,
    on_ready: Option<modelgate_app::OnReady>,
) -> anyhow::Result<ExitCode> {
    init_tracing(&config)?;
    // The control loop (signals, reload, admin); request traffic runs on the
    // I/O threads that `run` starts, one event loop each.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match rt.block_on(modelgate_app::run_with_addons(
        config,
        config_path,
        on_ready,
        vec![modelgate_extauthz::addon()],
    )) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("modelgate: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
