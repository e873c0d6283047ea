//! The top-level `limits:` section: the rate-limit step's limits (requests,
//! tokens, concurrency) per key, subject, group, namespace, model and claim
//! class, spend budgets (USD, counted in micro-USD), limits read from a
//! claim, the estimate reserved before the backend call, and where the
//! counters live (`store.redis`, or in process). Meanings: `docs/llm-limits.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::cost::{Cost, usd_to_micro};
use crate::error::Collector;
use crate::redis_store::{RawRedisStore, RedisStoreConfig, redis_store};

mod set;
pub use set::{ClaimLimits, LimitSet, Limits, RawLimitSet};

/// `limits:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub store: Option<RawStore>,
    pub estimate: Option<RawEstimate>,
    pub per_key: Option<RawLimitSet>,
    pub per_subject: Option<RawLimitSet>,
    pub per_group: Option<RawLimitSet>,
    pub per_namespace: Option<RawLimitSet>,
    pub per_model: Option<BTreeMap<String, RawLimitSet>>,
    pub cached_input_weight: Option<f64>,
    pub class_claim: Option<String>,
    pub classes: Option<BTreeMap<String, RawLimitSet>>,
    /// `402` or `429` (default) for an exhausted budget.
    pub budget_exceeded_status: Option<u16>,
    /// Claims holding numbers that replace `per_subject`'s limits.
    pub claim_limits: Option<ClaimLimits>,
    /// `finish` (default) or `cut`: what a stream that goes over a token
    /// limit or a budget mid-flight does.
    pub on_overrun: Option<OnOverrun>,
}

/// `limits.on_overrun`: what happens to a streamed answer that goes over its
/// reservation's headroom mid-flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOverrun {
    /// Let it finish and charge what it used (the default).
    #[default]
    Finish,
    /// End it cleanly: one SSE error event, `data: [DONE]`, and the upstream
    /// request dropped.
    Cut,
}

/// `limits.store`: absent = in-process counters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub redis: Option<RawRedisStore>,
}

/// `limits.estimate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEstimate {
    pub default_max_tokens: Option<u64>,
}

/// The validated `limits:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Shared counters in Redis; `None` = in-process counters.
    pub store: Option<RedisStoreConfig>,
    /// Output tokens reserved when a request names no `max_tokens`.
    pub default_max_tokens: u64,
    /// Per API key (by key name, stable across rotation).
    pub per_key: LimitSet,
    /// Per verified subject (any identity).
    pub per_subject: LimitSet,
    /// Per group the identity belongs to.
    pub per_group: LimitSet,
    /// Per Kubernetes namespace (ServiceAccount identities).
    pub per_namespace: LimitSet,
    /// Per model, all callers together (keys are configured model names).
    pub per_model: BTreeMap<String, LimitSet>,
    /// Weight of cached input tokens, in thousandths (1000 = full price).
    pub cached_input_permille: u64,
    /// The claim whose value picks a class in `classes`.
    pub class_claim: Option<String>,
    /// Limit classes, applied per identity whose `class_claim` names them.
    pub classes: BTreeMap<String, LimitSet>,
    /// Model prices (`models[].cost`), by configured model name.
    pub costs: BTreeMap<String, Cost>,
    /// HTTP status of an exhausted budget: 429 (default) or 402.
    pub budget_exceeded_status: u16,
    /// Claims whose numbers replace `per_subject`'s limits.
    pub claim_limits: ClaimLimits,
    /// What a stream over its headroom does (`finish` or `cut`).
    pub on_overrun: OnOverrun,
}

/// Default `estimate.default_max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Largest limit accepted: the Redis scripts count exactly up to 2^53 − 1.
const MAX_LIMIT: u64 = (1 << 53) - 1;
/// Groups counted per request (a token may list many; the first are used).
pub const MAX_GROUPS: usize = 16;

/// Validates `limits:`. `models` are the configured model names (for
/// `per_model`). Every problem is pushed to `c`.
pub(crate) fn rate_limits(
    raw: RawRateLimits,
    models: Option<&[String]>,
    c: &mut Collector,
) -> Option<RateLimits> {
    let before = c.len();
    let store = match raw.store.and_then(|s| s.redis) {
        Some(r) => redis_store(r, "limits.store.redis", c),
        None => None,
    };
    let default_max_tokens = match raw.estimate.and_then(|e| e.default_max_tokens) {
        None => DEFAULT_MAX_TOKENS,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            c.push(
                "limits.estimate.default_max_tokens",
                "must be a positive number of tokens",
                "write the output tokens to reserve for a request without max_tokens, e.g. 1000",
            );
            DEFAULT_MAX_TOKENS
        }
    };
    let set = |raw: Option<RawLimitSet>, key: &str, c: &mut Collector| match raw {
        Some(r) => limit_set(r, key, c),
        None => LimitSet::default(),
    };
    let per_key = set(raw.per_key, "limits.per_key", c);
    let per_subject = set(raw.per_subject, "limits.per_subject", c);
    let per_group = set(raw.per_group, "limits.per_group", c);
    let per_namespace = set(raw.per_namespace, "limits.per_namespace", c);
    let mut per_model = BTreeMap::new();
    for (name, r) in raw.per_model.unwrap_or_default() {
        let key = format!("limits.per_model.{name}");
        if let Some(models) = models
            && !models.iter().any(|m| m == &name)
        {
            c.push(
                &key,
                format!("no model named {name:?} is configured"),
                format!("name one of the models: {}", models.join(", ")),
            );
        }
        per_model.insert(name, limit_set(r, &key, c));
    }
    let cached_input_permille = match raw.cached_input_weight {
        None => 1000,
        Some(w) if (0.0..=1.0).contains(&w) => (w * 1000.0).round() as u64,
        Some(_) => {
            c.push(
                "limits.cached_input_weight",
                "must be between 0 and 1",
                "write the fraction a cached input token counts for, e.g. 0.25 (default 1)",
            );
            1000
        }
    };
    let classes: BTreeMap<String, LimitSet> = raw
        .classes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, r)| {
            let s = limit_set(r, &format!("limits.classes.{name}"), c);
            (name, s)
        })
        .collect();
    match (&raw.class_claim, classes.is_empty()) {
        (Some(_), true) => c.push(
            "limits.class_claim",
            "a class claim without classes picks nothing",
            "add `limits.classes: {gold: {tpm: 100000}}`, or remove class_claim",
        ),
        (None, false) => c.push(
            "limits.classes",
            "classes are picked by a claim, and none is named",
            "add `limits.class_claim: tier` (the claim whose value names the class)",
        ),
        _ => {}
    }
    if let Some(claim) = &raw.class_claim
        && claim.is_empty()
    {
        c.push(
            "limits.class_claim",
            "empty claim name",
            "name a claim, e.g. tier",
        );
    }
    let budget_exceeded_status = match raw.budget_exceeded_status {
        None => 429,
        Some(s @ (402 | 429)) => s,
        Some(_) => {
            c.push(
                "limits.budget_exceeded_status",
                "must be 402 or 429",
                "write 402 (Payment Required) or 429 (the default, what OpenAI answers)",
            );
            429
        }
    };
    let claim_limits = raw.claim_limits.unwrap_or_default();
    for (name, claim) in claim_limits.entries() {
        if claim.is_empty() {
            c.push(
                format!("limits.claim_limits.{name}"),
                "empty claim name",
                "name the claim that holds the number, e.g. quota_tpm",
            );
        }
    }
    (c.len() == before).then_some(RateLimits {
        on_overrun: raw.on_overrun.unwrap_or_default(),
        costs: BTreeMap::new(),
        budget_exceeded_status,
        claim_limits,
        store,
        default_max_tokens,
        per_key,
        per_subject,
        per_group,
        per_namespace,
        per_model,
        cached_input_permille,
        class_claim: raw.class_claim,
        classes,
    })
}

pub(crate) fn limit_set(raw: RawLimitSet, key: &str, c: &mut Collector) -> LimitSet {
    let number = |c: &mut Collector, name, n| {
        if (1..=MAX_LIMIT).contains(&n) {
            return Some(n);
        }
        c.push(
            format!("{key}.{name}"),
            "must be a positive number (at most 2^53 - 1)",
            "write the limit, or remove the key for no limit",
        );
        None
    };
    let budget = |c: &mut Collector, name, usd| match usd_to_micro(usd) {
        Some(m) if m > 0 => Some(m),
        _ => {
            c.push(
                format!("{key}.{name}"),
                "must be a positive amount of USD",
                "write the spend allowed, e.g. 5 for $5.00, or remove the key for no budget",
            );
            None
        }
    };
    raw.map(c, number, budget)
}

/// Adds what the model entries say to a validated `limits:` section: their
/// prices (`models[].cost`) and their limits (`models[].limits`, the
/// shorthand for `limits.per_model`; both set is an error).
pub(crate) fn with_models(rl: &mut RateLimits, models: &[crate::Model], c: &mut Collector) {
    for (i, m) in models.iter().enumerate() {
        let name = m.name.as_str().to_string();
        if let Some(cost) = m.cost {
            rl.costs.insert(name.clone(), cost);
        }
        if let Some(set) = m.limits {
            if rl.per_model.contains_key(&name) {
                c.push(
                    format!("models[{i}].limits"),
                    format!("model {name:?} also has limits.per_model.{name}"),
                    "keep one of the two",
                );
            }
            rl.per_model.insert(name, set);
        }
    }
}

#[cfg(test)]
mod tests;
