//! Limits taken from the identity (`limits.claim_limits`): a claim holding a
//! number replaces `limits.per_subject`'s value for that identity (budgets
//! in USD). A missing or invalid claim falls back to `per_subject`; with no
//! such value either the request is refused (fail closed): a configured
//! quota claim never silently means "no limit".

use modelgate_config::cost::usd_to_micro;
use modelgate_config::rate_limits::{LimitSet, RateLimits};
use modelgate_core::{Principal, Reject};
use serde_json::Value;

/// Largest number accepted from a claim (the stores count exactly up to it).
const MAX: u64 = (1 << 53) - 1;

/// A claim's number as a limit: a positive integer, or for budgets a
/// positive amount of USD (as micro-USD). Numeric strings are accepted.
fn number(v: &Value, budget: bool) -> Option<u64> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    let n = if budget {
        usd_to_micro(f)?
    } else if f.fract() == 0.0 && f >= 1.0 && f <= MAX as f64 {
        f as u64
    } else {
        return None;
    };
    (1..=MAX).contains(&n).then_some(n)
}

/// The identity's limits from its claims; `Ok(None)` when none are
/// configured or none apply.
pub(super) fn from_claims(
    cfg: &RateLimits,
    principal: Option<&Principal>,
) -> Result<Option<LimitSet>, Reject> {
    let entries = cfg.claim_limits.entries();
    let Some(p) = principal else {
        return Ok(None);
    };
    if entries.is_empty() {
        return Ok(None);
    }
    let claims = p.claims.as_deref();
    let mut base = cfg.per_subject;
    let mut out = LimitSet::default();
    for (name, claim) in entries {
        let budget = name.starts_with("budget_");
        let got = claims
            .and_then(|c| c.get(claim))
            .and_then(|v| number(v, budget));
        match got {
            Some(n) => {
                if let Some(slot) = out.get_mut(name) {
                    *slot = Some(n);
                }
            }
            None if base.get_mut(name).is_some_and(|v| v.is_some()) => {}
            None => {
                return Err(Reject::Forbidden(format!(
                    "this identity has no valid `{claim}` claim (a positive number), which sets its {name} limit; ask for a token that carries it"
                )));
            }
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_numbers_are_positive_integers_or_usd() {
        assert_eq!(number(&serde_json::json!(5000), false), Some(5000));
        assert_eq!(number(&serde_json::json!("5000"), false), Some(5000));
        assert_eq!(number(&serde_json::json!(2.5), false), None);
        assert_eq!(number(&serde_json::json!(0), false), None);
        assert_eq!(number(&serde_json::json!(-3), false), None);
        assert_eq!(number(&serde_json::json!("gold"), false), None);
        assert_eq!(number(&serde_json::json!(2.5), true), Some(2_500_000));
        assert_eq!(number(&serde_json::json!(true), true), None);
    }

    fn cfg(per_subject_tpm: Option<u64>) -> RateLimits {
        let text = "listen: {address: 127.0.0.1:8080}
models: [{name: m, protocols: [openai], upstream: {url: \"http://127.0.0.1:9\"}}]
limits: {claim_limits: {tpm: quota_tpm, budget_daily: quota_usd}, per_subject: {budget_daily: 1}}
";
        let mut c =
            modelgate_config::parse_str(text, "t.yaml", std::path::Path::new("."), &|_| None)
                .unwrap()
                .rate_limits
                .unwrap();
        c.per_subject.tpm = per_subject_tpm;
        c
    }

    fn who(claims: serde_json::Value) -> Principal {
        let mut p = Principal::api_key("s", Default::default());
        p.claims = claims.as_object().cloned().map(std::sync::Arc::new);
        p
    }

    #[test]
    fn claims_replace_per_subject_and_a_missing_one_falls_back_or_is_refused() {
        let p = who(serde_json::json!({"quota_tpm": 500, "quota_usd": "2.5"}));
        let got = from_claims(&cfg(None), Some(&p)).unwrap().unwrap();
        assert_eq!((got.tpm, got.budget_daily), (Some(500), Some(2_500_000)));
        // quota_usd missing: per_subject.budget_daily applies (left unset here).
        let p = who(serde_json::json!({"quota_tpm": 500}));
        let got = from_claims(&cfg(None), Some(&p)).unwrap().unwrap();
        assert_eq!((got.tpm, got.budget_daily), (Some(500), None));
        // quota_tpm invalid, per_subject.tpm set: its value applies.
        let p = who(serde_json::json!({"quota_tpm": "gold"}));
        assert_eq!(from_claims(&cfg(Some(9)), Some(&p)).unwrap(), None);
        // ... and with no per_subject.tpm: refused, naming the claim.
        let e = from_claims(&cfg(None), Some(&p)).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.client_message().contains("quota_tpm"));
        assert!(from_claims(&cfg(None), None).unwrap().is_none());
    }
}
