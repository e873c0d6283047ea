//! The response body on its way back: frames pass through as they arrive
//! (nothing is collected), the gap between two frames is bounded by
//! `upstream.stream_idle_timeout` (not the request timeout, which ends with
//! the response headers), and OpenAI answers are timed for the GenAI
//! histograms. A stalled SSE stream ends with an SSE error event (the
//! OpenAI SDK raises it as `APIError`); any other stalled body fails, which
//! aborts the response. Dropping this body (client gone) drops the upstream
//! response, which closes the upstream connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use modelgate_core::body_tap::{Observer, Tap};
use modelgate_core::{BoxBody, BoxError};
use tokio::time::Sleep;

use crate::metrics::GenAiClock;

/// The error a stalled non-SSE response body ends with.
#[derive(Debug)]
pub struct StreamIdle;

impl std::fmt::Display for StreamIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream response paused longer than upstream.stream_idle_timeout")
    }
}

impl std::error::Error for StreamIdle {}

const SSE_IDLE_EVENT: &[u8] = b"data: {\"error\":{\"message\":\"the upstream stream paused longer than upstream.stream_idle_timeout\",\"type\":\"upstream_timeout\",\"code\":\"stream_idle_timeout\"}}\n\n";

/// Timing of one answer: time to its first data, and its length.
struct Timing {
    started: Instant,
    clock: GenAiClock,
    first: bool,
}

impl Observer for Timing {
    fn frame(&mut self, frame: &Frame<Bytes>) {
        if !self.first && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            self.first = true;
            self.clock
                .ttft
                .observe(self.started.elapsed().as_secs_f64());
        }
    }

    fn end(self) {
        self.clock
            .duration
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// A response body watched for idleness (and timed).
pub struct Watched {
    inner: Tap<Timing>,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    sse: bool,
    ended: bool,
}

impl Watched {
    /// `timing`: the request's start and the model's GenAI histograms.
    pub fn new(
        inner: BoxBody,
        idle: Duration,
        sse: bool,
        timing: Option<(Instant, GenAiClock)>,
    ) -> Self {
        let timing = timing.map(|(started, clock)| Timing {
            started,
            clock,
            first: false,
        });
        Self {
            inner: Tap::optional(inner, timing),
            idle,
            timer: None,
            armed: false,
            sse,
            ended: false,
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.ended = true;
                Poll::Ready(other)
            }
            Poll::Pending => {
                let next = tokio::time::Instant::now() + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
                if !this.armed {
                    timer.as_mut().reset(next);
                    this.armed = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        this.ended = true;
                        this.inner.end();
                        tracing::warn!(
                            idle_ms = this.idle.as_millis() as u64,
                            "upstream response paused longer than upstream.stream_idle_timeout; ended"
                        );
                        if this.sse {
                            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(SSE_IDLE_EVENT)))))
                        } else {
                            Poll::Ready(Some(Err(Box::new(StreamIdle))))
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.sse {
            // The idle event may be added: no exact length.
            let mut h = SizeHint::new();
            h.set_lower(self.inner.size_hint().lower());
            return h;
        }
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use http_body_util::StreamBody;

    fn stalled(first: &'static [u8]) -> BoxBody {
        let s = futures_stream(first);
        StreamBody::new(s).boxed_unsync()
    }

    /// One data frame, then nothing ever again.
    fn futures_stream(
        first: &'static [u8],
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> {
        struct S(Option<&'static [u8]>);
        impl futures_util::Stream for S {
            type Item = Result<Frame<Bytes>, BoxError>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                match self.0.take() {
                    Some(b) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b))))),
                    None => Poll::Pending,
                }
            }
        }
        S(Some(first))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_sse_stream_ends_with_an_error_event() {
        let mut w = Watched::new(stalled(b"data: 1\n\n"), Duration::from_secs(60), true, None);
        let f = w.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "data: 1\n\n");
        let before = tokio::time::Instant::now();
        let f = w.frame().await.unwrap().unwrap();
        assert!(before.elapsed() >= Duration::from_secs(60));
        let text = f.into_data().unwrap();
        assert!(text.starts_with(b"data: {\"error\""));
        assert!(w.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_plain_body_fails() {
        let mut w = Watched::new(stalled(b"{"), Duration::from_secs(5), false, None);
        assert!(w.frame().await.unwrap().is_ok());
        let e = w.frame().await.unwrap().unwrap_err();
        assert!(e.to_string().contains("stream_idle_timeout"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_stream_is_not_cut() {
        // 20 chunks, 1 s apart, under a 2 s idle timeout: 20 s in all.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            }
        });
        let body = StreamBody::new(ReceiverStream(rx)).boxed_unsync();
        let w = Watched::new(body, Duration::from_secs(2), true, None);
        let all = w.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 20);
    }

    struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);
    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
