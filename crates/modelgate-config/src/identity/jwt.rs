//! `auth.jwt` and `auth.jwks`: JWT issuers (Istio `jwtRules`) and how their
//! key sets are fetched.

use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Uri};
use modelgate_core::Secret;
use serde::Deserialize;

use crate::error::Collector;
use crate::fields::{Zero, duration, header_name, http_url, strings};

/// `auth.jwks`: how remote key sets are fetched, for every JWT rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwks {
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    #[serde(default)]
    pub refresh_interval: Option<String>,
    #[serde(default)]
    pub unknown_kid_refetch_interval: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtRule {
    pub issuer: Option<String>,
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    #[serde(default, alias = "jwksUri")]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub jwks: Option<String>,
    #[serde(default, alias = "fromHeaders")]
    pub from_headers: Option<Vec<RawJwtHeader>>,
    #[serde(default, alias = "fromParams")]
    pub from_params: Option<Vec<String>>,
    #[serde(default, alias = "fromCookies")]
    pub from_cookies: Option<Vec<String>>,
    #[serde(default, alias = "forwardOriginalToken")]
    pub forward_original_token: Option<bool>,
    #[serde(default, alias = "outputClaimToHeaders")]
    pub output_claim_to_headers: Option<Vec<RawClaimToHeader>>,
    #[serde(default, alias = "outputPayloadToHeader")]
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub require_expiration: Option<bool>,
    #[serde(default)]
    pub clock_skew: Option<String>,
    #[serde(default)]
    pub hmac_secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtHeader {
    pub name: String,
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaimToHeader {
    pub header: String,
    pub claim: String,
}

/// `auth.jwks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// Hosts (`host` or `host:port`, lower-case) key sets and discovery
    /// documents may be fetched from. Defaults to the hosts written in the
    /// rules' `issuer` and `jwks_uri`; a discovered `jwks_uri` must match too.
    pub allowed_hosts: Vec<String>,
    /// Whether `allowed_hosts` was written (else derived from the rules).
    pub allowed_hosts_explicit: bool,
    pub refresh_interval: Duration,
    /// Least time between two refetches caused by an unknown `kid`.
    pub unknown_kid_refetch_interval: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            allowed_hosts_explicit: false,
            refresh_interval: Duration::from_secs(20 * 60),
            unknown_kid_refetch_interval: Duration::from_secs(30),
        }
    }
}

/// Where a rule's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `jwks_uri`.
    Uri(Uri),
    /// OIDC discovery: `<issuer>/.well-known/openid-configuration` → `jwks_uri`.
    Discovery(Uri),
    /// `jwks`: an inline JSON Web Key Set.
    Inline(String),
}

/// Where a token may be carried (`from_headers` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtHeader {
    pub name: HeaderName,
    /// Stripped before decoding; a value without it is not this rule's token.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    pub header: HeaderName,
    /// Claim name; `a.b.c` reaches into nested objects.
    pub claim: String,
}

/// One JWT issuer (an Istio `jwtRules` entry).
#[derive(Debug, Clone)]
pub struct JwtRule {
    pub issuer: String,
    /// Empty: no audience check (as Istio/Envoy).
    pub audiences: Vec<String>,
    pub keys: JwksSource,
    /// Header locations; with no location at all, `Authorization: Bearer` and
    /// the `access_token` query parameter (Istio's defaults).
    pub from_headers: Vec<JwtHeader>,
    pub from_params: Vec<String>,
    pub from_cookies: Vec<String>,
    pub forward_original_token: bool,
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    pub output_payload_to_header: Option<HeaderName>,
    /// JWKS fetch timeout.
    pub timeout: Duration,
    pub require_expiration: bool,
    pub clock_skew: Duration,
    /// Shared secret that enables HS256/384/512 for this issuer (never logged).
    pub hmac_secret: Option<Secret>,
}

/// `host` or `host:port` of a URI, lower-case, the way `allowed_hosts` lists it.
pub fn uri_host(uri: &Uri) -> Option<String> {
    uri.authority().map(|a| a.as_str().to_ascii_lowercase())
}

/// Whether `uri`'s host is allowed: `host:port` matches exactly, `host`
/// matches that host on any port.
pub fn host_allowed(allowed: &[String], uri: &Uri) -> bool {
    let (Some(auth), Some(host)) = (uri_host(uri), uri.host()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    allowed.iter().any(|a| *a == auth || *a == host)
}

pub(super) fn jwt_rule(
    raw: RawJwtRule,
    key: &str,
    default_issuer: Option<&str>,
    c: &mut Collector,
) -> Option<JwtRule> {
    let issuer = match raw.issuer.or_else(|| default_issuer.map(str::to_string)) {
        Some(i) if !i.is_empty() => i,
        _ => {
            c.push(
                format!("{key}.issuer"),
                "missing issuer",
                "write the issuer exactly as the tokens' `iss` claim",
            );
            return None;
        }
    };
    let keys = keys_source(raw.jwks_uri, raw.jwks, &issuer, key, c)?;
    let from_headers = raw
        .from_headers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let name = header_name(&h.name, &format!("{key}.from_headers[{i}].name"), c)?;
            Some(JwtHeader {
                name,
                prefix: h.prefix.unwrap_or_default(),
            })
        })
        .collect();
    let output_claim_to_headers = claim_headers(raw.output_claim_to_headers, key, c);
    let output_payload_to_header = raw
        .output_payload_to_header
        .as_deref()
        .and_then(|h| header_name(h, &format!("{key}.output_payload_to_header"), c));
    let hmac_secret = raw.hmac_secret.map(Secret::new);
    if hmac_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
        c.push(
            format!("{key}.hmac_secret"),
            "shorter than 32 bytes",
            "use a random secret of at least 32 bytes (HS256 needs 256 bits)",
        );
    }
    Some(JwtRule {
        audiences: strings(raw.audiences, &format!("{key}.audiences"), c),
        keys,
        from_headers,
        from_params: strings(raw.from_params, &format!("{key}.from_params"), c),
        from_cookies: strings(raw.from_cookies, &format!("{key}.from_cookies"), c),
        forward_original_token: raw.forward_original_token.unwrap_or(false),
        output_claim_to_headers,
        output_payload_to_header,
        timeout: duration(
            raw.timeout.as_deref(),
            Duration::from_secs(5),
            Zero::Refused,
            &format!("{key}.timeout"),
            c,
        ),
        require_expiration: raw.require_expiration.unwrap_or(true),
        clock_skew: duration(
            raw.clock_skew.as_deref(),
            Duration::from_secs(60),
            Zero::Allowed,
            &format!("{key}.clock_skew"),
            c,
        ),
        hmac_secret,
        issuer,
    })
}

pub(super) fn jwks_settings(
    raw: RawJwks,
    jwt: &[JwtRule],
    sa: Option<&JwtRule>,
    c: &mut Collector,
) -> JwksSettings {
    let d = JwksSettings::default();
    let remote: Vec<(String, &Uri)> = jwt
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("auth.jwt[{i}]"), r))
        .chain(sa.map(|r| ("auth.kubernetes.service_account_tokens".to_string(), r)))
        .filter_map(|(k, r)| match &r.keys {
            JwksSource::Uri(u) => Some((format!("{k}.jwks_uri"), u)),
            JwksSource::Discovery(u) => Some((format!("{k}.issuer"), u)),
            JwksSource::Inline(_) => None,
        })
        .collect();
    let (allowed_hosts, explicit) = match raw.allowed_hosts {
        Some(list) => {
            let mut out = Vec::new();
            for (i, h) in list.iter().enumerate() {
                let h = h.trim().to_ascii_lowercase();
                if h.is_empty() || h.contains(['/', '@', ' ', '*']) {
                    c.push(
                        format!("auth.jwks.allowed_hosts[{i}]"),
                        format!("invalid host {h:?}"),
                        "write host or host:port, e.g. idp.example.com or 127.0.0.1:9000",
                    );
                } else {
                    out.push(h);
                }
            }
            for (k, u) in &remote {
                if !host_allowed(&out, u) {
                    c.push(
                        k.clone(),
                        format!(
                            "host {} is not in auth.jwks.allowed_hosts",
                            uri_host(u).unwrap_or_default()
                        ),
                        "add the host to auth.jwks.allowed_hosts, or fix the URL",
                    );
                }
            }
            (out, true)
        }
        None => {
            let mut out: Vec<String> = remote.iter().filter_map(|(_, u)| uri_host(u)).collect();
            out.sort();
            out.dedup();
            (out, false)
        }
    };
    JwksSettings {
        allowed_hosts,
        allowed_hosts_explicit: explicit,
        refresh_interval: duration(
            raw.refresh_interval.as_deref(),
            d.refresh_interval,
            Zero::Refused,
            "auth.jwks.refresh_interval",
            c,
        ),
        unknown_kid_refetch_interval: duration(
            raw.unknown_kid_refetch_interval.as_deref(),
            d.unknown_kid_refetch_interval,
            Zero::Refused,
            "auth.jwks.unknown_kid_refetch_interval",
            c,
        ),
    }
}

/// Where a rule's keys come from: `jwks_uri`, inline `jwks`, or discovery
/// from the issuer (never both of the first two).
fn keys_source(
    jwks_uri: Option<String>,
    jwks: Option<String>,
    issuer: &str,
    key: &str,
    c: &mut Collector,
) -> Option<JwksSource> {
    Some(match (jwks_uri, jwks) {
        (Some(_), Some(_)) => {
            c.push(
                key,
                "both jwks_uri and jwks are set",
                "keep one (as Istio: only one of jwks or jwksUri can be set)",
            );
            return None;
        }
        (Some(u), None) => JwksSource::Uri(http_url(&u, &format!("{key}.jwks_uri"), c)?),
        (None, Some(j)) => {
            match serde_json::from_str::<serde_json::Value>(&j) {
                Ok(v) if v.get("keys").is_some_and(serde_json::Value::is_array) => {}
                _ => c.push(
                    format!("{key}.jwks"),
                    "not a JSON Web Key Set",
                    "write the JSON object {\"keys\": [...]} as a string",
                ),
            }
            JwksSource::Inline(j)
        }
        (None, None) => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            match Uri::from_str(&url) {
                Ok(u)
                    if matches!(u.scheme_str(), Some("http" | "https"))
                        && u.authority().is_some() =>
                {
                    JwksSource::Discovery(u)
                }
                _ => {
                    c.push(key, format!("issuer {issuer:?} is not an http(s) URL, so its keys cannot be discovered"), "set jwks_uri or jwks");
                    return None;
                }
            }
        }
    })
}

/// `output_claim_to_headers`: Istio's header-name rule, a non-empty claim,
/// and never a header the request relies on.
fn claim_headers(
    list: Option<Vec<RawClaimToHeader>>,
    key: &str,
    c: &mut Collector,
) -> Vec<ClaimToHeader> {
    let output_claim_to_headers: Vec<ClaimToHeader> = list
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let k = format!("{key}.output_claim_to_headers[{i}]");
            if !o
                .header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                || o.header.is_empty()
            {
                c.push(
                    format!("{k}.header"),
                    format!("invalid header {:?}", o.header),
                    "use letters, digits, '-' and '_' (Istio: ^[-_A-Za-z0-9]+$)",
                );
                return None;
            }
            if o.claim.is_empty() {
                c.push(
                    format!("{k}.claim"),
                    "empty claim",
                    "name a claim such as sub, or a.b.c for nested claims",
                );
                return None;
            }
            Some(ClaimToHeader {
                header: header_name(&o.header, &format!("{k}.header"), c)?,
                claim: o.claim,
            })
        })
        .collect();
    for o in &output_claim_to_headers {
        if matches!(
            o.header.as_str(),
            "authorization"
                | "host"
                | "cookie"
                | "content-length"
                | "content-type"
                | "transfer-encoding"
        ) {
            c.push(
                format!("{key}.output_claim_to_headers"),
                format!("{} cannot carry a claim", o.header),
                "use a dedicated header such as kubeflow-userid",
            );
        }
    }
    output_claim_to_headers
}
