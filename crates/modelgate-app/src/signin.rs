//! Browser sign-in endpoints (`auth.sign_in`, see `docs/signin.md`): login
//! (→ the IdP, with PKCE), the callback (→ session cookie), sign-out
//! (a `POST` with the session's token: revocation, then the IdP's
//! end-session endpoint; `GET` shows the sign-out page) and a small
//! signed-in landing page; and the redirect of an unauthenticated browser request to
//! login. The flow itself — cookies, state, ID token checks — lives in
//! `modelgate_authn::session`; this file only speaks HTTP. They answer before routing, like forward-auth.

use std::time::SystemTime;

use http::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, HOST, LOCATION, SET_COOKIE};
use http::{HeaderValue, Method, Response, StatusCode, request::Parts};
use hyper::body::Incoming;
use modelgate_authn::session::sign_out::{TOKEN_FIELD, TOKEN_HEADER};
use modelgate_authn::{Redirect, Sessions, SignInError, session::idp::IdpError};
use modelgate_config::identity::CookieSecure;
use modelgate_core::respond::{RenderContext, render};
use modelgate_core::{AuthFailure, BoxBody, ErrorShape, Reject, full};

use crate::body::{BodyDeadline, read_bounded};
use crate::pipeline::Pipeline;

mod pages;

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
        SignInError::Forbidden(m) => Reject::Forbidden(m.into()),
        SignInError::Idp(IdpError::IdToken(m)) => {
            Reject::Unauthenticated(AuthFailure::InvalidToken(m))
        }
        SignInError::Idp(other) => Reject::UpstreamUnavailable {
            detail: other.to_string(),
        },
    };
    render_reject(p, &reject)
}

fn render_reject(p: &Pipeline, reject: &Reject) -> Response<BoxBody> {
    let ctx = RenderContext {
        realm: &p.config.auth.realm,
    };
    let mut resp = render(reject, ErrorShape::KServe, &ctx);
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

/// The sign-in endpoint `parts` asks for.
enum Endpoint {
    Login,
    Callback,
    SignOutPage,
    SignOut,
    Landing,
}

fn which(cfg: &modelgate_config::identity::SignIn, parts: &Parts) -> Option<Endpoint> {
    let path = parts.uri.path();
    let get = matches!(parts.method, Method::GET | Method::HEAD);
    if path == cfg.logout_path {
        return match parts.method {
            Method::POST => Some(Endpoint::SignOut),
            _ if get => Some(Endpoint::SignOutPage),
            _ => None,
        };
    }
    if !get {
        return None;
    }
    if path == cfg.login_path {
        Some(Endpoint::Login)
    } else if path == cfg.redirect_path {
        Some(Endpoint::Callback)
    } else if path == cfg.landing_path {
        Some(Endpoint::Landing)
    } else {
        None
    }
}

/// Answers a sign-in endpoint, or `None` when `parts` is not one. Only the
/// sign-out `POST` reads `body` (its form); the caller drains what is left.
pub async fn endpoint(
    p: &Pipeline,
    parts: &Parts,
    body: &mut Option<Incoming>,
    listener: usize,
) -> Option<Response<BoxBody>> {
    let s = p.authn.sessions()?;
    let cfg = s.config();
    let step = which(cfg, parts)?;
    let secure = secure(p, listener, cfg.cookie.secure);
    let tls = p
        .listeners
        .get(listener)
        .is_some_and(|l| l.config.tls.is_some());
    // The steps that call the IdP are boxed: this future is part of every
    // request's, and those steps' futures are large.
    Some(match step {
        Endpoint::Login => Box::pin(login(p, s, parts, tls, secure)).await,
        Endpoint::Callback => {
            let q = parts.uri.query().unwrap_or_default();
            match Box::pin(
                p.authn
                    .finish_sign_in(q, &parts.headers, now_secs(), secure),
            )
            .await
            {
                Ok(r) => {
                    tracing::info!(target: "modelgate::signin", "browser signed in");
                    redirect(r)
                }
                Err(e) => refuse(p, e),
            }
        }
        Endpoint::SignOutPage => pages::sign_out(
            p.authn
                .signed_in(&parts.headers, SystemTime::now())
                .as_ref(),
            &cfg.logout_path,
            &cfg.landing_path,
            rd(parts.uri.query()).as_deref(),
        ),
        Endpoint::SignOut => {
            Box::pin(sign_out(p, s, parts, body.take(), listener, tls, secure)).await
        }
        Endpoint::Landing => match p.authn.signed_in(&parts.headers, SystemTime::now()) {
            Some(user) => pages::landing(&user, &cfg.logout_path),
            None => redirect(Redirect {
                location: s.login_location(&cfg.landing_path),
                set_cookies: Vec::new(),
            }),
        },
    })
}

/// Login: the flow cookie and the redirect to the IdP.
async fn login(
    p: &Pipeline,
    s: &Sessions,
    parts: &Parts,
    tls: bool,
    secure: bool,
) -> Response<BoxBody> {
    let Some(uri) = redirect_uri(parts, tls, &s.config().redirect_path) else {
        return refuse(
            p,
            SignInError::BadRequest("the request names no usable host"),
        );
    };
    let rd = rd(parts.uri.query());
    match s.start(rd.as_deref(), &uri, now_secs(), secure).await {
        Ok(r) => redirect(r),
        Err(e) => refuse(p, e),
    }
}

/// Sign-out `POST`: the token from the form (or `X-CSRF-Token`), `rd` from
/// the query or the form.
async fn sign_out(
    p: &Pipeline,
    s: &Sessions,
    parts: &Parts,
    body: Option<Incoming>,
    listener: usize,
    tls: bool,
    secure: bool,
) -> Response<BoxBody> {
    let form = match sign_out_form(p, parts, body, listener).await {
        Ok(f) => f,
        Err(r) => return render_reject(p, &r),
    };
    let token = parts
        .headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| form_value(&form, TOKEN_FIELD));
    let rd = rd(parts.uri.query()).or_else(|| form_value(&form, "rd").map(str::to_string));
    // Our own origin, for the IdP's post-logout redirect back here.
    let origin = redirect_uri(parts, tls, "");
    let out = s
        .sign_out(
            &parts.headers,
            token,
            rd.as_deref(),
            origin.as_deref(),
            now_secs(),
            secure,
        )
        .await;
    match out {
        Ok(r) => redirect(r),
        Err(e) => refuse(p, e),
    }
}

/// Largest sign-out form read.
const MAX_SIGN_OUT_FORM: u64 = 4096;

/// The sign-out `POST`'s form pairs (bounded, with the listener's deadlines).
async fn sign_out_form(
    p: &Pipeline,
    parts: &Parts,
    body: Option<Incoming>,
    listener: usize,
) -> Result<Vec<(String, String)>, Reject> {
    let (Some(body), Some(l)) = (body, p.listeners.get(listener)) else {
        return Ok(Vec::new());
    };
    crate::body::check_declared_length(&parts.headers, MAX_SIGN_OUT_FORM)?;
    let deadline = BodyDeadline::start(&l.config.limits);
    let bytes = read_bounded(body, MAX_SIGN_OUT_FORM, deadline).await?;
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    Ok(modelgate_authn::session::flow::query_params(text.trim()))
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
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
    // Boxed: a refresh calls the IdP; its future would otherwise weigh on
    // every request's.
    Box::pin(
        p.authn
            .refresh_session(&mut parts.headers, now_secs(), secure),
    )
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
