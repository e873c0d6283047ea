//! Talking to the IdP for sign-in: its discovery document (authorization,
//! token and end-session endpoints, fetched once and kept), the
//! authorization-code exchange (client_secret_basic or _post, bounded by the
//! fetch deadline and body cap), and the ID token checks — signature with
//! the issuer's JWT rule keys, `iss`, `aud` = client_id, `azp`, times and
//! `nonce`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Uri};
use modelgate_config::identity::{SignIn, host_allowed};
use serde_json::{Map, Value};

use crate::fetch::{Fetch, HttpRequest};
use crate::introspection::form_encode;
use crate::jwt::{Provider, parse};

/// What sign-in needs from the discovery document.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorization: String,
    pub token: Uri,
    pub end_session: Option<String>,
    /// `client_secret_post` only when the IdP does not take `_basic`.
    pub post_secret: bool,
}

/// Why a sign-in step failed (for logs; the browser gets a short page).
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    #[error("identity provider answered badly: {0}")]
    BadAnswer(String),
    #[error("ID token refused: {0}")]
    IdToken(String),
}

fn endpoint(doc: &Value, name: &str, allowed: &[String]) -> Result<Option<Uri>, IdpError> {
    let Some(s) = doc.get(name).and_then(Value::as_str) else {
        return Ok(None);
    };
    let uri: Uri = s
        .parse()
        .map_err(|_| IdpError::BadAnswer(format!("{name} is not a URL")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || !host_allowed(allowed, &uri) {
        return Err(IdpError::BadAnswer(format!(
            "{name} is not on an allowed host"
        )));
    }
    Ok(Some(uri))
}

/// Parses a discovery document for `issuer`; endpoints must be on `allowed` hosts.
pub fn parse_endpoints(
    body: &[u8],
    issuer: &str,
    allowed: &[String],
) -> Result<Endpoints, IdpError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|_| IdpError::BadAnswer("discovery is not JSON".into()))?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(IdpError::BadAnswer("discovery names another issuer".into()));
    }
    let need = |n: &str| {
        endpoint(&doc, n, allowed)?
            .ok_or_else(|| IdpError::BadAnswer(format!("discovery has no {n}")))
    };
    let methods: Vec<&str> = doc
        .get("token_endpoint_auth_methods_supported")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Ok(Endpoints {
        authorization: need("authorization_endpoint")?.to_string(),
        token: need("token_endpoint")?,
        end_session: endpoint(&doc, "end_session_endpoint", allowed)?.map(|u| u.to_string()),
        post_secret: !methods.is_empty()
            && !methods.contains(&"client_secret_basic")
            && methods.contains(&"client_secret_post"),
    })
}

pub async fn discover(
    fetch: &Arc<dyn Fetch>,
    cfg: &SignIn,
    allowed: &[String],
) -> Result<Endpoints, IdpError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        cfg.issuer.trim_end_matches('/')
    );
    let uri: Uri = url
        .parse()
        .map_err(|_| IdpError::BadAnswer("issuer is not a URL".into()))?;
    let r = fetch
        .send(HttpRequest::get(uri, cfg.timeout))
        .await
        .map_err(IdpError::Unavailable)?;
    if r.status != 200 {
        return Err(IdpError::Unavailable(format!(
            "discovery answered {}",
            r.status
        )));
    }
    parse_endpoints(&r.body, &cfg.issuer, allowed)
}

/// The token endpoint's answer.
#[derive(Debug)]
pub struct Tokens {
    pub id_token: String,
    pub refresh_token: Option<String>,
}

/// Exchanges `code` (or, with `refresh`, a refresh token) at the token endpoint.
pub async fn token_call(
    fetch: &Arc<dyn Fetch>,
    cfg: &SignIn,
    ep: &Endpoints,
    grant: &[(&str, &str)],
    timeout: Duration,
) -> Result<Tokens, IdpError> {
    let mut form: Vec<String> = grant
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect();
    let mut req = HttpRequest::get(ep.token.clone(), timeout);
    req.method = Method::POST;
    req.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if ep.post_secret {
        form.push(format!("client_id={}", form_encode(&cfg.client_id)));
        form.push(format!(
            "client_secret={}",
            form_encode(cfg.client_secret.expose())
        ));
    } else {
        let pair = format!(
            "{}:{}",
            form_encode(&cfg.client_id),
            form_encode(cfg.client_secret.expose())
        );
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        let mut v = HeaderValue::from_str(&v)
            .map_err(|_| IdpError::BadAnswer("client credentials are not a header".into()))?;
        v.set_sensitive(true);
        req.headers.insert(http::header::AUTHORIZATION, v);
    }
    req.body = Bytes::from(form.join("&"));
    let r = fetch.send(req).await.map_err(IdpError::Unavailable)?;
    if r.status != 200 {
        return Err(IdpError::BadAnswer(format!(
            "token endpoint answered {}",
            r.status
        )));
    }
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|_| IdpError::BadAnswer("token answer is not JSON".into()))?;
    let id_token = v
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| IdpError::BadAnswer("no id_token in the token answer".into()))?
        .to_string();
    Ok(Tokens {
        id_token,
        refresh_token: v
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Verifies an ID token from `provider` for `client_id`: asymmetric
/// signature with the issuer's keys, `iss`, `aud`, `azp`, times (with the
/// rule's skew; `exp` required) and, on sign-in, `nonce`. Returns its claims
/// and `exp`.
pub async fn verify_id_token(
    provider: &Provider,
    client_id: &str,
    token: &str,
    nonce: Option<&str>,
    now: u64,
) -> Result<(Map<String, Value>, u64), IdpError> {
    let bad = |s: &str| IdpError::IdToken(s.to_string());
    let jwt = parse::parse(token).map_err(bad)?;
    if jwt.alg.is_hmac() {
        return Err(bad("ID tokens must be signed with the issuer's keys"));
    }
    if jwt.iss.as_deref() != Some(provider.rule.issuer.as_str()) {
        return Err(bad("wrong issuer"));
    }
    if !jwt.aud.iter().any(|a| a == client_id) {
        return Err(bad("issued for another client"));
    }
    let azp = jwt.claims.get("azp").and_then(Value::as_str);
    if (jwt.aud.len() > 1 || azp.is_some()) && azp != Some(client_id) {
        return Err(bad("authorized party is another client"));
    }
    jwt.times
        .check(now, provider.rule.clock_skew.as_secs(), true)
        .map_err(bad)?;
    if let Some(n) = nonce {
        let got = jwt
            .claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let same: bool = subtle::ConstantTimeEq::ct_eq(got.as_bytes(), n.as_bytes()).into();
        if !same {
            return Err(bad("nonce does not match"));
        }
    }
    provider
        .check_signature(&jwt)
        .await
        .map_err(|e| IdpError::IdToken(e.reason().to_string()))?;
    let exp = jwt.times.exp.unwrap_or(now);
    Ok((jwt.claims, exp))
}
