//! Planning (no I/O): which counters one request touches, given the
//! configured limits, the verified identity and the model; how much each is
//! charged before the backend call (the estimate); and the adjustments that
//! settle them once the upstream's usage is known.
//!
//! Counter names are `<measure>:<scope>:<id>`, e.g. `tpm:key:alice`: the
//! measure and scope are fixed words, the id a verified identity id or a
//! configured model name — never raw request input.

use modelgate_config::rate_limits::{LimitSet, MAX_GROUPS, RateLimits};

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
    /// Seconds until this counter's window ends (1 for leases).
    pub fn reset_secs(&self, now: u64) -> u64 {
        match self.charge.id.window {
            Window::Fixed { secs } => (self.charge.id.start + secs).saturating_sub(now).max(1),
            _ => 1,
        }
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
    let mut scope = |set: &LimitSet, scope: &str, id: &str, words: &str| {
        let total = est.input + est.output;
        let mut add = |limit: Option<u64>, m: &str, window: Window, amount: u64, measure, what| {
            let Some(limit) = limit else { return };
            let name = format!("{m}:{scope}:{id}");
            let (id, ttl_secs) = match window {
                Window::Fixed { secs } => (fixed(name, secs, now), secs + 1),
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
                what: format!("{what} {words}"),
            });
        };
        let min = Window::Fixed { secs: 60 };
        add(
            set.rps,
            "rps",
            Window::Fixed { secs: 1 },
            1,
            Measure::Requests,
            "requests per second",
        );
        add(
            set.rpm,
            "rpm",
            min,
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
    };
    if let Some(k) = who.key {
        let own = who.key_limits.copied().unwrap_or_default();
        let or = |a: Option<u64>, b: Option<u64>| a.or(b);
        let p = &cfg.per_key;
        let set = LimitSet {
            rps: or(own.rps, p.rps),
            rpm: or(own.rpm, p.rpm),
            tpm: or(own.tpm, p.tpm),
            tpd: or(own.tpd, p.tpd),
            input_tpm: or(own.input_tpm, p.input_tpm),
            output_tpm: or(own.output_tpm, p.output_tpm),
            max_concurrent: or(own.max_concurrent, p.max_concurrent),
        };
        scope(&set, "key", k, "for this key");
    }
    if let Some(s) = who.subject {
        scope(&cfg.per_subject, "sub", s, "for this subject");
    }
    for g in who.groups.iter().take(MAX_GROUPS) {
        scope(&cfg.per_group, "group", g, &format!("for group {g}"));
    }
    if let Some(ns) = who.namespace {
        scope(&cfg.per_namespace, "ns", ns, &format!("for namespace {ns}"));
    }
    if let Some(set) = cfg.per_model.get(model) {
        scope(set, "model", model, &format!("for model {model}"));
    }
    if let Some(class) = who.class
        && let Some(set) = cfg.classes.get(class)
    {
        let id = who.key.or(who.subject).unwrap_or("");
        let words = format!("for this identity (class {class})");
        scope(set, &format!("class:{class}"), id, &words);
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
                (Measure::Tokens, Outcome::Used(u)) => u.total(cached_permille),
                (Measure::InputTokens, Outcome::Used(u)) => u.input(cached_permille),
                (Measure::OutputTokens, Outcome::Used(u)) => u.completion,
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
