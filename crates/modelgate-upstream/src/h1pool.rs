//! Plain-HTTP/1 upstream connections owned by the I/O thread (issue 14,
//! item 3). Each I/O thread keeps its own idle connections per endpoint. A
//! request is written and its response read by the task serving the client:
//! the upstream connection is driven inline — while waiting for the response
//! head, then by the response body as the client reads it — with no spawned
//! connection task and no hand-off to another thread. A body read to its end
//! hands the connection back for reuse; a body dropped early (client gone)
//! closes it. h2, TLS and gRPC upstreams keep the general client
//! ([`crate::target`]).
//!
//! Idle connections are checked when taken (closed or busy ones are dropped),
//! are not reused after [`IDLE_TIMEOUT`], and at most [`MAX_IDLE`] are kept
//! per endpoint and I/O thread.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1};
use hyper_util::rt::TokioIo;
use modelgate_core::{BoxBody, BoxError};
use tokio::net::TcpStream;

use crate::worker;

/// Idle connections kept per endpoint and I/O thread; more are closed.
pub(crate) const MAX_IDLE: usize = 64;
/// An idle connection older than this is closed instead of reused.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a request failed: `connect` when no connection could be made (nothing
/// was sent).
pub(crate) struct Failure {
    pub connect: bool,
    pub error: BoxError,
}

struct Conn {
    tx: http1::SendRequest<BoxBody>,
    conn: http1::Connection<TokioIo<TcpStream>, BoxBody>,
    /// The connection future finished: closed, never reused.
    done: bool,
}

impl Conn {
    /// Lets the connection read and write what it can; false once closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.done && Pin::new(&mut self.conn).poll(cx).is_ready() {
            self.done = true;
        }
        !self.done
    }

    /// Sends `req` and waits for the response head, driving the connection.
    async fn head(
        &mut self,
        req: Request<BoxBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<BoxBody>>> {
        let mut fut = pin!(self.tx.try_send_request(req));
        poll_fn(|cx| {
            self.drive(cx);
            fut.as_mut().poll(cx)
        })
        .await
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One plain-HTTP/1 endpoint's connections, per I/O thread.
pub(crate) struct H1Pool {
    /// `host:port` to connect to.
    addr: String,
    connect_timeout: Duration,
    /// Idle connections, most recently used last; one list per I/O thread
    /// (see [`worker`]), so the lock is never contended on the hot path.
    idle: Vec<Mutex<VecDeque<Idle>>>,
}

impl H1Pool {
    pub(crate) fn new(authority: &Authority, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            addr: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            connect_timeout,
            idle: (0..worker::slots())
                .map(|_| Mutex::new(VecDeque::new()))
                .collect(),
        })
    }

    /// Sends `req` (origin-form URI, `Host` set) on an idle connection of
    /// this I/O thread or a new one. A reused connection found closed before
    /// the request was written is skipped (the request is sent on the next).
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Failure> {
        let slot = worker::current_slot();
        loop {
            let (mut conn, reused) = match poll_fn(|cx| Poll::Ready(self.checkout(slot, cx))).await
            {
                Some(c) => (c, true),
                None => (self.connect().await?, false),
            };
            match conn.head(req).await {
                Ok(resp) => {
                    let pool = self.clone();
                    return Ok(resp.map(|body| {
                        Pooled {
                            body,
                            conn: Some(conn),
                            pool,
                            slot,
                            ended: false,
                        }
                        .boxed_unsync()
                    }));
                }
                Err(mut e) => match e.take_message() {
                    Some(r) if reused => req = r,
                    _ => {
                        return Err(Failure {
                            connect: false,
                            error: Box::new(e.into_error()),
                        });
                    }
                },
            }
        }
    }

    /// The most recently used open, ready idle connection of `slot`.
    fn checkout(&self, slot: usize, cx: &mut Context<'_>) -> Option<Conn> {
        let mut idle = self.idle.get(slot)?.lock().ok()?;
        while let Some(Idle { mut conn, since }) = idle.pop_back() {
            if since.elapsed() > IDLE_TIMEOUT {
                // The rest are older still.
                idle.clear();
                return None;
            }
            if conn.drive(cx) && conn.tx.is_ready() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse by `slot` if it is open and there is room.
    fn put(&self, slot: usize, conn: Conn) {
        if conn.done || conn.tx.is_closed() {
            return;
        }
        let Some(Ok(mut idle)) = self.idle.get(slot).map(|m| m.lock()) else {
            return;
        };
        let now = Instant::now();
        while idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(Idle { conn, since: now });
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let failed = |error: BoxError| Failure {
            connect: true,
            error,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| {
                failed(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect timed out (upstream.connect_timeout)",
                )))
            })?
            .map_err(|e| failed(Box::new(e)))?;
        // Small requests and answers go out at once (as nginx's tcp_nodelay).
        let _ = tcp.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| failed(Box::new(e)))?;
        Ok(Conn {
            tx,
            conn,
            done: false,
        })
    }

    #[cfg(test)]
    pub(crate) fn idle_count(&self, slot: usize) -> usize {
        self.idle
            .get(slot)
            .and_then(|m| m.lock().ok().map(|i| i.len()))
            .unwrap_or(0)
    }
}

/// A response body that drives its connection and hands it back at the end.
struct Pooled {
    body: Incoming,
    conn: Option<Conn>,
    pool: Arc<H1Pool>,
    slot: usize,
    ended: bool,
}

impl Pooled {
    fn release(&mut self) {
        self.ended = true;
        if let Some(conn) = self.conn.take() {
            self.pool.put(self.slot, conn);
        }
    }
}

impl Body for Pooled {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        // The body first (it tells the connection it wants data), then the
        // connection (reads it), then the body again.
        let mut polled = Pin::new(&mut this.body).poll_frame(cx);
        if polled.is_pending()
            && let Some(conn) = this.conn.as_mut()
        {
            conn.drive(cx);
            polled = Pin::new(&mut this.body).poll_frame(cx);
        }
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.body.is_end_stream() {
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Read to the end (or empty): reusable. Otherwise the client left
        // mid-body and dropping the connection closes it upstream.
        if !self.ended && self.body.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests;
