//! The gRPC bodies of an aliased model: the first message is held (bounded
//! by a limit) until it is whole, then sent on with `model_name` rewritten
//! ([`crate::alias::rewrite_grpc_frame`]); the rest of the stream passes
//! through untouched. A request's first message must be rewritable; in an
//! answer (ModelInferResponse, [`RenameFirstMessage::answer`]) a message that
//! cannot be (compressed, over the limit) passes unchanged, and an answer with
//! no message (an error's trailers only) passes as it is.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use modelgate_core::{BoxBody, BoxError};

use crate::alias::rewrite_grpc_frame;

#[derive(Debug)]
struct BadFirstMessage;

impl std::fmt::Display for BadFirstMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the first gRPC message could not be rewritten for the upstream model name")
    }
}

impl std::error::Error for BadFirstMessage {}

/// Rewrites the model name of the first message of a gRPC request body.
pub struct RenameFirstMessage {
    inner: BoxBody,
    name: String,
    /// Bytes held until the first message is whole; `None` once sent.
    held: Option<BytesMut>,
    limit: u64,
    /// An answer: pass what cannot be rewritten instead of failing.
    lenient: bool,
    /// Trailers that came before the first message was whole (answer only).
    stashed: Option<Frame<Bytes>>,
}

impl RenameFirstMessage {
    pub fn new(inner: BoxBody, name: &str, limit: u64) -> Self {
        Self {
            inner,
            name: name.to_string(),
            held: Some(BytesMut::new()),
            limit,
            lenient: false,
            stashed: None,
        }
    }

    /// For an upstream's answer: `model_name` of its first message set to
    /// the client's name, anything else passed through.
    pub fn answer(inner: BoxBody, name: &str, limit: u64) -> Self {
        Self {
            lenient: true,
            ..Self::new(inner, name, limit)
        }
    }

    /// Answer mode: what was held goes on as it is (then `stashed`, if any).
    fn give_up(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let held = self.held.take().unwrap_or_default();
        if held.is_empty() {
            return Poll::Ready(self.stashed.take().map(Ok));
        }
        Poll::Ready(Some(Ok(Frame::data(held.freeze()))))
    }

    /// The frame's declared message length, once the prefix is there.
    fn declared(held: &[u8]) -> Option<u64> {
        match held {
            [_, a, b, c, d, ..] => Some(u64::from(u32::from_be_bytes([*a, *b, *c, *d]))),
            _ => None,
        }
    }
}

impl Body for RenameFirstMessage {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.stashed.is_some() {
            return this.give_up();
        }
        let Some(held) = this.held.as_mut() else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        loop {
            if let Some(len) = Self::declared(held) {
                if len > this.limit {
                    if this.lenient {
                        return this.give_up();
                    }
                    return Poll::Ready(Some(Err(Box::new(BadFirstMessage))));
                }
                if held.len() as u64 >= len + 5 {
                    let out = rewrite_grpc_frame(held, &this.name);
                    if out.is_none() && this.lenient {
                        return this.give_up();
                    }
                    this.held = None;
                    return Poll::Ready(Some(match out {
                        Some(b) => Ok(Frame::data(b)),
                        None => Err(Box::new(BadFirstMessage)),
                    }));
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) => held.extend_from_slice(&d),
                    // Trailers before the first message is whole: an error
                    // answer (passed on), or a malformed request.
                    Err(trailers) if this.lenient => {
                        this.stashed = Some(trailers);
                        return this.give_up();
                    }
                    Err(_) => return Poll::Ready(Some(Err(Box::new(BadFirstMessage)))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) if this.lenient => return this.give_up(),
                Poll::Ready(None) => return Poll::Ready(Some(Err(Box::new(BadFirstMessage)))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.stashed.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // The rewritten message may change length.
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use modelgate_core::full;

    #[tokio::test]
    async fn the_first_message_gets_the_upstream_name() {
        let mut buf = vec![0u8, 0, 0, 0, 12];
        buf.extend_from_slice(b"\x0a\x0airis-alias");
        let body = RenameFirstMessage::new(full(buf), "iris", 1024);
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"\x00\x00\x00\x00\x06\x0a\x04iris");
    }

    #[tokio::test]
    async fn an_answer_gets_the_client_name_and_an_empty_answer_passes() {
        let mut buf = vec![0u8, 0, 0, 0, 9];
        buf.extend_from_slice(b"\x0a\x04iris\x12\x011");
        let body = RenameFirstMessage::answer(full(buf), "iris-alias", 1024);
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"\x00\x00\x00\x00\x0f\x0a\x0airis-alias\x12\x011");
        let empty = RenameFirstMessage::answer(full(Vec::new()), "x", 1024);
        assert!(empty.collect().await.unwrap().to_bytes().is_empty());
        // Over the limit: passed unchanged.
        let big = vec![0u8, 0, 0, 0, 3, 0x0a, 0x01, b'a'];
        let out = RenameFirstMessage::answer(full(big.clone()), "xyz", 2);
        assert_eq!(&out.collect().await.unwrap().to_bytes()[..], &big[..]);
    }

    #[tokio::test]
    async fn a_truncated_first_message_fails() {
        let body = RenameFirstMessage::new(full(vec![0u8, 0, 0, 0, 12, 0x0a]), "iris", 1024);
        assert!(body.collect().await.is_err());
    }
}
