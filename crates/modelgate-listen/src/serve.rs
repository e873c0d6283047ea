//! The accept loop and per-connection HTTP serving: accepting pauses at the
//! listener's connection cap, each connection runs under the deadlines of
//! [`crate::deadline`], and HTTP/2 is bounded (streams, keep-alive PING,
//! reset floods).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use modelgate_config::Limits;
use modelgate_core::BoxBody;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::conn::ConnInfo;
use crate::deadline::{Activity, Tracked};
use crate::detect::{Builders, Detect};
use crate::gate::Gate;
use crate::tls::TlsSetup;
use crate::watchdog;

/// Answers one request. Errors are responses too: a handler never fails.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<BoxBody>> + Send;
}

/// How one listener serves.
#[derive(Clone)]
pub struct ServeOptions {
    pub listener: usize,
    pub http2: bool,
    /// Until the first request's head is complete (and the request head of
    /// HTTP/1.1 requests on a kept-alive connection, from the previous
    /// answer's end); enforced by the connection's watchdog.
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    pub limits: Limits,
    pub tls: Option<Arc<TlsSetup>>,
    /// The listener's connection cap, shared by its sockets on all threads.
    pub gate: Gate,
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 rapid reset (CVE-2023-44487): streams the client may reset before
/// they are accepted, and streams we may reset for its errors, before the
/// connection is closed with GOAWAY (ENHANCE_YOUR_CALM).
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;
const H2_MAX_HEADER_LIST: u32 = 64 << 10;

/// The builders of a listener's connections: HTTP/1, and HTTP/2 (prior
/// knowledge) when the listener serves it ([`Detect`] tells them apart).
fn builders(opts: &ServeOptions) -> Builders {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        // Enforced by the connection's watchdog instead (one timer per
        // connection, moved; hyper's is a new boxed timer per request).
        .header_read_timeout(None)
        .keep_alive(true);
    let h2 = opts.http2.then(|| {
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(opts.limits.max_concurrent_streams)
            .keep_alive_interval(opts.limits.h2_keepalive_interval)
            .keep_alive_timeout(opts.limits.h2_keepalive_timeout)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            .max_header_list_size(H2_MAX_HEADER_LIST);
        h2
    });
    Builders { h1, h2 }
}

/// Serves `listener` until `shutdown` turns true, then stops accepting and
/// waits up to `drain_timeout` for in-flight requests to finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    opts: ServeOptions,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(builders(&opts));
    let local = listener.local_addr().ok();
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // Backpressure: at the cap, this connection waits unserved and this
        // socket accepts nothing more (the kernel's backlog holds new
        // connections) until a connection of the listener closes.
        let slot = tokio::select! {
            s = opts.gate.slot() => match s { Some(s) => s, None => break },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let local = accepted_on(local, &stream).unwrap_or(client);
        let info = ConnInfo {
            listener: opts.listener,
            client,
            local,
            tls: opts.tls.is_some(),
            peer: None,
        };
        let (builder, handler, stop, opts) = (
            builder.clone(),
            handler.clone(),
            shutdown.clone(),
            opts.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            let started = Instant::now();
            let Some(tls) = &opts.tls else {
                let io = TokioIo::new(stream);
                return connection(io, &builder, handler, info, &opts, stop, started).await;
            };
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        return tracing::debug!(error = %e, %client, "TLS handshake failed");
                    }
                    Err(_) => return tracing::debug!(%client, "TLS handshake timed out"),
                };
            let mut info = info;
            info.peer = crate::tls::peer_identity(stream.get_ref().1);
            connection(
                TokioIo::new(stream),
                &builder,
                handler,
                info,
                &opts,
                stop,
                started,
            )
            .await;
        });
    }
    drop(listener);
    if tokio::time::timeout(opts.drain_timeout, opts.gate.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = opts.listener,
            "drain timeout passed; closing remaining connections"
        );
    }
}

/// The local address of a connection accepted on a listener bound to
/// `listener`: the listener's own when it names one address (no system
/// call), else the socket's (a wildcard listener accepts on any address).
fn accepted_on(listener: Option<SocketAddr>, stream: &TcpStream) -> Option<SocketAddr> {
    match listener {
        Some(l) if !l.ip().is_unspecified() => Some(l),
        _ => stream.local_addr().ok().or(listener),
    }
}

/// Serves one connection until it ends, a deadline closes it, or shutdown
/// drains it ([`watchdog`]).
async fn connection<I, H>(
    io: I,
    builders: &Builders,
    handler: Arc<H>,
    info: ConnInfo,
    opts: &ServeOptions,
    stop: watch::Receiver<bool>,
    started: Instant,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Handler,
{
    let activity = Activity::new();
    let conn = Detect::new(
        io,
        service(handler, Arc::new(info), activity.clone()),
        builders,
    );
    tokio::pin!(conn);
    let limits = watchdog::Limits {
        header: opts.header_read_timeout,
        idle: opts.limits.idle_timeout,
        gate: &opts.gate,
    };
    let ended = watchdog::run(
        conn.as_mut(),
        |c| c.graceful_shutdown(),
        &activity,
        limits,
        stop,
        started,
    )
    .await;
    if let Some(Err(e)) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn service<H: Handler>(
    handler: Arc<H>,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Tracked>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Tracked>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        let info = info.clone();
        let busy = activity.begin(req.version() == http::Version::HTTP_2);
        async move {
            let resp = handler.handle(req, info).await;
            Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, busy)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address [`accepted_on`] gives is the one the socket reports, for a
    /// listener on one address (taken from the listener) and on the wildcard.
    #[tokio::test]
    async fn accepted_on_matches_the_sockets_local_address() {
        for bind in ["127.0.0.1:0", "0.0.0.0:0"] {
            let listener = TcpListener::bind(bind).await.unwrap();
            let bound = listener.local_addr().unwrap();
            let port = bound.port();
            let client =
                tokio::spawn(
                    async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await },
                );
            let (stream, _) = listener.accept().await.unwrap();
            let _client = client.await.unwrap().unwrap();
            let got = accepted_on(Some(bound), &stream).unwrap();
            assert_eq!(got, stream.local_addr().unwrap(), "bound to {bind}");
            assert!(!got.ip().is_unspecified(), "bound to {bind}: {got}");
        }
    }
}
