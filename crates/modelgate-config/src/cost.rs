//! `models[].cost`: a model's price per 1000 tokens in USD, and the money
//! type every spend counter uses: integer micro-dollars (no floats in
//! counters). Meanings: `docs/llm-limits.md` ("Cost and budgets").

use serde::Deserialize;

use crate::error::Collector;

/// `models[].cost` as written (USD per 1000 tokens).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCost {
    pub input_per_1k: Option<f64>,
    pub output_per_1k: Option<f64>,
    /// Price of cached input tokens (default: `input_per_1k`).
    pub cached_input_per_1k: Option<f64>,
}

/// A model's validated price, in micro-USD per 1000 tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub input_per_1k: u64,
    pub output_per_1k: u64,
    pub cached_input_per_1k: u64,
}

impl Cost {
    /// Micro-USD for a request: `uncached` + `cached` input tokens and
    /// `output` tokens, rounded up once per request.
    pub fn micro_usd(&self, uncached: u64, cached: u64, output: u64) -> u64 {
        let nano_k = u128::from(uncached) * u128::from(self.input_per_1k)
            + u128::from(cached) * u128::from(self.cached_input_per_1k)
            + u128::from(output) * u128::from(self.output_per_1k);
        u64::try_from(nano_k.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

/// Largest amount of money accepted: the Redis scripts count exactly up to
/// 2^53 − 1 micro-USD (about $9 billion).
pub const MAX_MICRO_USD: u64 = (1 << 53) - 1;

/// USD (as written in config or on a key) to micro-USD; `None` when it is
/// negative, not finite, or too large.
pub fn usd_to_micro(usd: f64) -> Option<u64> {
    let m = (usd * 1_000_000.0).round();
    (usd.is_finite() && m >= 0.0 && m <= MAX_MICRO_USD as f64).then_some(m as u64)
}

/// Micro-USD shown as dollars with cents (`$5.00`), or more digits when
/// cents would hide the amount (`$0.0015`).
pub fn show_usd(micro: u64) -> String {
    let dollars = micro / 1_000_000;
    let frac = micro % 1_000_000;
    if frac.is_multiple_of(10_000) {
        return format!("${dollars}.{:02}", frac / 10_000);
    }
    let digits = format!("{frac:06}");
    format!("${dollars}.{}", digits.trim_end_matches('0'))
}

/// Validates `models[].cost` (`key` names it in errors).
pub(crate) fn cost(raw: RawCost, key: &str, c: &mut Collector) -> Option<Cost> {
    let before = c.len();
    if raw.input_per_1k.is_none() && raw.output_per_1k.is_none() {
        c.push(
            key,
            "a cost names no price",
            "add input_per_1k and output_per_1k (USD per 1000 tokens), e.g. {input_per_1k: 0.5, output_per_1k: 1.5}",
        );
    }
    let mut one = |v: Option<f64>, name: &str, default: u64| match v {
        None => default,
        Some(p) => match usd_to_micro(p) {
            Some(m) => m,
            None => {
                c.push(
                    format!("{key}.{name}"),
                    "must be a price in USD per 1000 tokens, 0 or more",
                    "write e.g. 0.5 for $0.50 per 1000 tokens",
                );
                0
            }
        },
    };
    let input_per_1k = one(raw.input_per_1k, "input_per_1k", 0);
    let output_per_1k = one(raw.output_per_1k, "output_per_1k", 0);
    let cached_input_per_1k = one(raw.cached_input_per_1k, "cached_input_per_1k", input_per_1k);
    (c.len() == before).then_some(Cost {
        input_per_1k,
        output_per_1k,
        cached_input_per_1k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_integer_micro_usd() {
        let c = Cost {
            input_per_1k: 500_000,
            output_per_1k: 1_500_000,
            cached_input_per_1k: 250_000,
        };
        // 10 input × $0.0005 + 20 output × $0.0015 = $0.035
        assert_eq!(c.micro_usd(10, 0, 20), 35_000);
        assert_eq!(c.micro_usd(0, 4, 0), 1_000);
        // a fraction of a micro-dollar rounds up, once per request
        let tiny = Cost {
            input_per_1k: 150,
            output_per_1k: 600,
            cached_input_per_1k: 150,
        };
        assert_eq!(tiny.micro_usd(1, 0, 1), 1);
        assert_eq!(tiny.micro_usd(1000, 0, 0), 150);
        assert_eq!(usd_to_micro(0.5), Some(500_000));
        assert_eq!(usd_to_micro(-1.0), None);
        assert_eq!(usd_to_micro(f64::NAN), None);
        assert_eq!(show_usd(5_000_000), "$5.00");
        assert_eq!(show_usd(1_500), "$0.0015");
        assert_eq!(show_usd(120_000), "$0.12");
    }
}
