//! The request body across attempts. A body in memory (the OpenAI JSON read
//! to find the model) is sent again as is; a streamed body is handed to the
//! first attempt that reads from it, and can be retried only if no attempt
//! read a byte of it (the connection failed before the body was sent).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use modelgate_core::{BoxBody, BoxError, full};

/// The body of the request to send upstream.
pub enum RequestBody {
    /// Whole in memory: every attempt sends it.
    Buffered(Bytes),
    /// Streamed from the client: sent at most once.
    Streamed(BoxBody),
}

type Slot = Arc<Mutex<Option<BoxBody>>>;

/// Hands out the body for each attempt.
pub(crate) enum Replay {
    Buffered(Bytes),
    Once {
        slot: Slot,
        hint: SizeHint,
        end: bool,
    },
}

impl Replay {
    pub(crate) fn new(body: RequestBody) -> Self {
        match body {
            RequestBody::Buffered(b) => Replay::Buffered(b),
            RequestBody::Streamed(b) => Replay::Once {
                hint: b.size_hint(),
                end: b.is_end_stream(),
                slot: Arc::new(Mutex::new(Some(b))),
            },
        }
    }

    pub(crate) fn is_buffered(&self) -> bool {
        matches!(self, Replay::Buffered(_))
    }

    /// The body for the next attempt; `None` once a streamed body was read.
    pub(crate) fn attempt(&self) -> Option<BoxBody> {
        match self {
            Replay::Buffered(b) => Some(full(b.clone())),
            Replay::Once { slot, hint, end } => {
                let unread = slot.lock().ok().is_some_and(|s| s.is_some());
                unread.then(|| {
                    TakeOnce {
                        slot: slot.clone(),
                        body: None,
                        hint: *hint,
                        end: *end,
                    }
                    .boxed_unsync()
                })
            }
        }
    }
}

/// Takes the streamed body out of the shared slot on its first read.
struct TakeOnce {
    slot: Slot,
    body: Option<BoxBody>,
    hint: SizeHint,
    end: bool,
}

#[derive(Debug)]
struct AlreadySent;

impl std::fmt::Display for AlreadySent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body was already sent to another endpoint")
    }
}

impl std::error::Error for AlreadySent {}

impl Body for TakeOnce {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.body.is_none() {
            let taken = self.slot.lock().ok().and_then(|mut s| s.take());
            match taken {
                Some(b) => self.body = Some(b),
                None => return Poll::Ready(Some(Err(Box::new(AlreadySent)))),
            }
        }
        match self.body.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(b) => b.is_end_stream(),
            None => self.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(b) => b.size_hint(),
            None => self.hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unread_streamed_body_is_replayed_once_read_it_is_not() {
        let r = Replay::new(RequestBody::Streamed(full(Bytes::from_static(b"abc"))));
        let first = r.attempt().unwrap();
        assert_eq!(first.size_hint().exact(), Some(3));
        drop(first); // the connection failed: nothing was read
        let second = r.attempt().unwrap();
        assert_eq!(second.collect().await.unwrap().to_bytes(), "abc");
        assert!(r.attempt().is_none());
    }

    #[tokio::test]
    async fn a_buffered_body_is_sent_every_time() {
        let r = Replay::new(RequestBody::Buffered(Bytes::from_static(b"{}")));
        for _ in 0..3 {
            let b = r.attempt().unwrap();
            assert_eq!(b.collect().await.unwrap().to_bytes(), "{}");
        }
        assert!(r.is_buffered());
    }
}
