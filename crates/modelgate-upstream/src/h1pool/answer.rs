//! The response body read from an upstream connection as the client reads
//! it: each read becomes a frame at once (an SSE event is not held back),
//! chunked trailers become a trailers frame, and at the end the connection
//! goes back to its pool if it may carry another request. Dropped before the
//! end (client gone), it closes the connection, which the upstream sees.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use modelgate_core::BoxError;

use super::codec::{Chunked, Decoded, Framing, WireError};
use super::{Conn, H1Pool};

enum Reading {
    Length(u64),
    Chunked(Chunked),
    Close,
    Done,
}

pub(crate) struct Answer {
    conn: Option<Conn>,
    reading: Reading,
    keep_alive: bool,
    pool: Arc<H1Pool>,
    slot: usize,
}

impl Answer {
    pub(crate) fn new(
        conn: Conn,
        framing: Framing,
        keep_alive: bool,
        pool: Arc<H1Pool>,
        slot: usize,
    ) -> Self {
        let reading = match framing {
            Framing::Empty => Reading::Done,
            Framing::Length(n) => Reading::Length(n),
            Framing::Chunked => Reading::Chunked(Chunked::new()),
            Framing::Close => Reading::Close,
        };
        Self {
            conn: Some(conn),
            reading,
            keep_alive,
            pool,
            slot,
        }
    }

    /// The body was read to its end: the connection goes back if it can.
    fn finish(&mut self) {
        self.reading = Reading::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.rbuf.is_empty()
        {
            self.pool.put(self.slot, conn);
        }
    }

    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.reading = Reading::Done;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.reading {
                Reading::Done => return Poll::Ready(None),
                Reading::Length(rem) => {
                    if !conn.rbuf.is_empty() {
                        let n = usize::try_from(*rem)
                            .unwrap_or(usize::MAX)
                            .min(conn.rbuf.len());
                        let data = conn.rbuf.split_to(n).freeze();
                        *rem -= n as u64;
                        if *rem == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Reading::Chunked(c) => match c.decode(&mut conn.rbuf) {
                    Ok(Decoded::Data(d)) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                    Ok(Decoded::Trailers(t)) => {
                        this.finish();
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                    Ok(Decoded::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::More) => {}
                    Err(e) => return this.fail(Box::new(e)),
                },
                Reading::Close => {
                    if !conn.rbuf.is_empty() {
                        let data = conn.rbuf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            // More bytes are needed.
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    if matches!(this.reading, Reading::Close) {
                        this.reading = Reading::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return this.fail(Box::new(WireError(
                        "connection closed before the end of the response body",
                    )));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(Box::new(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.reading {
            Reading::Done => true,
            Reading::Length(n) => *n == 0,
            Reading::Chunked(c) => c.is_done(),
            Reading::Close => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.reading {
            Reading::Done => SizeHint::with_exact(0),
            Reading::Length(n) => SizeHint::with_exact(*n),
            _ => SizeHint::default(),
        }
    }
}
