//! `auth.introspection`: OAuth 2.0 token introspection (RFC 7662).

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use modelgate_core::Secret;
use serde::Deserialize;

use crate::error::Collector;
use crate::fields::{Zero, duration, existing_file, http_url, strings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntrospection {
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    #[serde(default)]
    pub cache_ttl: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `auth.introspection` (RFC 7662).
#[derive(Debug, Clone)]
pub struct Introspection {
    pub endpoint: Uri,
    pub client_id: String,
    pub client_secret: Secret,
    pub ca_file: Option<PathBuf>,
    /// If set, the response's `aud` must name one of these.
    pub audiences: Vec<String>,
    /// Longest an answer is cached (never past the token's `exp`).
    pub cache_ttl: Duration,
    pub timeout: Duration,
}

pub(super) fn introspection(
    raw: RawIntrospection,
    base: &Path,
    c: &mut Collector,
) -> Option<Introspection> {
    let key = "auth.introspection";
    if raw.client_id.is_empty() {
        c.push(
            format!("{key}.client_id"),
            "empty client_id",
            "write the client registered for introspection",
        );
    }
    if raw.client_secret.is_empty() {
        c.push(
            format!("{key}.client_secret"),
            "empty client_secret",
            "write it as ${ENV_VAR} so it stays out of the file",
        );
    }
    Some(Introspection {
        endpoint: http_url(&raw.endpoint, &format!("{key}.endpoint"), c)?,
        client_id: raw.client_id,
        client_secret: Secret::new(raw.client_secret),
        ca_file: raw
            .ca_file
            .as_deref()
            .map(|f| existing_file(base, f, &format!("{key}.ca_file"), c)),
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
