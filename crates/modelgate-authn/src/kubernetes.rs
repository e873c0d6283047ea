//! Kubernetes TokenReview (`authentication.k8s.io/v1`), as Authorino does:
//! the API server says whether a bearer token is valid for the configured
//! audiences. Verdicts are cached briefly, by token digest, never past the
//! token's own `exp`. (Offline ServiceAccount-token checks are a JWT provider:
//! see [`crate::jwt::ProviderKind::ServiceAccount`].)

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use modelgate_config::identity::TokenReview;
use modelgate_core::{AuthFailure, AuthMethod, Grants, Principal};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cache::{RemoteChecks, Verdict, token_key};
use crate::fetch::{Fetch, HttpRequest};
use crate::jwt::service_account_namespace;
use crate::metrics::IdentityMetrics;

pub const NOT_AUTHENTICATED: &str = "Token is not authenticated";
pub const UNAVAILABLE: &str = "Kubernetes TokenReview is unavailable";

pub struct TokenReviewer {
    cfg: TokenReview,
    url: Uri,
    fetch: Arc<dyn Fetch>,
    checks: RemoteChecks,
}

impl TokenReviewer {
    pub fn new(
        cfg: TokenReview,
        fetch: Arc<dyn Fetch>,
        metrics: IdentityMetrics,
    ) -> Result<Self, String> {
        let base = cfg.api_server.to_string();
        let url = format!(
            "{}/apis/authentication.k8s.io/v1/tokenreviews",
            base.trim_end_matches('/')
        )
        .parse::<Uri>()
        .map_err(|e| e.to_string())?;
        Ok(Self {
            cfg,
            url,
            fetch,
            checks: RemoteChecks::new("tokenreview", metrics),
        })
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
        let status = match self.review(token).await {
            Ok(s) => s,
            Err(e) => {
                self.checks.count("error");
                tracing::warn!(api_server = %self.cfg.api_server, error = %e, "TokenReview failed; refusing the token");
                return Err(AuthFailure::Unavailable(UNAVAILABLE.into()));
            }
        };
        let (verdict, result) = judge(&status, &self.cfg.audiences);
        self.checks.count(result);
        let mut ttl = self.cfg.cache_ttl;
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(exp) = crate::jwt::parse::parse(token)
            .ok()
            .and_then(|j| j.times.exp)
        {
            ttl = ttl.min(Duration::from_secs(exp.saturating_sub(now_s)));
        }
        if !ttl.is_zero() {
            self.checks
                .remember(key, Instant::now() + ttl, verdict.clone());
        }
        verdict
    }

    async fn review(&self, token: &str) -> Result<Value, String> {
        let headers = api_server_headers(&self.cfg).await?;
        let mut spec = json!({ "token": token });
        if !self.cfg.audiences.is_empty() {
            spec["audiences"] = json!(self.cfg.audiences);
        }
        let body =
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec});
        let req = HttpRequest {
            method: Method::POST,
            uri: self.url.clone(),
            headers,
            body: Bytes::from(body.to_string()),
            timeout: self.cfg.timeout,
        };
        let resp = self.fetch.send(req).await?;
        if !matches!(resp.status, 200 | 201) {
            return Err(format!("HTTP status {}", resp.status));
        }
        parse_review(&resp.body)
    }
}

/// The `status` of a TokenReview answer.
pub fn parse_review(body: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    v.get("status")
        .cloned()
        .ok_or_else(|| "no status in the TokenReview answer".into())
}

/// The verdict on a TokenReview `status`, and the result label it is
/// counted under: authenticated only with `"authenticated": true` (the
/// boolean) and a non-empty `user.username`; then one of `audiences` (if
/// any) among the granted ones.
pub fn judge(status: &Value, audiences: &[String]) -> (Verdict, &'static str) {
    if status.get("authenticated").and_then(Value::as_bool) != Some(true) {
        return (
            Err(AuthFailure::InvalidToken(NOT_AUTHENTICATED.into())),
            "inactive",
        );
    }
    let granted: Vec<String> = status
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !audiences.is_empty() && !granted.iter().any(|a| audiences.contains(a)) {
        return (Err(AuthFailure::AudienceNotAllowed), "active");
    }
    let user = status.get("user").cloned().unwrap_or(Value::Null);
    (principal(user, granted), "active")
}

fn principal(user: Value, audiences: Vec<String>) -> Verdict {
    let username = user
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if username.is_empty() {
        return Err(AuthFailure::InvalidToken(NOT_AUTHENTICATED.into()));
    }
    let groups = user
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let claims = match user {
        Value::Object(m) => Some(Arc::new(m)),
        _ => None,
    };
    Ok(Principal {
        method: AuthMethod::KubernetesTokenReview,
        namespace: service_account_namespace(&username),
        name: username.clone(),
        issuer: None,
        subject: username,
        audiences,
        presenter: None,
        groups,
        grants: Grants::Nothing,
        claims,
    })
}

#[cfg(test)]
mod tests;

pub mod access;

/// The headers of a call to the Kubernetes API server: our own token (read
/// fresh, as kubelet rotates it; marked sensitive) and JSON both ways.
pub(crate) async fn api_server_headers(cfg: &TokenReview) -> Result<HeaderMap, String> {
    let own = match &cfg.token_file {
        Some(p) => tokio::fs::read_to_string(p)
            .await
            .map_err(|e| format!("{}: {e}", p.display()))?,
        None => return Err("no token_file for the API server".into()),
    };
    let mut headers = HeaderMap::new();
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", own.trim()))
        .map_err(|_| "the API-server token is not header-safe".to_string())?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(headers)
}
