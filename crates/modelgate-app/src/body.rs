//! Request bodies: size limits, the bounded read that finds an OpenAI
//! request's `model`, and the gRPC peek that finds a message's model name.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use modelgate_core::{BoxBody, BoxError, Reject};

/// Refuses a declared `Content-Length` over the limit before reading anything.
pub fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), Reject> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(Reject::PayloadTooLarge { limit }),
        _ => Ok(()),
    }
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_bounded(body: Incoming, limit: u64) -> Result<Bytes, Reject> {
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Reject::PayloadTooLarge { limit })
        }
        Err(_) => Err(Reject::BadRequest(
            "the request body could not be read".into(),
        )),
    }
}

#[derive(serde::Deserialize)]
struct ModelField<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
}

/// The `model` of an OpenAI request body.
pub fn openai_model(body: &[u8]) -> Result<String, Reject> {
    let parsed: ModelField<'_> = serde_json::from_slice(body)
        .map_err(|e| Reject::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    match parsed.model {
        Some(m) if !m.is_empty() => Ok(m.into_owned()),
        _ => Err(Reject::BadRequest(
            "the request body must name a `model`".into(),
        )),
    }
}

/// The first field of OIP's ModelInfer/ModelReady/ModelMetadata requests.
#[derive(Clone, PartialEq, prost::Message)]
struct NameOnly {
    #[prost(string, tag = "1")]
    name: String,
}

/// Reads the first gRPC message (bounded) and returns the model name it
/// names, plus everything read so far, to be sent on unchanged.
pub async fn grpc_model<B>(body: &mut B, limit: u64) -> Result<(String, Bytes), Reject>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    let bad = |m: &str| Reject::BadRequest(m.to_string());
    loop {
        if buf.len() >= 5 {
            if buf[0] != 0 {
                return Err(bad("compressed gRPC messages are not supported"));
            }
            let len = u64::from(u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]));
            if len > limit {
                return Err(Reject::PayloadTooLarge { limit });
            }
            let total = 5 + usize::try_from(len).map_err(|_| bad("message too large"))?;
            if buf.len() >= total {
                let msg = prost::Message::decode(&buf[5..total])
                    .map_err(|_| bad("malformed gRPC message"));
                let msg: NameOnly = msg?;
                if msg.name.is_empty() {
                    return Err(bad("the request must name a model"));
                }
                return Ok((msg.name, buf.freeze()));
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    if (buf.len() + data.remaining()) as u64 > limit + 5 {
                        return Err(Reject::PayloadTooLarge { limit });
                    }
                    buf.extend_from_slice(&data.copy_to_bytes(data.remaining()));
                }
            }
            Some(Err(_)) => return Err(bad("the request body could not be read")),
            None => return Err(bad("the gRPC request has no message")),
        }
    }
}

/// Already-read bytes followed by the rest of the body.
pub struct Prefixed {
    head: Option<Bytes>,
    rest: Incoming,
}

impl Prefixed {
    pub fn new(head: Bytes, rest: Incoming) -> Self {
        Self {
            head: Some(head).filter(|h| !h.is_empty()),
            rest,
        }
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(h) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(h))));
        }
        Pin::new(&mut self.rest)
            .poll_frame(cx)
            .map(|o| o.map(|r| r.map_err(|e| -> BoxError { Box::new(e) })))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let extra = self.head.as_ref().map_or(0, |b| b.len() as u64);
        let mut h = SizeHint::new();
        if let Some(u) = rest.upper() {
            h.set_upper(u.saturating_add(extra));
        }
        h.set_lower(rest.lower().saturating_add(extra));
        h
    }
}

/// Boxes an incoming body.
pub fn boxed(body: Incoming) -> BoxBody {
    body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_model_field() {
        assert_eq!(
            openai_model(br#"{"model":"llama3","messages":[]}"#).unwrap(),
            "llama3"
        );
        assert!(openai_model(br#"{"messages":[]}"#).is_err());
        assert!(openai_model(br#"{"model":""}"#).is_err());
        assert!(openai_model(b"not json").is_err());
    }

    #[test]
    fn duplicate_model_keys_are_refused() {
        // Authorized on one `model` while a Python upstream reads the last
        // one would be a bypass: the request is refused instead.
        assert!(matches!(
            openai_model(br#"{"model":"allowed","model":"secret"}"#),
            Err(Reject::BadRequest(_))
        ));
    }
}
