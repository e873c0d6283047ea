//! `auth.kubernetes`: projected ServiceAccount tokens (offline) and the
//! TokenReview API (online).

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use serde::Deserialize;

use super::jwt::{JwtRule, RawJwtRule};
use crate::error::Collector;
use crate::fields::{Zero, duration, existing_file, http_url, strings};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    #[serde(default)]
    pub service_account_tokens: Option<RawJwtRule>,
    #[serde(default)]
    pub token_review: Option<RawTokenReview>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenReview {
    #[serde(default)]
    pub api_server: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub token_file: Option<String>,
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    #[serde(default)]
    pub cache_ttl: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `auth.kubernetes`.
#[derive(Debug, Clone, Default)]
pub struct Kubernetes {
    /// Offline verification of projected ServiceAccount tokens.
    pub service_account_tokens: Option<JwtRule>,
    /// Online verification with the TokenReview API.
    pub token_review: Option<TokenReview>,
}

#[derive(Debug, Clone)]
pub struct TokenReview {
    pub api_server: Uri,
    /// CA bundle for the API server; `None`: the system's web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// modelgate's own bearer token for the API server (read per request, so
    /// a rotated projected token is picked up).
    pub token_file: Option<PathBuf>,
    /// Audiences the token must be valid for; empty: the API server's own.
    pub audiences: Vec<String>,
    pub cache_ttl: Duration,
    pub timeout: Duration,
}

pub(super) const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// An optional file with an in-cluster default that is used only if present.
pub(super) fn in_cluster_file(
    base: &Path,
    v: Option<&str>,
    default: &str,
    key: &str,
    c: &mut Collector,
) -> Option<PathBuf> {
    match v {
        Some(s) => Some(existing_file(base, s, key, c)),
        None => Path::new(default).is_file().then(|| PathBuf::from(default)),
    }
}

pub(super) fn token_review(
    raw: RawTokenReview,
    base: &Path,
    c: &mut Collector,
) -> Option<TokenReview> {
    let key = "auth.kubernetes.token_review";
    let api_server = http_url(
        raw.api_server
            .as_deref()
            .unwrap_or("https://kubernetes.default.svc"),
        &format!("{key}.api_server"),
        c,
    )?;
    let token_file = in_cluster_file(
        base,
        raw.token_file.as_deref(),
        &format!("{SA_DIR}/token"),
        &format!("{key}.token_file"),
        c,
    );
    if token_file.is_none() {
        c.push(
            format!("{key}.token_file"),
            "no bearer token for the API server (not running in a pod?)",
            "set token_file to a token allowed to create tokenreviews",
        );
    }
    Some(TokenReview {
        api_server,
        ca_file: in_cluster_file(
            base,
            raw.ca_file.as_deref(),
            &format!("{SA_DIR}/ca.crt"),
            &format!("{key}.ca_file"),
            c,
        ),
        token_file,
        audiences: strings(raw.audiences, &format!("{key}.audiences"), c),
        cache_ttl: duration(
            raw.cache_ttl.as_deref(),
            Duration::from_secs(60),
            Zero::Refused,
            &format!("{key}.cache_ttl"),
            c,
        ),
        timeout: duration(
            raw.timeout.as_deref(),
            Duration::from_secs(5),
            Zero::Refused,
            &format!("{key}.timeout"),
            c,
        ),
    })
}
