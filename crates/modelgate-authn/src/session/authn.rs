//! The Authenticator's side of browser sessions: when a session cookie is
//! an identity, the signed-in user of the landing and sign-out pages, and refreshing a session whose
//! ID token expired.

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use modelgate_core::{AuthFailure, Principal, RequestFacts};

use super::sign_out::SignedIn;
use crate::Authenticator;
use crate::jwt::{self, ProviderKind};

impl Authenticator {
    /// The browser session, when sign-in is configured and the request
    /// carries no other credential — no token, no `Authorization` header, no
    /// client certificate an mTLS identity would take (seed 002's machine
    /// path never enters the cookie flow).
    pub(crate) fn session_identity(
        &self,
        facts: &RequestFacts,
        has_token: bool,
        now: SystemTime,
    ) -> Option<Result<Arc<Principal>, AuthFailure>> {
        let s = self.sessions.as_ref()?;
        if has_token
            || facts.headers.contains_key(http::header::AUTHORIZATION)
            || (self.mtls.is_some() && facts.peer.is_some())
        {
            return None;
        }
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let r = s.session(&facts.headers, now_s)?;
        Some(r.map(|data| {
            Arc::new(jwt::claims_principal(
                ProviderKind::Jwt,
                Some(&s.cfg.issuer),
                data.claims,
            ))
        }))
    }

    /// The signed-in browser user and the session's sign-out token, when
    /// the request carries a valid session cookie (for the landing and
    /// sign-out pages).
    pub fn signed_in(&self, headers: &HeaderMap, now: SystemTime) -> Option<SignedIn> {
        let s = self.sessions.as_ref()?;
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let data = s.session(headers, now_s)?.ok()?;
        let sign_out_token = s.sign_out_token(&data.sid);
        let p = jwt::claims_principal(ProviderKind::Jwt, Some(&s.cfg.issuer), data.claims);
        let email = p
            .claims
            .as_ref()
            .and_then(|c| c.get("email"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        Some(SignedIn {
            name: email.unwrap_or(p.name),
            sign_out_token,
        })
    }
}
