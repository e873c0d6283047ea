//! The decision explainer ("why was this request denied?"): a described
//! request — method, path, headers, and an identity to assume (an API-key
//! name or token claims) — goes through the same decision function as
//! `serve` and `modelgate check`, over the running configuration, and the
//! decision comes back with its reasons. Nothing is called or recorded.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use modelgate_authz::Verdict;
use modelgate_core::{AuthFailure, Reject};
use serde::{Deserialize, Serialize};

use super::console::Console;
use crate::decide::{Ask, Claimed, GivenModel, Identity};

/// At most this many described headers.
const MAX_HEADERS: usize = 32;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Question {
    #[serde(default)]
    pub method: Option<String>,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Assume the API-key identity with this name.
    #[serde(default)]
    pub identity: Option<String>,
    /// Assume a token identity with these claims.
    #[serde(default)]
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// The model named in the body (OpenAI `model`).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub listener: usize,
    #[serde(default)]
    pub source_ip: Option<IpAddr>,
    /// Describe a request to the admin listener (where `/admin` routes)
    /// rather than to `listen[listener]`.
    #[serde(default)]
    pub admin_listener: bool,
}

#[derive(Serialize)]
pub(super) struct Answer {
    /// The request as described: method and path (with query).
    pub asked: String,
    /// `allow` or `deny`.
    pub decision: &'static str,
    pub status: u16,
    pub reason: Option<String>,
    pub identity: Option<String>,
    pub protocol: Option<&'static str>,
    pub operation: Option<&'static str>,
    pub model: Option<String>,
    pub basis: Option<&'static str>,
    pub policy: Option<String>,
    pub dry_run: Vec<String>,
    pub audit: Vec<String>,
    pub why: Vec<String>,
}

/// Explains `q` against the running configuration.
pub(super) async fn explain(c: &Console, q: Question) -> Result<Answer, Reject> {
    let p = c.shared.pipeline.load_full();
    let listener = p.listeners.get(q.listener).ok_or_else(|| {
        Reject::BadRequest(format!(
            "listener {}: there are {}",
            q.listener,
            p.listeners.len()
        ))
    })?;
    let method = Method::from_bytes(q.method.as_deref().unwrap_or("GET").as_bytes())
        .map_err(|_| Reject::BadRequest("method: not an HTTP method".into()))?;
    let headers = headers(&q.headers)?;
    let claimed = claimed(&p.authn, q.identity.as_deref(), q.claims)?;
    let asked = format!("{method} {}", q.path);
    let (path, query) = match q.path.split_once('?') {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (q.path.clone(), None),
    };
    let ask = Ask {
        method,
        path,
        query,
        authority: None,
        headers,
        client: SocketAddr::new(
            q.source_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            40000,
        ),
        local: listener.config.address,
        peer: None,
        listener: q.listener,
        received: Instant::now(),
    };
    let decider = if q.admin_listener {
        p.admin_decider()
    } else {
        p.decider()
    };
    let d = decider
        .decide(ask, claimed, &mut GivenModel(q.model), true)
        .await;
    Ok(answer(asked, d))
}

/// The decision, as the explainer shows it.
fn answer(asked: String, d: crate::decide::Decision) -> Answer {
    let identity = match &d.identity {
        Identity::Verified(a) => Some(format!(
            "{} {} (verified)",
            a.principal().method,
            a.principal().name
        )),
        Identity::Assumed(pr) => Some(format!("{} {} (assumed)", pr.method, pr.name)),
        Identity::Anonymous => Some("anonymous".into()),
        Identity::NotNeeded => Some("none needed (public route)".into()),
        _ => None,
    };
    let allowed = matches!(
        (&d.result, d.ruling.as_ref().map(|r| &r.verdict)),
        (Ok(_), Some(Verdict::Allow { .. }))
    );
    let (status, reason) = match &d.result {
        Err(r) => (r.status().as_u16(), Some(r.client_message())),
        Ok(_) if allowed => (200, None),
        Ok(_) => (500, Some("allowed without a verdict".into())),
    };
    let ruling = d.ruling.as_ref();
    Answer {
        asked,
        decision: if allowed { "allow" } else { "deny" },
        status,
        reason,
        identity,
        protocol: d.route.as_ref().map(|r| r.protocol.as_str()),
        operation: d.route.as_ref().map(|r| r.operation.as_str()),
        model: d
            .route
            .as_ref()
            .map(|r| r.model.log_name().to_string())
            .filter(|m| !m.is_empty()),
        basis: ruling.and_then(|r| r.verdict.basis()).map(|b| b.as_str()),
        policy: ruling
            .and_then(|r| r.verdict.policy())
            .map(|p| p.name.to_string()),
        dry_run: ruling
            .map(|r| {
                r.dry_run
                    .iter()
                    .map(|w| format!("{} would {}", w.policy.name, w.would))
                    .collect()
            })
            .unwrap_or_default(),
        audit: ruling
            .map(|r| r.audit.iter().map(|p| p.name.to_string()).collect())
            .unwrap_or_default(),
        why: d.explain,
    }
}

/// The described headers (at most [`MAX_HEADERS`]).
fn headers(given: &BTreeMap<String, String>) -> Result<HeaderMap, Reject> {
    if given.len() > MAX_HEADERS {
        return Err(Reject::BadRequest(format!(
            "headers: at most {MAX_HEADERS}"
        )));
    }
    let mut headers = HeaderMap::new();
    for (k, v) in given {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) else {
            return Err(Reject::BadRequest(format!(
                "headers: {k:?} is not a valid header"
            )));
        };
        headers.append(name, value);
    }
    Ok(headers)
}

/// The identity to assume, through the running identity sources' mappings
/// (as `modelgate check --identity/--claims`), or the request's own.
fn claimed(
    authn: &modelgate_authn::Authenticator,
    identity: Option<&str>,
    claims: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<Claimed, Reject> {
    if let Some(name) = identity {
        return Ok(match authn.assume_key(name, SystemTime::now()) {
            Some(principal) => Claimed::Assumed(principal),
            None => Claimed::Refused(AuthFailure::InvalidApiKey),
        });
    }
    if let Some(claims) = claims {
        if !claims.get("sub").is_some_and(serde_json::Value::is_string) {
            return Err(Reject::BadRequest("claims: needs a \"sub\" string".into()));
        }
        return Ok(Claimed::Assumed(Arc::new(authn.assume_claims(claims))));
    }
    Ok(Claimed::FromRequest)
}
