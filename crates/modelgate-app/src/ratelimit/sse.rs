//! A streamed answer (SSE) seen by the rate-limit step: event by event, it
//! catches the upstream's `usage` chunk, drops it when modelgate (not the
//! client) asked for it, and settles the reservation when the stream ends,
//! fails or is dropped (client gone, upstream dead) — exactly once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use modelgate_core::{BoxBody, BoxError};
use modelgate_limit::plan::{Outcome, Usage};
use serde_json::Value;

use super::Held;

/// Longest event kept while waiting for its end (larger ones pass unread).
const MAX_EVENT: usize = 1 << 20;

pub(super) struct UsageStream {
    inner: BoxBody,
    held: Option<Held>,
    /// Drop the usage-only chunk (the client did not ask for it).
    strip: bool,
    /// Bytes of an event not yet ended by a blank line.
    partial: BytesMut,
    ready: VecDeque<Bytes>,
    usage: Option<Usage>,
    /// The upstream's body has ended (or failed).
    done: bool,
}

impl UsageStream {
    pub(super) fn new(inner: BoxBody, held: Held, strip: bool) -> Self {
        Self {
            inner,
            held: Some(held),
            strip,
            partial: BytesMut::new(),
            ready: VecDeque::new(),
            usage: None,
            done: false,
        }
    }

    fn finish(&mut self) {
        if let Some(h) = self.held.take() {
            h.settle(match self.usage {
                Some(u) => Outcome::Used(u),
                None => Outcome::Keep,
            });
        }
    }

    /// Whether an event may hold a usage object (cheap test before parsing).
    fn may_hold_usage(ev: &[u8]) -> bool {
        contains(ev, b"\"usage\"")
            && !contains(ev, b"\"usage\":null")
            && !contains(ev, b"\"usage\": null")
    }

    /// One whole event (with its blank line): what goes on to the client.
    fn event(&mut self, ev: Bytes) -> Option<Bytes> {
        if !Self::may_hold_usage(&ev) {
            return Some(ev);
        }
        let text = std::str::from_utf8(&ev).ok()?;
        let data: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        let Ok(mut v) = serde_json::from_str::<Value>(&data) else {
            return Some(ev);
        };
        let Some(u) = super::request::usage(&v) else {
            return Some(ev);
        };
        self.usage = Some(u);
        if let Some(h) = &self.held {
            h.observed(u);
        }
        if !self.strip {
            return Some(ev);
        }
        let only_usage = v
            .get("choices")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if only_usage {
            return None;
        }
        // Usage riding on a content chunk: send the chunk without it.
        if let Some(o) = v.as_object_mut() {
            o.insert("usage".into(), Value::Null);
        }
        Some(Bytes::from(format!("data: {v}\n\n")))
    }

    fn feed(&mut self, data: Bytes) {
        // Fast path: whole events, none with usage.
        if self.partial.is_empty() && data.ends_with(b"\n\n") && !Self::may_hold_usage(&data) {
            self.ready.push_back(data);
            return;
        }
        self.partial.extend_from_slice(&data);
        let mut out = BytesMut::new();
        while let Some(end) = find(&self.partial, b"\n\n") {
            let ev = self.partial.split_to(end + 2).freeze();
            if let Some(b) = self.event(ev) {
                out.extend_from_slice(&b);
            }
        }
        if self.partial.len() > MAX_EVENT {
            out.extend_from_slice(&self.partial.split());
        }
        if !out.is_empty() {
            self.ready.push_back(out.freeze());
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

impl Drop for UsageStream {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for UsageStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.feed(data),
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    this.finish();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    if !this.partial.is_empty() {
                        let rest = this.partial.split().freeze();
                        if let Some(b) = this.event(rest) {
                            this.ready.push_back(b);
                        }
                    }
                    this.done = true;
                    this.finish();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_empty()
            && (self.done || (self.partial.is_empty() && self.inner.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use modelgate_config::rate_limits::{LimitSet, RateLimits};
    use modelgate_limit::plan::{Estimate, Who, plan};
    use modelgate_limit::store::Charge;

    use super::*;
    use crate::ratelimit::{Held, Limiter};

    /// A body that yields the given frames, one per poll.
    struct Frames(VecDeque<Bytes>);

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

    fn frames(parts: &[String]) -> BoxBody {
        Frames(parts.iter().map(|p| Bytes::from(p.clone())).collect()).boxed_unsync()
    }

    const CONTENT: &str =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";

    #[tokio::test]
    async fn usage_chunk_split_across_frames_is_read_stripped_and_settled() {
        let cfg = RateLimits {
            store: None,
            default_max_tokens: 100,
            per_key: LimitSet {
                tpm: Some(1000),
                max_concurrent: Some(1),
                ..LimitSet::default()
            },
            per_subject: LimitSet::default(),
            per_group: LimitSet::default(),
            per_namespace: LimitSet::default(),
            per_model: Default::default(),
            cached_input_permille: 1000,
            class_claim: None,
            classes: Default::default(),
            costs: Default::default(),
            budget_exceeded_status: 429,
            claim_limits: Default::default(),
        };
        let limiter = Arc::new(Limiter::build(&cfg, None, None).unwrap());
        let who = Who {
            key: Some("k"),
            ..Who::default()
        };
        let est = Estimate {
            input: 10,
            output: 100,
        };
        let planned = plan(&cfg, &who, "m", est, super::super::unix_now());
        let charges: Vec<Charge> = planned.iter().map(|p| p.charge.clone()).collect();
        limiter.store.reserve(&charges).await.unwrap();
        let held = Held {
            limiter: limiter.clone(),
            planned,
            model: "m".into(),
            strip: true,
            headers: Default::default(),
            settled: false,
            slot: None,
        };
        // The usage event arrives in two frames, the second with [DONE].
        let (a, b) = USAGE.split_at(30);
        let parts = [
            CONTENT.to_string(),
            a.to_string(),
            format!("{b}data: [DONE]\n\n"),
        ];
        let body = UsageStream::new(frames(&parts), held, true);
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(out, Bytes::from(format!("{CONTENT}data: [DONE]\n\n")));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let ids: Vec<_> = charges.iter().map(|c| c.id.clone()).collect();
        // Tokens settled to the usage (10), lease released (0).
        assert_eq!(limiter.store.read(&ids).await.unwrap(), vec![10, 0]);
    }
}
