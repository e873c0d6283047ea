//! What `keys usage` and `GET /admin/api/usage` report (no I/O): for each
//! active key and each model with limits, the counters of the current
//! windows, with money (budgets) also shown in USD. The caller reads the
//! values from its store and fills them in with [`Report::fill`].

use modelgate_config::rate_limits::{LimitSet, RateLimits};
use serde::Serialize;

use crate::plan::{Estimate, Measure, Who, plan};
use crate::store::CounterId;

/// One counter as reported.
#[derive(Debug, Clone, Serialize)]
pub struct UsageRow {
    /// `key` or `model`.
    pub scope: &'static str,
    /// The key's name (empty for model rows).
    pub key: String,
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
}

fn usd(micro: u64) -> f64 {
    micro as f64 / 1_000_000.0
}

impl Report {
    /// The counters of `keys` (name, own limits) and of every model with
    /// `limits.per_model` at `now`.
    pub fn new(cfg: &RateLimits, keys: &[(String, Option<LimitSet>)], now: u64) -> Report {
        let none = Estimate {
            input: 0,
            output: 0,
        };
        let mut report = Report {
            rows: Vec::new(),
            ids: Vec::new(),
        };
        let mut add = |who: &Who<'_>, model: &str, key: &str, scope: &'static str| {
            for p in plan(cfg, who, model, none, now) {
                let Some((counter, rest)) = p.charge.id.name.split_once(':') else {
                    continue;
                };
                if !rest.starts_with(scope) {
                    continue;
                }
                let money = matches!(p.measure, Measure::Spend(_));
                report.rows.push(UsageRow {
                    scope,
                    key: key.to_string(),
                    model: (scope == "model").then(|| model.to_string()),
                    counter: counter.to_string(),
                    used: 0,
                    limit: p.charge.limit,
                    reset_secs: p.retry_after(now),
                    used_usd: money.then_some(0.0),
                    limit_usd: money.then(|| usd(p.charge.limit)),
                });
                report.ids.push(p.charge.id);
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
        for model in cfg.per_model.keys() {
            add(&Who::default(), model, "", "model");
        }
        report
    }

    /// The rows with the values read (in `ids` order).
    pub fn fill(mut self, values: Vec<u64>) -> Vec<UsageRow> {
        for (row, v) in self.rows.iter_mut().zip(values) {
            row.used = v;
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

    #[test]
    fn keys_and_models_are_reported_with_money_in_usd() {
        let text = "listen: {address: 127.0.0.1:8080}
models:
  - {name: m, protocols: [openai], upstream: {url: \"http://127.0.0.1:9\"}, cost: {input_per_1k: 1, output_per_1k: 2}}
limits:
  per_key: {rpm: 5, budget_total: 10}
  per_model: {m: {budget_monthly: 100}}
";
        let cfg = modelgate_config::parse_str(text, "t.yaml", std::path::Path::new("."), &|_| None)
            .unwrap()
            .rate_limits
            .unwrap();
        let r = Report::new(&cfg, &[("alice".into(), None)], 1_796_104_144);
        assert_eq!(r.ids.len(), 3);
        let rows = r.fill(vec![2, 1_250_000, 7]);
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
                ("key", "rpm", 2, None, Some(56)),
                ("key", "usd_t", 1_250_000, Some(1.25), None),
                ("model", "usd_m", 7, Some(0.000007), Some(2_657_456)),
            ]
        );
        assert_eq!(rows[2].model.as_deref(), Some("m"));
        assert_eq!(rows[1].limit_usd, Some(10.0));
    }
}
