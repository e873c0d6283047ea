//! A granted reservation of the rate-limit step and its end: the answer's
//! `x-ratelimit-*` headers, and settlement exactly once — with the answer's
//! usage (a JSON body, or a stream when it ends), or by giving the estimate
//! back when dropped before an answer. Concurrency leases are released
//! however the request ends (for V1/V2 answers, when their body ends).

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response};
use http_body_util::BodyExt;
use modelgate_audit::{MicroUsd, TokenNote};
use modelgate_core::{BoxBody, Reject, full};
use modelgate_limit::plan::{Outcome, Planned, Usage, settle};

use super::overrun::Watch;
use super::{ANSWER_DEADLINE, Limiter, MAX_ANSWER, TokenLabels, TokenSlot, request, spend, sse};
use crate::finish::Trace;

/// A granted reservation, settled exactly once: by the answer, or (dropped
/// before one) by giving the estimate back.
pub struct Held {
    limiter: Arc<Limiter>,
    pub(super) planned: Vec<Planned>,
    model: String,
    /// Drop the stream's usage chunk (modelgate asked for it, not the client).
    pub(super) strip: bool,
    headers: HeaderMap,
    settled: bool,
    /// A stream's tokens, for its decision record.
    slot: Option<TokenSlot>,
    /// With `on_overrun: cut`, for a stream: how far it may go.
    pub(super) watch: Option<Watch>,
    /// Request counters and a lease only (V1/V2): nothing to read in the
    /// answer; the lease is held until its body ends.
    pub(super) requests_only: bool,
}

impl Held {
    pub(super) fn new(
        limiter: Arc<Limiter>,
        planned: Vec<Planned>,
        model: &str,
        remaining: &[u64],
        resets: &[u64],
    ) -> Self {
        let headers = super::reply::headers(&planned, remaining, resets);
        Self {
            limiter,
            planned,
            model: model.to_string(),
            strip: false,
            headers,
            settled: false,
            slot: None,
            watch: None,
            requests_only: false,
        }
    }

    /// Finishes the step on the backend's answer: adds the `x-ratelimit-*`
    /// headers and settles with the answer's usage (a stream, when it ends).
    pub async fn answer(
        self,
        resp: Response<BoxBody>,
        trace: &mut Trace,
    ) -> Result<Response<BoxBody>, Reject> {
        let (mut parts, body) = resp.into_parts();
        parts.headers.extend(self.headers.clone());
        let sse = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !parts.status.is_success() {
            self.settle(Outcome::Refund);
            return Ok(Response::from_parts(parts, body));
        }
        if self.requests_only {
            let body = super::hold::until_end(body, self);
            return Ok(Response::from_parts(parts, body.boxed_unsync()));
        }
        if sse {
            let slot = TokenSlot::default();
            trace.tokens_later = Some(slot.clone());
            let strip = self.strip;
            let held = self.with_slot(slot);
            let body = sse::UsageStream::new(body, held, strip);
            return Ok(Response::from_parts(parts, body.boxed_unsync()));
        }
        let bytes = match tokio::time::timeout(ANSWER_DEADLINE, read_capped(body)).await {
            Ok(Some(b)) => b,
            _ => {
                self.settle(Outcome::Keep);
                return Err(Reject::UpstreamUnavailable {
                    detail: "the upstream's answer could not be read".into(),
                });
            }
        };
        let used = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| request::usage(&v));
        match used {
            Some(u) => {
                trace.tokens = Some(self.observed(u));
                self.settle(Outcome::Used(u));
            }
            None => self.settle(Outcome::Keep),
        }
        Ok(Response::from_parts(parts, full(bytes)))
    }

    fn with_slot(mut self, slot: TokenSlot) -> Held {
        self.slot = Some(slot);
        self
    }

    /// Records a usage seen (metrics, and a stream's slot), once.
    pub(super) fn observed(&self, u: Usage) -> TokenNote {
        let w = self.limiter.cfg.cached_input_permille;
        let cost = spend::cost(&self.limiter.cfg, &self.model, &u);
        let note = TokenNote {
            input: u.input(w),
            output: u.completion,
            total: u.total(w),
            cost_usd: cost.map(MicroUsd),
        };
        let label = |t| TokenLabels {
            gen_ai_request_model: self.model.clone(),
            gen_ai_token_type: t,
        };
        let fresh = match &self.slot {
            Some(s) => s.set(note).is_ok(),
            None => true,
        };
        if fresh {
            self.limiter
                .metrics
                .tokens
                .get_or_create(&label("input"))
                .inc_by(note.input);
            self.limiter
                .metrics
                .tokens
                .get_or_create(&label("output"))
                .inc_by(note.output);
            if let Some(c) = cost {
                let model = spend::CostLabels {
                    gen_ai_request_model: self.model.clone(),
                };
                self.limiter.metrics.cost.get_or_create(&model).inc_by(c);
            }
        }
        note
    }

    /// Applies the settlement in the background (never blocks the answer).
    pub(super) fn settle(mut self, outcome: Outcome) {
        self.settle_once(outcome);
    }

    fn settle_once(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let adjustments = settle(
            &self.planned,
            outcome,
            self.limiter.cfg.cached_input_permille,
        );
        if adjustments.is_empty() {
            return;
        }
        let store = self.limiter.store.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.adjust(&adjustments).await {
                    tracing::warn!(error = %e, "rate-limit settlement failed");
                }
            });
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.settle_once(Outcome::Refund);
    }
}

/// A non-streamed answer's body, whole; `None` if it fails or passes
/// [`MAX_ANSWER`].
async fn read_capped(mut body: BoxBody) -> Option<Bytes> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if buf.len() + data.len() > MAX_ANSWER {
                return None;
            }
            buf.extend_from_slice(&data);
        }
    }
    Some(buf.freeze())
}
