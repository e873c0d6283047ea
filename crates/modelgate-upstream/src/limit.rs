//! A request body that fails once more than a limit of bytes has passed, and
//! records that it did so the failure can be answered with 413.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use modelgate_core::BoxError;

/// Raised inside the body stream when the limit is passed.
#[derive(Debug)]
pub struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body over the limit")
    }
}

impl std::error::Error for TooLarge {}

pin_project_lite::pin_project! {
    /// Wraps a body, counting bytes against `limit`.
    pub struct Limited<B> {
        #[pin]
        inner: B,
        remaining: u64,
        tripped: Arc<AtomicBool>,
    }
}

impl<B> Limited<B> {
    /// Returns the wrapper and a flag that turns true if the limit is passed.
    pub fn new(inner: B, limit: u64) -> (Self, Arc<AtomicBool>) {
        let tripped = Arc::new(AtomicBool::new(false));
        (
            Self {
                inner,
                remaining: limit,
                tripped: tripped.clone(),
            },
            tripped,
        )
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > *this.remaining {
                        this.tripped.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                    *this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
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
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn passes_small_and_trips_large() {
        let (b, flag) = Limited::new(Full::new(Bytes::from_static(b"hello")), 5);
        assert_eq!(b.collect().await.unwrap().to_bytes(), "hello");
        assert!(!flag.load(Ordering::Acquire));
        let (b, flag) = Limited::new(Full::new(Bytes::from_static(b"hello!")), 5);
        assert!(b.collect().await.is_err());
        assert!(flag.load(Ordering::Acquire));
    }
}
