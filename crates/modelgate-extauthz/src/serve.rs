//! Binding and serving the ext_authz listener: one socket per I/O thread
//! (as the gateway listeners), each thread with its own event loop; gRPC
//! `Check` and, under its path prefix, the HTTP flavour on the same port.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use modelgate_app::{Adapter, Addon, Started};
use modelgate_config::Limits;
use modelgate_config::ext_authz::ExtAuthz;
use modelgate_core::BoxBody;
use modelgate_listen::{ConnInfo, Gate, Handler, ListenStats, ServeOptions, TlsSetup, bind_shared};
use tokio::sync::watch;

use crate::grpc::GrpcCheck;

/// The [`Addon`] that serves `ext_authz:` when it is configured.
pub fn addon() -> Addon {
    Box::new(|config, adapter, stop| {
        let Some(ext) = config.ext_authz.clone() else {
            return Ok(None);
        };
        let max_body = config
            .listeners
            .get(ext.listener)
            .map_or(4 << 20, |l| l.max_body_bytes);
        start(
            ext,
            config.runtime.io_threads.max(1),
            max_body,
            adapter,
            stop,
        )
        .map(Some)
    })
}

fn start(
    ext: ExtAuthz,
    threads: usize,
    max_body: u64,
    adapter: Adapter,
    stop: watch::Receiver<bool>,
) -> Result<Started, String> {
    let tls = match &ext.tls {
        Some(t) => Some(Arc::new(
            TlsSetup::new(t, true).map_err(|e| format!("ext_authz.tls: {e}"))?,
        )),
        None => None,
    };
    let sockets = bind_shared(ext.address, threads).map_err(|e| {
        format!(
            "ext_authz.address: cannot listen on {}: {e} (is another process using the port?)",
            ext.address
        )
    })?;
    let bound = sockets
        .first()
        .and_then(|s| s.local_addr().ok())
        .unwrap_or(ext.address);
    tracing::info!(address = %bound, tls = tls.is_some(), http_path_prefix = ?ext.http_path_prefix, "ext_authz listening");
    let handler = Arc::new(ExtAuthzHandler {
        grpc: GrpcCheck::new(adapter.clone(), ext.listener, max_body),
        adapter,
        listener: ext.listener,
        http_prefix: ext.http_path_prefix.clone(),
        max_body,
    });
    let opts = ServeOptions {
        listener: ext.listener,
        http2: true,
        header_read_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(5),
        // Envoy multiplexes many Check streams over few long-lived HTTP/2
        // connections: allow more streams per connection than a client
        // listener does; the other deadlines are the listener defaults.
        limits: Limits {
            max_concurrent_streams: 1024,
            ..Limits::default()
        },
        tls: tls.clone(),
        gate: Gate::new(ext.listener, 10_000, &ListenStats::default()),
    };
    let thread = std::thread::Builder::new()
        .name("modelgate-ext-authz".into())
        .spawn(move || run(sockets, opts, handler, stop))
        .map_err(|e| format!("ext_authz: cannot start its thread: {e}"))?;
    Ok(Started { thread, tls })
}

/// Serves every socket, each on its own thread and event loop; returns when
/// all have drained.
fn run(
    sockets: Vec<std::net::TcpListener>,
    opts: ServeOptions,
    handler: Arc<ExtAuthzHandler>,
    stop: watch::Receiver<bool>,
) {
    let mut threads = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let (opts, handler, stop) = (opts.clone(), handler.clone(), stop.clone());
        let t = std::thread::Builder::new()
            .name(format!("modelgate-ext-authz-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "ext_authz: cannot start an event loop");
                        return;
                    }
                };
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(sock) {
                        Ok(l) => modelgate_listen::serve(l, opts, handler, stop).await,
                        Err(e) => {
                            tracing::error!(error = %e, "ext_authz: cannot register a socket")
                        }
                    }
                });
            });
        match t {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "ext_authz: cannot start a thread"),
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

struct ExtAuthzHandler {
    adapter: Adapter,
    grpc: GrpcCheck,
    listener: usize,
    http_prefix: Option<String>,
    max_body: u64,
}

impl Handler for ExtAuthzHandler {
    async fn handle(&self, req: Request<Incoming>, conn: Arc<ConnInfo>) -> Response<BoxBody> {
        if req.uri().path() == crate::CHECK_PATH {
            return self.grpc.serve(req).await;
        }
        if let Some(prefix) = &self.http_prefix
            && let Some(rest) = crate::http_flavour::strip_prefix(req.uri(), prefix)
        {
            let flavour = crate::http_flavour::HttpFlavour {
                adapter: &self.adapter,
                listener: self.listener,
                max_body: self.max_body,
            };
            return flavour.check(req, rest, &conn).await;
        }
        let mut resp = Response::new(modelgate_core::full(bytes::Bytes::from_static(
            b"not an ext_authz path\n",
        )));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        resp
    }
}
