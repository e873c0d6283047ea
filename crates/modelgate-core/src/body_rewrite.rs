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

    /// Whether anything waits for the end (bytes held back, a count to
    /// settle): until then the body does not say it has ended, so that its
    /// end is polled.
    fn holds(&self) -> bool;

    /// Whether the rewrite wants no more of the body (checked after each
    /// [`Rewrite::data`]): the inner body is dropped at once (its request
    /// ends) and the end follows. Default: never.
    fn cut(&self) -> bool {
        false
    }

    /// The inner body failed (its error goes on). Default: nothing.
    fn failed(&mut self) {}
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
                    Ok(data) => {
                        let out = this.rewrite.data(data);
                        if this.rewrite.cut() {
                            this.inner = crate::empty();
                            this.done = true;
                        }
                        match out {
                            Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            Ok(None) if this.done => return this.end(),
                            Ok(None) => {}
                            Err(e) => return Poll::Ready(Some(Err(e))),
                        }
                    }
                    Err(trailers) => {
                        this.stashed = Some(trailers);
                        return this.end();
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.rewrite.failed();
                    return Poll::Ready(Some(Err(e)));
                }
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Waker;

    use http::HeaderMap;
    use http_body_util::BodyExt;

    use super::*;

    /// Upper-cases whole lines; holds an unfinished one; a frame `bad`
    /// fails, a frame `stop` cuts; counts the failures of the inner body.
    #[derive(Default)]
    struct Lines(Vec<u8>, bool, usize);

    impl Rewrite for Lines {
        fn data(&mut self, data: Bytes) -> Result<Option<Bytes>, BoxError> {
            if data.as_ref() == b"bad" {
                return Err("bad frame".into());
            }
            if data.as_ref() == b"stop" {
                self.1 = true;
                return Ok(None);
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

        fn cut(&self) -> bool {
            self.1
        }

        fn failed(&mut self) {
            self.2 += 1;
        }
    }

    /// A body of the given frames, each ready at once (`None`: an error);
    /// it says when it is dropped.
    struct Parts(VecDeque<Option<Frame<Bytes>>>, Arc<AtomicBool>);

    impl Body for Parts {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|f| f.ok_or_else(|| "upstream failed".into())),
            )
        }
    }

    impl Drop for Parts {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }

    fn frames(parts: Vec<Frame<Bytes>>) -> BoxBody {
        Parts(parts.into_iter().map(Some).collect(), Arc::default()).boxed_unsync()
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

    #[test]
    fn a_cut_drops_the_inner_body_and_ends_after_the_flush() {
        let dropped = Arc::new(AtomicBool::new(false));
        let inner = Parts(
            [data(b"a\nb"), data(b"stop"), data(b"never\n")]
                .into_iter()
                .map(Some)
                .collect(),
            dropped.clone(),
        );
        let mut body = Rewritten::new(inner.boxed_unsync(), Lines::default());
        let mut cx = Context::from_waker(Waker::noop());
        let mut next = || match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => f.into_data().ok(),
            _ => None,
        };
        assert_eq!(next().as_deref(), Some(&b"A\n"[..]));
        assert!(!dropped.load(Ordering::SeqCst));
        assert_eq!(next().as_deref(), Some(&b"b"[..]), "held bytes flushed");
        assert!(
            dropped.load(Ordering::SeqCst),
            "the inner body is dropped at the cut"
        );
        assert_eq!(next(), None);
        assert!(body.is_end_stream());
    }

    #[test]
    fn a_failed_inner_body_is_told_and_its_error_passes() {
        let inner = Parts([Some(data(b"x")), None].into(), Arc::default());
        let mut body = Rewritten::new(inner.boxed_unsync(), Lines::default());
        let mut cx = Context::from_waker(Waker::noop());
        let polled = Pin::new(&mut body).poll_frame(&mut cx);
        assert!(matches!(polled, Poll::Ready(Some(Err(e))) if e.to_string() == "upstream failed"));
        assert_eq!(body.rewrite.2, 1);
    }
}
