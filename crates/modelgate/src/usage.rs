//! `modelgate keys usage`: each key's counters in the current windows, read
//! from the configured counter store (Redis, `limits.store.redis`). With
//! in-process counters each serving process holds its own; nothing to read
//! from outside.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use modelgate_authn::keys::KeyFile;
use modelgate_config::rate_limits::{LimitSet, RateLimits};
use modelgate_limit::plan::{Estimate, Who, plan};
use modelgate_limit::store::{CounterId, CounterStore};
use serde::Serialize;

#[derive(Serialize)]
struct Row {
    key: String,
    /// `tpm`, `rpm`, …
    counter: String,
    used: u64,
    limit: u64,
    reset_secs: u64,
}

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
        "{:<24} {:<8} {:>12} {:>12} RESETS IN",
        "KEY", "COUNTER", "USED", "LIMIT"
    );
    for r in rows {
        println!(
            "{:<24} {:<8} {:>12} {:>12} {}s",
            r.key, r.counter, r.used, r.limit, r.reset_secs
        );
    }
    Ok(())
}

fn read(limits: &RateLimits, file: &KeyFile) -> anyhow::Result<Vec<Row>> {
    let Some(redis) = &limits.store else {
        bail!(
            "limits.store is in-process: each serving process keeps its own counters; configure limits.store.redis to share and read them"
        );
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut meta = Vec::new();
    let mut ids: Vec<CounterId> = Vec::new();
    for k in file.keys.iter().filter(|k| k.revoked_at.is_none()) {
        let own = k.limits.map(|l| LimitSet {
            rpm: l.rpm,
            tpm: l.tpm,
            tpd: l.tpd,
            max_concurrent: l.max_concurrent,
            ..LimitSet::default()
        });
        let who = Who {
            key: Some(&k.name),
            key_limits: own.as_ref(),
            ..Who::default()
        };
        let none = Estimate {
            input: 0,
            output: 0,
        };
        for p in plan(limits, &who, "", none, now) {
            let counter = p.charge.id.name.split(':').next().unwrap_or("").to_string();
            meta.push((k.name.clone(), counter, p.charge.limit, p.reset_secs(now)));
            ids.push(p.charge.id);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let values = rt.block_on(async {
        let store = modelgate_limit::redis::connect(redis).map_err(|e| anyhow::anyhow!("{e}"))?;
        store.read(&ids).await.map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    Ok(meta
        .into_iter()
        .zip(values)
        .map(|((key, counter, limit, reset_secs), used)| Row {
            key,
            counter,
            used,
            limit,
            reset_secs,
        })
        .collect())
}
