use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use modelgate_config::rate_limits::{LimitSet, OnOverrun, RateLimits};
use modelgate_limit::plan::{Estimate, Who, plan};
use modelgate_limit::store::{Charge, CounterId, Reservation};

use super::*;
use crate::ratelimit::overrun::Watch;
use crate::ratelimit::{Held, Limiter};

/// A body that yields the given frames, one per poll; counts its drop.
struct Frames(VecDeque<Bytes>, Arc<std::sync::atomic::AtomicBool>);

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn frames(parts: &[String]) -> (BoxBody, Arc<std::sync::atomic::AtomicBool>) {
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = Frames(
        parts.iter().map(|p| Bytes::from(p.clone())).collect(),
        dropped.clone(),
    );
    (body.boxed_unsync(), dropped)
}

const CONTENT: &str =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";

fn cfg(tpm: u64, on_overrun: OnOverrun) -> RateLimits {
    RateLimits {
        store: None,
        default_max_tokens: 100,
        per_key: LimitSet {
            tpm: Some(tpm),
            max_concurrent: Some(1),
            ..LimitSet::default()
        },
        per_subject: LimitSet::default(),
        per_group: LimitSet::default(),
        per_namespace: LimitSet::default(),
        per_model: Default::default(),
        on_overrun,
        cached_input_permille: 1000,
        class_claim: None,
        classes: Default::default(),
        costs: Default::default(),
        budget_exceeded_status: 429,
        claim_limits: Default::default(),
    }
}

/// A reservation of `est` for key `k`, as the step makes it.
async fn reserve(
    cfg: &RateLimits,
    est: Estimate,
) -> (Held, Arc<Limiter>, Vec<CounterId>, Vec<u64>) {
    let limiter = Arc::new(Limiter::build(cfg, None, None).unwrap());
    let who = Who {
        key: Some("k"),
        ..Who::default()
    };
    let now = crate::ratelimit::unix_now();
    let planned = plan(cfg, &who, "m", est, now);
    let charges: Vec<Charge> = planned.iter().map(|p| p.charge.clone()).collect();
    let Reservation::Granted { remaining, .. } = limiter.store.reserve(&charges).await.unwrap()
    else {
        panic!("refused");
    };
    let ids = charges.iter().map(|c| c.id.clone()).collect();
    let held = Held::new(limiter.clone(), planned, "m", &remaining, &[]);
    (held, limiter, ids, remaining)
}

#[tokio::test]
async fn usage_chunk_split_across_frames_is_read_stripped_and_settled() {
    let cfg = cfg(1000, OnOverrun::Finish);
    let est = Estimate {
        input: 10,
        output: 100,
    };
    let (mut held, limiter, ids, _) = reserve(&cfg, est).await;
    held.strip = true;
    // The usage event arrives in two frames, the second with [DONE].
    let (a, b) = USAGE.split_at(30);
    let parts = [
        CONTENT.to_string(),
        a.to_string(),
        format!("{b}data: [DONE]\n\n"),
    ];
    let body = UsageStream::new(frames(&parts).0, held, true);
    let out = body.collect().await.unwrap().to_bytes();
    assert_eq!(out, Bytes::from(format!("{CONTENT}data: [DONE]\n\n")));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Tokens settled to the usage (10), lease released (0).
    assert_eq!(limiter.store.read(&ids).await.unwrap(), vec![10, 0]);
}

#[tokio::test]
async fn a_stream_past_its_headroom_is_cut_dropped_and_settled_to_what_was_sent() {
    // tpm 40: 4 in + 6 out reserved, 30 left → the stream may reach 40.
    let cfg = cfg(40, OnOverrun::Cut);
    let est = Estimate {
        input: 4,
        output: 6,
    };
    let (mut held, limiter, ids, remaining) = reserve(&cfg, est).await;
    held.watch = Watch::new(&held.planned, &remaining, est.input, 1000);
    // 20 events of 8 characters (2 tokens each): 4 + 36 = 40 fits after
    // 18 events, the 19th would make 42.
    let ev = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcdefgh\"}}]}\n\n";
    let mut parts: Vec<String> = (0..20).map(|_| ev.to_string()).collect();
    parts.push("data: [DONE]\n\n".into());
    let (inner, dropped) = frames(&parts);
    let mut body = UsageStream::new(inner, held, false);
    let mut out = Vec::new();
    while let Some(f) = body.frame().await {
        out.extend_from_slice(&f.unwrap().into_data().unwrap());
    }
    // The upstream's body is dropped at the cut, before its end.
    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("abcdefgh").count(), 18, "{text}");
    let tail: Vec<&str> = text.trim_end().rsplit("\n\n").take(2).collect();
    assert_eq!(tail[0], "data: [DONE]");
    let err: Value = serde_json::from_str(tail[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(err["error"]["type"], "rate_limit_exceeded");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens per minute for this key (limit 40)")
    );
    drop(body);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Settled to what was sent: 4 input + 36 output; lease released.
    assert_eq!(limiter.store.read(&ids).await.unwrap(), vec![40, 0]);
}
