//! The accept loop and per-connection HTTP serving.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use modelgate_core::BoxBody;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::conn::ConnInfo;
use crate::tls::TlsSetup;

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
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    pub tls: Option<Arc<TlsSetup>>,
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` until `shutdown` turns true, then stops accepting and
/// waits up to `drain_timeout` for in-flight requests to finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    opts: ServeOptions,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024);
    if !opts.http2 {
        builder = builder.http1_only();
    }
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().ok();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().ok().or(local).unwrap_or(client);
                let info = ConnInfo { listener: opts.listener, client, local, tls: opts.tls.is_some(), peer: None };
                match &opts.tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service(handler.clone(), Arc::new(info)));
                        let fut = graceful.watch(conn.into_owned());
                        tokio::spawn(async move {
                            if let Err(e) = fut.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(tls) => {
                        let acceptor = tls.acceptor();
                        let builder = builder.clone();
                        let handler = handler.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, %client, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%client, "TLS handshake timed out");
                                    return;
                                }
                            };
                            let mut info = info;
                            info.peer = crate::tls::peer_identity(stream.get_ref().1);
                            let conn = builder.serve_connection(TokioIo::new(stream), service(handler, Arc::new(info)));
                            if let Err(e) = watcher.watch(conn.into_owned()).await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(opts.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = opts.listener,
            "drain timeout passed; closing remaining connections"
        );
    }
}

fn service<H: Handler>(
    handler: Arc<H>,
    info: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<BoxBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<BoxBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        let info = info.clone();
        async move { Ok::<_, Infallible>(handler.handle(req, info).await) }
    })
}
