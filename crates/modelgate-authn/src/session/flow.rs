//! The authorization-code flow with PKCE: `start` seals `state`, `nonce`,
//! the code verifier and the validated `rd` into a flow cookie (scoped to the
//! callback path, short-lived) and sends the browser to the IdP; `finish`
//! checks the callback's `state` against it (single use), exchanges the code,
//! verifies the ID token and seals the session cookie. Sign-out is in
//! [`super::sign_out`].

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::idp::{self, Endpoints, IdpError};
use super::redirect::safe_redirect;
use super::{SessionData, Sessions, cookie_values, set_cookie};
use crate::introspection::form_encode;
use crate::jwt::Provider;

/// Claims never kept in the session (one-time values of the sign-in).
const DROPPED_CLAIMS: [&str; 4] = ["nonce", "at_hash", "c_hash", "s_hash"];
/// Claims kept when the whole set would not fit in a cookie.
const ESSENTIAL_CLAIMS: [&str; 10] = [
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "email",
    "name",
    "preferred_username",
    "groups",
];

/// Where to send the browser, and the cookies to set on the way.
#[derive(Debug)]
pub struct Redirect {
    pub location: String,
    pub set_cookies: Vec<String>,
}

/// Why a sign-in step failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The browser's request is wrong: missing, expired or replayed `state`.
    #[error("{0}")]
    BadRequest(&'static str),
    /// A live session's sign-out without its token (see [`super::sign_out`]).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Idp(#[from] IdpError),
}

#[derive(Serialize, Deserialize)]
struct FlowData {
    state: String,
    nonce: String,
    verifier: String,
    rd: String,
    redirect_uri: String,
    iat: u64,
    exp: u64,
}

/// `application/x-www-form-urlencoded` pairs of a query (bounded).
pub fn query_params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .take(32)
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((dec(k)?, dec(v)?))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Sessions {
    /// The IdP's endpoints, discovered once (a failure is retried next time).
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, IdpError> {
        if let Some(e) = self.endpoints.load_full() {
            return Ok(e);
        }
        let e = Arc::new(idp::discover(&self.fetch, &self.cfg, &self.allowed_hosts).await?);
        self.endpoints.store(Some(e.clone()));
        Ok(e)
    }

    /// The login endpoint with `rd` (a path on this gateway).
    pub fn login_location(&self, rd: &str) -> String {
        format!("{}?rd={}", self.cfg.login_path, form_encode(rd))
    }

    /// `rd` if allowed, else the landing page.
    pub fn redirect_target(&self, rd: Option<&str>) -> String {
        rd.and_then(|r| safe_redirect(r, &self.cfg.allowed_redirects))
            .unwrap_or_else(|| self.cfg.landing_path.clone())
    }

    /// Starts a sign-in: the IdP's authorization URL and the flow cookie.
    pub async fn start(
        &self,
        rd: Option<&str>,
        redirect_uri: &str,
        now: u64,
        secure: bool,
    ) -> Result<Redirect, SignInError> {
        let ep = self.endpoints().await?;
        let rnd = |n| {
            self.sealer
                .random(n)
                .ok_or(SignInError::BadRequest("no randomness available"))
        };
        let flow = FlowData {
            state: rnd(24)?,
            nonce: rnd(24)?,
            verifier: rnd(32)?,
            rd: self.redirect_target(rd),
            redirect_uri: redirect_uri.to_string(),
            iat: now,
            exp: now.saturating_add(self.cfg.flow_lifetime.as_secs()),
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(flow.verifier.as_bytes()));
        let params = [
            ("response_type", "code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("scope", &self.cfg.scopes.join(" ")),
            ("state", &flow.state),
            ("nonce", &flow.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let sep = if ep.authorization.contains('?') {
            '&'
        } else {
            '?'
        };
        let plain = serde_json::to_vec(&flow).map_err(|_| SignInError::BadRequest("flow"))?;
        let sealed = self
            .sealer
            .seal(&self.flow_purpose(), &plain)
            .ok_or(SignInError::BadRequest("rd is too long"))?;
        Ok(Redirect {
            location: format!("{}{sep}{}", ep.authorization, query.join("&")),
            set_cookies: vec![set_cookie(
                &self.flow_cookie(),
                &sealed,
                &self.cfg.redirect_path,
                self.cfg.flow_lifetime.as_secs(),
                secure,
            )],
        })
    }

    fn flow_purpose(&self) -> String {
        format!("modelgate-flow:{}", self.cfg.cookie.name)
    }

    /// The flow the callback belongs to: its cookie must open, be current,
    /// name this `state`, and the `state` must not have been used before.
    fn take_flow(
        &self,
        headers: &HeaderMap,
        state: &str,
        now: u64,
    ) -> Result<FlowData, SignInError> {
        let flow = cookie_values(headers, &self.flow_cookie())
            .iter()
            .take(4)
            .filter_map(|v| self.sealer.open(&self.flow_purpose(), v))
            .filter_map(|p| serde_json::from_slice::<FlowData>(&p).ok())
            .find(|f| subtle::ConstantTimeEq::ct_eq(f.state.as_bytes(), state.as_bytes()).into())
            .ok_or(SignInError::BadRequest(
                "unknown or mismatched sign-in state",
            ))?;
        if flow.exp <= now {
            return Err(SignInError::BadRequest(
                "the sign-in took too long; start again",
            ));
        }
        if !self
            .used_states
            .insert(&flow.state, flow.iat, flow.exp, now)
        {
            return Err(SignInError::BadRequest(
                "this sign-in state was already used",
            ));
        }
        Ok(flow)
    }

    /// The callback: checks `state`, exchanges the code, verifies the ID
    /// token with `provider` and seals the session.
    pub(crate) async fn finish(
        &self,
        provider: &Provider,
        query: &str,
        headers: &HeaderMap,
        now: u64,
        secure: bool,
    ) -> Result<Redirect, SignInError> {
        let params = query_params(query);
        if param(&params, "error").is_some() {
            return Err(SignInError::BadRequest(
                "the identity provider refused the sign-in",
            ));
        }
        let (Some(state), Some(code)) = (param(&params, "state"), param(&params, "code")) else {
            return Err(SignInError::BadRequest("the callback lacks state or code"));
        };
        let flow = self.take_flow(headers, state, now)?;
        let ep = self.endpoints().await?;
        let grant = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", flow.redirect_uri.as_str()),
            ("code_verifier", flow.verifier.as_str()),
        ];
        let tokens = idp::token_call(&self.fetch, &self.cfg, &ep, &grant, self.cfg.timeout).await?;
        let (claims, id_exp) = idp::verify_id_token(
            provider,
            &self.cfg.client_id,
            &tokens.id_token,
            Some(&flow.nonce),
            now,
        )
        .await?;
        let session = SessionData {
            sid: self
                .sealer
                .random(16)
                .ok_or(SignInError::BadRequest("no randomness available"))?,
            iat: now,
            exp: now.saturating_add(self.cfg.cookie.lifetime.as_secs()),
            id_exp,
            claims,
            rt: tokens.refresh_token,
            idt: Some(tokens.id_token),
        };
        let sealed = self.seal_session(session)?;
        let secs = self.cfg.cookie.lifetime.as_secs();
        Ok(Redirect {
            location: self.redirect_target(Some(&flow.rd)),
            set_cookies: vec![
                set_cookie(&self.cfg.cookie.name, &sealed, "/", secs, secure),
                set_cookie(&self.flow_cookie(), "", &self.cfg.redirect_path, 0, secure),
            ],
        })
    }

    /// Seals a session; claims that would not fit are cut to the essentials.
    pub(crate) fn seal_session(&self, mut s: SessionData) -> Result<String, SignInError> {
        for c in DROPPED_CLAIMS {
            s.claims.remove(c);
        }
        let purpose = self.session_purpose();
        let seal = |s: &SessionData| {
            serde_json::to_vec(s)
                .ok()
                .and_then(|p| self.sealer.seal(&purpose, &p))
        };
        if let Some(v) = seal(&s) {
            return Ok(v);
        }
        s.claims = s
            .claims
            .into_iter()
            .filter(|(k, _)| ESSENTIAL_CLAIMS.contains(&k.as_str()))
            .collect::<Map<String, Value>>();
        s.rt = None;
        s.idt = None;
        seal(&s).ok_or(SignInError::BadRequest(
            "the ID token's claims do not fit in a cookie",
        ))
    }
}

impl crate::Authenticator {
    /// The sign-in callback, verifying the ID token as a Bearer JWT from the
    /// configured issuer is verified.
    pub async fn finish_sign_in(
        &self,
        query: &str,
        headers: &HeaderMap,
        now: u64,
        secure: bool,
    ) -> Result<Redirect, SignInError> {
        let Some(s) = &self.sessions else {
            return Err(SignInError::BadRequest("sign-in is not configured"));
        };
        let provider = self
            .providers
            .iter()
            .find(|p| p.rule.issuer == s.cfg.issuer)
            .ok_or(SignInError::BadRequest("sign-in issuer has no JWT rule"))?;
        s.finish(provider, query, headers, now, secure).await
    }
}
