//! The request pipeline, in flow order: the decision (read → route →
//! authenticate → bind body model → authorize, in [`crate::decide`]) →
//! rate-limit ([`crate::ratelimit`]) → backend → audit. See `docs/pipeline.md` for the chart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use modelgate_audit::Metrics;
use modelgate_authn::KeyStore;
use modelgate_core::{BoxBody, Reject, full};
use modelgate_listen::{ConnInfo, Handler};
use modelgate_runtime::Runtime;

use crate::backend::{Call, Failure};
use crate::body::{BodyDeadline, Prefixed, boxed, grpc_model, openai_model, read_bounded};
use crate::decide::{Ask, BodyModel, Claimed, Decision};
use crate::finish::{Trace, answered, rejected};
use crate::openai_body::OpenAiBody;
use crate::pipeline::{ModelBackend, Pipeline};
use modelgate_core::{Operation, Protocol};
use modelgate_route::ModelRef;

/// State shared by every request for the life of the process.
pub struct Shared {
    pub pipeline: ArcSwap<Pipeline>,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<ArcSwap<KeyStore>>,
    pub ready: AtomicBool,
    /// The built-in model runtime, when any model is built in.
    pub runtime: Option<Runtime>,
}

/// The client-facing handler.
pub struct Gateway {
    pub shared: Arc<Shared>,
    /// The admin API and UI, served here too with `admin.ui.on_public`.
    pub console: Arc<crate::admin::console::Console>,
}

impl Handler for Gateway {
    async fn handle(&self, req: Request<Incoming>, conn: Arc<ConnInfo>) -> Response<BoxBody> {
        // In-flight requests keep the pipeline they started with.
        let p = self.shared.pipeline.load_full();
        let metrics = &self.shared.metrics;
        // The request's clock starts here (`Trace::new` reads it once).
        let mut trace = Trace::new(conn.client, req.method().as_str(), req.uri().path());
        let ready = self.shared.ready.load(Ordering::Acquire);
        if p.config.admin.on_public && crate::admin::console::is_admin_request(req.uri().path()) {
            return Box::pin(self.console.serve_public(req, &conn)).await;
        }
        let (mut parts, body) = req.into_parts();
        // The wristband's discovery document and JWKS: public, like health.
        if let Some(resp) = crate::wristband::document(&p, &parts.method, parts.uri.path()) {
            return resp;
        }
        // Browser sign-in endpoints answer before routing (signin.rs).
        let mut body = Some(body);
        if let Some(resp) = crate::signin::endpoint(&p, &parts, &mut body, conn.listener).await {
            if let Some(unread) = body
                && !http_body::Body::is_end_stream(&unread)
            {
                tokio::spawn(drain(unread));
            }
            return resp;
        }
        let login = crate::signin::browser_login(&p, &parts, conn.listener);
        let renewed = crate::signin::refresh(&p, &mut parts, conn.listener).await;
        // Forward-auth endpoints answer checks; they never proxy.
        if let Some(ep) = crate::forward_auth::endpoint(&p, conn.listener, parts.uri.path()) {
            if let Some(unread) = body.take()
                && !http_body::Body::is_end_stream(&unread)
            {
                tokio::spawn(drain(unread));
            }
            return Box::pin(crate::forward_auth::check(
                &self.shared,
                &p,
                ep,
                parts,
                &conn,
            ))
            .await;
        }
        // Boxed, as every large step above: hyper moves the handler's future
        // by value (and over HTTP/2 tokio copies it into each stream's task).
        let resp = match Box::pin(flow(
            &p,
            self.shared.runtime.as_ref(),
            parts,
            &mut body,
            &conn,
            &mut trace,
            ready,
        ))
        .await
        {
            Ok(resp) if crate::stream_log::is_stream(&trace, &resp) => {
                crate::stream_log::answered_at_end(p, metrics.clone(), trace, resp)
            }
            Ok(resp) => answered(&p, metrics, &trace, resp),
            Err((reject, upstream_error)) => {
                if let Some(unread) = body
                    && !matches!(reject, Reject::PayloadTooLarge { .. })
                {
                    tokio::spawn(drain(unread));
                }
                let resp = rejected(&p, metrics, &trace, reject, upstream_error);
                match login {
                    Some(l) => crate::signin::to_login(resp, l),
                    None => resp,
                }
            }
        };
        crate::signin::with_cookie(resp, renewed)
    }
}

fn refuse(r: Reject) -> Failure {
    (r, None)
}

/// Reads and discards the body of a request refused before its body was read,
/// so the client's upload completes and an HTTP/2 stream ends cleanly instead
/// of being reset. Bounded in bytes and time.
async fn drain(mut body: Incoming) {
    use http_body_util::BodyExt;
    const MAX: usize = 1 << 20;
    let mut seen = 0usize;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, bytes::Bytes::len);
            if seen > MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
}

/// The serving pipeline's body: the model is read from it (bounded) when the
/// route needs it; what was read is kept to be sent on.
struct ServeBody<'a> {
    body: &'a mut Option<Incoming>,
    limit: u64,
    /// The body read's deadline (issue 9.3), started when the flow begins.
    deadline: BodyDeadline,
    /// Bytes already read, and for gRPC the unread rest.
    head: Option<(bytes::Bytes, Option<Incoming>)>,
}

impl BodyModel for ServeBody<'_> {
    async fn model(&mut self, grpc: bool) -> Result<String, Reject> {
        let incoming = self.body.take().ok_or_else(|| Reject::Internal {
            detail: "body taken twice".into(),
        })?;
        if grpc {
            let mut incoming = incoming;
            let (name, read) = grpc_model(&mut incoming, self.limit, self.deadline).await?;
            self.head = Some((read, Some(incoming)));
            Ok(name)
        } else {
            let bytes = read_bounded(incoming, self.limit, self.deadline).await?;
            let name = openai_model(&bytes)?;
            self.head = Some((bytes, None));
            Ok(name)
        }
    }

    async fn for_check(
        &mut self,
        max: u64,
        allow_partial: bool,
    ) -> Result<Option<crate::decide::CheckBody>, Reject> {
        let (head, rest) = match self.head.take() {
            Some(read) => read,
            None => (bytes::Bytes::new(), self.body.take()),
        };
        let (read, rest) =
            crate::body::read_upto(head, rest, max, self.limit, self.deadline).await?;
        self.head = Some((read.clone(), rest));
        crate::decide::CheckBody::cut(read, max, allow_partial)
    }
}

/// What `serve` was asked, from the request head and its connection.
pub(crate) fn ask(parts: http::request::Parts, conn: &ConnInfo, received: Instant) -> Ask {
    Ask {
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        authority: parts.uri.authority().map(|a| a.as_str().to_string()),
        method: parts.method,
        headers: parts.headers,
        client: conn.client,
        local: conn.local,
        peer: conn.peer.clone(),
        listener: conn.listener,
        received,
    }
}

/// Steps 1–5 are the decision ([`crate::decide`]); the pipeline adds the body
/// read (through [`ServeBody`]) and the backend call.
async fn flow(
    p: &Pipeline,
    runtime: Option<&Runtime>,
    parts: http::request::Parts,
    body: &mut Option<Incoming>,
    conn: &ConnInfo,
    trace: &mut Trace,
    ready: bool,
) -> Result<Response<BoxBody>, Failure> {
    let listener = p.listeners.get(conn.listener).ok_or_else(|| {
        refuse(Reject::Unavailable {
            message: "listener is being reconfigured".into(),
            retry_after_secs: Some(1),
        })
    })?;
    trace.istio_compat = listener.config.istio_compat;
    let mut source = ServeBody {
        body,
        limit: listener.config.max_body_bytes,
        deadline: BodyDeadline::start(&listener.config.limits),
        head: None,
    };
    // In its own block, consumed by a plain function: a local's storage in
    // a future lasts to the end of its scope, moved out or not, and the
    // decision (776 B) would otherwise ride along in every later state.
    let Allowed {
        facts,
        route,
        permit,
        upstream_headers,
        principal,
    } = {
        let d = p
            .decider()
            .decide(
                ask(parts, conn, trace.received),
                Claimed::FromRequest,
                &mut source,
                false,
            )
            .await;
        allowed(p, trace, d)?
    };
    // The admin API and UI are served on this listener only with
    // `admin.ui.on_public` (see `Gateway::handle`); never forwarded.
    if route.protocol == modelgate_core::Protocol::Admin {
        return Err(refuse(Reject::NotFound("not found".into())));
    }

    // 6. Rate limit: reserve before the backend. OpenAI: the estimate, from
    // the body parsed once (shared with the alias rename below); V1/V2 and
    // gRPC inference: request counters and the concurrency lease only.
    let mut openai = match source.head.take() {
        Some((bytes, None)) if route.protocol == Protocol::OpenAi => Some(OpenAiBody::new(bytes)),
        other => {
            source.head = other;
            None
        }
    };
    let inference = matches!(route.protocol, Protocol::V1 | Protocol::V2 | Protocol::Grpc)
        && matches!(route.operation, Operation::Infer | Operation::Explain);
    // Boxed: a reservation is held across the backend call, and only with
    // a rate limit configured; unboxed it would add 256 B to every request's future.
    let held = match (&p.limiter, &route.model, &mut openai) {
        (Some(l), ModelRef::Known(m), Some(b)) => l
            .reserve(m.as_str(), principal.as_deref(), b, trace)
            .await
            .map_err(refuse)?
            .map(Box::new),
        (Some(l), ModelRef::Known(m), None) if inference => l
            .reserve_requests(m.as_str(), principal.as_deref(), trace)
            .await
            .map_err(refuse)?
            .map(Box::new),
        _ => None,
    };
    let mut body_renamed = false;
    if let Some(mut b) = openai {
        if let Some(a) = openai_alias(p, &route.model) {
            b.rename_model(a).map_err(refuse)?;
            body_renamed = true;
        }
        source.head = Some((b.into_bytes().map_err(refuse)?, None));
    }

    // 7. Backend: modelgate itself, the built-in runtime, or the upstream.
    let request_body: BoxBody = match (source.head, source.body.take()) {
        (Some((bytes, None)), _) => full(bytes),
        (Some((bytes, Some(rest))), _) => http_body_util::BodyExt::boxed_unsync(Prefixed::new(
            bytes,
            rest,
            listener.config.limits.body_idle_timeout,
        )),
        (None, Some(incoming)) => boxed(incoming, listener.config.limits.body_idle_timeout),
        (None, None) => full(bytes::Bytes::new()),
    };
    let call = Call {
        p,
        runtime,
        listener,
        route: &route,
        permit: &permit,
        ready,
        upstream_headers: &upstream_headers,
        body_renamed,
    };
    let resp = call.run(facts, request_body, trace).await?;
    match held {
        Some(h) => h.answer(resp, trace).await.map_err(refuse),
        None => Ok(resp),
    }
}

/// What the pipeline needs past an allowing decision.
struct Allowed {
    facts: modelgate_core::RequestFacts,
    route: modelgate_route::RouteMatch,
    permit: modelgate_authz::Permit,
    upstream_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// For the rate-limit step only (`None` without one).
    principal: Option<Arc<modelgate_core::Principal>>,
}

/// Notes the decision in the trace and keeps what the later steps need; a
/// refusal (or an allow missing its facts, route or permit) is the failure.
fn allowed(p: &Pipeline, trace: &mut Trace, d: Decision) -> Result<Allowed, Failure> {
    note_but_host(trace, &d);
    // Only the rate-limit step needs the identity past the decision.
    let principal = p
        .limiter
        .as_ref()
        .and_then(|_| d.identity.shared_principal().cloned());
    let Decision {
        request_id,
        mut facts,
        route,
        result,
        ruling,
        upstream_headers,
        ..
    } = d;
    // The record's host is moved, not copied: nothing past the decision
    // reads the facts' host.
    trace.host = facts.as_mut().and_then(|f| f.host.take());
    trace.request_id = request_id;
    trace.ruling = ruling;
    let permit = result.map_err(refuse)?;
    let (Some(facts), Some(route), Some(permit)) = (facts, route, permit) else {
        return Err(refuse(Reject::Internal {
            detail: "allowed without facts, route or permit".into(),
        }));
    };
    Ok(Allowed {
        facts,
        route,
        permit,
        upstream_headers,
        principal,
    })
}

/// The upstream's name for an OpenAI model with an alias (`upstream.model`).
fn openai_alias<'a>(p: &'a Pipeline, model: &ModelRef) -> Option<&'a str> {
    match model {
        ModelRef::Known(m) => match p.backends.get(m) {
            Some(ModelBackend::Proxy(t)) => t.alias(),
            _ => None,
        },
        _ => None,
    }
}

/// Copies what the decision learned into the request's trace (the caller
/// moves in the request id and the ruling).
pub(crate) fn note(trace: &mut Trace, d: &Decision) {
    note_but_host(trace, d);
    if let Some(f) = &d.facts {
        trace.host.clone_from(&f.host);
    }
}

/// [`note`] without the host (the caller moves it from the facts).
fn note_but_host(trace: &mut Trace, d: &Decision) {
    trace.grpc = d.grpc;
    if let Some(f) = &d.facts
        && trace.path != f.path
    {
        trace.path.clone_from(&f.path);
    }
    if let Some(route) = &d.route {
        trace.protocol = Some(route.protocol);
        trace.operation = Some(route.operation);
        trace.model = match &route.model {
            ModelRef::Known(m) => Some(m.shared().clone()),
            ModelRef::Unknown(name) if !name.is_empty() => Some(Arc::from(name.as_str())),
            _ => None,
        };
    }
    if let Some(p) = d.identity.shared_principal() {
        trace.identify(p);
    } else if let crate::decide::Identity::Failed(modelgate_core::AuthFailure::InactiveApiKey(
        name,
    )) = &d.identity
    {
        trace.identity = Some(crate::finish::Who::InactiveKey(name.clone()));
    }
    trace.authorized = d.ruling.as_ref().is_some_and(|r| r.verdict.is_allow());
}

#[cfg(test)]
mod sizes;
