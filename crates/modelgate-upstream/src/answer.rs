//! A non-streamed OpenAI JSON answer from an aliased model: its `model`
//! names the upstream's model, and goes back to the name the client asked
//! for. Only answers with a declared length up to [`MAX_REWRITE`] are read;
//! others pass through unchanged. SSE streams are not rewritten (each event
//! would have to be parsed): their chunks keep the upstream's name.

use http::HeaderValue;
use http::Response;
use http::header::CONTENT_LENGTH;
use http::response::Parts;
use http_body_util::BodyExt;
use modelgate_core::{BoxBody, BoxError, full};

use crate::alias::rewrite_response_model;

/// Largest answer read to put the client's model name back.
pub const MAX_REWRITE: u64 = 4 << 20;

#[derive(Debug)]
struct Broken(String);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upstream answer broke off: {}", self.0)
    }
}

impl std::error::Error for Broken {}

/// A body that fails at once (the answer was cut while being read).
fn failed(why: String) -> BoxBody {
    http_body_util::StreamBody::new(futures_once(why)).boxed_unsync()
}

fn futures_once(
    why: String,
) -> impl futures_util::Stream<Item = Result<http_body::Frame<bytes::Bytes>, BoxError>> {
    futures_util::stream::once(async move {
        Err::<http_body::Frame<bytes::Bytes>, BoxError>(Box::new(Broken(why)))
    })
}

/// The answer with its `model` set back from `upstream` to `client`.
pub async fn restore_model(
    mut parts: Parts,
    body: BoxBody,
    upstream: &str,
    client: &str,
) -> Response<BoxBody> {
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|n| n > MAX_REWRITE) {
        return Response::from_parts(parts, body);
    }
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return Response::from_parts(parts, failed(e.to_string())),
    };
    let out = rewrite_response_model(&bytes, upstream, client).unwrap_or(bytes);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(out.len() as u64));
    Response::from_parts(parts, full(out))
}
