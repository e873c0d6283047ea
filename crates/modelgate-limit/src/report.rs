//! What `keys usage` and `GET /admin/api/usage` report: for each active key,
//! each group the store holds counters for (`per_group`: groups are only
//! known once requests have been counted) and each model with limits, the
//! counters of the current windows, with money (budgets) also shown in USD
//! and request rates (GCRA) as the requests in use of their burst.
//! [`usage`] does it all against a store; [`Report`] is the part without I/O.

use modelgate_config::rate_limits::{LimitSet, RateLimits};
use serde::Serialize;

use crate::plan::{Estimate, Measure, Who, plan};
use crate::store::{CounterId, CounterStore, StoreError};

/// Most groups a report lists.
pub const MAX_GROUPS_REPORTED: usize = 1000;

/// Each active key's (name, own limits), each group's found in `store` and
/// each limited model's counters, read from `store` at `now` (unix seconds).
pub async fn usage(
    cfg: &RateLimits,
    keys: &[(String, Option<LimitSet>)],
    store: &dyn CounterStore,
    now: u64,
) -> Result<Vec<UsageRow>, StoreError> {
    let mut groups = if cfg.per_group.is_empty() {
        Vec::new()
    } else {
        store.scan("group", MAX_GROUPS_REPORTED).await?
    };
    groups.sort();
    let report = Report::new(cfg, keys, &groups, now);
    let values = store.read(&report.ids).await?;
    Ok(report.fill(values))
}

/// One counter as reported.
#[derive(Debug, Clone, Serialize)]
pub struct UsageRow {
    /// `key`, `group` or `model`.
    pub scope: &'static str,
    /// The key's name (empty for group and model rows).
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `rpm`, `tpm`, `conc`, `usd_d` (daily budget), `usd_m`, `usd_t`, …
    pub counter: String,
    /// Count, tokens, or micro-USD for budgets.
    pub used: u64,
    pub limit: u64,
    /// Seconds to the window's end (absent for total budgets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_secs: Option<u64>,
    /// Budgets: `used` in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_usd: Option<f64>,
    /// Budgets: `limit` in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<f64>,
}

/// Rows to fill, and the counters to read for them (same order).
pub struct Report {
    pub rows: Vec<UsageRow>,
    pub ids: Vec<CounterId>,
    /// Per row: the GCRA emission interval (µs) of a request-rate counter.
    intervals: Vec<Option<u64>>,
}

fn usd(micro: u64) -> f64 {
    micro as f64 / 1_000_000.0
}

impl Report {
    /// The counters of `keys` (name, own limits), of `groups` and of every
    /// model with `limits.per_model` at `now`.
    pub fn new(
        cfg: &RateLimits,
        keys: &[(String, Option<LimitSet>)],
        groups: &[String],
        now: u64,
    ) -> Report {
        let none = Estimate {
            input: 0,
            output: 0,
        };
        let mut report = Report {
            rows: Vec::new(),
            ids: Vec::new(),
            intervals: Vec::new(),
        };
        let mut add = |who: &Who<'_>, model: &str, key: &str, scope: &'static str| {
            for p in plan(cfg, who, model, none, now) {
                let Some((counter, rest)) = p.charge.id.name.split_once(':') else {
                    continue;
                };
                if !rest.starts_with(scope) {
                    continue;
                }
                let interval = p.charge.id.window.gcra_interval_us(p.charge.limit);
                let money = matches!(p.measure, Measure::Spend(_));
                report.rows.push(UsageRow {
                    scope,
                    key: if scope == "key" {
                        key.to_string()
                    } else {
                        String::new()
                    },
                    group: (scope == "group").then(|| key.to_string()),
                    model: (scope == "model").then(|| model.to_string()),
                    counter: counter.to_string(),
                    used: 0,
                    limit: p.charge.limit,
                    reset_secs: if interval.is_some() {
                        Some(0)
                    } else {
                        p.retry_after(now)
                    },
                    used_usd: money.then_some(0.0),
                    limit_usd: money.then(|| usd(p.charge.limit)),
                });
                report.ids.push(p.charge.id);
                report.intervals.push(interval);
            }
        };
        for (name, own) in keys {
            let who = Who {
                key: Some(name),
                key_limits: own.as_ref(),
                ..Who::default()
            };
            add(&who, "", name, "key");
        }
        for g in groups {
            let who = Who {
                groups: std::slice::from_ref(g),
                ..Who::default()
            };
            add(&who, "", g, "group");
        }
        for model in cfg.per_model.keys() {
            add(&Who::default(), model, "", "model");
        }
        report
    }

    /// The rows with the values read (in `ids` order).
    pub fn fill(mut self, values: Vec<u64>) -> Vec<UsageRow> {
        for ((row, v), interval) in self.rows.iter_mut().zip(values).zip(self.intervals) {
            row.used = v;
            if let Some(i) = interval {
                // A GCRA counter reads as its backlog in µs: the requests in
                // use of the burst, and the seconds until it is full again.
                row.used = v.div_ceil(i).min(row.limit);
                row.reset_secs = Some(v.div_ceil(1_000_000));
            }
            if row.used_usd.is_some() {
                row.used_usd = Some(usd(v));
            }
        }
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalStore;
    use crate::store::{Clock, Reservation};

    fn limits(extra: &str) -> RateLimits {
        let text = format!(
            "listen: {{address: 127.0.0.1:8080}}
models:
  - {{name: m, protocols: [openai], upstream: {{url: \"http://127.0.0.1:9\"}}, cost: {{input_per_1k: 1, output_per_1k: 2}}}}
limits:
  per_key: {{rpm: 5, budget_total: 10}}
  per_model: {{m: {{budget_monthly: 100}}}}
{extra}"
        );
        modelgate_config::parse_str(&text, "t.yaml", std::path::Path::new("."), &|_| None)
            .unwrap()
            .rate_limits
            .unwrap()
    }

    #[test]
    fn keys_and_models_are_reported_with_money_in_usd() {
        let cfg = limits("");
        let r = Report::new(&cfg, &[("alice".into(), None)], &[], 1_796_104_144);
        assert_eq!(r.ids.len(), 3);
        // rpm 5 is one request per 12 s: 24 s of backlog is 2 in use.
        let rows = r.fill(vec![24_000_000, 1_250_000, 7]);
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.scope,
                    r.counter.as_str(),
                    r.used,
                    r.used_usd,
                    r.reset_secs,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("key", "rpm", 2, None, Some(24)),
                ("key", "usd_t", 1_250_000, Some(1.25), None),
                ("model", "usd_m", 7, Some(0.000007), Some(2_657_456)),
            ]
        );
        assert_eq!(rows[2].model.as_deref(), Some("m"));
        assert_eq!(rows[1].limit_usd, Some(10.0));
    }

    #[tokio::test]
    async fn groups_seen_by_the_store_are_listed() {
        let cfg = limits("  per_group: {tpd: 5000}\n");
        let store = LocalStore::new();
        let now = crate::store::SystemClock.now_us() / 1_000_000;
        let eng = vec!["eng".to_string()];
        let who = Who {
            key: Some("alice"),
            groups: &eng,
            ..Who::default()
        };
        let est = Estimate {
            input: 30,
            output: 12,
        };
        let charges: Vec<_> = plan(&cfg, &who, "m", est, now)
            .into_iter()
            .map(|p| p.charge)
            .collect();
        let r = store.reserve(&charges).await.unwrap();
        assert!(matches!(r, Reservation::Granted { .. }), "{r:?}");
        let rows = usage(&cfg, &[("alice".into(), None)], &store, now)
            .await
            .unwrap();
        let group: Vec<_> = rows
            .iter()
            .filter(|r| r.scope == "group")
            .map(|r| (r.group.as_deref(), r.counter.as_str(), r.used, r.limit))
            .collect();
        assert_eq!(group, [(Some("eng"), "tpd", 42, 5000)]);
        let rpm = rows.iter().find(|r| r.counter == "rpm").unwrap();
        assert_eq!((rpm.key.as_str(), rpm.used, rpm.limit), ("alice", 1, 5));
        // Without per_group limits, no scan and no group rows.
        let rows = usage(&limits(""), &[], &store, now).await.unwrap();
        assert!(rows.iter().all(|r| r.scope != "group"));
    }
}
