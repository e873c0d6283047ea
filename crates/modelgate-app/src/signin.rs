//! Browser sign-in endpoints (`auth.sign_in`, see `docs/signin.md`): login
//! (→ the IdP, with PKCE), the callback (→ session cookie), sign-out
//! (revocation, then the IdP's end-session endpoint) and a small signed-in
//! landing page; and the redirect of an unauthenticated browser request to
//! login. The flow itself — cookies, state, ID token checks — lives in
//! `modelgate_authn::session`; this file only speaks HTTP. They answer before routing, like forward-auth.

use std::time::SystemTime;

use http::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION, SET_COOKIE,
};
use http::{HeaderValue, Method, Response, StatusCode, request::Parts};
use modelgate_authn::{Redirect, SignInError, session::idp::IdpError};
use modelgate_config::identity::CookieSecure;
use modelgate_core::respond::{RenderContext, render};
use modelgate_core::{AuthFailure, BoxBody, ErrorShape, Reject, full};

use crate::pipeline::Pipeline;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether cookies set on `listener` carry `Secure`.
fn secure(p: &Pipeline, listener: usize, mode: CookieSecure) -> bool {
    match mode {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => p
            .listeners
            .get(listener)
            .is_some_and(|l| l.config.tls.is_some()),
    }
}

fn redirect(r: Redirect) -> Response<BoxBody> {
    let mut resp = Response::new(full(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&r.location) {
        h.insert(LOCATION, v);
    }
    for c in r.set_cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(SET_COOKIE, v);
        }
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn refuse(p: &Pipeline, e: SignInError) -> Response<BoxBody> {
    tracing::warn!(target: "modelgate::signin", error = %e, "sign-in step refused");
    let reject = match e {
        SignInError::BadRequest(m) => Reject::BadRequest(m.into()),
        SignInError::Idp(IdpError::IdToken(m)) => {
            Reject::Unauthenticated(AuthFailure::InvalidToken(m))
        }
        SignInError::Idp(other) => Reject::UpstreamUnavailable {
            detail: other.to_string(),
        },
    };
    let ctx = RenderContext {
        realm: &p.config.auth.realm,
    };
    let mut resp = render(&reject, ErrorShape::KServe, &ctx);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `rd` of a query.
fn rd(query: Option<&str>) -> Option<String> {
    let params = modelgate_authn::session::flow::query_params(query?);
    params.into_iter().find(|(k, _)| k == "rd").map(|(_, v)| v)
}

/// The callback URL the IdP sends the browser back to, on the host it used.
fn redirect_uri(parts: &Parts, tls: bool, path: &str) -> Option<String> {
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| parts.headers.get(HOST)?.to_str().ok().map(str::to_string))?;
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    plain.then(|| format!("{}://{host}{path}", if tls { "https" } else { "http" }))
}

/// Answers a sign-in endpoint, or `None` when `parts` is not one.
pub async fn endpoint(p: &Pipeline, parts: &Parts, listener: usize) -> Option<Response<BoxBody>> {
    let s = p.authn.sessions()?;
    let cfg = s.config();
    let path = parts.uri.path();
    let get = matches!(parts.method, Method::GET | Method::HEAD);
    let secure = secure(p, listener, cfg.cookie.secure);
    let now = now_secs();
    let tls = p
        .listeners
        .get(listener)
        .is_some_and(|l| l.config.tls.is_some());
    if get && path == cfg.login_path {
        let Some(uri) = redirect_uri(parts, tls, &cfg.redirect_path) else {
            return Some(refuse(
                p,
                SignInError::BadRequest("the request names no usable host"),
            ));
        };
        let rd = rd(parts.uri.query());
        return Some(match s.start(rd.as_deref(), &uri, now, secure).await {
            Ok(r) => redirect(r),
            Err(e) => refuse(p, e),
        });
    }
    if get && path == cfg.redirect_path {
        let q = parts.uri.query().unwrap_or_default();
        return Some(
            match p.authn.finish_sign_in(q, &parts.headers, now, secure).await {
                Ok(r) => {
                    tracing::info!(target: "modelgate::signin", "browser signed in");
                    redirect(r)
                }
                Err(e) => refuse(p, e),
            },
        );
    }
    if path == cfg.logout_path && (get || parts.method == Method::POST) {
        let rd = rd(parts.uri.query());
        // Our own origin, for the IdP's post-logout redirect back here.
        let origin = redirect_uri(parts, tls, "");
        return Some(redirect(
            s.sign_out(
                &parts.headers,
                rd.as_deref(),
                origin.as_deref(),
                now,
                secure,
            )
            .await,
        ));
    }
    if get && path == cfg.landing_path {
        return Some(
            match p.authn.session_name(&parts.headers, SystemTime::now()) {
                Some(name) => landing(&name, &cfg.logout_path),
                None => redirect(Redirect {
                    location: s.login_location(&cfg.landing_path),
                    set_cookies: Vec::new(),
                }),
            },
        );
    }
    None
}

/// The signed-in landing page.
fn landing(name: &str, logout: &str) -> Response<BoxBody> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>modelgate</title></head>\
         <body><main><h1>modelgate</h1><p>Signed in as <strong>{}</strong>.</p>\
         <form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form></main></body></html>",
        escape(name),
        escape(logout)
    );
    let mut resp = Response::new(full(bytes::Bytes::from(html)));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// For a browser request with no machine credential (a GET or HEAD that
/// accepts `text/html`, no `Authorization` header, no credential header of
/// the listener): the login URL its 401 becomes. API clients get the 401.
pub fn browser_login(p: &Pipeline, parts: &Parts, listener: usize) -> Option<String> {
    let s = p.authn.sessions()?;
    if !matches!(parts.method, Method::GET | Method::HEAD)
        || parts.headers.contains_key(AUTHORIZATION)
    {
        return None;
    }
    let html = parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    let machine = p.listeners.get(listener).is_some_and(|l| {
        l.credential_headers
            .iter()
            .any(|h| parts.headers.contains_key(h))
    });
    if !html || machine {
        return None;
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    Some(s.login_location(&s.redirect_target(Some(&target))))
}

/// Refreshes the request's session if its ID token expired (see
/// `modelgate_authn::session::refresh`); returns the `Set-Cookie` to send.
pub async fn refresh(p: &Pipeline, parts: &mut Parts, listener: usize) -> Option<String> {
    let s = p.authn.sessions()?;
    if !s.has_session_cookie(&parts.headers) {
        return None;
    }
    let secure = secure(p, listener, s.config().cookie.secure);
    p.authn
        .refresh_session(&mut parts.headers, now_secs(), secure)
        .await
}

/// Adds a renewed session cookie to the response.
pub fn with_cookie(mut resp: Response<BoxBody>, cookie: Option<String>) -> Response<BoxBody> {
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

/// Turns a rendered 401 into the redirect to login.
pub fn to_login(mut resp: Response<BoxBody>, login: String) -> Response<BoxBody> {
    if resp.status() != StatusCode::UNAUTHORIZED {
        return resp;
    }
    let r = redirect(Redirect {
        location: login,
        set_cookies: Vec::new(),
    });
    let (parts, _) = r.into_parts();
    *resp.status_mut() = parts.status;
    let keep = resp.headers().get("x-request-id").cloned();
    *resp.headers_mut() = parts.headers;
    if let Some(v) = keep {
        resp.headers_mut().insert("x-request-id", v);
    }
    *resp.body_mut() = full(bytes::Bytes::new());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn redirect_uri_uses_a_plain_host() {
        let parts = |host: &str| {
            http::Request::builder()
                .uri("/oauth2/start")
                .header(HOST, host)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert_eq!(
            redirect_uri(&parts("gw.example:8080"), false, "/cb").as_deref(),
            Some("http://gw.example:8080/cb")
        );
        assert_eq!(
            redirect_uri(&parts("gw.example"), true, "/cb").as_deref(),
            Some("https://gw.example/cb")
        );
        assert_eq!(redirect_uri(&parts("evil/x?"), false, "/cb"), None);
        assert_eq!(redirect_uri(&parts("a@evil"), false, "/cb"), None);
    }
}
