//! Reading what an adapter was asked ([`Ask`]) into [`RequestFacts`]: normalised path, host,
//! request id, gRPC detection. Ambiguous requests are refused here, before
//! anything matches on them.

use std::sync::Arc;

use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName};
use modelgate_core::{Reject, RequestFacts};
use modelgate_route::{normalize_host_owned, normalized_path};

use crate::decide::Ask;

/// A `HeaderName` constant, so that a lookup or insert does not parse and
/// validate the name each time.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether the request is gRPC (`content-type: application/grpc[+proto]`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| {
        let ct = v.as_bytes();
        let grpc = ct == b"application/grpc"
            || ct.starts_with(b"application/grpc+")
            || ct.starts_with(b"application/grpc;");
        // Only a text value is gRPC (checked last: most requests are not).
        grpc && v.to_str().is_ok()
    })
}

/// A client request id is kept if it is short, printable ASCII; otherwise a fresh one.
pub fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(fresh_request_id, Arc::from)
}

/// A random (v4) UUID, formatted without the `fmt` machinery (this runs for
/// every request that brings no id of its own).
fn fresh_request_id() -> Arc<str> {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    Arc::from(&*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
}

/// Builds the facts from what an adapter was asked, under request id `id`;
/// `grpc` is [`is_grpc`] of its headers (the caller has it already).
pub fn build(ask: Ask, id: Arc<str>, grpc: bool) -> Result<RequestFacts, (Arc<str>, Reject)> {
    let refuse = |r: Reject| (id.clone(), r);
    if !ask.method.as_str().bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(refuse(Reject::BadRequest(
            "method must be upper-case".into(),
        )));
    }
    // The path as sent is kept (not copied) when it is already normal.
    let path = match normalized_path(&ask.path) {
        Ok(None) => ask.path,
        Ok(Some(p)) if grpc && p != ask.path => {
            return Err(refuse(Reject::BadRequest(
                "gRPC path is not canonical".into(),
            )));
        }
        Ok(Some(p)) => p,
        Err(e) => return Err(refuse(Reject::BadRequest(e.to_string()))),
    };
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
    .map(normalize_host_owned);
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn grpc_is_told_by_a_text_content_type() {
        let grpc = |ct: Option<&[u8]>| {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(CONTENT_TYPE, HeaderValue::from_bytes(ct).unwrap());
            }
            is_grpc(&h)
        };
        for yes in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"application/grpc;charset=utf-8",
        ] {
            assert!(grpc(Some(yes)), "{yes:?}");
        }
        for no in [
            &b"application/grpcx"[..],
            b"application/grp",
            b"application/json",
            b"Application/grpc",
            b"application/grpc+\xff",
            b"",
        ] {
            assert!(!grpc(Some(no)), "{no:?}");
        }
        assert!(!grpc(None));
    }
}
