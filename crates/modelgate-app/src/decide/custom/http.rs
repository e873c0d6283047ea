//! Envoy's raw-HTTP ext_authz client (`ext_authz_http_impl.cc`), as Istio's
//! `envoyExtAuthzHttp` configures it: the check is the original method and
//! path, prefixed with `pathPrefix`, carrying Host, the
//! `includeRequestHeadersInCheck` headers, the `includeAdditionalHeadersInCheck`
//! ones and, with `includeRequestBodyInCheck`, the (possibly cut) body with
//! its Content-Length and `x-envoy-auth-partial-body`; otherwise no body. 200 allows (with the `headersToUpstreamOnAllow`
//! headers); a 5xx is an error; any other status denies, passing status, body
//! and the `headersToDownstreamOnDeny` headers to the client.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use modelgate_config::providers::{ExtensionProvider, HeaderPattern, HttpProvider, any_matches};
use modelgate_core::{ExternalDenial, RequestFacts};

use super::{Answer, CheckBody, HttpClient, MAX_RESPONSE_BYTES};

/// Envoy's marker of a body sent with the check: `true` when it was cut at
/// `maxRequestBytes`. A client-sent one is never passed on.
pub(super) const PARTIAL_BODY: &str = "x-envoy-auth-partial-body";

/// Headers never copied between the check and the request (hop-by-hop, and
/// those the check sets itself).
const NEVER: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

pub(super) async fn check(
    client: &HttpClient,
    p: &ExtensionProvider,
    h: &HttpProvider,
    facts: &RequestFacts,
    body: Option<&CheckBody>,
) -> Result<Answer, String> {
    let req = request(p, h, facts, body)?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let (parts, body) = resp.into_parts();
    if parts.status.is_server_error() {
        return Err(format!("authorizer answered {}", parts.status));
    }
    // Read (bounded) on allow too, so the pooled connection can be reused.
    let body = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the authorizer's body: {e}"))?
        .to_bytes();
    if parts.status == StatusCode::OK {
        return Ok(Answer::Allow(pick(
            &parts.headers,
            &h.headers_to_upstream_on_allow,
        )));
    }
    let mut headers = HeaderMap::new();
    let allowed: Vec<(HeaderName, HeaderValue)> = if h.headers_to_downstream_on_deny.is_empty() {
        // Envoy's default: every authorizer header but its own framing.
        parts
            .headers
            .iter()
            .filter(|(n, _)| !NEVER.contains(&n.as_str()))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    } else {
        pick(&parts.headers, &h.headers_to_downstream_on_deny)
    };
    for (n, v) in allowed {
        headers.append(n, v);
    }
    Ok(Answer::Deny(ExternalDenial {
        status: parts.status,
        headers,
        body,
    }))
}

/// The check request Envoy would send for `facts`.
fn request(
    p: &ExtensionProvider,
    h: &HttpProvider,
    facts: &RequestFacts,
    body: Option<&CheckBody>,
) -> Result<Request<Full<Bytes>>, String> {
    let uri = format!(
        "http://{}{}{}",
        p.authority,
        h.path_prefix,
        facts.path_and_query()
    );
    let mut req = Request::builder()
        .method(facts.method.clone())
        .uri(uri)
        .body(Full::new(body.map(|b| b.bytes.clone()).unwrap_or_default()))
        .map_err(|e| format!("cannot build the check request: {e}"))?;
    let headers = req.headers_mut();
    for (n, v) in &facts.headers {
        if !NEVER.contains(&n.as_str())
            && n.as_str() != PARTIAL_BODY
            && any_matches(&h.include_request_headers, n.as_str())
        {
            headers.append(n, v.clone());
        }
    }
    for (n, v) in &h.additional_headers {
        headers.insert(n, v.clone());
    }
    let host = facts.host.as_deref().unwrap_or(&p.authority);
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(HOST, v);
    }
    let length = body.map_or(0, |b| b.bytes.len());
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(b) = body {
        let partial = if b.partial { "true" } else { "false" };
        headers.insert(PARTIAL_BODY, HeaderValue::from_static(partial));
    }
    Ok(req)
}

/// The headers of `from` that match a pattern in `patterns`.
fn pick(from: &HeaderMap, patterns: &[HeaderPattern]) -> Vec<(HeaderName, HeaderValue)> {
    from.iter()
        .filter(|(n, _)| !NEVER.contains(&n.as_str()) && any_matches(patterns, n.as_str()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}
