//! One model's upstream: its endpoints (round robin, passive health,
//! bounded retries), pooled clients, injected headers and deadlines. The
//! request timeout ends with the response headers; the body is bounded by
//! `stream_idle_timeout` between chunks ([`crate::stream`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, HOST};
use http::uri::{Authority, Scheme};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use modelgate_config::Upstream;
use modelgate_core::{BoxBody, BoxError, Reject, redact_url};
use prometheus_client::metrics::counter::Counter;

use crate::h1pool::codec::Head;
use crate::h1pool::{Failure, H1Pool};
use crate::headers::remove_hop_by_hop;
use crate::health::Health;
use crate::metrics::{AttemptLabels, GenAiClock, UpstreamMetrics};
use crate::replay::{Replay, RequestBody};
use crate::stream::Watched;
use crate::worker;
type HttpClient = Client<HttpsConnector<HttpConnector>, BoxBody>;

struct Endpoint {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    display: String,
    /// Plain-HTTP/1 endpoints: the per-I/O-thread pool ([`crate::h1pool`]).
    h1: Option<Arc<H1Pool>>,
}

impl Endpoint {
    /// `h1`: use the per-I/O-thread HTTP/1 pool if the scheme is `http`.
    fn new(uri: &Uri, h1: Option<Duration>) -> Result<Self, String> {
        let scheme = uri.scheme().cloned().ok_or("no scheme")?;
        let authority = uri.authority().cloned().ok_or("no host")?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        let h1 = h1
            .filter(|_| scheme == Scheme::HTTP)
            .map(|connect_timeout| H1Pool::new(&authority, connect_timeout));
        Ok(Self {
            display: redact_url(&format!("{scheme}://{authority}")),
            scheme,
            authority,
            host,
            h1,
        })
    }
}

/// A response from the upstream, with what the decision log needs.
pub struct Forwarded {
    pub response: Response<BoxBody>,
    /// The endpoint that answered (no credentials).
    pub upstream: String,
    /// Time until the response headers arrived (the last attempt's).
    pub elapsed: Duration,
    /// Attempts made (1 without retries).
    pub attempts: u32,
}

/// Why forwarding failed: the rejection for the client and a metric label.
pub type ForwardError = (Reject, &'static str);

/// The request to send: path and query (already rewritten for an alias),
/// cleaned headers and the body.
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: RequestBody,
}

/// How to forward one request.
#[derive(Default)]
pub struct ForwardOpts {
    pub grpc: bool,
    /// The flag of a [`crate::limit::Limited`] request body, to answer 413 when it trips.
    pub too_large: Option<Arc<AtomicBool>>,
    /// OpenAI traffic: timed for the GenAI histograms, and a JSON answer's
    /// `model` goes back to the client's name when there is an alias.
    pub openai: bool,
    /// When the caller started forwarding (default: when [`UpstreamTarget::forward`]
    /// is called): a request reads the clock once.
    pub started: Option<Instant>,
}

/// A model's upstream endpoints and clients.
pub struct UpstreamTarget {
    rest: Vec<Endpoint>,
    grpc: Option<Endpoint>,
    health: Health,
    timeout: Duration,
    host_override: Option<HeaderValue>,
    rest_http2: bool,
    connect_timeout: Duration,
    /// Set on every request (values marked sensitive).
    inject: Vec<(HeaderName, HeaderValue)>,
    /// The configured (client-facing) model name and the upstream's name.
    model: Arc<str>,
    alias: Option<String>,
    retries: u32,
    stream_idle_timeout: Duration,
    metrics: UpstreamMetrics,
    /// Metric label per REST endpoint (its index), then `grpc`.
    labels: Vec<Arc<str>>,
    /// Per label: its `ok` attempts counter, resolved on first use (no
    /// label hashing and family lock per request after that).
    ok: Vec<OnceLock<Counter>>,
    gen_ai: GenAiClock,
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

fn internal(detail: &str) -> ForwardError {
    (
        Reject::Internal {
            detail: detail.into(),
        },
        "internal",
    )
}

/// What one attempt sends.
struct Send<'a> {
    method: &'a Method,
    path_and_query: &'a str,
    headers: &'a HeaderMap,
    body: BoxBody,
}

/// What one attempt came to.
enum Attempt {
    Answer(Response<BoxBody>),
    /// A failure; `retry` says whether another endpoint may be tried.
    Failed {
        err: ForwardError,
        retry: bool,
    },
}

impl UpstreamTarget {
    /// `model` is the configured model's name (a metric label).
    pub fn new(cfg: &Upstream, model: &str, metrics: &UpstreamMetrics) -> Result<Self, String> {
        let rest = cfg
            .endpoints
            .iter()
            .map(|u| Endpoint::new(u, (!cfg.http2).then_some(cfg.connect_timeout)))
            .collect::<Result<Vec<_>, _>>()?;
        let grpc = cfg
            .grpc
            .as_ref()
            .map(|u| Endpoint::new(u, None))
            .transpose()?;
        let inject = cfg
            .llm
            .headers
            .iter()
            .map(|h| {
                let mut v = HeaderValue::from_str(h.value.expose())
                    .map_err(|_| format!("header {}: invalid value", h.name))?;
                v.set_sensitive(true);
                Ok((h.name.clone(), v))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut labels: Vec<Arc<str>> = (0..rest.len()).map(|i| Arc::from(i.to_string())).collect();
        labels.push(Arc::from("grpc"));
        let model: Arc<str> = Arc::from(model);
        Ok(Self {
            health: Health::new(rest.len(), cfg.llm.cooloff),
            rest,
            grpc,
            timeout: cfg.timeout,
            host_override: cfg.host.clone(),
            rest_http2: cfg.http2,
            connect_timeout: cfg.connect_timeout,
            inject,
            alias: cfg.llm.model.clone(),
            retries: cfg.llm.retries,
            stream_idle_timeout: cfg.llm.stream_idle_timeout,
            gen_ai: metrics.gen_ai(&model),
            metrics: metrics.clone(),
            ok: labels.iter().map(|_| OnceLock::new()).collect(),
            labels,
            model,
            clients: (0..worker::slots()).map(|_| OnceLock::new()).collect(),
        })
    }

    /// The upstream's name for the model, when it differs from the client's.
    pub fn alias(&self) -> Option<&str> {
        self.alias.as_deref()
    }

    /// The calling I/O thread's clients.
    fn clients(&self) -> Result<&(HttpClient, HttpClient), ForwardError> {
        let slot = self
            .clients
            .get(worker::current_slot())
            .or_else(|| self.clients.last())
            .ok_or_else(|| internal("no upstream client"))?;
        Ok(slot.get_or_init(|| {
            (
                client(self.connect_timeout, self.rest_http2),
                client(self.connect_timeout, true),
            )
        }))
    }

    fn count(&self, i: usize, result: &'static str) {
        let Some(upstream) = self.labels.get(i) else {
            return;
        };
        let series = || {
            self.metrics
                .attempts
                .get_or_create(&AttemptLabels {
                    model: self.model.clone(),
                    upstream: upstream.clone(),
                    result,
                })
                .clone()
        };
        match self.ok.get(i) {
            Some(ok) if result == "ok" => ok.get_or_init(series).inc(),
            _ => series().inc(),
        };
    }

    /// Sends the request to the next healthy endpoint, and on a failure that
    /// allows it (see `docs/config.md`, `upstream.retries`) to another one.
    pub async fn forward(
        &self,
        out: Outgoing,
        opts: ForwardOpts,
    ) -> Result<Forwarded, ForwardError> {
        let started = opts.started.unwrap_or_else(Instant::now);
        let Outgoing {
            method,
            path_and_query,
            headers,
            body,
        } = out;
        let replay = Replay::new(body);
        let idempotent = method == Method::GET || method == Method::HEAD;
        let max = if opts.grpc { 1 } else { 1 + self.retries };
        let mut tried = 0u64;
        // Made only when no attempt was possible (no allocation per request).
        let mut last = None;
        for n in 1..=max {
            let (i, ep) = if opts.grpc {
                let ep = self
                    .grpc
                    .as_ref()
                    .ok_or((Reject::NotFound("no gRPC upstream".into()), "config"))?;
                (self.rest.len(), ep)
            } else {
                let Some(i) = self.health.pick(tried) else {
                    break;
                };
                let ep = self
                    .rest
                    .get(i)
                    .ok_or_else(|| internal("no upstream endpoint"))?;
                (i, ep)
            };
            if i < 64 {
                tried |= 1 << i;
            }
            let Some(body) = replay.attempt() else {
                break;
            };
            let sent = if n == 1 { started } else { Instant::now() };
            let send = Send {
                method: &method,
                path_and_query: &path_and_query,
                headers: &headers,
                body,
            };
            let attempt = self
                .attempt(
                    send,
                    ep,
                    i,
                    opts.grpc,
                    idempotent || replay.is_buffered(),
                    &opts,
                    sent,
                )
                .await;
            match attempt {
                Attempt::Answer(resp) => {
                    let st = resp.status();
                    let bad = matches!(
                        st,
                        StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    if bad && !opts.grpc {
                        self.health.mark_down(i);
                        self.count(i, "status_5xx");
                        if idempotent && n < max {
                            continue;
                        }
                    } else if !opts.grpc {
                        self.health.mark_up(i);
                        self.count(i, "ok");
                    } else {
                        self.count(i, "ok");
                    }
                    return Ok(Forwarded {
                        response: self.answer(resp, started, &opts, &path_and_query).await,
                        upstream: ep.display.clone(),
                        elapsed: sent.elapsed(),
                        attempts: n,
                    });
                }
                Attempt::Failed { err, retry } => {
                    last = Some(err);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| internal("no upstream endpoint")))
    }

    /// The request for endpoint `ep` on the general client (h2, TLS, gRPC),
    /// with the injected headers.
    fn request(
        &self,
        ep: &Endpoint,
        method: &Method,
        pq: &str,
        headers: &HeaderMap,
        body: BoxBody,
        grpc: bool,
    ) -> Result<Request<BoxBody>, ForwardError> {
        let uri = Uri::builder()
            .scheme(ep.scheme.clone())
            .authority(ep.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| internal(&format!("upstream URI: {e}")))?;
        let mut req = Request::new(body);
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = if grpc || self.rest_http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        *req.headers_mut() = headers.clone();
        let h = req.headers_mut();
        let host = self
            .host_override
            .clone()
            .unwrap_or_else(|| ep.host.clone());
        h.insert(HOST, host);
        for (name, value) in &self.inject {
            h.insert(name.clone(), value.clone());
        }
        Ok(req)
    }

    /// One attempt on endpoint `i`. `replayable`: a failure before the
    /// answer may be retried (GET/HEAD, or a body held in memory); a failed
    /// connection always may (nothing was sent) if the body is unread.
    /// `sent`: when the attempt started.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        send: Send<'_>,
        ep: &Endpoint,
        i: usize,
        grpc: bool,
        replayable: bool,
        opts: &ForwardOpts,
        sent: Instant,
    ) -> Attempt {
        let result = match &ep.h1 {
            Some(pool) if !grpc => {
                // Written straight from the cleaned headers: no request built.
                let head = Head {
                    method: send.method,
                    path_and_query: send.path_and_query,
                    host: self.host_override.as_ref().unwrap_or(&ep.host),
                    headers: send.headers,
                    inject: &self.inject,
                };
                // The deadline is the connection's own reused timer.
                pool.send_at(head, send.body, self.timeout, sent).await
            }
            _ => {
                let req = match self.request(
                    ep,
                    send.method,
                    send.path_and_query,
                    send.headers,
                    send.body,
                    grpc,
                ) {
                    Ok(r) => r,
                    Err(err) => return Attempt::Failed { err, retry: false },
                };
                let (rest_client, grpc_client) = match self.clients() {
                    Ok(c) => c,
                    Err(err) => return Attempt::Failed { err, retry: false },
                };
                let client = if grpc { grpc_client } else { rest_client };
                let sent = client.request(req);
                match tokio::time::timeout(self.timeout, sent).await {
                    Ok(Ok(r)) => {
                        Ok(r.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
                    }
                    Ok(Err(e)) => Err(Failure {
                        connect: e.is_connect(),
                        body: false,
                        timed_out: false,
                        error: Box::new(e),
                    }),
                    Err(_) => Err(Failure {
                        connect: false,
                        body: false,
                        timed_out: true,
                        error: "upstream.timeout".into(),
                    }),
                }
            }
        };
        let tripped = || {
            opts.too_large
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Acquire))
        };
        match result {
            Err(e) if e.timed_out => {
                self.count(i, "timeout");
                Attempt::Failed {
                    err: (Reject::UpstreamTimeout, "timeout"),
                    retry: false,
                }
            }
            Err(_) if tripped() => Attempt::Failed {
                err: (Reject::PayloadTooLarge { limit: 0 }, ""),
                retry: false,
            },
            Err(e) if e.body || request_body_failed(&*e.error) => {
                // The client's body failed (paused, broke off): not the
                // endpoint's fault, and nothing to send again.
                let detail = format!("request body to {}: {}", ep.display, error_chain(&*e.error));
                Attempt::Failed {
                    err: (Reject::UpstreamUnavailable { detail }, "client_body"),
                    retry: false,
                }
            }
            Err(e) => {
                let kind = if e.connect { "connect" } else { "protocol" };
                self.count(i, kind);
                if !grpc {
                    self.health.mark_down(i);
                }
                let detail = format!(
                    "upstream {} {}: {}",
                    ep.display,
                    kind,
                    error_chain(&*e.error)
                );
                tracing::debug!(%detail, "upstream attempt failed");
                Attempt::Failed {
                    err: (Reject::UpstreamUnavailable { detail }, kind),
                    retry: e.connect || replayable,
                }
            }
            Ok(r) => Attempt::Answer(r),
        }
    }

    /// The answer as the client gets it: hop-by-hop headers gone, the body
    /// watched for idleness (and timed for OpenAI), and for an alias the
    /// model's name put back to the client's ([`crate::answer::restore`]).
    async fn answer(
        &self,
        resp: Response<BoxBody>,
        started: Instant,
        opts: &ForwardOpts,
        path_and_query: &str,
    ) -> Response<BoxBody> {
        let openai = opts.openai;
        let (mut parts, body) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let sse = content_type.starts_with("text/event-stream");
        let timing = openai.then(|| (started, self.gen_ai.clone()));
        let body = Watched::new(body, self.stream_idle_timeout, sse, timing).boxed_unsync();
        match &self.alias {
            Some(alias) => {
                let kind = crate::answer::Restore::of(openai, opts.grpc, path_and_query);
                let content_type = parts
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                crate::answer::restore(kind, &content_type, parts, body, alias, &self.model).await
            }
            None => Response::from_parts(parts, body),
        }
    }
}

/// Whether hyper failed because the request body (ours to send) errored.
fn request_body_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = src {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && h.is_user()
        {
            return true;
        }
        src = err.source();
    }
    false
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

#[cfg(test)]
mod tests;
