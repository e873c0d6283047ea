//! The `wristband:` section: a short-lived JWT modelgate signs after a
//! decision and sends upstream in a header (Authorino's "wristband"), and the
//! keys it is signed with. The first key signs; every listed key is published.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use crate::error::Collector;
use crate::fields::{Zero, duration, existing_file, header_name, http_url};
use crate::types::{Auth, CredentialSource, Listener};

/// The header the token travels in when `header` is not set.
pub const DEFAULT_HEADER: &str = "x-modelgate-wristband";
const DEFAULT_TTL: Duration = Duration::from_secs(300);
const MAX_TTL: Duration = Duration::from_secs(3600);

/// `wristband:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWristband {
    pub issuer: String,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub algorithm: Option<String>,
    pub signing_keys: Vec<String>,
}

/// The signature algorithm of the signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WristbandAlgorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl WristbandAlgorithm {
    /// The JOSE `alg` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            WristbandAlgorithm::Es256 => "ES256",
            WristbandAlgorithm::EdDsa => "EdDSA",
        }
    }
}

/// The validated `wristband:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Wristband {
    /// `iss` of every token, and the base of the discovery URLs; an http(s)
    /// URL without a trailing `/`.
    pub issuer: String,
    /// The issuer URL's path ("" or `/prefix`): discovery is served at
    /// `<issuer_path>/.well-known/openid-configuration`.
    pub issuer_path: String,
    /// The header the token is sent upstream in (a client's is always removed).
    pub header: HeaderName,
    /// Token lifetime (default 5m, at most 1h).
    pub ttl: Duration,
    /// `aud`; `None`: the model's name.
    pub audience: Option<String>,
    /// The algorithm of `signing_keys[0]` (default ES256).
    pub algorithm: WristbandAlgorithm,
    /// PKCS#8 PEM private keys: the first signs, all are published in the JWKS.
    pub signing_keys: Vec<PathBuf>,
}

/// Headers that can never carry the token: they describe the connection or
/// the body, or carry the client's own credential.
const REFUSED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
    "content-type",
    "authorization",
    "cookie",
];

pub(crate) fn wristband(
    raw: Option<RawWristband>,
    listeners: Option<&[Listener]>,
    auth: Option<&Auth>,
    base: &Path,
    c: &mut Collector,
) -> Option<Wristband> {
    let raw = raw?;
    let issuer = http_url(&raw.issuer, "wristband.issuer", c);
    if let Some(u) = &issuer
        && u.query().is_some()
    {
        c.push(
            "wristband.issuer",
            "the issuer URL has a query",
            "write the issuer as https://host[:port][/path] with no query (OIDC discovery appends /.well-known/openid-configuration)",
        );
    }
    let header = header(raw.header.as_deref(), listeners, auth, c);
    let ttl = duration(
        raw.ttl.as_deref(),
        DEFAULT_TTL,
        Zero::Refused,
        "wristband.ttl",
        c,
    );
    if ttl > MAX_TTL {
        c.push(
            "wristband.ttl",
            format!("{}s is longer than the 1h maximum", ttl.as_secs()),
            "a wristband is a short-lived token: use 5m (the default) or at most 1h",
        );
    }
    let algorithm = match raw.algorithm.as_deref() {
        None | Some("ES256") => Some(WristbandAlgorithm::Es256),
        Some("EdDSA") => Some(WristbandAlgorithm::EdDsa),
        Some(other) => {
            c.push(
                "wristband.algorithm",
                format!("unsupported algorithm {other:?}"),
                "use ES256 (the default) or EdDSA",
            );
            None
        }
    };
    if raw.signing_keys.is_empty() {
        c.push(
            "wristband.signing_keys",
            "no signing key",
            "list at least one PKCS#8 PEM private key file (e.g. `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)",
        );
    }
    let signing_keys = raw
        .signing_keys
        .iter()
        .enumerate()
        .map(|(i, k)| existing_file(base, k, &format!("wristband.signing_keys[{i}]"), c))
        .collect();
    let audience = raw.audience.filter(|a| {
        let ok = !a.trim().is_empty();
        if !ok {
            c.push(
                "wristband.audience",
                "empty audience",
                "remove it (the model name is then the audience) or name the upstream",
            );
        }
        ok
    });
    let issuer_path = issuer
        .as_ref()
        .map(|u| u.path().trim_end_matches('/').to_string());
    Some(Wristband {
        issuer: raw.issuer.trim_end_matches('/').to_string(),
        issuer_path: issuer_path?,
        header: header?,
        ttl,
        audience,
        algorithm: algorithm?,
        signing_keys,
    })
}

fn header(
    raw: Option<&str>,
    listeners: Option<&[Listener]>,
    auth: Option<&Auth>,
    c: &mut Collector,
) -> Option<HeaderName> {
    const KEY: &str = "wristband.header";
    let name = header_name(raw.unwrap_or(DEFAULT_HEADER), KEY, c)?;
    let fix = format!("pick a header of its own, e.g. {DEFAULT_HEADER} (the default)");
    if REFUSED.contains(&name.as_str()) {
        c.push(
            KEY,
            format!("{name} cannot carry the wristband: it is hop-by-hop, framing or the client's credential"),
            fix,
        );
        return None;
    }
    let credential = listeners
        .into_iter()
        .flatten()
        .enumerate()
        .find_map(|(i, l)| {
            l.credentials.iter().find_map(|s| match s {
                CredentialSource::Header { name: h } if *h == name => Some(i),
                _ => None,
            })
        });
    if let Some(i) = credential {
        c.push(
            KEY,
            format!("{name} is a credential header of listen[{i}] (stripped before forwarding)"),
            fix,
        );
        return None;
    }
    if auth.and_then(|a| a.identity_header.as_ref()) == Some(&name) {
        c.push(KEY, format!("{name} is also auth.identity_header"), fix);
        return None;
    }
    Some(name)
}

#[cfg(test)]
mod tests;
