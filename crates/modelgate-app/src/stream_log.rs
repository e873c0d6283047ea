//! Streamed OpenAI answers (SSE) are logged when they end, not when their
//! headers arrive: the decision record and the request metrics then carry
//! the time to the first byte (`upstream_ttfb_ms`) and the stream's length
//! (`stream_ms`). The record is written once, when the body ends, fails or
//! is dropped (the client went away).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http::header::CONTENT_TYPE;
use http_body::Frame;
use http_body_util::BodyExt;
use modelgate_audit::Metrics;
use modelgate_core::body_tap::{Observer, Tap};
use modelgate_core::{BoxBody, Protocol};

use crate::finish::{Trace, answered};
use crate::pipeline::Pipeline;

/// A streamed answer's timing, for the decision record.
#[derive(Debug, Clone, Copy)]
pub struct StreamTiming {
    /// Request sent upstream → first byte of the answer's body.
    pub ttfb: Duration,
    /// Answer's headers → its last byte.
    pub duration: Duration,
}

/// Whether `resp` is a streamed OpenAI answer from the upstream.
pub fn is_stream(trace: &Trace, resp: &Response<BoxBody>) -> bool {
    trace.protocol == Some(Protocol::OpenAi)
        && trace.upstream_sent.is_some()
        && resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// What is needed to finish the request once the stream ends.
struct Pending {
    p: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    trace: Trace,
    headers_at: Instant,
    first: Option<Instant>,
    status: http::StatusCode,
}

impl Pending {
    fn finish(mut self) {
        let end = Instant::now();
        let sent = self.trace.upstream_sent.unwrap_or(self.headers_at);
        self.trace.stream = Some(StreamTiming {
            ttfb: self.first.unwrap_or(end).saturating_duration_since(sent),
            duration: end.saturating_duration_since(self.headers_at),
        });
        // Only the head is needed to log: an empty response with the status.
        let mut head = Response::new(modelgate_core::full(Bytes::new()));
        *head.status_mut() = self.status;
        let _ = answered(&self.p, &self.metrics, &self.trace, head);
    }
}

impl Observer for Pending {
    fn frame(&mut self, f: &Frame<Bytes>) {
        if self.first.is_none() && f.data_ref().is_some_and(|d| !d.is_empty()) {
            self.first = Some(Instant::now());
        }
    }

    fn end(self) {
        self.finish();
    }
}

/// Sends the streamed answer on; its request is logged when it ends. The
/// request id header is set now, as for every answer.
pub fn answered_at_end(
    p: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    trace: Trace,
    resp: Response<BoxBody>,
) -> Response<BoxBody> {
    let (mut parts, body) = resp.into_parts();
    if let Ok(v) = http::HeaderValue::from_str(&trace.request_id) {
        parts.headers.insert(crate::facts::X_REQUEST_ID, v);
    }
    let pending = Pending {
        p,
        metrics,
        status: parts.status,
        headers_at: Instant::now(),
        first: None,
        trace,
    };
    Response::from_parts(parts, Tap::new(body, pending).boxed_unsync())
}
