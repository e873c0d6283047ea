//! A body whose data is rewritten on its way: a [`Rewrite`] takes each data
//! frame and may hold bytes back (an unfinished event, a partial message);
//! what it holds is flushed when the body ends, before its trailers. The one
//! shape for bodies that change data but pass errors and trailers through.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::{BoxBody, BoxError};

/// What rewrites a body's data.
pub trait Rewrite: Send + Unpin + 'static {
    /// A data frame: what goes on now (`None`: nothing yet, read on), or an
    /// error that ends the body.
    fn data(&mut self, data: Bytes) -> Result<Option<Bytes>, BoxError>;

    /// The body ended (trailers or its end): what is still held, if any.
    fn flush(&mut self) -> Result<Option<Bytes>, BoxError>;

    /// Whether bytes are held back (the body is not over until flushed).
    fn holds(&self) -> bool;
}

/// `inner`, its data rewritten by `R`.
pub struct Rewritten<R: Rewrite> {
    inner: BoxBody,
    rewrite: R,
    /// Trailers, sent once what was held is flushed.
    stashed: Option<Frame<Bytes>>,
    /// The inner body has ended (or sent its trailers).
    done: bool,
}

impl<R: Rewrite> Rewritten<R> {
    pub fn new(inner: BoxBody, rewrite: R) -> Self {
        Self {
            inner,
            rewrite,
            stashed: None,
            done: false,
        }
    }

    /// The inner body is over: flush what is held, else send the trailers.
    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        match self.rewrite.flush() {
            Ok(Some(rest)) => Poll::Ready(Some(Ok(Frame::data(rest)))),
            Ok(None) => Poll::Ready(self.stashed.take().map(Ok)),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

impl<R: Rewrite> Body for Rewritten<R> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return this.end();
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => match this.rewrite.data(data) {
                        Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Ok(None) => {}
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    },
                    Err(trailers) => {
                        this.stashed = Some(trailers);
                        return this.end();
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return this.end(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stashed.is_none() && !self.rewrite.holds() && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // Rewriting may change the length.
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::task::Waker;

    use http::HeaderMap;
    use http_body_util::BodyExt;

    use super::*;

    /// Upper-cases whole lines; holds an unfinished one.
    #[derive(Default)]
    struct Lines(Vec<u8>);

    impl Rewrite for Lines {
        fn data(&mut self, data: Bytes) -> Result<Option<Bytes>, BoxError> {
            if data.as_ref() == b"bad" {
                return Err("bad frame".into());
            }
            self.0.extend_from_slice(&data);
            let Some(end) = self.0.iter().rposition(|b| *b == b'\n') else {
                return Ok(None);
            };
            let lines: Vec<u8> = self.0.drain(..=end).collect();
            Ok(Some(Bytes::from(lines.to_ascii_uppercase())))
        }

        fn flush(&mut self) -> Result<Option<Bytes>, BoxError> {
            Ok((!self.0.is_empty()).then(|| Bytes::from(std::mem::take(&mut self.0))))
        }

        fn holds(&self) -> bool {
            !self.0.is_empty()
        }
    }

    /// A body of the given frames, each ready at once.
    struct Parts(VecDeque<Frame<Bytes>>);

    impl Body for Parts {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn frames(parts: Vec<Frame<Bytes>>) -> BoxBody {
        Parts(parts.into()).boxed_unsync()
    }

    fn data(b: &'static [u8]) -> Frame<Bytes> {
        Frame::data(Bytes::from_static(b))
    }

    /// Every frame of a body that never waits: data as bytes, trailers as
    /// `None`, an error as its message.
    fn all(mut body: Rewritten<Lines>) -> Vec<Result<Option<Bytes>, String>> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        loop {
            match std::pin::pin!(body.frame()).poll(&mut cx) {
                Poll::Ready(Some(Ok(f))) => out.push(Ok(f.into_data().ok())),
                Poll::Ready(Some(Err(e))) => out.push(Err(e.to_string())),
                Poll::Ready(None) => return out,
                Poll::Pending => panic!("a ready body waited"),
            }
        }
    }

    #[test]
    fn held_bytes_are_sent_when_whole_and_flushed_before_trailers() {
        let body = frames(vec![
            data(b"ab"),
            data(b"c\nd"),
            data(b"e"),
            Frame::trailers(HeaderMap::new()),
        ]);
        let got = all(Rewritten::new(body, Lines::default()));
        assert_eq!(
            got,
            vec![
                Ok(Some(Bytes::from_static(b"ABC\n"))),
                Ok(Some(Bytes::from_static(b"de"))),
                Ok(None),
            ]
        );
    }

    #[test]
    fn a_rewrite_error_ends_the_body_and_the_end_flushes() {
        let got = all(Rewritten::new(
            frames(vec![data(b"x\n"), data(b"bad")]),
            Lines::default(),
        ));
        assert_eq!(
            got,
            vec![
                Ok(Some(Bytes::from_static(b"X\n"))),
                Err("bad frame".into())
            ]
        );
        let got = all(Rewritten::new(
            frames(vec![data(b"tail")]),
            Lines::default(),
        ));
        assert_eq!(got, vec![Ok(Some(Bytes::from_static(b"tail")))]);
    }

    #[test]
    fn the_end_is_known_only_once_nothing_is_held() {
        let mut body = Rewritten::new(crate::full("x"), Lines::default());
        assert!(!body.is_end_stream());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(body.is_end_stream(), "flushed at the end: nothing held");
        assert!(Rewritten::new(crate::empty(), Lines::default()).is_end_stream());
    }
}
