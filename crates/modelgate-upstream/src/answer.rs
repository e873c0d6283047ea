//! The answer of an aliased model names the upstream's model; it goes back
//! to the name the client asked for ([`restore`]): the `model` of an OpenAI
//! JSON answer and of each SSE event ([`crate::sse_alias`], event by event,
//! nothing buffered), the `model_name` of a V2 REST infer answer and of a
//! gRPC ModelInferResponse. JSON answers are read whole only up to a declared
//! length of [`MAX_REWRITE`]; others pass through unchanged.

use http::HeaderValue;
use http::Response;
use http::header::CONTENT_LENGTH;
use http::response::Parts;
use http_body_util::BodyExt;
use modelgate_core::{BoxBody, BoxError, full};

use crate::alias::{rewrite_response_model, rewrite_v2_model_name};
use crate::grpc_alias::RenameFirstMessage;
use crate::sse_alias::RenameEvents;

/// The gRPC method whose answer carries `model_name` (field 1).
const GRPC_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

/// Which answers get the client's model name back, by the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restore {
    /// OpenAI: a JSON answer's or each SSE event's `model`.
    OpenAi,
    /// V2 REST infer: the JSON answer's `model_name`.
    V2Infer,
    /// gRPC ModelInfer: the ModelInferResponse's `model_name`.
    GrpcInfer,
    /// Nothing names the model (or nothing is rewritten).
    Nothing,
}

impl Restore {
    /// By the request's protocol and path (`path_and_query`, as sent upstream).
    pub fn of(openai: bool, grpc: bool, path_and_query: &str) -> Self {
        let path = path_and_query.split('?').next().unwrap_or("");
        if openai {
            Restore::OpenAi
        } else if grpc {
            if path == GRPC_INFER {
                Restore::GrpcInfer
            } else {
                Restore::Nothing
            }
        } else if path.starts_with("/v2/models/") && path.ends_with("/infer") {
            Restore::V2Infer
        } else {
            Restore::Nothing
        }
    }
}

/// The answer with the upstream's model name (`upstream`) put back to the
/// client's (`client`), as `kind` says; `content_type` is the answer's.
pub async fn restore(
    kind: Restore,
    content_type: &str,
    parts: Parts,
    body: BoxBody,
    upstream: &str,
    client: &str,
) -> Response<BoxBody> {
    let json = content_type.starts_with("application/json");
    let sse = content_type.starts_with("text/event-stream");
    match kind {
        Restore::OpenAi if json => {
            restore_json(parts, body, |b| rewrite_response_model(b, upstream, client)).await
        }
        Restore::OpenAi if sse => Response::from_parts(
            parts,
            RenameEvents::new(body, upstream, client).boxed_unsync(),
        ),
        Restore::V2Infer if json => {
            restore_json(parts, body, |b| rewrite_v2_model_name(b, upstream, client)).await
        }
        Restore::GrpcInfer => {
            let mut parts = parts;
            parts.headers.remove(CONTENT_LENGTH);
            let body = RenameFirstMessage::answer(body, client, MAX_REWRITE).boxed_unsync();
            Response::from_parts(parts, body)
        }
        _ => Response::from_parts(parts, body),
    }
}

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

/// A JSON answer read whole (when its declared length allows) and rewritten
/// by `rewrite` (`None`: unchanged).
async fn restore_json(
    mut parts: Parts,
    body: BoxBody,
    rewrite: impl FnOnce(&[u8]) -> Option<bytes::Bytes>,
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
    let out = rewrite(&bytes).unwrap_or(bytes);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(out.len() as u64));
    Response::from_parts(parts, full(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_restored_follows_the_request() {
        assert_eq!(
            Restore::of(true, false, "/v1/chat/completions"),
            Restore::OpenAi
        );
        assert_eq!(
            Restore::of(false, false, "/v2/models/iris/infer"),
            Restore::V2Infer
        );
        assert_eq!(
            Restore::of(false, false, "/v2/models/iris/versions/1/infer?x=1"),
            Restore::V2Infer
        );
        assert_eq!(
            Restore::of(false, false, "/v2/models/iris"),
            Restore::Nothing
        );
        assert_eq!(
            Restore::of(false, false, "/v1/models/iris:predict"),
            Restore::Nothing
        );
        assert_eq!(Restore::of(false, true, GRPC_INFER), Restore::GrpcInfer);
        // Streamed infer answers carry an error string in field 1: untouched.
        assert_eq!(
            Restore::of(
                false,
                true,
                "/inference.GRPCInferenceService/ModelStreamInfer"
            ),
            Restore::Nothing
        );
    }
}
