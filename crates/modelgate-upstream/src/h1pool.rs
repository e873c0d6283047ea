//! Plain-HTTP/1 upstream connections owned by the I/O thread (issue 14,
//! item 3), with a lean client of our own ([`codec`]): the request head is
//! written straight into the connection's buffer (with the first part of the
//! body when it is already there, so a small request is one `write`), the
//! response head is parsed with `httparse`, and the body is streamed by
//! `Content-Length`, chunked (trailers kept) or until close ([`answer`]).
//! Each I/O thread keeps its own idle connections per endpoint; the task
//! serving the client does all the I/O itself: no connection task, no
//! channel, no shared pool lock. A body read to its end hands the connection
//! back; a body dropped early (client gone) closes it. h2, TLS and gRPC
//! upstreams keep the general client ([`crate::target`]).
//!
//! Idle connections are checked when taken (closed ones, or ones with
//! unexpected bytes, are dropped), are not reused after [`IDLE_TIMEOUT`], and
//! at most [`MAX_IDLE`] are kept per endpoint and I/O thread. A request whose
//! first write fails on a reused connection is sent on the next one (the
//! upstream cannot have read it whole); once written, it is never resent here.

mod answer;
pub mod codec;

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::uri::Authority;
use http::{Method, Response};
use http_body::Body;
use http_body_util::BodyExt;
use modelgate_core::{BoxBody, BoxError, empty, full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use self::answer::Answer;
use self::codec::{Framing, Head, ResponseHead, Sending, WireError};
use crate::worker;

/// Idle connections kept per endpoint and I/O thread; more are closed.
pub(crate) const MAX_IDLE: usize = 64;
/// An idle connection older than this is closed instead of reused.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// A first body part up to this size is copied behind the head (one write).
const COALESCE: usize = 16 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 8 * 1024;
/// An idle connection older than this is probed with a read before reuse
/// even when the event loop saw nothing arrive on it.
const PROBE_AFTER: Duration = Duration::from_secs(1);

/// Why a request failed: `connect` when no connection could be made (nothing
/// was sent); `body` when the request body (the client's) failed;
/// `timed_out` when the answer's head did not arrive before the deadline.
pub(crate) struct Failure {
    pub connect: bool,
    pub body: bool,
    pub timed_out: bool,
    pub error: BoxError,
}

impl Failure {
    fn io(error: impl Into<BoxError>) -> Self {
        Failure {
            connect: false,
            body: false,
            timed_out: false,
            error: error.into(),
        }
    }

    fn body(error: BoxError) -> Self {
        Failure {
            body: true,
            ..Failure::io(error)
        }
    }

    fn timed_out() -> Self {
        Failure {
            timed_out: true,
            ..Failure::io(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer before upstream.timeout",
            ))
        }
    }
}

/// The request body ended before or after its declared length.
#[derive(Debug)]
struct LengthMismatch;

impl std::fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body does not match its Content-Length")
    }
}

impl std::error::Error for LengthMismatch {}

/// One upstream connection: the socket, its two buffers and its timer.
pub(crate) struct Conn {
    io: TcpStream,
    /// Bytes read and not yet consumed (empty while idle).
    rbuf: BytesMut,
    /// The request being written (reused from request to request).
    wbuf: Vec<u8>,
    /// The deadline of the exchange in progress, reused from request to
    /// request: moving a registered timer later is one atomic operation,
    /// where a new timer per request is registered in and removed from the
    /// timer wheel under its lock. `None` while an exchange holds it.
    timer: Option<Pin<Box<Sleep>>>,
    /// The field names of the previous answer ([`codec::Names`]).
    names: codec::Names,
}

impl Conn {
    /// Reads what the socket has into `rbuf` (its spare capacity, not
    /// zeroed first); `Ok(0)` at end of stream. Through `AsyncRead`, so a
    /// short read clears the socket's readiness (see [`Conn::is_usable`]).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(READ_CHUNK);
        }
        std::pin::pin!(self.io.read_buf(&mut self.rbuf)).poll(cx)
    }

    /// An idle connection is usable if reading would block: no end of
    /// stream, no error, no stray bytes. When the event loop has seen
    /// nothing arrive since the last (short) read of the answer, that is
    /// known without a system call; otherwise, or after [`PROBE_AFTER`]
    /// idle, one non-blocking read of a byte tells.
    fn is_usable(&self, idle: Duration) -> bool {
        if idle < PROBE_AFTER {
            let mut cx = Context::from_waker(Waker::noop());
            match self.io.poll_read_ready(&mut cx) {
                Poll::Pending => return true,
                Poll::Ready(Err(_)) => return false,
                Poll::Ready(Ok(())) => {}
            }
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    async fn read_head(&mut self, head_request: bool) -> Result<ResponseHead, Failure> {
        loop {
            if let Some(head) =
                codec::parse_response_with(&mut self.rbuf, head_request, &mut self.names)
                    .map_err(Failure::io)?
            {
                return Ok(head);
            }
            let n = poll_fn(|cx| self.poll_fill(cx))
                .await
                .map_err(Failure::io)?;
            if n == 0 {
                return Err(Failure::io(WireError(
                    "connection closed before the response head",
                )));
            }
        }
    }

    /// Writes the rest of the request body after the head.
    async fn send_body(
        &mut self,
        body: &mut BoxBody,
        sending: Sending,
        mut sent: u64,
    ) -> Result<(), Failure> {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(Failure::body)?;
            // Request trailers are not sent over HTTP/1 (see `crate::trailers`).
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            match sending {
                Sending::Length(n) if sent > n => {
                    return Err(Failure::body(Box::new(LengthMismatch)));
                }
                Sending::Chunked => {
                    self.wbuf.clear();
                    codec::push_chunk_size(&mut self.wbuf, data.len());
                    if data.len() <= COALESCE {
                        self.wbuf.extend_from_slice(&data);
                        self.wbuf.extend_from_slice(b"\r\n");
                        self.io.write_all(&self.wbuf).await.map_err(Failure::io)?;
                    } else {
                        self.io.write_all(&self.wbuf).await.map_err(Failure::io)?;
                        self.io.write_all(&data).await.map_err(Failure::io)?;
                        self.io.write_all(b"\r\n").await.map_err(Failure::io)?;
                    }
                }
                _ => self.io.write_all(&data).await.map_err(Failure::io)?,
            }
        }
        match sending {
            Sending::Length(n) if sent != n => Err(Failure::body(Box::new(LengthMismatch))),
            Sending::Chunked => self.io.write_all(b"0\r\n\r\n").await.map_err(Failure::io),
            _ => Ok(()),
        }
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

    /// Sends the request on an idle connection of this I/O thread or a new
    /// one, and returns the answer once its head arrived, at most `timeout`
    /// from now (then [`Failure::timed_out`]).
    pub(crate) async fn send(
        self: &Arc<Self>,
        head: Head<'_>,
        body: BoxBody,
        timeout: Duration,
    ) -> Result<Response<BoxBody>, Failure> {
        self.send_at(head, body, timeout, Instant::now()).await
    }

    /// [`H1Pool::send`] with the caller's reading of the clock (`now`), so
    /// that a request reads it once.
    pub(crate) async fn send_at(
        self: &Arc<Self>,
        head: Head<'_>,
        mut body: BoxBody,
        timeout: Duration,
        now: Instant,
    ) -> Result<Response<BoxBody>, Failure> {
        let deadline = tokio::time::Instant::from_std(now) + timeout;
        let slot = worker::current_slot();
        let sending = head.sending(&body.size_hint(), body.is_end_stream());
        // The first part of the body, if already there, goes out with the head.
        let mut first: Option<Bytes> = None;
        let mut body_done = sending == Sending::Nothing;
        if !body_done {
            match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(Some(Ok(frame))) => first = frame.into_data().ok(),
                Poll::Ready(Some(Err(e))) => return Err(Failure::body(e)),
                Poll::Ready(None) => body_done = true,
                Poll::Pending => {}
            }
        }
        let first_len = first.as_ref().map_or(0, |d| d.len() as u64);
        match sending {
            Sending::Length(n) if first_len > n || (body_done && n != first_len) => {
                return Err(Failure::body(Box::new(LengthMismatch)));
            }
            // All the declared bytes are here: the body is not polled again
            // (the server already holds its end; HTTP/1 sends no request
            // trailers, see `crate::trailers`).
            Sending::Length(n) if n == first_len => body_done = true,
            _ => {}
        }
        head.check_target().map_err(Failure::io)?;
        let (mut conn, mut timer) = loop {
            let (mut conn, reused) = match self.checkout(slot, now) {
                Some(c) => (c, true),
                None => (self.connect(deadline).await?, false),
            };
            let mut timer = arm(&mut conn.timer, deadline);
            let start = write_start(&mut conn, &head, sending, first.as_ref(), body_done);
            match until(&mut timer, start).await {
                Ok(()) => break (conn, timer),
                // A reused connection that went away: the upstream cannot
                // have read the request; send it on the next one.
                Err(e) if reused && !e.timed_out => continue,
                Err(e) => return Err(e),
            }
        };
        let head_request = *head.method == Method::HEAD;
        let answer = until(&mut timer, async {
            if !body_done {
                conn.send_body(&mut body, sending, first_len).await?;
            }
            drop(body);
            conn.read_head(head_request).await
        })
        .await?;
        conn.timer = Some(timer);
        Ok(self.respond(conn, answer, slot))
    }

    /// The response for `answer`; the body reads from `conn` (or the
    /// connection goes back at once when the body is already here).
    fn respond(
        self: &Arc<Self>,
        mut conn: Conn,
        answer: ResponseHead,
        slot: usize,
    ) -> Response<BoxBody> {
        let ResponseHead {
            status,
            version,
            headers,
            framing,
            keep_alive,
        } = answer;
        let body = match framing {
            Framing::Empty | Framing::Length(0) => {
                if keep_alive && conn.rbuf.is_empty() {
                    self.put(slot, conn);
                }
                empty()
            }
            Framing::Length(n) if conn.rbuf.len() as u64 >= n => {
                let data = conn.rbuf.split_to(n as usize).freeze();
                if keep_alive && conn.rbuf.is_empty() {
                    self.put(slot, conn);
                }
                full(data)
            }
            _ => Answer::new(conn, framing, keep_alive, self.clone(), slot).boxed_unsync(),
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.version_mut() = version;
        *resp.headers_mut() = headers;
        resp
    }

    /// The most recently used usable idle connection of `slot` (`now`: the
    /// time of the request).
    fn checkout(&self, slot: usize, now: Instant) -> Option<Conn> {
        let mut idle = self.idle.get(slot)?.lock().ok()?;
        while let Some(Idle { conn, since }) = idle.pop_back() {
            let age = now.saturating_duration_since(since);
            if age > IDLE_TIMEOUT {
                // The rest are older still.
                idle.clear();
                return None;
            }
            if conn.is_usable(age) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` (its answer read to the end) for reuse by `slot` if
    /// there is room.
    pub(crate) fn put(&self, slot: usize, conn: Conn) {
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

    /// A new connection, within `connect_timeout` (a connect failure) and
    /// the exchange's `deadline` (a timeout).
    async fn connect(&self, deadline: tokio::time::Instant) -> Result<Conn, Failure> {
        let failed = |error: BoxError| Failure {
            connect: true,
            ..Failure::io(error)
        };
        let connect_by = tokio::time::Instant::now() + self.connect_timeout;
        let tcp =
            tokio::time::timeout_at(connect_by.min(deadline), TcpStream::connect(&self.addr)).await;
        let tcp = match tcp {
            Ok(r) => r.map_err(|e| failed(Box::new(e)))?,
            Err(_) if deadline < connect_by => return Err(Failure::timed_out()),
            Err(_) => {
                return Err(failed(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect timed out (upstream.connect_timeout)",
                ))));
            }
        };
        // Small requests and answers go out at once (as nginx's tcp_nodelay).
        let _ = tcp.set_nodelay(true);
        Ok(Conn {
            io: tcp,
            rbuf: BytesMut::new(),
            wbuf: Vec::with_capacity(1024),
            timer: None,
            names: codec::Names::default(),
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

/// The connection's timer (or a new one) set to `deadline`.
fn arm(timer: &mut Option<Pin<Box<Sleep>>>, deadline: tokio::time::Instant) -> Pin<Box<Sleep>> {
    match timer.take() {
        Some(mut t) => {
            t.as_mut().reset(deadline);
            t
        }
        None => Box::pin(tokio::time::sleep_until(deadline)),
    }
}

/// `step`, unless `timer` fires first.
async fn until<T>(
    timer: &mut Pin<Box<Sleep>>,
    step: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let mut step = std::pin::pin!(step);
    poll_fn(|cx| {
        if let Poll::Ready(r) = step.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(Failure::timed_out()))
    })
    .await
}

/// Writes the head, and the body's first part if there is one.
async fn write_start(
    conn: &mut Conn,
    head: &Head<'_>,
    sending: Sending,
    first: Option<&Bytes>,
    body_done: bool,
) -> Result<(), Failure> {
    conn.wbuf.clear();
    head.encode(sending, &mut conn.wbuf);
    let chunked = sending == Sending::Chunked;
    let mut rest = None;
    if let Some(d) = first.filter(|d| !d.is_empty()) {
        if chunked {
            codec::push_chunk_size(&mut conn.wbuf, d.len());
        }
        if d.len() <= COALESCE {
            conn.wbuf.extend_from_slice(d);
            if chunked {
                conn.wbuf.extend_from_slice(b"\r\n");
            }
        } else {
            rest = Some(d);
        }
    }
    if let Some(d) = rest {
        conn.io.write_all(&conn.wbuf).await.map_err(Failure::io)?;
        conn.wbuf.clear();
        conn.io.write_all(d).await.map_err(Failure::io)?;
        if chunked {
            conn.wbuf.extend_from_slice(b"\r\n");
        }
    }
    if body_done && chunked {
        conn.wbuf.extend_from_slice(b"0\r\n\r\n");
    }
    if !conn.wbuf.is_empty() {
        conn.io.write_all(&conn.wbuf).await.map_err(Failure::io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
