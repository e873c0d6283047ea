//! A response body passed on frame by frame (trailers included) to an
//! observer that sees each frame and is told exactly once that the body
//! ended — finished, failed, or dropped (the client went away). The shape
//! shared by the stream log ([`crate::stream_log`]) and the rate-limit
//! lease of V1/V2 answers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use modelgate_core::{BoxBody, BoxError};

/// What watches a body.
pub trait Observer: Send + Unpin + 'static {
    /// Each frame, as it passes.
    fn frame(&mut self, _frame: &Frame<Bytes>) {}
    /// The body ended, failed or was dropped: called exactly once.
    fn end(self);
}

/// `inner`, watched by `O`.
pub struct Observed<O: Observer> {
    inner: BoxBody,
    observer: Option<O>,
}

impl<O: Observer> Observed<O> {
    pub fn new(inner: BoxBody, observer: O) -> Self {
        Self {
            inner,
            observer: Some(observer),
        }
    }

    fn end(&mut self) {
        if let Some(o) = self.observer.take() {
            o.end();
        }
    }
}

impl<O: Observer> Drop for Observed<O> {
    fn drop(&mut self) {
        self.end();
    }
}

impl<O: Observer> Body for Observed<O> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(o) = this.observer.as_mut() {
                    o.frame(f);
                }
            }
            Poll::Ready(_) => this.end(),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;

    use super::*;

    struct Count(Arc<AtomicUsize>, Arc<AtomicUsize>);

    impl Observer for Count {
        fn frame(&mut self, _: &Frame<Bytes>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn end(self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn end_is_told_once_whether_the_body_ends_or_is_dropped() {
        let (frames, ends) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let body = Observed::new(
            modelgate_core::full(Bytes::from_static(b"abc")),
            Count(frames.clone(), ends.clone()),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
        assert_eq!(
            (frames.load(Ordering::SeqCst), ends.load(Ordering::SeqCst)),
            (1, 1)
        );
        let body = Observed::new(
            modelgate_core::full(Bytes::from_static(b"abc")),
            Count(frames.clone(), ends.clone()),
        );
        drop(body);
        assert_eq!(
            (frames.load(Ordering::SeqCst), ends.load(Ordering::SeqCst)),
            (1, 2)
        );
    }
}
