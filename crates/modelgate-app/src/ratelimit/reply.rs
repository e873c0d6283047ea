//! What the rate-limit step tells the client: OpenAI's `x-ratelimit-*`
//! headers for the tightest request and token counters, and the 429 of a
//! refused reservation naming the limit and when to retry.

use http::{HeaderMap, HeaderName, HeaderValue};
use modelgate_core::Reject;
use modelgate_limit::plan::{Measure, Planned};

use super::spend;

/// The `x-ratelimit-*` headers: the tightest request and token counters
/// (`resets[i]`: seconds until counter i resets, from the store for GCRA).
pub(super) fn headers(planned: &[Planned], remaining: &[u64], resets: &[u64]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (measure, suffix) in [(Measure::Requests, "requests"), (Measure::Tokens, "tokens")] {
        let tightest = planned
            .iter()
            .zip(remaining.iter().copied().chain(std::iter::repeat(u64::MAX)))
            .zip(resets.iter().copied().chain(std::iter::repeat(1)))
            .filter(|((p, _), _)| p.measure == measure)
            .min_by_key(|((p, r), _)| (*r).min(p.charge.limit));
        let Some(((p, r), reset)) = tightest else {
            continue;
        };
        let mut set = |name: String, v: String| {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(v)) {
                h.insert(n, v);
            }
        };
        set(
            format!("x-ratelimit-limit-{suffix}"),
            p.charge.limit.to_string(),
        );
        set(
            format!("x-ratelimit-remaining-{suffix}"),
            r.min(p.charge.limit).to_string(),
        );
        set(format!("x-ratelimit-reset-{suffix}"), format!("{reset}s"));
    }
    spend::headers(planned, remaining, &mut h);
    h
}

/// The 429 for a refused reservation, saying which limit and when to retry.
pub(super) fn refusal(planned: &[Planned], first: usize, resets: &[u64]) -> Reject {
    let Some(p) = planned.get(first) else {
        return Reject::RateLimited {
            retry_after_secs: 1,
            message: "Rate limit reached.".into(),
        };
    };
    let retry = resets.get(first).copied().unwrap_or(1);
    let message = if p.charge.amount > p.charge.limit {
        format!(
            "This request needs an estimated {} against the limit of {} {} ({}); lower max_tokens or shorten the prompt.",
            p.charge.amount, p.charge.limit, p.what, p.charge.limit
        )
    } else {
        format!(
            "Rate limit reached: {} (limit {}). Retry in {retry}s.",
            p.what, p.charge.limit
        )
    };
    Reject::RateLimited {
        retry_after_secs: retry,
        message,
    }
}
