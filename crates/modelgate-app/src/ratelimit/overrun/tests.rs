use modelgate_config::cost::Cost;
use modelgate_limit::plan::{Measure, Planned, Usage};
use modelgate_limit::store::{Charge, CounterId, Window};
use serde_json::json;

use super::*;

fn counter(name: &str, limit: u64, amount: u64, measure: Measure) -> Planned {
    Planned {
        charge: Charge {
            id: CounterId {
                name: name.into(),
                window: Window::Fixed { secs: 60 },
                start: 0,
            },
            limit,
            amount,
            ttl_secs: 61,
        },
        measure,
        what: format!("{name} for this key"),
    }
}

fn chunk(text: &str) -> Value {
    json!({"choices": [{"index": 0, "delta": {"content": text}}]})
}

#[test]
fn allowance_is_the_reservation_plus_its_headroom_capped_by_the_limit() {
    // tpm 100: estimate 10 in + 20 out reserved, 50 left after it → 80.
    let tpm = counter("tpm", 100, 30, Measure::Tokens);
    let rpm = counter("rpm", 5, 1, Measure::Requests);
    let mut w = Watch::new(&[rpm, tpm], &[4, 50], 10, 1000).unwrap();
    // 70 output tokens (280 chars) + 10 input = 80: still inside.
    w.admit(&chunk(&"x".repeat(280)), None).unwrap();
    assert_eq!(
        w.usage(),
        Usage {
            prompt: 10,
            completion: 70,
            cached: 0
        }
    );
    // One more character is one more token: 81 > 80, refused, not counted.
    let over = w.admit(&chunk("y"), None).unwrap_err();
    assert_eq!(over.what(), "tpm for this key");
    assert_eq!(w.usage().completion, 70);
    // Events without text (role, finish, usage-only) always pass.
    w.admit(
        &json!({"choices": [{"delta": {"role": "assistant"}}]}),
        None,
    )
    .unwrap();
}

#[test]
fn only_request_counters_means_nothing_to_watch() {
    let rpm = counter("rpm", 5, 1, Measure::Requests);
    let conc = counter("conc", 2, 1, Measure::Concurrent);
    assert!(Watch::new(&[rpm, conc], &[4, 1], 10, 1000).is_none());
}

#[test]
fn reported_usage_replaces_the_estimate_and_text_counts_every_field() {
    let otpm = counter("otpm", 1000, 10, Measure::OutputTokens);
    // Headroom past the limit is capped: 10 + 5000 → 1000.
    let mut w = Watch::new(&[otpm], &[5000], 3, 1000).unwrap();
    let u = Usage {
        prompt: 7,
        completion: 990,
        cached: 0,
    };
    let v =
        json!({"choices": [{"index": 0, "delta": {"content": "ab", "reasoning_content": "cd"}}]});
    w.admit(&v, Some(u)).unwrap();
    assert_eq!(w.usage(), u);
    // 990 reported (counting the 4 characters of its chunk); 40 more
    // characters are 10 more tokens (1000), one more is past the limit.
    let v = json!({"choices": [{"index": 0, "text": "x".repeat(40)}]});
    w.admit(&v, None).unwrap();
    assert_eq!(w.usage().completion, 1000);
    assert!(w.admit(&chunk("x"), None).is_err());
}

#[test]
fn a_budget_cut_is_insufficient_quota_then_done() {
    let cost = Cost {
        input_per_1k: 1_000_000,
        output_per_1k: 1_000_000,
        cached_input_per_1k: 1_000_000,
    };
    // $1 per 1k tokens: 1000 micro-USD a token. Budget $0.05, 2 tokens reserved.
    let usd = counter("usd_d", 50_000, 2_000, Measure::Spend(cost));
    let mut w = Watch::new(&[usd], &[10_000], 1, 1000).unwrap();
    // 12 tokens allowed (1 input + 11 output = 44 chars).
    w.admit(&chunk(&"x".repeat(44)), None).unwrap();
    let over = w.admit(&chunk("x"), None).unwrap_err();
    let ev = over.event();
    let text = std::str::from_utf8(&ev).unwrap();
    let (first, rest) = text.split_once("\n\n").unwrap();
    assert_eq!(rest, "data: [DONE]\n\n");
    let v: Value = serde_json::from_str(first.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(v["error"]["type"], "insufficient_quota");
    assert_eq!(v["error"]["code"], "insufficient_quota");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("budget exceeded: usd_d for this key"),
        "{msg}"
    );
}
