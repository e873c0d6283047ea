//! `modelgate keys …`: create, list, revoke and rotate API keys. Secrets are
//! printed once, on creation or rotation, to stdout only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use modelgate_authn::keys::{KeyFile, KeyLimits, parse_grants};

#[derive(Args)]
pub struct KeysArgs {
    /// The key file to change (default: `auth.api_keys.file` of --config).
    #[arg(long, global = true, env = "MODELGATE_KEYS_FILE")]
    file: Option<PathBuf>,
    /// Configuration whose `auth.api_keys.file` names the key file.
    #[arg(long, short, global = true, env = "MODELGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it once.
    Create(CreateArgs),
    /// List keys (names, ids, grants, status — never secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once (and any rotated-out predecessor in grace).
    Revoke { name: String },
    /// Replace a key's secret; the old one keeps working for the grace period.
    Rotate {
        name: String,
        #[arg(long, default_value = "0s")]
        grace: humantime::Duration,
    },
    /// Each key's counters (requests, tokens, leases) in the current windows,
    /// read from `limits.store.redis` of --config.
    Usage {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct CreateArgs {
    #[arg(long)]
    name: String,
    /// Models the key may call: comma-separated names, or '*' for all.
    #[arg(long, default_value = "*")]
    models: String,
    /// Lifetime, e.g. 30d or 12h (default: no expiry).
    #[arg(long)]
    expires: Option<humantime::Duration>,
    /// This key's requests per minute (replaces limits.per_key.rpm).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rpm: Option<u64>,
    /// This key's tokens per minute (replaces limits.per_key.tpm).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tpm: Option<u64>,
    /// This key's tokens per day (replaces limits.per_key.tpd).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tpd: Option<u64>,
    /// This key's concurrent requests (replaces limits.per_key.max_concurrent).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_concurrent: Option<u64>,
    /// This key's spend per UTC day, USD (replaces limits.per_key.budget_daily).
    #[arg(long, value_parser = usd)]
    budget_daily: Option<u64>,
    /// This key's spend per calendar month (UTC), USD.
    #[arg(long, value_parser = usd)]
    budget_monthly: Option<u64>,
    /// This key's spend ever, USD.
    #[arg(long, value_parser = usd)]
    budget_total: Option<u64>,
}

fn key_file(args: &KeysArgs) -> anyhow::Result<PathBuf> {
    if let Some(f) = &args.file {
        return Ok(f.clone());
    }
    let Some(cfg) = &args.config else {
        bail!(
            "say which key file to use: --file PATH, or --config FILE whose auth.api_keys.file names it"
        );
    };
    let config = modelgate_config::load_file(cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.auth.api_keys.map(|k| k.file).with_context(|| {
        format!(
            "{}: auth.api_keys.file is not set; add it or pass --file",
            cfg.display()
        )
    })
}

/// `--budget-*`: USD to micro-USD (positive).
fn usd(s: &str) -> Result<u64, String> {
    let usd: f64 = s
        .trim_start_matches('$')
        .parse()
        .map_err(|_| format!("{s:?} is not an amount of USD, e.g. 5 or 2.50"))?;
    match modelgate_config::cost::usd_to_micro(usd) {
        Some(m) if m > 0 => Ok(m),
        _ => Err(format!("{s:?}: a budget must be a positive amount of USD")),
    }
}

fn models(list: &str) -> anyhow::Result<Vec<String>> {
    parse_grants(list).map_err(|e| anyhow::anyhow!("--{e}"))
}

pub fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let path = key_file(&args)?;
    let now = SystemTime::now();
    match args.command {
        KeysCommand::Usage { json } => {
            let Some(cfg) = &args.config else {
                bail!("keys usage reads the counters named by --config FILE (its limits: section)");
            };
            crate::usage::run(cfg, &path, json)?;
        }
        KeysCommand::Create(c) => create(&path, c, now)?,
        KeysCommand::List { json } => list(&path, json, now)?,
        KeysCommand::Revoke { name } => {
            KeyFile::update(&path, |f| f.revoke(&name, now))?;
            eprintln!("revoked key {name:?}; running servers stop accepting it within a second");
        }
        KeysCommand::Rotate { name, grace } => {
            let g: Duration = grace.into();
            let key = KeyFile::update(&path, |f| f.rotate(&name, g, now))?;
            eprintln!(
                "rotated key {name:?} (new id {}); the old key stays valid for {}; new key (shown once):",
                key.id,
                humantime::format_duration(g)
            );
            println!("{}", key.key);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `keys create`: the key (with its own limits, if any), printed once.
fn create(path: &Path, c: CreateArgs, now: SystemTime) -> anyhow::Result<()> {
    let grants = models(&c.models)?;
    let shown = grants.join(",");
    let limits = KeyLimits {
        rpm: c.rpm,
        tpm: c.tpm,
        tpd: c.tpd,
        max_concurrent: c.max_concurrent,
        budget_daily_micro_usd: c.budget_daily,
        budget_monthly_micro_usd: c.budget_monthly,
        budget_total_micro_usd: c.budget_total,
    };
    let name = c.name;
    let key = KeyFile::update(path, |f| {
        let key = f.create(&name, grants, c.expires.map(Duration::from), now)?;
        if limits != KeyLimits::default()
            && let Some(e) = f.keys.iter_mut().find(|k| k.name == name)
        {
            e.limits = Some(limits);
        }
        Ok(key)
    })?;
    eprintln!(
        "created key {name:?} (id {}) for models {shown} in {}; it is shown once:",
        key.id,
        path.display()
    );
    println!("{}", key.key);
    Ok(())
}

/// `keys list`: a table, or JSON.
fn list(path: &Path, json: bool, now: SystemTime) -> anyhow::Result<()> {
    let list = KeyFile::read(path)?.summaries(now);
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<14} {:<9} {:<22} {:<22} MODELS",
        "NAME", "ID", "STATUS", "CREATED", "EXPIRES"
    );
    for k in list {
        let grace = if k.grace_until.is_empty() {
            String::new()
        } else {
            format!(" (old key valid until {})", k.grace_until.join(", "))
        };
        println!(
            "{:<24} {:<14} {:<9} {:<22} {:<22} {}{}",
            k.name,
            k.id,
            k.status,
            k.created_at,
            k.expires_at.as_deref().unwrap_or("never"),
            k.models.join(","),
            grace
        );
    }
    Ok(())
}
