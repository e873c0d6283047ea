//! The end of every request: the response (a rejection rendered in the
//! client's protocol shape, or the backend's answer), one decision record and
//! the metrics. Nothing else writes either.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Response};
use modelgate_audit::{
    Decision, ExternalNote, Metrics, Outcome, PolicyNote, Rule, WristbandNote, authorino_response,
};
use modelgate_authz::{PolicyRef, Ruling};
use modelgate_core::respond::{RenderContext, X_EXT_AUTH_REASON, render};
use modelgate_core::{AuthMethod, BoxBody, ErrorShape, Operation, Principal, Protocol, Reject};

use crate::facts::X_REQUEST_ID;
use crate::pipeline::Pipeline;

/// What a request learned on its way through the pipeline.
pub struct Trace {
    /// Empty until the request id is known (no allocation).
    pub request_id: Arc<str>,
    pub client: SocketAddr,
    /// A standard method is a `&'static str` (no copy per request).
    pub method: Cow<'static, str>,
    pub path: String,
    pub host: Option<String>,
    pub grpc: bool,
    pub received: Instant,
    pub protocol: Option<Protocol>,
    pub operation: Option<Operation>,
    /// The model's log name (a configured model's shares its name).
    pub model: Option<Arc<str>>,
    pub identity: Option<Who>,
    pub authorized: bool,
    pub upstream: Option<String>,
    pub upstream_elapsed: Option<Duration>,
    /// When the request was sent upstream (for a streamed answer's timing).
    pub upstream_sent: Option<Instant>,
    /// A streamed answer's timing ([`crate::stream_log`]).
    pub stream: Option<crate::stream_log::StreamTiming>,
    /// The listener answers authentication and authorization refusals as
    /// Envoy does (`text/plain`, `RBAC: access denied`).
    pub istio_compat: bool,
    /// The authorization ruling, once authorization ran.
    pub ruling: Option<Ruling>,
    /// A forward-auth check: the answer goes to a proxy, as 2xx, 401 or 403
    /// and never in the gRPC shape (whose status is 200).
    pub forward_auth: bool,
    /// The wristband sent upstream: its `kid` and `jti`.
    pub wristband: Option<(String, String)>,
    /// Tokens charged by the rate-limit step ([`crate::ratelimit`]); for a
    /// stream, filled when its usage chunk passes.
    pub tokens: Option<modelgate_audit::TokenNote>,
    pub tokens_later: Option<crate::ratelimit::TokenSlot>,
    /// `x-ratelimit-*` headers for a refusal by the rate-limit step.
    pub limit_headers: Option<http::HeaderMap>,
}

/// Who a request was from, as the record names them.
pub enum Who {
    /// A verified or assumed identity (shared, not copied).
    Principal(Arc<Principal>),
    /// An inactive API key's name (refused, but named in the record).
    InactiveKey(String),
}

impl Trace {
    pub fn identify(&mut self, p: &Arc<Principal>) {
        self.identity = Some(Who::Principal(p.clone()));
    }

    /// The error shape the client expects.
    fn shape(&self) -> ErrorShape {
        if self.grpc && !self.forward_auth {
            return ErrorShape::Grpc;
        }
        match self.protocol {
            Some(Protocol::Grpc) if self.forward_auth => ErrorShape::KServe,
            Some(p) => p.error_shape(),
            None if self.path.starts_with("/v1/chat/")
                || self.path.starts_with("/v1/completions")
                || self.path.starts_with("/v1/embeddings") =>
            {
                ErrorShape::OpenAi
            }
            None => ErrorShape::KServe,
        }
    }

    /// The record, as of `now` (the clock read once for the record's
    /// `total_ms` and the metrics).
    fn decision<'a>(
        &'a self,
        status: u16,
        outcome: Outcome,
        reason: Option<&'a str>,
        now: Instant,
    ) -> Decision<'a> {
        let (identity, auth_method, issuer) = match &self.identity {
            Some(Who::Principal(p)) => (
                Some(p.name.as_str()),
                Some(p.method.as_str()),
                p.issuer.as_deref(),
            ),
            Some(Who::InactiveKey(name)) => {
                (Some(name.as_str()), Some(AuthMethod::ApiKey.as_str()), None)
            }
            None => (None, None, None),
        };
        Decision {
            ts: SystemTime::now(),
            request_id: &self.request_id,
            client: self.client,
            method: &self.method,
            path: &self.path,
            host: self.host.as_deref(),
            model: self.model.as_deref(),
            protocol: self.protocol.map(Protocol::as_str),
            operation: self.operation.map(Operation::as_str),
            identity,
            auth_method,
            issuer,
            decision: outcome,
            authorized: outcome == Outcome::Allow,
            response: authorino_response(status, outcome),
            reason,
            status,
            upstream: self.upstream.as_deref(),
            upstream_ms: self.upstream_elapsed,
            upstream_ttfb_ms: self.stream.map(|s| s.ttfb),
            stream_ms: self.stream.map(|s| s.duration),
            total_ms: now.saturating_duration_since(self.received),
            rule: self.rule(),
            wristband: self
                .wristband
                .as_ref()
                .map(|(kid, jti)| WristbandNote { kid, jti }),
            tokens: self
                .tokens
                .or_else(|| self.tokens_later.as_ref().and_then(|s| s.get().copied())),
        }
    }

    /// The rule that decided, and the policies that watched, for the log.
    fn rule(&self) -> Rule<'_> {
        let Some(r) = &self.ruling else {
            return Rule::default();
        };
        Rule {
            basis: r.verdict.basis().map(|b| b.as_str()),
            policy: r.verdict.policy().map(|p| note(p, None)),
            dry_run: r
                .dry_run
                .iter()
                .map(|d| note(&d.policy, Some(d.would)))
                .collect(),
            audit: r.audit.iter().map(|p| note(p, None)).collect(),
            external: r.external.as_ref().map(|e| ExternalNote {
                provider: &e.provider,
                outcome: e.outcome.as_str(),
            }),
        }
    }
}

fn note<'a>(p: &'a PolicyRef, would: Option<&'static str>) -> PolicyNote<'a> {
    PolicyNote {
        name: &p.name,
        action: p.action.as_str(),
        would,
    }
}

fn set_request_id(resp: &mut Response<BoxBody>, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
}

/// Finishes a request the backend answered.
pub fn answered(
    p: &Pipeline,
    metrics: &Metrics,
    trace: &Trace,
    mut resp: Response<BoxBody>,
) -> Response<BoxBody> {
    set_request_id(&mut resp, &trace.request_id);
    let status = resp.status().as_u16();
    let now = Instant::now();
    let d = trace.decision(status, Outcome::Allow, None, now);
    metrics.record_at(&d, None, None, now);
    p.decisions.write(&d, metrics);
    resp
}

/// Finishes a refused or failed request.
pub fn rejected(
    p: &Pipeline,
    metrics: &Metrics,
    trace: &Trace,
    reject: Reject,
    upstream_error: Option<&'static str>,
) -> Response<BoxBody> {
    let ctx = RenderContext {
        realm: &p.config.auth.realm,
    };
    let envoy = trace.istio_compat
        && !trace.grpc
        && matches!(reject, Reject::Unauthenticated(_) | Reject::Forbidden(_));
    let shape = if envoy {
        ErrorShape::EnvoyText
    } else {
        trace.shape()
    };
    let mut resp = render(&reject, shape, &ctx);
    if trace.forward_auth {
        modelgate_core::respond::for_proxy(&mut resp, &reject);
    }
    if let Reject::Forbidden(msg) = &reject
        && let Ok(v) = HeaderValue::from_str(msg)
    {
        resp.headers_mut().insert(X_EXT_AUTH_REASON, v);
    }
    set_request_id(&mut resp, &trace.request_id);
    if let Some(h) = &trace.limit_headers {
        resp.headers_mut().extend(h.clone());
    }
    let (outcome, deny_reason) = match &reject {
        Reject::Unauthenticated(f) => (Outcome::Deny, Some(f.label())),
        Reject::Forbidden(_) => (Outcome::Deny, Some("forbidden")),
        _ if trace.authorized => (Outcome::Allow, None),
        _ => (Outcome::Reject, None),
    };
    let reason = reject.log_reason();
    let now = Instant::now();
    let d = trace.decision(resp.status().as_u16(), outcome, Some(&reason), now);
    metrics.record_at(&d, deny_reason, upstream_error, now);
    p.decisions.write(&d, metrics);
    resp
}

impl Trace {
    /// A trace for a request that has not been read yet.
    pub fn new(client: std::net::SocketAddr, method: &str, path: &str) -> Self {
        Trace {
            request_id: Arc::default(),
            client,
            method: static_method(method),
            path: crate::facts::truncated(path, 256).to_string(),
            host: None,
            grpc: false,
            received: std::time::Instant::now(),
            protocol: None,
            operation: None,
            model: None,
            identity: None,
            authorized: false,
            upstream: None,
            upstream_elapsed: None,
            upstream_sent: None,
            stream: None,
            istio_compat: false,
            ruling: None,
            forward_auth: false,
            wristband: None,
            tokens: None,
            tokens_later: None,
            limit_headers: None,
        }
    }
}

/// `method` without a copy when it is a standard one.
fn static_method(method: &str) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_string()),
    }
}
