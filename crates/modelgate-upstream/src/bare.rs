//! The lean HTTP/1 client on its own, without the rest of the proxy step
//! (endpoints, retries, header hygiene): only for measuring the floor of the
//! proxy path (`examples/bare_proxy.rs`, `bench/run.sh instructions`).

use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Method, Response};
use modelgate_core::{BoxBody, BoxError};

use crate::h1pool::H1Pool;
use crate::h1pool::codec::Head;

/// Until the answer's head (as modelgate's default `upstream.timeout`).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// One plain-HTTP/1 upstream, pooled per I/O thread.
pub struct LeanClient {
    pool: Arc<H1Pool>,
    host: HeaderValue,
}

impl LeanClient {
    /// `authority`: `host:port` of the upstream.
    pub fn new(authority: &str) -> Result<Self, BoxError> {
        let a: Authority = authority.parse()?;
        Ok(Self {
            host: HeaderValue::from_str(a.as_str())?,
            pool: H1Pool::new(&a, Duration::from_secs(5)),
        })
    }

    /// Sends one request (`headers` as given, `Host` replaced).
    pub async fn send(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: BoxBody,
    ) -> Result<Response<BoxBody>, BoxError> {
        let head = Head {
            method,
            path_and_query,
            host: &self.host,
            headers,
            inject: &[],
        };
        self.pool
            .send(head, body, SEND_TIMEOUT)
            .await
            .map_err(|f| f.error)
    }
}
