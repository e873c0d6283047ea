//! The HTTP flavour of ext_authz (Envoy `http_service`, Istio
//! `envoyExtAuthzHttp`): Envoy sends the original method, the original path
//! under `path_prefix`, and the allowed headers (and the body, with
//! `with_request_body`). A 2xx answer allows and carries the identity headers
//! (Istio `headersToUpstreamOnAllow`) and, in
//! `x-envoy-auth-headers-to-remove`, the client-sent identity headers to
//! drop; any other answer is passed to the client as it is — the one `serve`
//! gives the same request.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use modelgate_app::{Adapter, Answer, Ask};
use modelgate_core::{BoxBody, full};
use modelgate_listen::ConnInfo;

/// Envoy's response header naming the request headers to remove.
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// The original path and query, if `uri` is under `prefix` (at a segment
/// boundary).
pub fn strip_prefix(uri: &Uri, prefix: &str) -> Option<String> {
    let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let rest = pq.strip_prefix(prefix)?;
    rest.starts_with('/').then(|| rest.to_string())
}

pub struct HttpFlavour<'a> {
    pub adapter: &'a Adapter,
    pub listener: usize,
    pub max_body: u64,
}

impl HttpFlavour<'_> {
    pub async fn check(
        &self,
        req: Request<Incoming>,
        original: String,
        conn: &Arc<ConnInfo>,
    ) -> Response<BoxBody> {
        let received = Instant::now();
        let (parts, body) = req.into_parts();
        let body = match self.read(body).await {
            Ok(b) => b,
            Err(status) => return plain(status, "request body too large or unreadable\n"),
        };
        let (path, query) = match original.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (original, None),
        };
        let ask = Ask {
            method: parts.method,
            path,
            query,
            authority: None,
            headers: parts.headers,
            client: conn.client,
            local: conn.local,
            peer: None,
            listener: self.listener,
            received,
        };
        let checked = self.adapter.check(ask, body).await;
        match checked.answer {
            Answer::Allow { set, remove } => {
                let mut resp = Response::new(full(Bytes::new()));
                for (n, v) in set {
                    resp.headers_mut().insert(n, v);
                }
                let names: Vec<&str> = remove.iter().map(http::HeaderName::as_str).collect();
                if let (false, Ok(v)) = (names.is_empty(), HeaderValue::from_str(&names.join(",")))
                {
                    resp.headers_mut().insert(HEADERS_TO_REMOVE, v);
                }
                resp
            }
            Answer::Deny {
                status,
                headers,
                body,
            } => {
                let mut resp = Response::new(full(body));
                *resp.status_mut() = status;
                *resp.headers_mut() = headers;
                resp
            }
        }
    }

    /// The body Envoy sent (`with_request_body`), bounded; `None` if empty.
    async fn read(&self, body: Incoming) -> Result<Option<Bytes>, StatusCode> {
        let limit = usize::try_from(self.max_body).unwrap_or(usize::MAX);
        let read = http_body_util::Limited::new(body, limit).collect();
        match tokio::time::timeout(std::time::Duration::from_secs(30), read).await {
            Ok(Ok(c)) => {
                let b = c.to_bytes();
                Ok((!b.is_empty()).then_some(b))
            }
            Ok(Err(_)) => Err(StatusCode::PAYLOAD_TOO_LARGE),
            Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
        }
    }
}

fn plain(status: StatusCode, msg: &'static str) -> Response<BoxBody> {
    let mut resp = Response::new(full(Bytes::from_static(msg.as_bytes())));
    *resp.status_mut() = status;
    resp
}
