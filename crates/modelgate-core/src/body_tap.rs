//! A body passed on frame by frame (trailers included) to an observer that
//! sees each frame and is told exactly once that the body ended — finished,
//! failed, or dropped (the client went away). The one pass-through shape for
//! whatever watches a body without changing it (stream log, rate-limit lease,
//! connection activity, answer timing). Generic, so it costs no allocation.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::{BoxBody, BoxError};

/// What watches a body.
pub trait Observer: Send + Unpin + 'static {
    /// Whether a body already at its end when wrapped (`is_end_stream`) is
    /// over at once, rather than when it is polled to its end or dropped.
    /// Default: `false`.
    const END_IF_DONE: bool = false;

    /// Each frame, as it passes. Default: nothing.
    fn frame(&mut self, _frame: &Frame<Bytes>) {}

    /// The body ended, failed or was dropped: called exactly once.
    fn end(self);
}

/// `inner`, watched by `O`.
pub struct Tap<O: Observer> {
    inner: BoxBody,
    observer: Option<O>,
}

impl<O: Observer> Tap<O> {
    pub fn new(inner: BoxBody, observer: O) -> Self {
        Self::optional(inner, Some(observer))
    }

    /// `inner` watched by `observer` if there is one, else passed as it is.
    pub fn optional(inner: BoxBody, observer: Option<O>) -> Self {
        let mut tap = Self { inner, observer };
        if O::END_IF_DONE && tap.inner.is_end_stream() {
            tap.end();
        }
        tap
    }

    /// Tells the observer now that the body is over (if not yet told); what
    /// still passes afterwards is not observed.
    pub fn end(&mut self) {
        if let Some(o) = self.observer.take() {
            o.end();
        }
    }
}

impl<O: Observer> Drop for Tap<O> {
    fn drop(&mut self) {
        self.end();
    }
}

impl<O: Observer> Body for Tap<O> {
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
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;

    use http_body_util::BodyExt;

    use super::*;

    /// Frames seen, ends told.
    #[derive(Default)]
    struct Counts(AtomicUsize, AtomicUsize);

    impl Counts {
        fn get(&self) -> (usize, usize) {
            (self.0.load(Ordering::SeqCst), self.1.load(Ordering::SeqCst))
        }
    }

    struct Count(Arc<Counts>);

    impl Observer for Count {
        fn frame(&mut self, _: &Frame<Bytes>) {
            self.0.0.fetch_add(1, Ordering::SeqCst);
        }
        fn end(self) {
            self.0.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct EndIfDone(Count);

    impl Observer for EndIfDone {
        const END_IF_DONE: bool = true;
        fn end(self) {
            self.0.end();
        }
    }

    /// The next frame of a body that never waits (full or empty).
    fn next(body: &mut (impl Body<Data = Bytes, Error = BoxError> + Unpin)) -> Option<Bytes> {
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::pin!(body.frame()).poll(&mut cx) {
            Poll::Ready(Some(Ok(f))) => f.into_data().ok(),
            Poll::Ready(_) => None,
            Poll::Pending => panic!("a ready body waited"),
        }
    }

    fn abc() -> BoxBody {
        crate::full(Bytes::from_static(b"abc"))
    }

    #[test]
    fn end_is_told_once_whether_the_body_ends_or_is_dropped() {
        let counts = Arc::new(Counts::default());
        let mut body = Tap::new(abc(), Count(counts.clone()));
        assert_eq!(next(&mut body).as_deref(), Some(&b"abc"[..]));
        assert_eq!(counts.get(), (1, 0));
        assert_eq!(next(&mut body), None);
        assert_eq!(counts.get(), (1, 1));
        drop(body);
        assert_eq!(counts.get(), (1, 1), "ended once, not again on drop");

        drop(Tap::new(abc(), Count(counts.clone())));
        assert_eq!(counts.get(), (1, 2), "a dropped body ends its observer");
    }

    #[test]
    fn an_early_end_stops_observing_but_not_the_body() {
        let counts = Arc::new(Counts::default());
        let mut body = Tap::new(abc(), Count(counts.clone()));
        body.end();
        assert_eq!(counts.get(), (0, 1));
        assert_eq!(next(&mut body).as_deref(), Some(&b"abc"[..]));
        drop(body);
        assert_eq!(counts.get(), (0, 1));
    }

    #[test]
    fn an_empty_body_ends_at_once_only_when_asked() {
        let counts = Arc::new(Counts::default());
        let body = Tap::new(crate::empty(), EndIfDone(Count(counts.clone())));
        assert_eq!(counts.get(), (0, 1), "END_IF_DONE: over when wrapped");
        let waits = Tap::new(crate::empty(), Count(counts.clone()));
        assert_eq!(
            counts.get(),
            (0, 1),
            "by default: over when polled or dropped"
        );
        drop((body, waits));
        assert_eq!(counts.get(), (0, 2));
        let full = Tap::new(abc(), EndIfDone(Count(counts.clone())));
        assert_eq!(counts.get(), (0, 2), "a body with data is not over");
        drop(full);
        assert_eq!(counts.get(), (0, 3));
    }

    #[test]
    fn no_observer_passes_the_body_as_it_is() {
        let mut body = Tap::optional(abc(), None::<Count>);
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(next(&mut body).as_deref(), Some(&b"abc"[..]));
        assert!(body.is_end_stream());
    }
}
