//! Reading request bodies under the size limit and writing JSON responses.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use modelgate_core::{BoxBody, Reject, full};
use tonic::codegen::Body;

/// Reads the whole body, refusing more than `limit` bytes with 413 (early,
/// from `Content-Length`, when the client declares it).
pub async fn read_body(headers: &HeaderMap, body: BoxBody, limit: usize) -> Result<Bytes, Reject> {
    read_body_declared(headers.get(CONTENT_LENGTH), body, limit).await
}

/// [`read_body`] with the request's `Content-Length` already looked up.
pub async fn read_body_declared(
    content_length: Option<&HeaderValue>,
    body: BoxBody,
    limit: usize,
) -> Result<Bytes, Reject> {
    let too_large = Reject::PayloadTooLarge {
        limit: u64::try_from(limit).unwrap_or(u64::MAX),
    };
    if let Some(len) = content_length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > u64::try_from(limit).unwrap_or(u64::MAX)
    {
        return Err(too_large);
    }
    // A frame loop rather than `http_body_util::Limited`, whose boxed error
    // bound makes the caller's future fail to be `Send` (rustc's higher-ranked
    // lifetime limitation).
    let mut body = body;
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Reject::BadRequest(format!("reading the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        // The body says it has ended (all of its `Content-Length` read):
        // no second poll just to learn it.
        let ended = Body::is_end_stream(&body);
        let so_far = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if so_far + data.len() > limit {
            return Err(too_large);
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(f) => {
                buf.reserve(f.len() + data.len());
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
        }
        if ended {
            break;
        }
    }
    // One frame (the common case) is returned without copying.
    Ok(match first {
        Some(f) => f,
        None => Bytes::from(buf),
    })
}

/// The request headers a V2 `/infer` reads, found in one pass over the map
/// instead of one hashed lookup each; each is the name's first value, as
/// `HeaderMap::get` returns it.
#[derive(Default)]
pub struct InferHeaders<'h> {
    pub content_length: Option<&'h HeaderValue>,
    /// `Inference-Header-Content-Length` (the binary tensor extension).
    pub json_length: Option<&'h HeaderValue>,
    pub request_id: Option<&'h HeaderValue>,
}

impl<'h> InferHeaders<'h> {
    pub fn scan(headers: &'h HeaderMap) -> Self {
        let mut found = InferHeaders::default();
        for (name, value) in headers {
            let slot = if name == CONTENT_LENGTH {
                &mut found.content_length
            } else if name == crate::binary::HEADER {
                &mut found.json_length
            } else if name == X_REQUEST_ID {
                &mut found.request_id
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        found
    }
}

/// The gateway's request id header.
pub static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// A 200 response with a JSON body.
pub fn json_response(body: Vec<u8>) -> Response<BoxBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Serializes `value` as a JSON response; failure is an internal error.
pub fn to_json_response<T: serde::Serialize>(value: &T) -> Result<Response<BoxBody>, Reject> {
    serde_json::to_vec(value)
        .map(json_response)
        .map_err(|e| Reject::Internal {
            detail: format!("serializing response: {e}"),
        })
}

/// Parses a JSON request body; the message says what was wrong where.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, Reject> {
    serde_json::from_slice(body)
        .map_err(|e| Reject::BadRequest(format!("invalid JSON request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pass finds what `HeaderMap::get` finds: the first value of each
    /// name, whatever the order and the other headers.
    #[test]
    fn scan_finds_what_get_finds() {
        let mut h = HeaderMap::new();
        assert!(InferHeaders::scan(&h).content_length.is_none());
        h.insert("user-agent", HeaderValue::from_static("t"));
        h.append(&X_REQUEST_ID, HeaderValue::from_static("first"));
        h.append(&X_REQUEST_ID, HeaderValue::from_static("second"));
        h.insert(CONTENT_LENGTH, HeaderValue::from(12));
        h.insert(crate::binary::HEADER, HeaderValue::from(7));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        let found = InferHeaders::scan(&h);
        assert_eq!(found.content_length, h.get(CONTENT_LENGTH));
        assert_eq!(found.json_length, h.get(crate::binary::HEADER));
        assert_eq!(found.request_id, h.get(&X_REQUEST_ID));
        assert_eq!(
            found.request_id.map(HeaderValue::as_bytes),
            Some(&b"first"[..])
        );
        assert_eq!(
            found.json_length.map(HeaderValue::as_bytes),
            Some(&b"7"[..])
        );
    }
}
