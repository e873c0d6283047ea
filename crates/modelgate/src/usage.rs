//! `modelgate keys usage`: each key's, each counted group's and each limited
//! model's counters in the current windows (budgets in USD), built by
//! [`modelgate_limit::report::usage`] (as the admin endpoint does) and read
//! from the configured counter store (Redis, `limits.store.redis`). With
//! in-process counters each serving process holds its own; nothing to read
//! from outside.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use modelgate_authn::keys::{KeyFile, KeyLimits};
use modelgate_config::cost::show_usd;
use modelgate_config::rate_limits::{LimitSet, RateLimits};
use modelgate_limit::report::UsageRow;

pub fn run(config: &Path, keys: &Path, json: bool) -> anyhow::Result<()> {
    let cfg = modelgate_config::load_file(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(limits) = cfg.rate_limits else {
        bail!(
            "{}: no `limits:` section, so nothing is counted",
            config.display()
        );
    };
    let rows = read(&limits, &KeyFile::read(keys)?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<8} {:>14} {:>14} RESETS IN",
        "KEY/MODEL", "COUNTER", "USED", "LIMIT"
    );
    for r in rows {
        let who = match (&r.model, &r.group) {
            (Some(m), _) => format!("model {m}"),
            (None, Some(g)) => format!("group {g}"),
            (None, None) => r.key.clone(),
        };
        let (used, limit) = match r.used_usd {
            Some(_) => (show_usd(r.used), show_usd(r.limit)),
            None => (r.used.to_string(), r.limit.to_string()),
        };
        let reset = r.reset_secs.map_or("never".into(), |s| format!("{s}s"));
        println!("{who:<24} {:<8} {used:>14} {limit:>14} {reset}", r.counter);
    }
    Ok(())
}

/// A key's stored limits (the key file's micro-USD budgets included).
fn key_set(l: &KeyLimits) -> LimitSet {
    LimitSet {
        rpm: l.rpm,
        tpm: l.tpm,
        tpd: l.tpd,
        max_concurrent: l.max_concurrent,
        budget_daily: l.budget_daily_micro_usd,
        budget_monthly: l.budget_monthly_micro_usd,
        budget_total: l.budget_total_micro_usd,
        ..LimitSet::default()
    }
}

fn read(limits: &RateLimits, file: &KeyFile) -> anyhow::Result<Vec<UsageRow>> {
    let Some(redis) = &limits.store else {
        bail!(
            "limits.store is in-process: each serving process keeps its own counters; configure limits.store.redis to share and read them"
        );
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let keys: Vec<_> = file
        .keys
        .iter()
        .filter(|k| k.revoked_at.is_none())
        .map(|k| (k.name.clone(), k.limits.as_ref().map(key_set)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let store = modelgate_limit::redis::connect(redis).map_err(|e| anyhow::anyhow!("{e}"))?;
        modelgate_limit::report::usage(limits, &keys, &store, now)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
}
