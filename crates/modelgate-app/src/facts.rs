//! Reading a request head into [`RequestFacts`]: normalised path, host,
//! request id, gRPC detection. Ambiguous requests are refused here, before
//! anything matches on them.

use std::time::Instant;

use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;
use modelgate_core::{Reject, RequestFacts};
use modelgate_listen::ConnInfo;
use modelgate_route::{normalize_host, normalize_path};

pub const X_REQUEST_ID: &str = "x-request-id";

/// Whether the request is gRPC (`content-type: application/grpc[+proto]`).
pub fn is_grpc(parts: &Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct == "application/grpc"
                || ct.starts_with("application/grpc+")
                || ct.starts_with("application/grpc;")
        })
}

/// A client request id is kept if it is short, printable ASCII; otherwise a fresh one.
fn request_id(parts: &Parts) -> String {
    parts
        .headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// Builds the facts. On refusal returns the request id with the rejection.
pub fn build(
    parts: Parts,
    conn: &ConnInfo,
    received: Instant,
) -> Result<RequestFacts, (String, Reject)> {
    let id = request_id(&parts);
    let grpc = is_grpc(&parts);
    let refuse = |r: Reject| (id.clone(), r);
    if !parts
        .method
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_uppercase())
    {
        return Err(refuse(Reject::BadRequest(
            "method must be upper-case".into(),
        )));
    }
    let path =
        normalize_path(parts.uri.path()).map_err(|e| refuse(Reject::BadRequest(e.to_string())))?;
    if grpc && path != parts.uri.path() {
        return Err(refuse(Reject::BadRequest(
            "gRPC path is not canonical".into(),
        )));
    }
    let mut hosts = parts.headers.get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(refuse(Reject::BadRequest(
            "more than one Host header".into(),
        )));
    }
    let authority = parts.uri.authority().map(|a| a.as_str().to_string());
    let host = match (authority, host_header) {
        (Some(a), _) => Some(a),
        (None, Some(h)) => Some(
            h.to_str()
                .map_err(|_| refuse(Reject::BadRequest("invalid Host header".into())))?
                .to_string(),
        ),
        (None, None) => None,
    }
    .map(|h| normalize_host(&h));
    Ok(RequestFacts {
        request_id: id,
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_string),
        host,
        headers: parts.headers,
        client: conn.client,
        local: conn.local,
        peer: conn.peer.clone(),
        received,
        grpc,
    })
}

/// The raw path of a request, for logs before normalisation.
pub fn raw_path_of<B>(req: &http::Request<B>) -> String {
    req.uri().path().chars().take(256).collect()
}
