//! The gRPC request body of an aliased model: its first message is held
//! (bounded by the body limit) until it is whole, then sent on with
//! `model_name` rewritten ([`crate::alias::rewrite_grpc_frame`]); the rest of
//! the stream passes through untouched.

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
}

impl RenameFirstMessage {
    pub fn new(inner: BoxBody, name: &str, limit: u64) -> Self {
        Self {
            inner,
            name: name.to_string(),
            held: Some(BytesMut::new()),
            limit,
        }
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
        let Some(held) = this.held.as_mut() else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        loop {
            if let Some(len) = Self::declared(held) {
                if len > this.limit {
                    return Poll::Ready(Some(Err(Box::new(BadFirstMessage))));
                }
                if held.len() as u64 >= len + 5 {
                    let out = rewrite_grpc_frame(held, &this.name);
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
                    // Trailers before the first message is whole: malformed.
                    Err(_) => return Poll::Ready(Some(Err(Box::new(BadFirstMessage)))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(Some(Err(Box::new(BadFirstMessage)))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
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
    async fn a_truncated_first_message_fails() {
        let body = RenameFirstMessage::new(full(vec![0u8, 0, 0, 0, 12, 0x0a]), "iris", 1024);
        assert!(body.collect().await.is_err());
    }
}
