//! Sign-out: a `POST` that carries the session's own sign-out token (a hash
//! of the session id, shown only in pages served to that session), so no
//! other site — and no prefetcher following a link — can sign a user out.
//! It revokes the session until it would have expired, clears the cookie
//! and, when the IdP has an end-session endpoint, sends the browser there
//! (RP-initiated logout). See `docs/signin.md` (Sign-out).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::flow::{Redirect, SignInError};
use super::{Sessions, set_cookie};
use crate::introspection::form_encode;

/// The form field (and header) that carries the sign-out token.
pub const TOKEN_FIELD: &str = "csrf";
pub const TOKEN_HEADER: &str = "x-csrf-token";

/// The signed-in browser, for the pages that show it.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user's e-mail, else the principal's name.
    pub name: String,
    /// What the sign-out form must send back.
    pub sign_out_token: String,
}

impl Sessions {
    /// The sign-out token of session `sid`: unguessable without the sid,
    /// which only the sealed cookie holds.
    pub(crate) fn sign_out_token(&self, sid: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"modelgate-sign-out\0");
        h.update(self.cfg.cookie.name.as_bytes());
        h.update(b"\0");
        h.update(sid.as_bytes());
        URL_SAFE_NO_PAD.encode(h.finalize())
    }

    /// Signs out. Without a session cookie there is nothing to end and
    /// nothing is cleared (a cross-site `POST` carries no `SameSite=Lax`
    /// cookie, so it cannot even clear one); a dead cookie is cleared; a live
    /// session needs its `token` back, else [`SignInError::Forbidden`]. The
    /// browser goes to `rd` (if allowed, else the landing page) — through
    /// the IdP's end-session endpoint when discovery names one, the session
    /// holds its ID token and `origin` (`scheme://host` of this gateway) is
    /// known: `id_token_hint`, `client_id` and `post_logout_redirect_uri` =
    /// that same allowed target.
    pub async fn sign_out(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
        rd: Option<&str>,
        origin: Option<&str>,
        now: u64,
        secure: bool,
    ) -> Result<Redirect, SignInError> {
        let target = self.redirect_target(rd);
        let clear = vec![set_cookie(&self.cfg.cookie.name, "", "/", 0, secure)];
        let s = match self.session(headers, now) {
            None => {
                return Ok(Redirect {
                    location: target,
                    set_cookies: Vec::new(),
                });
            }
            Some(Err(_)) => {
                return Ok(Redirect {
                    location: target,
                    set_cookies: clear,
                });
            }
            Some(Ok(s)) => s,
        };
        let expected = self.sign_out_token(&s.sid);
        let sent_ok = token.is_some_and(|t| {
            subtle::ConstantTimeEq::ct_eq(t.as_bytes(), expected.as_bytes()).into()
        });
        if !sent_ok {
            return Err(SignInError::Forbidden(
                "sign-out needs the token of the sign-out page; open it with GET and use its button",
            ));
        }
        self.revoked
            .insert(&s.sid, s.iat.saturating_add(1), s.exp, now);
        let location = match (s.idt, origin) {
            (Some(hint), Some(origin)) => self.end_session(&hint, origin, &target).await,
            _ => None,
        };
        Ok(Redirect {
            location: location.unwrap_or(target),
            set_cookies: clear,
        })
    }

    /// The IdP's end-session URL back to `target`, when discovery names one.
    async fn end_session(&self, hint: &str, origin: &str, target: &str) -> Option<String> {
        let back = if target.starts_with('/') {
            format!("{origin}{target}")
        } else {
            target.to_string()
        };
        let ep = self.endpoints().await.ok()?;
        let end = ep.end_session.as_deref()?;
        Some(end_session_url(end, hint, &self.cfg.client_id, &back))
    }
}

/// The IdP's end-session URL for an RP-initiated logout.
pub(crate) fn end_session_url(end: &str, hint: &str, client_id: &str, back: &str) -> String {
    let sep = if end.contains('?') { '&' } else { '?' };
    format!(
        "{end}{sep}id_token_hint={}&client_id={}&post_logout_redirect_uri={}",
        form_encode(hint),
        form_encode(client_id),
        form_encode(back)
    )
}
