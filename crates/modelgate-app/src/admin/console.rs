//! The admin API and UI under `/admin`: every request is decided by the one
//! decision function (route `admin`, which needs the admin role), then — for
//! state-changing methods — CSRF-checked, then answered by the API
//! ([`super::api`]) or the UI ([`super::ui`]); one decision record each.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use modelgate_core::{BoxBody, Principal, Reject};
use modelgate_listen::ConnInfo;
use tokio::sync::{Mutex, Semaphore};

use crate::body::{BodyDeadline, read_bounded};
use crate::decide::{Claimed, Decision, NoBody};
use crate::finish::{Trace, answered, rejected};
use crate::gateway::{Shared, note};
use crate::reload::Reloader;

/// Largest admin request body (forms and JSON).
const MAX_BODY: u64 = 64 * 1024;
/// Live-decision streams open at once.
const MAX_STREAMS: usize = 16;

/// The admin application: the running gateway's state and its reloader.
pub struct Console {
    pub(super) shared: Arc<Shared>,
    pub(super) reloader: Arc<Reloader>,
    /// Serialises configuration edits (read, change, write, reload).
    pub(super) config_edit: Mutex<()>,
    pub(super) streams: Arc<Semaphore>,
}

/// One admin request after its decision: what the handlers read.
pub(super) struct AdminRequest {
    pub method: Method,
    /// The normalised path (what was authorized).
    pub path: String,
    pub query: Option<String>,
    pub body: Bytes,
    pub principal: Option<Principal>,
    /// The CSRF token for forms this response renders.
    pub csrf: super::csrf::Token,
    /// Served over TLS (the CSRF cookie is then `Secure`).
    pub tls: bool,
}

/// Whether `raw` (the request target's path) is an admin path once normalised.
pub fn is_admin_request(raw: &str) -> bool {
    modelgate_route::normalize_path(raw).is_ok_and(|p| modelgate_route::is_admin_path(&p))
}

/// Whether `raw` is under the admin API (`/admin/api`), once normalised.
fn is_api_request(raw: &str) -> bool {
    modelgate_route::normalize_path(raw)
        .is_ok_and(|p| p == "/admin/api" || p.starts_with("/admin/api/"))
}

impl Console {
    pub fn new(shared: Arc<Shared>, reloader: Arc<Reloader>) -> Self {
        Self {
            shared,
            reloader,
            config_edit: Mutex::new(()),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }

    /// [`Self::serve`] on a public listener (`admin.ui.on_public`): the
    /// session is refreshed like on any gateway path, and a browser without
    /// credentials is sent to sign in (302 to login, `rd` checked against
    /// the allow-list) instead of a 401. The admin API (`/admin/api/…`) and
    /// non-browser clients keep the 401.
    pub async fn serve_public(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<BoxBody> {
        let p = self.shared.pipeline.load_full();
        let (mut parts, body) = req.into_parts();
        let login = if is_api_request(parts.uri.path()) {
            None
        } else {
            crate::signin::browser_login(&p, &parts, conn.listener)
        };
        let renewed = crate::signin::refresh(&p, &mut parts, conn.listener).await;
        let resp = self.serve(Request::from_parts(parts, body), conn).await;
        let resp = match login {
            Some(l) => crate::signin::to_login(resp, l),
            None => resp,
        };
        crate::signin::with_cookie(resp, renewed)
    }

    /// Decides, checks and answers one admin request; records it.
    pub async fn serve(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<BoxBody> {
        let p = self.shared.pipeline.load_full();
        let metrics = &self.shared.metrics;
        let mut trace = Trace::new(conn.client, req.method().as_str(), req.uri().path());
        let (parts, body) = req.into_parts();
        let ask = crate::gateway::ask(parts, conn, trace.received);
        let d = p
            .admin_decider()
            .decide(ask, Claimed::FromRequest, &mut NoBody, false)
            .await;
        note(&mut trace, &d);
        let Decision {
            request_id,
            facts,
            result,
            ruling,
            identity,
            ..
        } = d;
        trace.request_id = request_id;
        trace.ruling = ruling;
        let limits = p
            .listeners
            .get(conn.listener)
            .map(|l| l.config.limits)
            .unwrap_or_default();
        let outcome = match (result, facts) {
            (Ok(_), Some(facts)) => {
                let principal = identity.principal().cloned();
                self.answer(facts, principal, body, &limits, conn.tls).await
            }
            (Ok(_), None) => Err(Reject::Internal {
                detail: "allowed without facts".into(),
            }),
            (Err(r), _) => Err(r),
        };
        match outcome {
            Ok(resp) => answered(&p, metrics, &trace, resp),
            Err(r) => rejected(&p, metrics, &trace, r, None),
        }
    }

    /// After the decision: read the body, check CSRF, dispatch.
    async fn answer(
        &self,
        facts: modelgate_core::RequestFacts,
        principal: Option<Principal>,
        body: Incoming,
        limits: &modelgate_config::Limits,
        tls: bool,
    ) -> Result<Response<BoxBody>, Reject> {
        let changes = !matches!(facts.method, Method::GET | Method::HEAD);
        let body = if changes {
            read_bounded(body, MAX_BODY, BodyDeadline::start(limits)).await?
        } else {
            Bytes::new()
        };
        let csrf = super::csrf::Token::of(&facts.headers);
        if changes {
            super::csrf::check(&facts.headers, &body, principal.as_ref(), &csrf)?;
        }
        let req = AdminRequest {
            method: facts.method,
            path: facts.path,
            query: facts.query,
            body,
            principal,
            csrf,
            tls,
        };
        let started = Instant::now();
        let resp = if req.path.starts_with("/admin/api/") {
            super::api::handle(self, &req).await
        } else {
            super::ui::handle(self, &req).await
        };
        tracing::debug!(path = %req.path, elapsed = ?started.elapsed(), "admin request");
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_told_apart_after_normalising() {
        assert!(is_api_request("/admin/api/models"));
        assert!(is_api_request("/admin/api"));
        assert!(is_api_request("/admin//api/keys"));
        assert!(is_api_request("/admin/x/../api/keys"));
        assert!(!is_api_request("/admin/models"));
        assert!(!is_api_request("/admin/apis"));
    }
}
