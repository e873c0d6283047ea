//! The admin listener: `/healthz` (the process is up), `/readyz` (ready for
//! traffic: configuration loaded, built-in models loaded), `/metrics`, and
//! the wristband's discovery document and JWKS when configured, and
//! the admin API and UI under `/admin` ([`console`], see `docs/admin.md`).

mod api;
pub(crate) mod console;
mod csrf;
mod explain;
mod html;
mod keys;
mod models;
mod require_token;
mod stream;
mod ui;
mod ui_pages;
mod usage;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use modelgate_core::{BoxBody, full};
use modelgate_listen::{ConnInfo, Handler};

use crate::gateway::Shared;

pub struct Admin {
    pub shared: Arc<Shared>,
    pub console: Arc<console::Console>,
}

fn text(status: StatusCode, ct: &'static str, body: String) -> Response<BoxBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

impl Handler for Admin {
    async fn handle(&self, req: Request<Incoming>, conn: Arc<ConnInfo>) -> Response<BoxBody> {
        if console::is_admin_request(req.uri().path()) {
            return self.console.serve(req, &conn).await;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "method not allowed\n".into(),
            );
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" => {
                if self.shared.ready.load(Ordering::Acquire) {
                    text(StatusCode::OK, "text/plain", "ready\n".into())
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "not ready\n".into(),
                    )
                }
            }
            "/metrics" => text(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.shared.metrics.encode(),
            ),
            path => {
                let p = self.shared.pipeline.load();
                crate::wristband::document(&p, req.method(), path).unwrap_or_else(|| {
                    text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into())
                })
            }
        }
    }
}
