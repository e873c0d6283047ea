//! The gRPC bodies of an aliased model: the first message is held (bounded
//! by a limit) until it is whole, then sent on with `model_name` rewritten
//! ([`crate::alias::rewrite_grpc_frame`]); the rest of the stream passes
//! through untouched. A request's first message must be rewritable; in an
//! answer (ModelInferResponse, [`RenameFirstMessage::answer`]) a message that
//! cannot be (compressed, over the limit) passes unchanged, and an answer with
//! no message (an error's trailers only) passes as it is.

use bytes::{Bytes, BytesMut};
use modelgate_core::body_rewrite::{Rewrite, Rewritten};
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
    name: String,
    /// Bytes held until the first message is whole; `None` once sent.
    held: Option<BytesMut>,
    limit: u64,
    /// An answer: pass what cannot be rewritten instead of failing.
    lenient: bool,
}

impl RenameFirstMessage {
    pub fn new(inner: BoxBody, name: &str, limit: u64) -> Rewritten<Self> {
        Rewritten::new(inner, Self::with(name, limit, false))
    }

    /// For an upstream's answer: `model_name` of its first message set to
    /// the client's name, anything else passed through.
    pub fn answer(inner: BoxBody, name: &str, limit: u64) -> Rewritten<Self> {
        Rewritten::new(inner, Self::with(name, limit, true))
    }

    fn with(name: &str, limit: u64, lenient: bool) -> Self {
        Self {
            name: name.to_string(),
            held: Some(BytesMut::new()),
            limit,
            lenient,
        }
    }

    /// What cannot be rewritten: an answer's goes on as it is (if anything
    /// was held), a request fails.
    fn give_up(&mut self) -> Result<Option<Bytes>, BoxError> {
        if !self.lenient {
            return Err(Box::new(BadFirstMessage));
        }
        let held = self.held.take().unwrap_or_default();
        Ok((!held.is_empty()).then(|| held.freeze()))
    }

    /// The frame's declared message length, once the prefix is there.
    fn declared(held: &[u8]) -> Option<u64> {
        match held {
            [_, a, b, c, d, ..] => Some(u64::from(u32::from_be_bytes([*a, *b, *c, *d]))),
            _ => None,
        }
    }
}

impl Rewrite for RenameFirstMessage {
    fn data(&mut self, data: Bytes) -> Result<Option<Bytes>, BoxError> {
        let Some(held) = self.held.as_mut() else {
            return Ok(Some(data));
        };
        held.extend_from_slice(&data);
        let Some(len) = Self::declared(held) else {
            return Ok(None);
        };
        if len > self.limit {
            return self.give_up();
        }
        if (held.len() as u64) < len + 5 {
            return Ok(None);
        }
        match rewrite_grpc_frame(held, &self.name) {
            Some(b) => {
                self.held = None;
                Ok(Some(b))
            }
            None => self.give_up(),
        }
    }

    /// Trailers or the end before the first message is whole: an error
    /// answer (passed on), or a malformed request.
    fn flush(&mut self) -> Result<Option<Bytes>, BoxError> {
        if self.held.is_none() {
            return Ok(None);
        }
        self.give_up()
    }

    fn holds(&self) -> bool {
        self.held.is_some()
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
