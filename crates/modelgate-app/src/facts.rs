//! Reading what an adapter was asked ([`Ask`]) into [`RequestFacts`]: normalised path, host,
//! request id, gRPC detection. Ambiguous requests are refused here, before
//! anything matches on them.

use http::HeaderMap;
use http::header::{CONTENT_TYPE, HOST};
use modelgate_core::{Reject, RequestFacts};
use modelgate_route::{normalize_host, normalize_path};

use crate::decide::Ask;

pub const X_REQUEST_ID: &str = "x-request-id";

/// Whether the request is gRPC (`content-type: application/grpc[+proto]`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct == "application/grpc"
                || ct.starts_with("application/grpc+")
                || ct.starts_with("application/grpc;")
        })
}

/// A client request id is kept if it is short, printable ASCII; otherwise a fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(fresh_request_id, str::to_string)
}

/// A random (v4) UUID, formatted without the `fmt` machinery (this runs for
/// every request that brings no id of its own).
fn fresh_request_id() -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

/// Builds the facts from what an adapter was asked, under request id `id`.
pub fn build(ask: Ask, id: String) -> Result<RequestFacts, (String, Reject)> {
    let grpc = is_grpc(&ask.headers);
    let refuse = |r: Reject| (id.clone(), r);
    if !ask.method.as_str().bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(refuse(Reject::BadRequest(
            "method must be upper-case".into(),
        )));
    }
    let path = normalize_path(&ask.path).map_err(|e| refuse(Reject::BadRequest(e.to_string())))?;
    if grpc && path != ask.path {
        return Err(refuse(Reject::BadRequest(
            "gRPC path is not canonical".into(),
        )));
    }
    let mut hosts = ask.headers.get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(refuse(Reject::BadRequest(
            "more than one Host header".into(),
        )));
    }
    let host = match (ask.authority, host_header) {
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
        method: ask.method,
        path,
        query: ask.query,
        host,
        headers: ask.headers,
        client: ask.client,
        local: ask.local,
        peer: ask.peer,
        received: ask.received,
        grpc,
    })
}

/// `s` cut to at most `max` characters (no copy, no walk when it is short).
pub fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    s.char_indices().nth(max).map_or(s, |(at, _)| &s[..at])
}
