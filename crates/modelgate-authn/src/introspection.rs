//! OAuth2 token introspection (RFC 7662): the endpoint says whether an opaque
//! token is active. Answers are cached by token digest until the token's
//! `exp` or `cache_ttl`, whichever comes first; `active: false` is a 401.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method};
use modelgate_config::identity::Introspection;
use modelgate_core::{AuthFailure, AuthMethod, Grants, Principal};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::cache::{RemoteChecks, Verdict, token_key};
use crate::fetch::{Fetch, HttpRequest};
use crate::metrics::IdentityMetrics;

pub const NOT_ACTIVE: &str = "Token is not active";
pub const UNAVAILABLE: &str = "Token introspection is unavailable";

/// `application/x-www-form-urlencoded` value encoding.
pub(crate) fn form_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'*');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

pub struct Introspector {
    cfg: Introspection,
    fetch: Arc<dyn Fetch>,
    checks: RemoteChecks,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

impl Introspector {
    pub fn new(cfg: Introspection, fetch: Arc<dyn Fetch>, metrics: IdentityMetrics) -> Self {
        Self {
            cfg,
            fetch,
            checks: RemoteChecks::new("introspection", metrics),
        }
    }

    pub async fn verify(&self, token: &str, now: SystemTime) -> Verdict {
        let key = token_key(token);
        if let Some(v) = self.checks.cached(&key) {
            return v;
        }
        self.checks.once(key, || self.fresh(key, token, now)).await
    }

    /// A check not answered from the cache (one per identical concurrent set).
    async fn fresh(&self, key: [u8; 32], token: &str, now: SystemTime) -> Verdict {
        let answer = match self.ask(token).await {
            Ok(a) => a,
            Err(e) => {
                self.checks.count("error");
                tracing::warn!(endpoint = %modelgate_core::redact_url(&self.cfg.endpoint.to_string()), error = %e, "token introspection failed; refusing the token");
                return Err(AuthFailure::Unavailable(UNAVAILABLE.into()));
            }
        };
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let exp = answer.get("exp").and_then(Value::as_u64);
        let (verdict, result) = judge(answer, now_s, &self.cfg.audiences);
        self.checks.count(result);
        let mut ttl = self.cfg.cache_ttl;
        if let Some(e) = exp {
            ttl = ttl.min(Duration::from_secs(e.saturating_sub(now_s)));
        }
        if !ttl.is_zero() {
            self.checks
                .remember(key, Instant::now() + ttl, verdict.clone());
        }
        verdict
    }

    async fn ask(&self, token: &str) -> Result<Map<String, Value>, String> {
        let mut headers = HeaderMap::new();
        let basic = format!(
            "{}:{}",
            form_encode(&self.cfg.client_id),
            form_encode(self.cfg.client_secret.expose())
        );
        let mut auth = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(basic)))
            .map_err(|_| "client credentials are not header-safe".to_string())?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let body = format!("token={}&token_type_hint=access_token", form_encode(token));
        let req = HttpRequest {
            method: Method::POST,
            uri: self.cfg.endpoint.clone(),
            headers,
            body: Bytes::from(body),
            timeout: self.cfg.timeout,
        };
        let resp = self.fetch.send(req).await?;
        if resp.status != 200 {
            return Err(format!("HTTP status {}", resp.status));
        }
        parse_answer(&resp.body)
    }
}

/// An introspection answer: a JSON object, else an error.
pub fn parse_answer(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err("the answer is not a JSON object".into()),
    }
}

/// The verdict on an introspection answer at `now_s`, and the result label
/// it is counted under: active only with `"active": true` (the boolean) and
/// an `exp`, if any, still ahead; then one of `audiences` (if any) granted.
pub fn judge(
    answer: Map<String, Value>,
    now_s: u64,
    audiences: &[String],
) -> (Verdict, &'static str) {
    let exp = answer.get("exp").and_then(Value::as_u64);
    let active = answer.get("active").and_then(Value::as_bool) == Some(true)
        && exp.is_none_or(|e| e > now_s);
    if !active {
        return (
            Err(AuthFailure::InvalidToken(NOT_ACTIVE.into())),
            "inactive",
        );
    }
    let aud = strings(answer.get("aud"));
    if !audiences.is_empty() && !aud.iter().any(|a| audiences.contains(a)) {
        return (Err(AuthFailure::AudienceNotAllowed), "active");
    }
    (Ok(principal(answer, aud)), "active")
}

fn principal(answer: Map<String, Value>, audiences: Vec<String>) -> Principal {
    let s = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_string);
    let subject = s("sub")
        .or_else(|| s("username"))
        .or_else(|| s("client_id"))
        .unwrap_or_default();
    Principal {
        method: AuthMethod::Introspection,
        name: subject.clone(),
        issuer: s("iss"),
        subject,
        audiences,
        presenter: s("client_id"),
        namespace: None,
        groups: strings(answer.get("groups")),
        grants: Grants::Nothing,
        claims: Some(Arc::new(answer)),
    }
}

#[cfg(test)]
mod tests;
