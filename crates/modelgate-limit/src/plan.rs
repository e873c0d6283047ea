//! Planning (no I/O): which counters one request touches, given the
//! configured limits, the verified identity and the model; how much each is
//! charged before the backend call (the estimate); and the adjustments that
//! settle them once the upstream's usage is known.
//!
//! Counter names are `<measure>:<scope>:<id>`, e.g. `tpm:key:alice`: the
//! measure and scope are fixed words, the id a verified identity id or a
//! configured model name — never raw request input.

use modelgate_config::cost::Cost;
use modelgate_config::rate_limits::{LimitSet, MAX_GROUPS, RateLimits};

use crate::budget::{TOTAL_TTL, month_bounds};
use crate::store::{Adjustment, Charge, CounterId, Window};

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Requests (per second or minute); never settled.
    Requests,
    /// Input + output tokens.
    Tokens,
    InputTokens,
    OutputTokens,
    /// Requests running at once (a lease, released at the end).
    Concurrent,
    /// Money, in micro-USD, at the model's price (a budget).
    Spend(Cost),
}

/// The verified identity, as the step counts it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Who<'a> {
    /// API key name (stable across rotation), for API-key identities.
    pub key: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub groups: &'a [String],
    pub namespace: Option<&'a str>,
    /// Value of `limits.class_claim`, when the identity carries it.
    pub class: Option<&'a str>,
    /// The key's own limits (stored with the key); set values replace
    /// `limits.per_key`'s.
    pub key_limits: Option<&'a LimitSet>,
    /// Limits read from the identity's claims (`limits.claim_limits`); set
    /// values replace `limits.per_subject`'s.
    pub subject_limits: Option<&'a LimitSet>,
}

/// Tokens reserved for one request before its usage is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub input: u64,
    pub output: u64,
}

/// Tokens one request used, as the upstream reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    /// `prompt_tokens_details.cached_tokens` (part of `prompt`).
    pub cached: u64,
}

impl Usage {
    /// Input tokens as counted: cached ones weighted (thousandths).
    pub fn input(&self, cached_permille: u64) -> u64 {
        let cached = self.cached.min(self.prompt);
        (self.prompt - cached) + (cached * cached_permille).div_ceil(1000)
    }

    pub fn total(&self, cached_permille: u64) -> u64 {
        self.input(cached_permille) + self.completion
    }

    /// Micro-USD at `cost` (cached input at its own price).
    pub fn micro_usd(&self, cost: &Cost) -> u64 {
        let cached = self.cached.min(self.prompt);
        cost.micro_usd(self.prompt - cached, cached, self.completion)
    }
}

/// One counter a request touches, and what it measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub charge: Charge,
    pub measure: Measure,
    /// Human words for messages: `tokens per minute for this key`.
    pub what: String,
}

impl Planned {
    /// Seconds until this counter's window ends (1 for leases; for total
    /// budgets, which never end, [`TOTAL_TTL`]).
    pub fn reset_secs(&self, now: u64) -> u64 {
        self.retry_after(now).unwrap_or(TOTAL_TTL)
    }

    /// Seconds until this counter's window ends; `None` when it never does
    /// (total budgets).
    pub fn retry_after(&self, now: u64) -> Option<u64> {
        match self.charge.id.window {
            Window::Fixed { secs } => {
                Some((self.charge.id.start + secs).saturating_sub(now).max(1))
            }
            Window::Month => Some(month_bounds(now).1.saturating_sub(now).max(1)),
            Window::Total => None,
            Window::Lease => Some(1),
            // The store's answer says more (`reset_secs_from`); at most a period.
            Window::Gcra { period_ms } => Some(period_ms.div_ceil(1000).max(1)),
        }
    }

    /// [`Planned::reset_secs`], or for a GCRA counter the store's answer
    /// (`reset_ms` from the [`Reservation`](crate::store::Reservation)), in
    /// whole seconds, at least 1.
    pub fn reset_secs_from(&self, now: u64, reset_ms: Option<u64>) -> u64 {
        match (self.charge.id.window, reset_ms) {
            (Window::Gcra { .. }, Some(ms)) => ms.div_ceil(1000).max(1),
            _ => self.reset_secs(now),
        }
    }
}

impl Planned {
    /// What this counter is charged for `u`; `None` for request and
    /// concurrency counters, which usage does not change.
    pub fn charged(&self, u: &Usage, cached_permille: u64) -> Option<u64> {
        Some(match self.measure {
            Measure::Requests | Measure::Concurrent => return None,
            Measure::Tokens => u.total(cached_permille),
            Measure::InputTokens => u.input(cached_permille),
            Measure::OutputTokens => u.completion,
            Measure::Spend(cost) => u.micro_usd(&cost),
        })
    }
}

/// How a request ended, for settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream reported its usage: charge exactly that.
    Used(Usage),
    /// Nothing was produced (refused or failed before an answer): give the
    /// estimate back.
    Refund,
    /// An answer was sent but its usage is unknown (a stream cut short):
    /// keep the estimate (the safe side).
    Keep,
}

/// Lease TTL: bounds a concurrency lease leaked by a replica that died.
pub const LEASE_TTL: u64 = 3600;

fn fixed(name: String, secs: u64, now: u64) -> CounterId {
    CounterId {
        name,
        window: Window::Fixed { secs },
        start: now - now % secs,
    }
}

/// The counters a request touches, with the estimate charged to each.
pub fn plan(cfg: &RateLimits, who: &Who<'_>, model: &str, est: Estimate, now: u64) -> Vec<Planned> {
    let mut out = Vec::new();
    let cost = cfg.costs.get(model).copied();
    let spend = cost.map_or(0, |c| c.micro_usd(est.input, 0, est.output));
    let spend_measure = Measure::Spend(cost.unwrap_or_default());
    let mut scope = |set: &LimitSet, scope: &str, id: &str, words: &str, owner: &str| {
        let total = est.input + est.output;
        let mut add = |limit: Option<u64>, m: &str, window: Window, amount: u64, measure, what| {
            let Some(limit) = limit else { return };
            let name = format!("{m}:{scope}:{id}");
            let (id, ttl_secs) = match window {
                Window::Fixed { secs } => (fixed(name, secs, now), secs + 1),
                Window::Month => {
                    let (start, end) = month_bounds(now);
                    let id = CounterId {
                        name,
                        window,
                        start,
                    };
                    (id, end.saturating_sub(now) + 86_400)
                }
                Window::Total => (
                    CounterId {
                        name,
                        window,
                        start: 0,
                    },
                    TOTAL_TTL,
                ),
                w => (
                    CounterId {
                        name,
                        window: w,
                        start: 0,
                    },
                    LEASE_TTL,
                ),
            };
            out.push(Planned {
                charge: Charge {
                    id,
                    limit,
                    amount,
                    ttl_secs,
                },
                measure,
                what: match measure {
                    Measure::Spend(_) => format!("{owner} {what}"),
                    _ => format!("{what} {words}"),
                },
            });
        };
        let min = Window::Fixed { secs: 60 };
        add(
            set.rps,
            "rps",
            Window::Gcra { period_ms: 1000 },
            1,
            Measure::Requests,
            "requests per second",
        );
        add(
            set.rpm,
            "rpm",
            Window::Gcra { period_ms: 60_000 },
            1,
            Measure::Requests,
            "requests per minute",
        );
        add(
            set.tpm,
            "tpm",
            min,
            total,
            Measure::Tokens,
            "tokens per minute",
        );
        add(
            set.tpd,
            "tpd",
            Window::Fixed { secs: 86_400 },
            total,
            Measure::Tokens,
            "tokens per day",
        );
        add(
            set.input_tpm,
            "itpm",
            min,
            est.input,
            Measure::InputTokens,
            "input tokens per minute",
        );
        add(
            set.output_tpm,
            "otpm",
            min,
            est.output,
            Measure::OutputTokens,
            "output tokens per minute",
        );
        add(
            set.max_concurrent,
            "conc",
            Window::Lease,
            1,
            Measure::Concurrent,
            "concurrent requests",
        );
        add(
            set.budget_daily,
            "usd_d",
            Window::Fixed { secs: 86_400 },
            spend,
            spend_measure,
            "daily budget",
        );
        add(
            set.budget_monthly,
            "usd_m",
            Window::Month,
            spend,
            spend_measure,
            "monthly budget",
        );
        add(
            set.budget_total,
            "usd_t",
            Window::Total,
            spend,
            spend_measure,
            "total budget",
        );
    };
    if let Some(k) = who.key {
        let set = who.key_limits.copied().unwrap_or_default().or(&cfg.per_key);
        scope(&set, "key", k, "for this key", &format!("key {k}"));
    }
    if let Some(s) = who.subject {
        let set = who
            .subject_limits
            .copied()
            .unwrap_or_default()
            .or(&cfg.per_subject);
        scope(&set, "sub", s, "for this subject", &format!("subject {s}"));
    }
    for g in who.groups.iter().take(MAX_GROUPS) {
        let owner = format!("group {g}");
        scope(&cfg.per_group, "group", g, &format!("for {owner}"), &owner);
    }
    if let Some(ns) = who.namespace {
        let owner = format!("namespace {ns}");
        scope(
            &cfg.per_namespace,
            "ns",
            ns,
            &format!("for {owner}"),
            &owner,
        );
    }
    if let Some(set) = cfg.per_model.get(model) {
        let owner = format!("model {model}");
        scope(set, "model", model, &format!("for {owner}"), &owner);
    }
    if let Some(class) = who.class
        && let Some(set) = cfg.classes.get(class)
    {
        let id = who.key.or(who.subject).unwrap_or("");
        let words = format!("for this identity (class {class})");
        let owner = format!("class {class} of {id}");
        scope(set, &format!("class:{class}"), id, &words, &owner);
    }
    out
}

/// The adjustments that settle a request's reservation.
pub fn settle(planned: &[Planned], outcome: Outcome, cached_permille: u64) -> Vec<Adjustment> {
    planned
        .iter()
        .filter_map(|p| {
            let reserved = p.charge.amount;
            let actual = match (p.measure, outcome) {
                (Measure::Requests, _) => return None,
                (Measure::Concurrent, _) => 0,
                (_, Outcome::Keep) => return None,
                (_, Outcome::Refund) => 0,
                (_, Outcome::Used(u)) => p.charged(&u, cached_permille)?,
            };
            let delta = i64::try_from(actual).unwrap_or(i64::MAX)
                - i64::try_from(reserved).unwrap_or(i64::MAX);
            (delta != 0).then(|| Adjustment {
                id: p.charge.id.clone(),
                delta,
                ttl_secs: p.charge.ttl_secs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
