//! The body of a V1/V2 answer (REST or gRPC) whose request holds a
//! concurrency lease: passed on frame by frame, trailers included, and the
//! lease released when the body ends, fails or is dropped (client gone).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use modelgate_core::{BoxBody, BoxError};
use modelgate_limit::plan::Outcome;

use super::Held;

pub(super) struct UntilEnd {
    inner: BoxBody,
    held: Option<Held>,
}

impl UntilEnd {
    pub(super) fn new(inner: BoxBody, held: Held) -> Self {
        Self {
            inner,
            held: Some(held),
        }
    }

    fn release(&mut self) {
        if let Some(h) = self.held.take() {
            h.settle(Outcome::Refund);
        }
    }
}

impl Body for UntilEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UntilEnd {
    fn drop(&mut self) {
        self.release();
    }
}
