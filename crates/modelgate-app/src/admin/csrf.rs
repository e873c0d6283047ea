//! CSRF protection for state-changing admin calls (POST, PUT, DELETE):
//! double-submit — a random token in the non-HttpOnly `mg_csrf` cookie must
//! come back in the `X-CSRF-Token` header or the `csrf` form field — plus a
//! same-origin check of `Origin` and `Sec-Fetch-Site`. A caller that
//! authenticated with an `Authorization` header (an API client) is exempt:
//! a cross-site page cannot make a browser send that header. Cookie
//! sessions and client certificates are ambient, so they are never exempt.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use modelgate_core::{AuthMethod, Principal, Reject};

pub(super) const COOKIE_NAME: &str = "mg_csrf";
pub(super) const HEADER: &str = "x-csrf-token";
pub(super) const FIELD: &str = "csrf";

/// The request's CSRF token: the cookie's, or a fresh one to set.
#[derive(Clone)]
pub(super) struct Token {
    pub value: String,
    /// Not yet in the browser: the response sets the cookie.
    pub fresh: bool,
}

impl Token {
    pub fn of(headers: &HeaderMap) -> Self {
        match cookie(headers) {
            Some(v) => Self {
                value: v.to_string(),
                fresh: false,
            },
            None => Self {
                value: format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
                fresh: true,
            },
        }
    }

    /// The `Set-Cookie` value for a fresh token.
    pub fn set_cookie(&self, tls: bool) -> Option<String> {
        self.fresh.then(|| {
            let secure = if tls { "; Secure" } else { "" };
            format!(
                "{COOKIE_NAME}={}; Path=/admin; SameSite=Strict{secure}",
                self.value
            )
        })
    }
}

/// A well-formed token (64 hex digits) from the `mg_csrf` cookie.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether this caller must pass the CSRF check.
fn needed(headers: &HeaderMap, principal: Option<&Principal>) -> bool {
    let ambient =
        principal.is_none_or(|p| matches!(p.method, AuthMethod::Session | AuthMethod::Mtls));
    ambient || !headers.contains_key(AUTHORIZATION)
}

/// Refuses a state-changing call that could be cross-site.
pub(super) fn check(
    headers: &HeaderMap,
    body: &[u8],
    principal: Option<&Principal>,
    token: &Token,
) -> Result<(), Reject> {
    if !needed(headers, principal) {
        return Ok(());
    }
    same_origin(headers)?;
    let sent = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| super::html::form_value(body, FIELD));
    let refuse = || Reject::Forbidden("CSRF token missing or invalid".into());
    if token.fresh {
        return Err(refuse());
    }
    match sent {
        Some(s) if equal(s.as_bytes(), token.value.as_bytes()) => Ok(()),
        _ => Err(refuse()),
    }
}

/// `Sec-Fetch-Site` (when sent) must be `same-origin` or `none`, and
/// `Origin` (when sent) must name this host.
fn same_origin(headers: &HeaderMap) -> Result<(), Reject> {
    let cross = || Reject::Forbidden("cross-origin request refused".into());
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(cross());
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| cross())?;
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(cross)?;
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(cross)?;
    if authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(cross())
    }
}

/// Constant-time comparison of equal-length byte strings.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use modelgate_core::Grants;

    use super::*;

    const T: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn session() -> Principal {
        let mut p = Principal::api_key("alice", Grants::Nothing);
        p.method = AuthMethod::Session;
        p
    }

    #[test]
    fn a_cookie_session_needs_the_token_back_and_the_same_origin() {
        let cookie = format!("a=b; {COOKIE_NAME}={T}");
        let h = headers(&[("cookie", &cookie), ("host", "gw:8080")]);
        let tok = Token::of(&h);
        assert!(!tok.fresh);
        let p = session();
        assert!(check(&h, b"", Some(&p), &tok).is_err(), "no token sent");
        let mut ok = h.clone();
        ok.insert(HEADER, HeaderValue::from_static(T));
        assert!(check(&ok, b"", Some(&p), &tok).is_ok());
        let form = format!("name=x&{FIELD}={T}");
        assert!(check(&h, form.as_bytes(), Some(&p), &tok).is_ok());
        let mut foreign = h.clone();
        foreign.insert(
            HEADER,
            HeaderValue::from_static(
                "ff23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        );
        assert!(
            check(&foreign, b"", Some(&p), &tok).is_err(),
            "foreign token"
        );
        let mut other_site = ok.clone();
        other_site.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(check(&other_site, b"", Some(&p), &tok).is_err());
        let mut fetch = ok.clone();
        fetch.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check(&fetch, b"", Some(&p), &tok).is_err());
        let mut same = ok;
        same.insert(ORIGIN, HeaderValue::from_static("http://gw:8080"));
        assert!(check(&same, b"", Some(&p), &tok).is_ok());
    }

    #[test]
    fn an_authorization_header_exempts_api_clients_but_not_sessions() {
        let h = headers(&[("authorization", "Bearer mgk_x")]);
        let tok = Token::of(&h);
        assert!(tok.fresh);
        let key = Principal::api_key("ops", Grants::AllModels);
        assert!(check(&h, b"", Some(&key), &tok).is_ok());
        assert!(check(&h, b"", Some(&session()), &tok).is_err());
        // Without the header (e.g. a custom key header) the token is needed.
        assert!(check(&HeaderMap::new(), b"", Some(&key), &tok).is_err());
    }

    #[test]
    fn malformed_cookie_tokens_are_replaced() {
        let h = headers(&[("cookie", "mg_csrf=short")]);
        let t = Token::of(&h);
        assert!(t.fresh);
        assert_eq!(t.value.len(), 64);
        assert!(
            t.set_cookie(true)
                .is_some_and(|c| c.contains("Secure") && c.contains("SameSite=Strict"))
        );
    }
}
