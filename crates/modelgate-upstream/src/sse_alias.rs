//! An SSE stream from an aliased OpenAI model, event by event: each complete
//! event's `data: {…}` line gets its `model` put back to the client's name
//! ([`crate::alias::rewrite_response_model`]) and is sent on at once. Only
//! the unfinished tail of the last frame is held, up to [`MAX_EVENT`] bytes;
//! a longer event passes through unchanged.

use bytes::{Bytes, BytesMut};
use modelgate_core::body_rewrite::{Rewrite, Rewritten};
use modelgate_core::{BoxBody, BoxError};

use crate::alias::rewrite_response_model;

/// Longest partial event held while waiting for its end.
pub const MAX_EVENT: usize = 1 << 20;

/// The stream with each event's `model` renamed from `from` to `to`.
pub struct RenameEvents {
    from: String,
    to: String,
    /// The start of an event whose end has not arrived yet.
    pending: BytesMut,
}

impl RenameEvents {
    pub fn new(inner: BoxBody, from: &str, to: &str) -> Rewritten<Self> {
        Rewritten::new(
            inner,
            Self {
                from: from.to_string(),
                to: to.to_string(),
                pending: BytesMut::new(),
            },
        )
    }
}

impl Rewrite for RenameEvents {
    /// The complete events at the start of `pending`, renamed (the
    /// unfinished rest stays), or an event past [`MAX_EVENT`] as it is.
    fn data(&mut self, data: Bytes) -> Result<Option<Bytes>, BoxError> {
        self.pending.extend_from_slice(&data);
        if let Some(end) = last_boundary(&self.pending) {
            let events = self.pending.split_to(end);
            return Ok(Some(rename_events(&events, &self.from, &self.to)));
        }
        if self.pending.len() > MAX_EVENT {
            return Ok(Some(self.pending.split().freeze()));
        }
        Ok(None)
    }

    /// An unfinished tail goes as it is.
    fn flush(&mut self) -> Result<Option<Bytes>, BoxError> {
        Ok((!self.pending.is_empty()).then(|| self.pending.split().freeze()))
    }

    fn holds(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// The end (exclusive) of the last complete event: after its last `\n\n` or
/// `\r\n\r\n`.
fn last_boundary(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).rposition(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf
        .windows(4)
        .rposition(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    lf.max(crlf)
}

/// Complete events with every `data:` JSON line's `model` renamed.
pub fn rename_events(events: &[u8], from: &str, to: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(events.len() + 16);
    for line in events.split_inclusive(|b| *b == b'\n') {
        let renamed = line.strip_prefix(b"data:").and_then(|rest| {
            let json = rest.trim_ascii();
            if !json.starts_with(b"{") {
                return None;
            }
            rewrite_response_model(json, from, to)
        });
        match renamed {
            Some(json) => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
                let eol: &[u8] = if line.ends_with(b"\r\n") {
                    b"\r\n"
                } else {
                    b"\n"
                };
                if line.ends_with(b"\n") {
                    out.extend_from_slice(eol);
                }
            }
            None => out.extend_from_slice(line),
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};

    fn body(parts: Vec<&'static [u8]>) -> BoxBody {
        let frames = parts
            .into_iter()
            .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from_static(p))));
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    #[test]
    fn data_lines_are_renamed_and_the_rest_kept() {
        let out = rename_events(
            b"event: x\ndata: {\"model\":\"up-0125\",\"n\":1}\n\ndata: [DONE]\n\n",
            "up",
            "chat",
        );
        assert_eq!(
            &out[..],
            b"event: x\ndata: {\"model\":\"chat\",\"n\":1}\n\ndata: [DONE]\n\n"
        );
        let crlf = rename_events(b"data:{\"model\":\"up\"}\r\n\r\n", "up", "chat");
        assert_eq!(&crlf[..], b"data: {\"model\":\"chat\"}\r\n\r\n");
        let other = rename_events(b"data: {\"model\":\"else\"}\n\n", "up", "chat");
        assert_eq!(&other[..], b"data: {\"model\":\"else\"}\n\n");
    }

    #[tokio::test]
    async fn events_split_across_frames_are_sent_as_each_completes() {
        let mut b = RenameEvents::new(
            body(vec![
                b"data: {\"model\":\"up\",\"x\":0}\n\ndata: {\"mo",
                b"del\":\"up\",\"x\":1}\n",
                b"\ndata: [DONE]\n\n",
            ]),
            "up",
            "chat",
        );
        let f1 = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f1[..], b"data: {\"model\":\"chat\",\"x\":0}\n\n");
        // The second frame ends no event: nothing is sent until the third.
        let f2 = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(
            &f2[..],
            b"data: {\"model\":\"chat\",\"x\":1}\n\ndata: [DONE]\n\n"
        );
        assert!(b.frame().await.is_none());
    }

    #[tokio::test]
    async fn an_unfinished_tail_is_sent_at_the_end() {
        let b = RenameEvents::new(body(vec![b"data: {\"model\":\"up\"}"]), "up", "chat");
        let all = b.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"data: {\"model\":\"up\"}");
    }
}
