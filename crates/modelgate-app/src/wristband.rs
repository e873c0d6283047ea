//! The wristband in the pipeline: a permitted request to a proxied model gets
//! a freshly signed token in the configured header (the client's copy was
//! already stripped), and the discovery document and JWKS are answered on
//! the public and admin listeners without authentication.

use std::time::SystemTime;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use modelgate_authn::wristband::Facts;
use modelgate_authz::Permit;
use modelgate_core::{BoxBody, Reject, full};
use modelgate_route::RouteMatch;

use crate::finish::Trace;
use crate::pipeline::Pipeline;

/// Sets the wristband on an upstream request, when configured and the model
/// has not opted out. Fails closed: no token, no request.
pub(crate) fn stamp(
    p: &Pipeline,
    route: &RouteMatch,
    permit: &Permit,
    trace: &mut Trace,
    headers: &mut HeaderMap,
) -> Result<(), Reject> {
    let Some(w) = &p.wristband else {
        return Ok(());
    };
    let Some(model) = route.model.known() else {
        return Ok(());
    };
    if !p.config.model(model).is_some_and(|m| m.wristband) {
        return Ok(());
    }
    let facts = Facts {
        principal: permit.principal(),
        model: model.as_str(),
        protocol: route.protocol.as_str(),
        operation: route.operation.as_str(),
        basis: Some(permit.basis().as_str()),
        policy: permit.policy().map(|r| &*r.name),
    };
    let minted = w
        .mint(&facts, SystemTime::now())
        .ok_or_else(|| Reject::Internal {
            detail: "cannot sign the wristband".into(),
        })?;
    headers.insert(w.header().clone(), minted.token);
    trace.wristband = Some((minted.kid, minted.jti));
    Ok(())
}

/// The discovery document or JWKS, if `path` is one and a wristband is
/// configured. Other paths are left to the caller (unknown ones stay 404).
pub(crate) fn document(p: &Pipeline, method: &Method, path: &str) -> Option<Response<BoxBody>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let body = p.wristband.as_ref()?.document(path)?;
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    Some(r)
}
