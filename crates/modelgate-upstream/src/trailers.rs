//! Request trailers on the way upstream. A client can send header fields after
//! the body (HTTP/2 trailing HEADERS, HTTP/1.1 chunked trailers announced by
//! `Trailer:`), where the header hygiene of [`crate::headers`] never looked.
//! They are dropped, except on gRPC, whose protocol allows request trailers:
//! there they are cleaned like headers (credentials, identity, forwarding and
//! hop-by-hop names removed).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use http_body::{Body, Frame, SizeHint};

use crate::headers::clean_trailer_fields;

/// What happens to request trailers.
#[derive(Debug, Clone)]
pub enum TrailerRule {
    /// Not forwarded (every protocol but gRPC).
    Drop,
    /// Forwarded without credential and identity fields (gRPC).
    Clean {
        /// The listener's credential headers.
        credential_headers: Vec<HeaderName>,
        /// Extra identity headers (config `identity_header`, `strip_headers`).
        strip: Vec<HeaderName>,
    },
}

impl TrailerRule {
    /// Applies the rule; `None` when nothing is left to send.
    fn apply(&self, mut trailers: HeaderMap) -> Option<HeaderMap> {
        match self {
            TrailerRule::Drop => None,
            TrailerRule::Clean {
                credential_headers,
                strip,
            } => {
                clean_trailer_fields(&mut trailers, credential_headers, strip);
                (!trailers.is_empty()).then_some(trailers)
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Wraps a request body, applying a [`TrailerRule`] to its trailers.
    pub struct RequestTrailers<B> {
        #[pin]
        inner: B,
        rule: TrailerRule,
    }
}

impl<B> RequestTrailers<B> {
    pub fn new(inner: B, rule: TrailerRule) -> Self {
        Self { inner, rule }
    }
}

impl<B> Body for RequestTrailers<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        loop {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_trailers() {
                    Ok(trailers) => {
                        if let Some(kept) = this.rule.apply(trailers) {
                            return Poll::Ready(Some(Ok(Frame::trailers(kept))));
                        }
                        // Dropped: trailers end the stream; poll on to see it.
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body_util::BodyExt;

    /// A body that yields the given frames in order.
    struct Frames(std::collections::VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn body_with_trailers() -> Frames {
        let mut t = HeaderMap::new();
        for (k, v) in [
            ("kubeflow-userid", "admin@example.com"),
            ("X_Forwarded_User", "root"),
            ("authorization", "Bearer stolen"),
            ("x-api-key", "k"),
            ("my-identity", "x"),
            ("x-forwarded-for", "6.6.6.6"),
            ("te", "trailers"),
            ("grpc-trace-bin", "AAAA"),
        ] {
            t.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        Frames(
            [
                Frame::data(Bytes::from_static(b"hello")),
                Frame::trailers(t),
            ]
            .into_iter()
            .collect(),
        )
    }

    #[tokio::test]
    async fn trailers_are_dropped_outside_grpc() {
        let collected = RequestTrailers::new(body_with_trailers(), TrailerRule::Drop)
            .collect()
            .await
            .unwrap();
        assert!(collected.trailers().is_none());
        assert_eq!(collected.to_bytes(), "hello");
    }

    #[tokio::test]
    async fn grpc_trailers_lose_identity_and_credentials() {
        let rule = TrailerRule::Clean {
            credential_headers: vec![
                http::header::AUTHORIZATION,
                HeaderName::from_static("x-api-key"),
            ],
            strip: vec![HeaderName::from_static("my-identity")],
        };
        let collected = RequestTrailers::new(body_with_trailers(), rule)
            .collect()
            .await
            .unwrap();
        let t = collected.trailers().cloned().unwrap();
        let names: Vec<&str> = t.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["grpc-trace-bin"]);
        assert_eq!(collected.to_bytes(), "hello");
    }
}
