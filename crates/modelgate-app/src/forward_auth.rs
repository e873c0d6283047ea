//! Forward-auth: nginx `auth_request`, Caddy `forward_auth` and Traefik
//! ForwardAuth ask whether the request they hold may pass. This adapter reads
//! that request from the subrequest's headers — believed only from the
//! listener's `trusted_proxies` — into an [`Ask`], calls the one decision
//! function, and answers 200 with the identity headers or 401/403. It never
//! proxies, and never sees the original body: routes that name their model
//! in the body are refused.

use std::sync::Arc;

use http::header::{HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use modelgate_config::forward_auth::{ForwardAuth, ForwardHeaders};
use modelgate_core::{BoxBody, Reject, full};
use modelgate_listen::ConnInfo;

use crate::decide::{Ask, BodyModel, Claimed};
use crate::finish::{Trace, answered, rejected};
use crate::gateway::{Shared, note};
use crate::pipeline::Pipeline;

const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The endpoint `path` names on the request's listener, if any.
pub fn endpoint<'a>(p: &'a Pipeline, listener: usize, path: &str) -> Option<&'a ForwardAuth> {
    p.listeners
        .get(listener)?
        .config
        .forward_auth
        .iter()
        .find(|e| e.path == path)
}

/// The original request as the proxy describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub host: Option<String>,
}

/// Exactly one value of `name`, as text; a repeated header is ambiguous.
fn one<'a>(h: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Reject> {
    let mut all = h.get_all(name).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        if h.contains_key(name) {
            return Err(refuse(format!("more than one {name} header")));
        }
        return Ok(None);
    };
    v.to_str()
        .map(Some)
        .map_err(|_| refuse(format!("{name} is not valid text")))
}

fn required<'a>(h: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, Reject> {
    one(h, name)?.ok_or_else(|| {
        refuse(format!(
            "the proxy did not send {name}: configure it to describe the original request"
        ))
    })
}

fn refuse(msg: String) -> Reject {
    Reject::Forbidden(format!("forward-auth: {msg}"))
}

/// Reads the original request from the headers of `style`. Nothing is
/// guessed: a missing or ambiguous header refuses the check.
pub fn original(h: &HeaderMap, style: ForwardHeaders) -> Result<Original, Reject> {
    let (uri_h, method_h) = match style {
        ForwardHeaders::Nginx => (X_ORIGINAL_URI, X_ORIGINAL_METHOD),
        ForwardHeaders::Forwarded => (X_FORWARDED_URI, X_FORWARDED_METHOD),
    };
    let uri = required(h, &uri_h)?;
    if !uri.starts_with('/') {
        return Err(refuse(format!(
            "{uri_h} must be a path (origin form), not {uri:?}"
        )));
    }
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (uri, None),
    };
    let method = Method::from_bytes(required(h, &method_h)?.as_bytes())
        .map_err(|_| refuse(format!("{method_h} is not a method")))?;
    if style == ForwardHeaders::Forwarded
        && let Some(proto) = one(h, &X_FORWARDED_PROTO)?
        && proto != "http"
        && proto != "https"
    {
        return Err(refuse(format!("{X_FORWARDED_PROTO} is not http or https")));
    }
    let host = match one(h, &X_FORWARDED_HOST)? {
        Some(v) if v.contains(',') || v.is_empty() => {
            return Err(refuse(format!("{X_FORWARDED_HOST} must name one host")));
        }
        Some(v) => Some(v.to_string()),
        None => one(h, &HOST)?.map(str::to_string),
    };
    Ok(Original {
        method,
        path: path.to_string(),
        query,
        host,
    })
}

/// The body the proxy never sends: a route that names its model in the body
/// cannot be decided here.
struct NoBodyHere;

impl BodyModel for NoBodyHere {
    async fn model(&mut self, _grpc: bool) -> Result<String, Reject> {
        Err(Reject::Forbidden(
            "forward-auth cannot see the request body, and this route names its model there: \
             put modelgate in the request path or use ext_authz with the body"
                .into(),
        ))
    }
}

/// Answers one forward-auth subrequest (its body, if any, is not read).
pub async fn check(
    shared: &Shared,
    p: &Pipeline,
    endpoint: &ForwardAuth,
    parts: http::request::Parts,
    conn: &Arc<ConnInfo>,
) -> Response<BoxBody> {
    let metrics = &shared.metrics;
    let mut trace = Trace::new(conn.client, parts.method.as_str(), parts.uri.path());
    trace.forward_auth = true;
    let listener = p.listeners.get(conn.listener);
    trace.istio_compat = listener.is_some_and(|l| l.config.istio_compat);
    let trusted = listener.is_some_and(|l| {
        l.config
            .trusted_proxies
            .iter()
            .any(|n| n.contains(conn.client.ip()))
    });
    if !trusted {
        // Never evaluated as the path the headers name: the record shows the
        // endpoint that was called.
        trace.request_id = crate::facts::request_id(&parts.headers);
        let r = refuse("only the listener's trusted_proxies may ask".into());
        return rejected(p, metrics, &trace, r, None);
    }
    let orig = match original(&parts.headers, endpoint.headers) {
        Ok(o) => o,
        Err(r) => {
            trace.request_id = crate::facts::request_id(&parts.headers);
            return rejected(p, metrics, &trace, r, None);
        }
    };
    trace.method = orig.method.to_string().into();
    trace.path = orig.path.chars().take(256).collect();
    let mut headers = parts.headers;
    for h in [
        X_ORIGINAL_URI,
        X_ORIGINAL_METHOD,
        X_FORWARDED_URI,
        X_FORWARDED_METHOD,
    ] {
        headers.remove(h);
    }
    let ask = Ask {
        method: orig.method,
        path: orig.path,
        query: orig.query,
        authority: orig.host,
        headers,
        client: conn.client,
        local: conn.local,
        // The TLS peer is the proxy, not the client it asks about.
        peer: None,
        listener: conn.listener,
        received: trace.received,
    };
    let d = p
        .decider()
        .decide(ask, Claimed::FromRequest, &mut NoBodyHere, false)
        .await;
    note(&mut trace, &d);
    trace.request_id = d.request_id;
    trace.ruling = d.ruling;
    match d.result {
        Ok(Some(permit)) => {
            let mut resp = allowed(p, &permit);
            // An external authorizer's headersToUpstreamOnAllow.
            for (n, v) in d.upstream_headers {
                resp.headers_mut().insert(n, v);
            }
            // Last, as in `serve`: the wristband, for the proxy to copy
            // upstream. Fails closed: no token, no request.
            if let Some(route) = &d.route
                && let Err(r) =
                    crate::wristband::stamp(p, route, &permit, &mut trace, resp.headers_mut())
            {
                return rejected(p, metrics, &trace, r, None);
            }
            answered(p, metrics, &trace, resp)
        }
        Ok(None) => {
            let r = Reject::Internal {
                detail: "forward-auth allowed without a permit".into(),
            };
            rejected(p, metrics, &trace, r, None)
        }
        Err(r) => rejected(p, metrics, &trace, r, None),
    }
}

/// 200 with the identity headers `serve` would send upstream, for the proxy
/// to copy (`auth_request_set`, `copy_headers`).
fn allowed(p: &Pipeline, permit: &modelgate_authz::Permit) -> Response<BoxBody> {
    let mut resp = Response::new(full(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    let who = permit.principal();
    // Always present (empty without an identity): Caddy 2.6's copy_headers
    // would otherwise send its unresolved placeholder text upstream.
    if let Some(h) = &p.config.auth.identity_header {
        let v = who
            .and_then(|w| HeaderValue::from_str(&w.name).ok())
            .unwrap_or_else(|| HeaderValue::from_static(""));
        headers.insert(h.clone(), v);
    }
    for (h, v) in p.authn.forward_plan(who).add_headers {
        headers.insert(h, v);
    }
    resp
}

#[cfg(test)]
mod tests;
