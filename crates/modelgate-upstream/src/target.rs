//! One model's upstream: its endpoints, pooled clients and deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use modelgate_config::Upstream;
use modelgate_core::{BoxBody, BoxError, Reject, redact_url};

use crate::headers::remove_hop_by_hop;
use crate::worker;

type HttpClient = Client<HttpsConnector<HttpConnector>, BoxBody>;

#[derive(Debug)]
struct Endpoint {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    display: String,
}

impl Endpoint {
    fn new(uri: &Uri) -> Result<Self, String> {
        let scheme = uri.scheme().cloned().ok_or("no scheme")?;
        let authority = uri.authority().cloned().ok_or("no host")?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        Ok(Self {
            display: redact_url(&format!("{scheme}://{authority}")),
            scheme,
            authority,
            host,
        })
    }
}

/// A response from the upstream, with what the decision log needs.
pub struct Forwarded {
    pub response: Response<BoxBody>,
    /// The endpoint that answered (no credentials).
    pub upstream: String,
    /// Time until the response headers arrived.
    pub elapsed: Duration,
}

/// Why forwarding failed: the rejection for the client and a metric label.
pub type ForwardError = (Reject, &'static str);

/// A model's upstream endpoints and clients.
pub struct UpstreamTarget {
    rest: Vec<Endpoint>,
    grpc: Option<Endpoint>,
    next: AtomicUsize,
    timeout: Duration,
    host_override: Option<HeaderValue>,
    rest_http2: bool,
    connect_timeout: Duration,
    /// Per I/O thread: (REST client, gRPC client), made on first use.
    clients: Vec<OnceLock<(HttpClient, HttpClient)>>,
}

fn client(connect_timeout: Duration, http2_only: bool) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(90));
    if http2_only {
        b.http2_only(true);
    }
    b.build(https)
}

impl UpstreamTarget {
    pub fn new(cfg: &Upstream) -> Result<Self, String> {
        let rest = cfg
            .endpoints
            .iter()
            .map(Endpoint::new)
            .collect::<Result<Vec<_>, _>>()?;
        let grpc = cfg.grpc.as_ref().map(Endpoint::new).transpose()?;
        Ok(Self {
            rest,
            grpc,
            next: AtomicUsize::new(0),
            timeout: cfg.timeout,
            host_override: cfg.host.clone(),
            rest_http2: cfg.http2,
            connect_timeout: cfg.connect_timeout,
            clients: (0..worker::slots()).map(|_| OnceLock::new()).collect(),
        })
    }

    /// The calling I/O thread's clients.
    fn clients(&self) -> Result<&(HttpClient, HttpClient), ForwardError> {
        let slot = self
            .clients
            .get(worker::current_slot())
            .or_else(|| self.clients.last())
            .ok_or((
                Reject::Internal {
                    detail: "no upstream client".into(),
                },
                "internal",
            ))?;
        Ok(slot.get_or_init(|| {
            (
                client(self.connect_timeout, self.rest_http2),
                client(self.connect_timeout, true),
            )
        }))
    }

    /// Sends `req` (whose URI holds only the path and query, and whose headers
    /// are already cleaned) to the next endpoint. `too_large` is the flag of a
    /// [`crate::limit::Limited`] request body, to answer 413 when it trips.
    pub async fn forward(
        &self,
        mut req: Request<BoxBody>,
        grpc: bool,
        too_large: Option<Arc<AtomicBool>>,
    ) -> Result<Forwarded, ForwardError> {
        let (rest_client, grpc_client) = self.clients()?;
        let (ep, client, version) = if grpc {
            let ep = self
                .grpc
                .as_ref()
                .ok_or((Reject::NotFound("no gRPC upstream".into()), "config"))?;
            (ep, grpc_client, Version::HTTP_2)
        } else {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.rest.len().max(1);
            let ep = self.rest.get(i).ok_or((
                Reject::Internal {
                    detail: "no upstream endpoint".into(),
                },
                "config",
            ))?;
            (
                ep,
                rest_client,
                if self.rest_http2 {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                },
            )
        };
        let pq = req.uri().path_and_query().cloned();
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(ep.scheme.clone());
        parts.authority = Some(ep.authority.clone());
        parts.path_and_query = pq;
        *req.uri_mut() = Uri::from_parts(parts).map_err(|e| {
            (
                Reject::Internal {
                    detail: format!("upstream URI: {e}"),
                },
                "internal",
            )
        })?;
        *req.version_mut() = version;
        let host = self
            .host_override
            .clone()
            .unwrap_or_else(|| ep.host.clone());
        req.headers_mut().insert(HOST, host);

        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, client.request(req)).await;
        let elapsed = started.elapsed();
        let tripped = || {
            too_large
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Acquire))
        };
        let resp = match result {
            Err(_) => return Err((Reject::UpstreamTimeout, "timeout")),
            Ok(Err(_)) if tripped() => return Err((Reject::PayloadTooLarge { limit: 0 }, "")),
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    "connect"
                } else {
                    "protocol"
                };
                let detail = format!("upstream {} {}: {}", ep.display, kind, error_chain(&e));
                return Err((Reject::UpstreamUnavailable { detail }, kind));
            }
            Ok(Ok(r)) => r,
        };
        let (mut parts, body) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
        Ok(Forwarded {
            response: Response::from_parts(parts, body),
            upstream: ep.display.clone(),
            elapsed,
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
