//! Timing loop (not run by default): the body work of a limited, aliased,
//! streamed OpenAI request, before (each step parsed the body: estimate,
//! `include_usage`, alias) and after (one parse, one serialisation).
//! `cargo test --release -p modelgate-app openai_body::bench -- --ignored --nocapture`

use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use super::OpenAiBody;
use crate::ratelimit::request;

/// A chat body of `n` messages of `len` characters each, streamed.
fn body(n: usize, len: usize) -> Bytes {
    let text = "Kubernetes schedules pods onto nodes. ".repeat(len / 38 + 1);
    let msgs: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": &text[..len]}))
        .collect();
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "model": "chat", "messages": msgs, "stream": true, "max_tokens": 256, "temperature": 0.2
        }))
        .unwrap(),
    )
}

/// What the code did before: the estimate parsed the body, the usage
/// option parsed and serialised it, the alias parsed and serialised it.
fn before(raw: &Bytes) -> Bytes {
    let model = crate::body::openai_model(raw).unwrap();
    let v: Value = serde_json::from_slice(raw).unwrap();
    let asked = request::asked(v.as_object().unwrap(), 4096);
    assert!(asked.stream && !model.is_empty());
    let mut v: Value = serde_json::from_slice(raw).unwrap();
    request::ask_usage(v.as_object_mut().unwrap());
    let with_usage = Bytes::from(serde_json::to_vec(&v).unwrap());
    modelgate_upstream::alias::rewrite_json_model(&with_usage, "standin-llm").unwrap()
}

/// Now: one parse shared by the steps, one serialisation.
fn after(raw: &Bytes) -> Bytes {
    let model = crate::body::openai_model(raw).unwrap();
    let mut b = OpenAiBody::new(raw.clone());
    let asked = request::asked(b.json().unwrap(), 4096);
    assert!(asked.stream && !model.is_empty());
    request::ask_usage(b.edit().unwrap());
    b.rename_model("standin-llm").unwrap();
    b.into_bytes().unwrap()
}

fn time(f: fn(&Bytes) -> Bytes, raw: &Bytes, iters: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(f(std::hint::black_box(raw)));
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

#[test]
#[ignore = "timing loop: run with --release --ignored --nocapture"]
fn body_parse_once_vs_per_step() {
    for (n, len, iters) in [(2, 200, 20_000), (20, 2_000, 500), (64, 16_000, 20)] {
        let raw = body(n, len);
        let a: Value = serde_json::from_slice(&before(&raw)).unwrap();
        let b: Value = serde_json::from_slice(&after(&raw)).unwrap();
        assert_eq!(a, b, "both paths send the same body");
        let (t0, t1) = (time(before, &raw, iters), time(after, &raw, iters));
        println!(
            "body {:>7} bytes: before {:>10.0} ns, after {:>10.0} ns ({:.2}x)",
            raw.len(),
            t0,
            t1,
            t0 / t1
        );
    }
}
