//! An SSE stream from an aliased OpenAI model, event by event: each complete
//! event's `data: {…}` line gets its `model` put back to the client's name
//! ([`crate::alias::rewrite_response_model`]) and is sent on at once. Only
//! the unfinished tail of the last frame is held, up to [`MAX_EVENT`] bytes;
//! a longer event passes through unchanged.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use modelgate_core::{BoxBody, BoxError};

use crate::alias::rewrite_response_model;

/// Longest partial event held while waiting for its end.
pub const MAX_EVENT: usize = 1 << 20;

/// The stream with each event's `model` renamed from `from` to `to`.
pub struct RenameEvents {
    inner: BoxBody,
    from: String,
    to: String,
    /// The start of an event whose end has not arrived yet.
    pending: BytesMut,
    /// A frame (trailers) to send once `pending` is flushed.
    stashed: Option<Frame<Bytes>>,
    done: bool,
}

impl RenameEvents {
    pub fn new(inner: BoxBody, from: &str, to: &str) -> Self {
        Self {
            inner,
            from: from.to_string(),
            to: to.to_string(),
            pending: BytesMut::new(),
            stashed: None,
            done: false,
        }
    }

    /// Rewrites the complete events at the start of `pending` and returns
    /// them; the unfinished rest stays.
    fn take_events(&mut self) -> Option<Bytes> {
        let end = last_boundary(&self.pending)?;
        let events = self.pending.split_to(end);
        Some(rename_events(&events, &self.from, &self.to))
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

impl Body for RenameEvents {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            if !this.pending.is_empty() {
                let rest = this.pending.split().freeze();
                return Poll::Ready(Some(Ok(Frame::data(rest))));
            }
            return Poll::Ready(this.stashed.take().map(Ok));
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.pending.extend_from_slice(&data);
                        if let Some(events) = this.take_events() {
                            return Poll::Ready(Some(Ok(Frame::data(events))));
                        }
                        if this.pending.len() > MAX_EVENT {
                            let long = this.pending.split().freeze();
                            return Poll::Ready(Some(Ok(Frame::data(long))));
                        }
                    }
                    Err(trailers) => {
                        this.done = true;
                        this.stashed = Some(trailers);
                        return this.flush_or_stashed();
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    return this.flush_or_stashed();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_empty() && self.stashed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Renaming changes the length.
        SizeHint::new()
    }
}

impl RenameEvents {
    fn flush_or_stashed(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.pending.is_empty() {
            let rest = self.pending.split().freeze();
            return Poll::Ready(Some(Ok(Frame::data(rest))));
        }
        Poll::Ready(self.stashed.take().map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
