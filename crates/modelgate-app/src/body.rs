//! Request bodies: size limits and deadlines, the bounded read that finds an
//! OpenAI request's `model`, and the gRPC peek that finds a message's model
//! name. Every read has a deadline: reads before authorization end by
//! `limits.body_read_timeout`, and no body may pause longer than
//! `limits.body_idle_timeout` between chunks (408 / gRPC DEADLINE_EXCEEDED).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use modelgate_config::Limits;
use modelgate_core::{BoxBody, BoxError, Reject};
use tokio::time::{Instant, Sleep};

/// How long a body read before authorization may take.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline {
    /// The whole read ends by then.
    by: Instant,
    /// Longest wait for the next chunk.
    idle: Duration,
}

impl BodyDeadline {
    /// Starts the clock now, with the listener's limits.
    pub fn start(limits: &Limits) -> Self {
        Self {
            by: Instant::now() + limits.body_read_timeout,
            idle: limits.body_idle_timeout,
        }
    }

    /// A deadline for a body already in memory (adapters that were handed
    /// the body): only the overall bound applies.
    pub fn within(bound: Duration) -> Self {
        Self {
            by: Instant::now() + bound,
            idle: bound,
        }
    }

    /// The next frame, or [`Reject::RequestTimeout`] if it is late.
    async fn next<B>(self, body: &mut B) -> Result<Option<Result<Frame<Bytes>, B::Error>>, Reject>
    where
        B: http_body::Body<Data = Bytes> + Unpin,
    {
        let until = self.by.min(Instant::now() + self.idle);
        tokio::time::timeout_at(until, body.frame())
            .await
            .map_err(|_| Reject::RequestTimeout)
    }
}

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

/// Reads the whole body, refusing more than `limit` bytes or a body that
/// misses its deadline.
pub async fn read_bounded(
    mut body: Incoming,
    limit: u64,
    deadline: BodyDeadline,
) -> Result<Bytes, Reject> {
    let mut buf = BytesMut::new();
    while let Some(frame) = deadline.next(&mut body).await? {
        let frame =
            frame.map_err(|_| Reject::BadRequest("the request body could not be read".into()))?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > limit {
                return Err(Reject::PayloadTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads on after `head` (bytes already read) from `rest` until more than
/// `max` bytes are held or the body ends, refusing more than `limit` bytes
/// or a late body. Returns everything read and, if the body has not ended,
/// its unread rest — both to be sent on unchanged.
pub async fn read_upto(
    head: Bytes,
    rest: Option<Incoming>,
    max: u64,
    limit: u64,
    deadline: BodyDeadline,
) -> Result<(Bytes, Option<Incoming>), Reject> {
    let Some(mut body) = rest else {
        return Ok((head, None));
    };
    let mut buf = BytesMut::from(head);
    while buf.len() as u64 <= max {
        match deadline.next(&mut body).await? {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if (buf.len() + data.len()) as u64 > limit {
                        return Err(Reject::PayloadTooLarge { limit });
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(_)) => {
                return Err(Reject::BadRequest(
                    "the request body could not be read".into(),
                ));
            }
            None => return Ok((buf.freeze(), None)),
        }
    }
    Ok((buf.freeze(), Some(body)))
}

#[derive(serde::Deserialize)]
struct ModelField<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
}

/// The `model` of an OpenAI request body.
pub fn openai_model(body: &[u8]) -> Result<String, Reject> {
    // from_slice skips ignored strings without checking their UTF-8, so a
    // body that is not JSON would pass (found by fuzz/openai_model).
    let body = std::str::from_utf8(body)
        .map_err(|_| Reject::BadRequest("the request body is not valid JSON: not UTF-8".into()))?;
    let parsed: ModelField<'_> = serde_json::from_str(body)
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

/// The model named by the first gRPC message at the start of `buf` (the
/// 5-byte prefix, then an OIP request whose field 1 is the model name):
/// `Ok(None)` while the message is still incomplete. Pure, so it is fuzzed
/// (`fuzz/`, target `grpc_peek`).
pub fn grpc_first_model(buf: &[u8], limit: u64) -> Result<Option<String>, Reject> {
    let bad = |m: &str| Reject::BadRequest(m.to_string());
    let [flag, a, b, c, d, rest @ ..] = buf else {
        return Ok(None);
    };
    if *flag != 0 {
        return Err(bad("compressed gRPC messages are not supported"));
    }
    let len = u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
    if len > limit {
        return Err(Reject::PayloadTooLarge { limit });
    }
    let len = usize::try_from(len).map_err(|_| bad("message too large"))?;
    let Some(message) = rest.get(..len) else {
        return Ok(None);
    };
    let msg: NameOnly =
        prost::Message::decode(message).map_err(|_| bad("malformed gRPC message"))?;
    if msg.name.is_empty() {
        return Err(bad("the request must name a model"));
    }
    Ok(Some(msg.name))
}

/// Reads the first gRPC message (bounded) and returns the model name it
/// names, plus everything read so far, to be sent on unchanged.
pub async fn grpc_model<B>(
    body: &mut B,
    limit: u64,
    deadline: BodyDeadline,
) -> Result<(String, Bytes), Reject>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    let bad = |m: &str| Reject::BadRequest(m.to_string());
    loop {
        if let Some(name) = grpc_first_model(&buf, limit)? {
            return Ok((name, buf.freeze()));
        }
        match deadline.next(body).await? {
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

/// Already-read bytes followed by the rest of the body, which fails if it
/// pauses longer than the idle timeout between chunks.
pub struct Prefixed {
    head: Option<Bytes>,
    rest: Incoming,
    idle: Duration,
    /// Runs while we wait for the client; made on the first wait.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Prefixed {
    pub fn new(head: Bytes, rest: Incoming, idle: Duration) -> Self {
        Self {
            head: Some(head).filter(|h| !h.is_empty()),
            rest,
            idle,
            timer: None,
            armed: false,
        }
    }
}

/// The error a streamed body ends with when its client stops sending.
#[derive(Debug, thiserror::Error)]
#[error("the request body paused longer than limits.body_idle_timeout")]
pub struct BodyIdle;

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
        let this = &mut *self;
        match Pin::new(&mut this.rest).poll_frame(cx) {
            Poll::Ready(o) => {
                this.armed = false;
                Poll::Ready(o.map(|r| r.map_err(|e| -> BoxError { Box::new(e) })))
            }
            Poll::Pending => {
                // The clock runs only while we wait for the client, not
                // while the upstream is not reading.
                let next = Instant::now() + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
                if !this.armed {
                    timer.as_mut().reset(next);
                    this.armed = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
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

/// Boxes an incoming body, with the idle timeout between chunks.
pub fn boxed(body: Incoming, idle: Duration) -> BoxBody {
    Prefixed::new(Bytes::new(), body, idle).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
        out.extend_from_slice(msg);
        out
    }

    #[test]
    fn grpc_first_model_reads_field_one_of_a_whole_message() {
        // field 1 (model_name), length 4, "iris"; then field 2 (version).
        let msg = framed(b"\x0a\x04iris\x12\x01\x31");
        for cut in 0..msg.len() {
            assert_eq!(grpc_first_model(&msg[..cut], 4096), Ok(None), "{cut}");
        }
        assert_eq!(grpc_first_model(&msg, 4096), Ok(Some("iris".into())));
        let mut more = msg.clone();
        more.extend_from_slice(&framed(b"\x0a\x05other"));
        assert_eq!(grpc_first_model(&more, 4096), Ok(Some("iris".into())));
    }

    #[test]
    fn grpc_first_model_refuses_compressed_oversized_and_nameless() {
        let mut compressed = framed(b"\x0a\x04iris");
        compressed[0] = 1;
        assert!(matches!(
            grpc_first_model(&compressed, 4096),
            Err(Reject::BadRequest(_))
        ));
        assert_eq!(
            grpc_first_model(&[0, 0, 1, 0, 0], 4096),
            Err(Reject::PayloadTooLarge { limit: 4096 })
        );
        assert!(matches!(
            grpc_first_model(&framed(b""), 4096),
            Err(Reject::BadRequest(_))
        ));
        assert!(matches!(
            grpc_first_model(&framed(b"\xff\xff"), 4096),
            Err(Reject::BadRequest(_))
        ));
    }

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

    #[test]
    fn a_body_that_is_not_utf8_is_refused() {
        // fuzz/openai_model: invalid UTF-8 inside an ignored key was accepted.
        let body = b"{\"model\":\"llama3\",\"conten\xda\":\"hi\"}";
        assert!(matches!(openai_model(body), Err(Reject::BadRequest(_))));
        let body = b"{\"model\":\"llama3\",\"x\":\"\xff\"}";
        assert!(matches!(openai_model(body), Err(Reject::BadRequest(_))));
    }
}
