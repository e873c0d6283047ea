//! Refresh: a session whose ID token has expired, within the session's own
//! lifetime, and that holds a refresh token is refreshed at the token
//! endpoint (bounded by the sign-in timeout); the new ID token is verified
//! like the first (same issuer keys, `aud`, times, and the same `sub`).
//! A failed refresh leaves this request without the session (fail closed);
//! nothing is revoked, so a concurrent refresh that won is not undone.

use http::HeaderMap;
use http::header::COOKIE;
use serde_json::Value;

use super::idp::{self, IdpError};
use super::{SessionData, Sessions, set_cookie, strip};
use crate::Authenticator;
use crate::jwt::Provider;

/// What a refresh did to the request's session.
#[derive(Debug)]
pub enum Refreshed {
    /// New session: the sealed value (for this request) and its `Set-Cookie`.
    Renewed { value: String, set_cookie: String },
    /// The refresh failed: the request goes on without the session.
    Failed,
}

impl Sessions {
    pub(crate) async fn refresh(
        &self,
        provider: &Provider,
        headers: &HeaderMap,
        now: u64,
        secure: bool,
    ) -> Option<Refreshed> {
        let old = self.session(headers, now)?.ok()?;
        if old.id_exp > now {
            return None;
        }
        let rt = old.rt.clone()?;
        match self.renew(provider, &old, &rt, now).await {
            Ok(new) => {
                let Ok(value) = self.seal_session(new) else {
                    return Some(Refreshed::Failed);
                };
                let max_age = old.exp.saturating_sub(now);
                let set_cookie = set_cookie(&self.cfg.cookie.name, &value, "/", max_age, secure);
                Some(Refreshed::Renewed { value, set_cookie })
            }
            Err(e) => {
                tracing::info!(target: "modelgate::signin", error = %e, "session refresh failed");
                Some(Refreshed::Failed)
            }
        }
    }

    async fn renew(
        &self,
        provider: &Provider,
        old: &SessionData,
        rt: &str,
        now: u64,
    ) -> Result<SessionData, IdpError> {
        let ep = self.endpoints().await?;
        let grant = [("grant_type", "refresh_token"), ("refresh_token", rt)];
        let tokens = idp::token_call(&self.fetch, &self.cfg, &ep, &grant, self.cfg.timeout).await?;
        let (claims, id_exp) =
            idp::verify_id_token(provider, &self.cfg.client_id, &tokens.id_token, None, now)
                .await?;
        if claims.get("sub").and_then(Value::as_str)
            != old.claims.get("sub").and_then(Value::as_str)
        {
            return Err(IdpError::IdToken(
                "refreshed ID token names another subject".into(),
            ));
        }
        Ok(SessionData {
            sid: old.sid.clone(),
            iat: old.iat,
            exp: old.exp,
            id_exp,
            claims,
            rt: tokens.refresh_token.or_else(|| Some(rt.to_string())),
            idt: Some(tokens.id_token),
        })
    }
}

impl Authenticator {
    /// Refreshes the request's session when its ID token has expired and a
    /// refresh token allows it, rewriting the request's `Cookie` header so
    /// authentication sees the outcome. Returns the `Set-Cookie` for the
    /// response, if any. Requests with another credential are left alone.
    pub async fn refresh_session(
        &self,
        headers: &mut HeaderMap,
        now: u64,
        secure: bool,
    ) -> Option<String> {
        let s = self.sessions.as_ref()?;
        if headers.contains_key(http::header::AUTHORIZATION) {
            return None;
        }
        let provider = self
            .providers
            .iter()
            .find(|p| p.rule.issuer == s.cfg.issuer)?;
        let name = s.cfg.cookie.name.clone();
        match s.refresh(provider, headers, now, secure).await? {
            Refreshed::Renewed { value, set_cookie } => {
                strip(headers, &[&name]);
                let cookie = match headers.get(COOKIE).and_then(|v| v.to_str().ok()) {
                    Some(rest) => format!("{rest}; {name}={value}"),
                    None => format!("{name}={value}"),
                };
                if let Ok(v) = http::HeaderValue::from_str(&cookie) {
                    headers.insert(COOKIE, v);
                }
                Some(set_cookie)
            }
            Refreshed::Failed => {
                strip(headers, &[&name]);
                None
            }
        }
    }
}
