//! The binary tensor data extension of V2 REST (Triton's, also implemented by
//! KServe): the body is a JSON header of `Inference-Header-Content-Length`
//! bytes followed by raw little-endian tensors. Inputs whose `parameters`
//! carry `binary_data_size` take their bytes from that tail, in input order;
//! outputs asked for with `binary_data: true` (or the request's
//! `binary_data_output: true`) are answered the same way.

use bytes::Bytes;
use http::Response;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use modelgate_core::{BoxBody, Reject, full};

/// Length of the JSON part of a binary body or response.
pub const HEADER: HeaderName = HeaderName::from_static("inference-header-content-length");

/// Parameters of a request, an input or an output.
pub type Params = serde_json::Map<String, serde_json::Value>;

/// Splits a body into its JSON part and its binary tail, given the
/// request's [`HEADER`] value.
pub fn split_at(json_length: Option<&HeaderValue>, body: Bytes) -> Result<(Bytes, Bytes), Reject> {
    let Some(v) = json_length else {
        return Ok((body, Bytes::new()));
    };
    let json_len = v
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            Reject::BadRequest("Inference-Header-Content-Length is not a number".into())
        })?;
    if json_len > body.len() {
        return Err(Reject::BadRequest(format!(
            "Inference-Header-Content-Length {json_len} exceeds the body of {} bytes",
            body.len()
        )));
    }
    let mut json = body;
    let tail = json.split_off(json_len);
    Ok((json, tail))
}

/// The binary tail being consumed input by input.
pub struct Tail {
    bytes: Bytes,
}

impl Tail {
    pub fn new(bytes: Bytes) -> Self {
        Self { bytes }
    }

    /// The next `n` bytes, if there are that many.
    pub fn take(&mut self, n: usize) -> Option<Bytes> {
        (n <= self.bytes.len()).then(|| self.bytes.split_to(n))
    }

    /// Refuses bytes no input claimed.
    pub fn finish(self) -> Result<(), Reject> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(Reject::BadRequest(format!(
                "{} bytes of binary data follow the inputs unclaimed",
                self.bytes.len()
            )))
        }
    }
}

/// `binary_data_size` of an input, if set; the error names `whose`.
pub fn size(params: Option<&Params>, whose: &str) -> Result<Option<usize>, Reject> {
    match params.and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                Reject::BadRequest(format!(
                    "{whose}: binary_data_size must be a non-negative integer"
                ))
            }),
    }
}

/// A boolean parameter (`binary_data`, `binary_data_output`), if set.
pub fn flag(params: Option<&Params>, key: &str, whose: &str) -> Result<Option<bool>, Reject> {
    match params.and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| Reject::BadRequest(format!("{whose}: {key} must be true or false"))),
    }
}

/// A 200 response of a JSON header followed by binary output data.
pub fn response(mut json: Vec<u8>, tail: &[u8]) -> Response<BoxBody> {
    let json_len = json.len();
    json.extend_from_slice(tail);
    let mut resp = Response::new(full(json));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(HEADER, HeaderValue::from(json_len));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn splits_and_bounds_the_header() {
        let mut h = HeaderMap::new();
        let body = Bytes::from_static(b"{}abcd");
        let (j, t) = split_at(h.get(HEADER), body.clone()).unwrap();
        assert_eq!((&j[..], t.len()), (&b"{}abcd"[..], 0));
        h.insert(HEADER, HeaderValue::from(2));
        let (j, t) = split_at(h.get(HEADER), body.clone()).unwrap();
        assert_eq!((&j[..], &t[..]), (&b"{}"[..], &b"abcd"[..]));
        h.insert(HEADER, HeaderValue::from(7));
        assert!(split_at(h.get(HEADER), body.clone()).is_err());
        h.insert(HEADER, HeaderValue::from_static("-1"));
        assert!(split_at(h.get(HEADER), body).is_err());
    }

    #[test]
    fn tail_is_consumed_exactly() {
        let mut t = Tail::new(Bytes::from_static(b"abcdef"));
        assert_eq!(&t.take(4).unwrap()[..], b"abcd");
        assert!(t.take(3).is_none());
        assert!(t.take(2).is_some());
        assert!(t.finish().is_ok());
        let mut t = Tail::new(Bytes::from_static(b"ab"));
        t.take(1);
        assert!(t.finish().is_err());
    }
}
