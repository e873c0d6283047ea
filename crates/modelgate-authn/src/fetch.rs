//! The small HTTP client identity sources use to reach an IdP, the Kubernetes
//! API server or an introspection endpoint: one request, a deadline, a
//! bounded body, no redirects followed. Behind a trait so tests inject a fake.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Largest response body read from an identity endpoint.
pub const MAX_RESPONSE: usize = 1 << 20;

pub struct HttpRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timeout: Duration,
}

impl HttpRequest {
    pub fn get(uri: Uri, timeout: Duration) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        Self {
            method: Method::GET,
            uri,
            headers,
            body: Bytes::new(),
            timeout,
        }
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Bytes,
}

pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, String>> + Send + 'a>>;

/// Sends one request. Errors are short texts for logs (never a secret).
pub trait Fetch: Send + Sync {
    fn send(&self, req: HttpRequest) -> FetchFuture<'_>;
}

/// The real client: hyper over rustls (system web PKI roots, or a CA file).
pub struct HyperFetch {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HyperFetch {
    /// A client trusting `ca_file` if given, else the web PKI roots.
    pub fn new(ca_file: Option<&Path>) -> Result<Arc<Self>, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let tls = match ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!("{}: no PEM certificate found", path.display()));
                }
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Arc::new(Self { client }))
    }
}

impl Fetch for HyperFetch {
    fn send(&self, req: HttpRequest) -> FetchFuture<'_> {
        Box::pin(async move {
            let display = modelgate_core::redact_url(&req.uri.to_string());
            let mut r = Request::builder()
                .method(req.method)
                .uri(req.uri)
                .body(Full::new(req.body))
                .map_err(|e| format!("{display}: {e}"))?;
            *r.headers_mut() = req.headers;
            let call = async {
                let resp = self
                    .client
                    .request(r)
                    .await
                    .map_err(|e| format!("{display}: {e}"))?;
                let status = resp.status().as_u16();
                let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| format!("{display}: reading the body: {e}"))?
                    .to_bytes();
                Ok(HttpResponse { status, body })
            };
            tokio::time::timeout(req.timeout, call)
                .await
                .map_err(|_| format!("{display}: no answer within {:?}", req.timeout))?
        })
    }
}

/// A scripted fetcher for tests: answers with `handler`, records requests.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    pub type Handler = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse, String> + Send>;

    pub struct FakeFetch {
        pub handler: Mutex<Handler>,
        pub calls: AtomicUsize,
        pub seen: Mutex<Vec<(String, String, String)>>,
    }

    impl FakeFetch {
        pub fn new(
            handler: impl FnMut(&HttpRequest) -> Result<HttpResponse, String> + Send + 'static,
        ) -> Arc<Self> {
            Arc::new(Self {
                handler: Mutex::new(Box::new(handler)),
                calls: AtomicUsize::new(0),
                seen: Mutex::new(Vec::new()),
            })
        }

        pub fn set(
            &self,
            handler: impl FnMut(&HttpRequest) -> Result<HttpResponse, String> + Send + 'static,
        ) {
            *self.handler.lock().unwrap() = Box::new(handler);
        }

        pub fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    pub fn ok(body: impl Into<Bytes>) -> Result<HttpResponse, String> {
        Ok(HttpResponse {
            status: 200,
            body: body.into(),
        })
    }

    impl Fetch for FakeFetch {
        fn send(&self, req: HttpRequest) -> FetchFuture<'_> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let auth = req
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            self.seen.lock().unwrap().push((
                req.uri.to_string(),
                auth,
                String::from_utf8_lossy(&req.body).into_owned(),
            ));
            let r = (self.handler.lock().unwrap())(&req);
            Box::pin(async move { r })
        }
    }
}
