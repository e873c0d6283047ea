//! The floor of the proxy path (issue 14, P1b): a bare hyper HTTP/1 server
//! forwarding every request to one upstream, with no authentication, policy,
//! record or metrics. Measured by `bench/run.sh instructions` beside nginx
//! and modelgate, so RESULTS says what the HTTP stack alone costs. Not
//! shipped.
//!
//!   bare_proxy LISTEN_ADDR UPSTREAM_HOST:PORT [hyper|lean]
//!
//! `hyper`: hyper_util's pooled legacy client (a plain hyper proxy);
//! `lean`: modelgate's per-I/O-thread HTTP/1 client.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use modelgate_core::{BoxBody, BoxError, full};
use modelgate_upstream::bare::LeanClient;
use tokio::net::TcpListener;

type HyperClient = Client<HttpConnector, BoxBody>;

enum Upstream {
    Hyper(Box<HyperClient>, String),
    Lean(LeanClient),
}

async fn forward(
    up: Arc<Upstream>,
    req: Request<Incoming>,
) -> Result<Response<BoxBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body: BoxBody = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let answer: Result<Response<BoxBody>, BoxError> = match &*up {
        Upstream::Hyper(client, authority) => {
            match Uri::try_from(format!("http://{authority}{pq}")) {
                Ok(uri) => {
                    let mut out = Request::new(body);
                    *out.method_mut() = parts.method;
                    *out.uri_mut() = uri;
                    *out.headers_mut() = parts.headers;
                    client
                        .request(out)
                        .await
                        .map(|r| {
                            r.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync())
                        })
                        .map_err(|e| -> BoxError { Box::new(e) })
                }
                Err(e) => Err(Box::new(e)),
            }
        }
        Upstream::Lean(lean) => lean.send(&parts.method, pq, &parts.headers, body).await,
    };
    Ok(answer.unwrap_or_else(|e| {
        let mut r = Response::new(full(e.to_string()));
        *r.status_mut() = http::StatusCode::BAD_GATEWAY;
        r
    }))
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        return Err("usage: bare_proxy LISTEN_ADDR UPSTREAM_HOST:PORT [hyper|lean]".into());
    };
    let up = match args.get(3).map(String::as_str) {
        Some("lean") => Upstream::Lean(LeanClient::new(upstream)?),
        _ => {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            Upstream::Hyper(
                Box::new(Client::builder(TokioExecutor::new()).build(http)),
                upstream.clone(),
            )
        }
    };
    let up = Arc::new(up);
    // One I/O thread, as modelgate runs under the harness.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = TcpListener::bind(listen).await?;
        loop {
            let (tcp, _) = l.accept().await?;
            let _ = tcp.set_nodelay(true);
            let up = up.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| forward(up.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    })
}
