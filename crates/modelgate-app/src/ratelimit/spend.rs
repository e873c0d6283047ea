//! Money in the rate-limit step: a request's cost at its model's price
//! (`models[].cost`), the cost metric, the budget refusal (429, or 402 with
//! `limits.budget_exceeded_status`) and the `x-budget-remaining-usd` header.
//! Counting itself is the planner's (`Measure::Spend`, micro-USD).

use http::{HeaderMap, HeaderValue};
use modelgate_config::cost::show_usd;
use modelgate_config::rate_limits::RateLimits;
use modelgate_core::Reject;
use modelgate_limit::plan::{Measure, Planned, Usage};
use prometheus_client::encoding::EncodeLabelSet;

/// Help of `modelgate_llm_cost_micro_usd_total`.
pub const COST_HELP: &str =
    "Cost of OpenAI requests at the configured model price (models[].cost), in micro-USD, by model";

/// The cost metric's labels: a configured model name only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    pub gen_ai_request_model: String,
}

/// A request's cost in micro-USD; `None` when its model has no price.
pub fn cost(cfg: &RateLimits, model: &str, u: &Usage) -> Option<u64> {
    cfg.costs.get(model).map(|c| u.micro_usd(c))
}

fn is_spend(p: &Planned) -> bool {
    matches!(p.measure, Measure::Spend(_))
}

/// `x-budget-remaining-usd`: what is left of the tightest budget after this
/// request's reservation.
pub fn headers(planned: &[Planned], remaining: &[u64], h: &mut HeaderMap) {
    let left = planned
        .iter()
        .zip(remaining)
        .filter(|(p, _)| is_spend(p))
        .map(|(p, r)| (*r).min(p.charge.limit))
        .min();
    if let Some(left) = left
        && let Ok(v) = HeaderValue::try_from(format!("{:.6}", left as f64 / 1_000_000.0))
    {
        h.insert("x-budget-remaining-usd", v);
    }
}

/// The refusal for an exhausted budget, or `None` when `p` is not one.
pub fn refusal(cfg: &RateLimits, p: &Planned, remaining: u64, now: u64) -> Option<Reject> {
    if !is_spend(p) {
        return None;
    }
    let retry = p.retry_after(now);
    let limit = show_usd(p.charge.limit);
    let mut message = if p.charge.amount > p.charge.limit {
        format!(
            "budget exceeded: this request's estimated cost {} is more than the {} of {limit}; lower max_tokens or shorten the prompt",
            show_usd(p.charge.amount),
            p.what
        )
    } else if remaining == 0 {
        format!("budget exceeded: {} {limit} spent", p.what)
    } else {
        format!(
            "budget exceeded: {} {limit} nearly spent ({} left; this request may cost up to {})",
            p.what,
            show_usd(remaining),
            show_usd(p.charge.amount)
        )
    };
    if let Some(secs) = retry {
        message.push_str(&format!(" (resets in {secs}s)"));
    }
    Some(Reject::BudgetExceeded {
        message,
        retry_after_secs: retry,
        payment_required: cfg.budget_exceeded_status == 402,
    })
}
