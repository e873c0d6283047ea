//! HTTP/1 or HTTP/2 (prior knowledge) on a listener serving both, told from
//! the connection's first read. hyper_util's auto builder reads at most the
//! 24 bytes of the HTTP/2 preface first, so an HTTP/1 request costs a second
//! `recv` for the rest of its head; here the first read takes up to
//! [`FIRST_READ`] bytes, and hyper gets them back before reading the socket
//! again ([`Prefixed`]). The connection is then served by hyper's HTTP/1 or
//! HTTP/2 connection directly (no second rewind layer, no auto state machine
//! on each poll).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, Service};
use hyper_util::rt::TokioExecutor;

use crate::deadline::Tracked;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The first read's size: a whole request head in most cases.
const FIRST_READ: usize = 4096;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `io`, whose first bytes were read already and are read again from
/// `prefix` first.
pub(crate) struct Prefixed<I> {
    prefix: Bytes,
    io: I,
}

impl<I: Read + Unpin> Read for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        if this.prefix.is_empty() {
            // Let the first read's buffer go.
            this.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: Write + Unpin> Write for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The builders a connection may be served with: `h2` (HTTP/2 only) when the
/// listener serves HTTP/2 too, else every connection is HTTP/1 (`h1`, which
/// reads nothing to tell).
pub(crate) struct Builders {
    pub h1: http1::Builder,
    pub h2: Option<http2::Builder<TokioExecutor>>,
}

enum State<I, S: HttpService<Incoming>> {
    /// Reading until the bytes are, or cannot be, the HTTP/2 preface.
    Reading {
        io: I,
        service: S,
        buf: Vec<u8>,
        filled: usize,
    },
    H1(Pin<Box<http1::Connection<Prefixed<I>, S>>>),
    H2(Pin<Box<http2::Connection<Prefixed<I>, S, TokioExecutor>>>),
    Done,
}

/// One connection: its first read, then hyper serving it.
pub(crate) struct Detect<'a, I, S: HttpService<Incoming>> {
    builders: &'a Builders,
    state: State<I, S>,
}

impl<'a, I, S> Detect<'a, I, S>
where
    I: Read + Write + Unpin + 'static,
    S: Service<Request<Incoming>, Response = Response<Tracked>, Error = Infallible> + Unpin,
    S::Future: 'static,
    TokioExecutor: Http2ServerConnExec<S::Future, Tracked>,
{
    pub(crate) fn new(io: I, service: S, builders: &'a Builders) -> Self {
        let state = if builders.h2.is_some() {
            State::Reading {
                io,
                service,
                buf: vec![0; FIRST_READ],
                filled: 0,
            }
        } else {
            let io = Prefixed {
                prefix: Bytes::new(),
                io,
            };
            State::H1(Box::pin(builders.h1.serve_connection(io, service)))
        };
        Self { builders, state }
    }

    /// Asks the connection to finish: one still being told is closed.
    pub(crate) fn graceful_shutdown(self: Pin<&mut Self>) {
        let this = self.get_mut();
        match &mut this.state {
            State::H1(conn) => conn.as_mut().graceful_shutdown(),
            State::H2(conn) => conn.as_mut().graceful_shutdown(),
            State::Reading { .. } => this.state = State::Done,
            State::Done => {}
        }
    }
}

/// Whether `seen` (read so far) is, or may still become, the HTTP/2
/// preface: `None` while it is a shorter prefix of it.
fn is_h2(seen: &[u8]) -> Option<bool> {
    let n = seen.len().min(H2_PREFACE.len());
    if seen[..n] != H2_PREFACE[..n] {
        return Some(false);
    }
    (n == H2_PREFACE.len()).then_some(true)
}

impl<I, S> Future for Detect<'_, I, S>
where
    I: Read + Write + Unpin + 'static,
    S: Service<Request<Incoming>, Response = Response<Tracked>, Error = Infallible> + Unpin,
    S::Future: 'static,
    TokioExecutor: Http2ServerConnExec<S::Future, Tracked>,
{
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::H1(conn) => return conn.as_mut().poll(cx).map_err(Into::into),
                State::H2(conn) => return conn.as_mut().poll(cx).map_err(Into::into),
                State::Done => return Poll::Ready(Ok(())),
                State::Reading {
                    io, buf, filled, ..
                } => {
                    let before = *filled;
                    let mut rb = ReadBuf::new(&mut buf[before..]);
                    ready!(Pin::new(io).poll_read(cx, rb.unfilled()))?;
                    *filled += rb.filled().len();
                    // At the end of the stream, HTTP/1 sees it (and closes).
                    let h2 = if *filled == before {
                        false
                    } else {
                        match is_h2(&buf[..*filled]) {
                            Some(h2) => h2,
                            None => continue,
                        }
                    };
                    let State::Reading {
                        io,
                        service,
                        mut buf,
                        filled,
                    } = std::mem::replace(&mut this.state, State::Done)
                    else {
                        return Poll::Ready(Ok(()));
                    };
                    buf.truncate(filled);
                    let io = Prefixed {
                        prefix: Bytes::from(buf),
                        io,
                    };
                    this.state = match &this.builders.h2 {
                        Some(b) if h2 => State::H2(Box::pin(b.serve_connection(io, service))),
                        _ => State::H1(Box::pin(this.builders.h1.serve_connection(io, service))),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
