//! Browser sessions: the encrypted session cookie (sealed in [`seal`]), the
//! sign-in flow state (a short-lived sealed "flow" cookie holding `state`,
//! `nonce`, the PKCE verifier and `rd`), sign-out ([`sign_out`]) and its
//! server-side revocation ([`revoked`]), redirect-target checks ([`redirect`]) and the IdP calls
//! ([`idp`]). A session becomes an [`crate::Authenticated`] only in
//! `Authenticator::authenticate`, and only when the request carries no other
//! credential. See `docs/signin.md`.

mod authn;
pub mod flow;
pub mod idp;
pub mod redirect;
pub(crate) mod refresh;
pub mod revoked;
pub mod seal;
pub mod sign_out;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::HeaderMap;
use http::header::COOKIE;
use modelgate_config::identity::SignIn;
use modelgate_core::AuthFailure;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fetch::Fetch;
use idp::Endpoints;
use revoked::Revoked;
use seal::Sealer;

/// Most revoked sessions (and used `state`s) remembered at once.
const MAX_REVOKED: usize = 100_000;
/// Most cookies of one name looked at in a request.
const MAX_SAME_NAME: usize = 4;

/// Why a session cookie is not an identity (the client reads only this).
pub const SESSION_INVALID: &str = "session is invalid or expired";

/// What the session cookie holds (encrypted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionData {
    pub sid: String,
    /// Issued and expiry times of the session (Unix seconds).
    pub iat: u64,
    pub exp: u64,
    /// When the ID token the claims came from expires.
    pub id_exp: u64,
    pub claims: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt: Option<String>,
    /// The ID token, for the IdP's end-session endpoint (`id_token_hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idt: Option<String>,
}

/// The sign-in state of one configuration.
pub struct Sessions {
    pub(crate) cfg: SignIn,
    pub(crate) sealer: Sealer,
    pub(crate) revoked: Arc<Revoked>,
    pub(crate) used_states: Arc<Revoked>,
    pub(crate) fetch: Arc<dyn Fetch>,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) endpoints: ArcSwapOption<Endpoints>,
}

impl Sessions {
    /// Sign-in for `cfg`; the revocation sets of `previous` carry over a reload.
    pub fn new(
        cfg: SignIn,
        fetch: Arc<dyn Fetch>,
        allowed_hosts: Vec<String>,
        previous: Option<&Sessions>,
    ) -> Result<Self, String> {
        let sealer = Sealer::new(&cfg.cookie.key.0).ok_or("unusable cookie key")?;
        let (revoked, used_states) = match previous {
            Some(p) => (p.revoked.clone(), p.used_states.clone()),
            None => (
                Arc::new(Revoked::new(MAX_REVOKED)),
                Arc::new(Revoked::new(MAX_REVOKED)),
            ),
        };
        Ok(Self {
            cfg,
            sealer,
            revoked,
            used_states,
            fetch,
            allowed_hosts,
            endpoints: ArcSwapOption::empty(),
        })
    }

    pub fn config(&self) -> &SignIn {
        &self.cfg
    }

    pub(crate) fn session_purpose(&self) -> String {
        format!("modelgate-session:{}", self.cfg.cookie.name)
    }

    pub(crate) fn flow_cookie(&self) -> String {
        format!("{}_flow", self.cfg.cookie.name)
    }

    /// Whether the request carries a cookie named like the session cookie.
    pub fn has_session_cookie(&self, headers: &HeaderMap) -> bool {
        !cookie_values(headers, &self.cfg.cookie.name).is_empty()
    }

    /// The session in the request's cookie: `None` without one; an error
    /// when it does not open, has expired or was revoked.
    pub(crate) fn session(
        &self,
        headers: &HeaderMap,
        now: u64,
    ) -> Option<Result<SessionData, AuthFailure>> {
        let values = cookie_values(headers, &self.cfg.cookie.name);
        if values.is_empty() {
            return None;
        }
        let purpose = self.session_purpose();
        let found = values
            .iter()
            .take(MAX_SAME_NAME)
            .filter_map(|v| self.sealer.open(&purpose, v))
            .find_map(|plain| serde_json::from_slice::<SessionData>(&plain).ok());
        Some(match found {
            Some(s)
                if s.exp > now
                    && s.iat <= now.saturating_add(60)
                    && !self.revoked.contains(&s.sid, s.iat, now) =>
            {
                Ok(s)
            }
            _ => Err(AuthFailure::InvalidToken(SESSION_INVALID.into())),
        })
    }

    /// Removes the session and flow cookies from the `Cookie` header(s):
    /// they are never forwarded upstream.
    pub fn strip_cookies(&self, headers: &mut HeaderMap) {
        let flow = self.flow_cookie();
        strip(headers, &[&self.cfg.cookie.name, &flow]);
    }
}

/// Values of the cookies named `name`, across every `Cookie` header.
pub(crate) fn cookie_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .collect()
}

pub(crate) fn strip(headers: &mut HeaderMap, names: &[&str]) {
    crate::token::strip_cookies(headers, |k| names.contains(&k));
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, `Secure` when asked.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    secure: bool,
) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}
