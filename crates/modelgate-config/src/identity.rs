//! Identity sources beyond API keys: `auth.order`, `auth.jwks`, `auth.jwt`,
//! `auth.kubernetes`, `auth.introspection` and `auth.mtls` — raw serde types
//! and the validated types they become. See `docs/identity.md`.
//!
//! JWT rules take Istio's `jwtRules` field names in either spelling
//! (`jwks_uri` or `jwksUri`), so a RequestAuthentication can be pasted in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Uri};
use modelgate_core::Secret;
use serde::Deserialize;

use crate::error::Collector;
use crate::units::parse_duration;

// ---------------------------------------------------------------------------
// Raw shapes
// ---------------------------------------------------------------------------

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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMtls {
    #[serde(default)]
    pub identity_from: Option<Vec<String>>,
}

/// The identity keys of `auth`, as found in the file.
#[derive(Debug, Clone, Default)]
pub struct RawIdentity {
    pub order: Option<Vec<String>>,
    pub jwks: Option<RawJwks>,
    pub jwt: Option<Vec<RawJwtRule>>,
    pub kubernetes: Option<RawKubernetes>,
    pub introspection: Option<RawIntrospection>,
    pub mtls: Option<RawMtls>,
}

// ---------------------------------------------------------------------------
// Validated shapes
// ---------------------------------------------------------------------------

/// An identity method, as named in `auth.order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityMethod {
    ApiKey,
    Jwt,
    Kubernetes,
    Introspection,
    Mtls,
}

impl IdentityMethod {
    pub const ALL: [IdentityMethod; 5] = [
        Self::ApiKey,
        Self::Jwt,
        Self::Kubernetes,
        Self::Introspection,
        Self::Mtls,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::Kubernetes => "kubernetes",
            Self::Introspection => "introspection",
            Self::Mtls => "mtls",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Every identity source of one configuration.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The configured methods, in the order they are tried.
    pub order: Vec<IdentityMethod>,
    pub jwks: JwksSettings,
    pub jwt: Vec<JwtRule>,
    pub kubernetes: Kubernetes,
    pub introspection: Option<Introspection>,
    pub mtls: Option<MtlsIdentity>,
}

impl Identity {
    /// Every header a JWT rule writes: stripped from every inbound request.
    pub fn output_headers(&self) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = Vec::new();
        for r in self
            .jwt
            .iter()
            .chain(self.kubernetes.service_account_tokens.as_ref())
        {
            for h in r
                .output_claim_to_headers
                .iter()
                .map(|c| &c.header)
                .chain(r.output_payload_to_header.as_ref())
            {
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
        }
        out
    }
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

/// Which certificate field gives the mTLS identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdentityField {
    Uri,
    Dns,
    CommonName,
}

/// `auth.mtls`: a verified client certificate as an identity method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsIdentity {
    pub identity_from: Vec<CertIdentityField>,
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const DEFAULT_K8S_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn duration(v: Option<&str>, default: Duration, key: &str, c: &mut Collector) -> Duration {
    match v {
        None => default,
        Some(s) => match parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                c.push(
                    key,
                    "must be greater than zero",
                    "write a duration such as 5s or 20m",
                );
                default
            }
            Err(e) => {
                c.push(key, e, "write a duration such as 5s or 20m");
                default
            }
        },
    }
}

/// An http(s) URL with a host and no credentials; `path_ok` allows a path.
fn http_url(s: &str, key: &str, c: &mut Collector) -> Option<Uri> {
    let bad = |c: &mut Collector, why: &str| {
        c.push(
            key,
            format!("invalid URL {:?}: {why}", modelgate_core::redact_url(s)),
            "write http(s)://host[:port]/path",
        );
        None
    };
    let Ok(uri) = Uri::from_str(s) else {
        return bad(c, "not a URL");
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return bad(c, "scheme must be http or https");
    }
    let Some(a) = uri.authority() else {
        return bad(c, "no host");
    };
    if a.as_str().contains('@') {
        return bad(c, "credentials in the URL are not supported");
    }
    Some(uri)
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

fn header(s: &str, key: &str, c: &mut Collector) -> Option<HeaderName> {
    match HeaderName::from_str(s) {
        Ok(h) => Some(h),
        Err(_) => {
            c.push(
                key,
                format!("invalid header name {s:?}"),
                "use letters, digits and '-'",
            );
            None
        }
    }
}

fn strings(v: Option<Vec<String>>, key: &str, c: &mut Collector) -> Vec<String> {
    let v = v.unwrap_or_default();
    for (i, s) in v.iter().enumerate() {
        if s.is_empty() {
            c.push(
                format!("{key}[{i}]"),
                "empty value",
                "remove the entry or write a value",
            );
        }
    }
    v
}

fn jwt_rule(
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
    let keys = match (raw.jwks_uri, raw.jwks) {
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
    };
    let from_headers = raw
        .from_headers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let name = header(&h.name, &format!("{key}.from_headers[{i}].name"), c)?;
            Some(JwtHeader {
                name,
                prefix: h.prefix.unwrap_or_default(),
            })
        })
        .collect();
    let output_claim_to_headers: Vec<ClaimToHeader> = raw
        .output_claim_to_headers
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
                header: header(&o.header, &format!("{k}.header"), c)?,
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
    let output_payload_to_header = raw
        .output_payload_to_header
        .as_deref()
        .and_then(|h| header(h, &format!("{key}.output_payload_to_header"), c));
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
            &format!("{key}.timeout"),
            c,
        ),
        require_expiration: raw.require_expiration.unwrap_or(true),
        clock_skew: match raw.clock_skew.as_deref() {
            None => Duration::from_secs(60),
            Some(s) => parse_duration(s).unwrap_or_else(|e| {
                c.push(
                    format!("{key}.clock_skew"),
                    e,
                    "write a duration such as 60s",
                );
                Duration::from_secs(60)
            }),
        },
        hmac_secret,
        issuer,
    })
}

fn file(base: &Path, s: &str, key: &str, c: &mut Collector) -> PathBuf {
    let p = PathBuf::from(s);
    let p = if p.is_absolute() { p } else { base.join(p) };
    if !p.is_file() {
        c.push(
            key,
            format!("file {} does not exist or is not a file", p.display()),
            "check the path (relative paths are resolved from the config file's folder)",
        );
    }
    p
}

/// An optional file with an in-cluster default that is used only if present.
fn in_cluster_file(
    base: &Path,
    v: Option<&str>,
    default: &str,
    key: &str,
    c: &mut Collector,
) -> Option<PathBuf> {
    match v {
        Some(s) => Some(file(base, s, key, c)),
        None => Path::new(default).is_file().then(|| PathBuf::from(default)),
    }
}

fn token_review(raw: RawTokenReview, base: &Path, c: &mut Collector) -> Option<TokenReview> {
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
            &format!("{key}.cache_ttl"),
            c,
        ),
        timeout: duration(
            raw.timeout.as_deref(),
            Duration::from_secs(5),
            &format!("{key}.timeout"),
            c,
        ),
    })
}

fn introspection(raw: RawIntrospection, base: &Path, c: &mut Collector) -> Option<Introspection> {
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
            .map(|f| file(base, f, &format!("{key}.ca_file"), c)),
        audiences: strings(raw.audiences, &format!("{key}.audiences"), c),
        cache_ttl: duration(
            raw.cache_ttl.as_deref(),
            Duration::from_secs(60),
            &format!("{key}.cache_ttl"),
            c,
        ),
        timeout: duration(
            raw.timeout.as_deref(),
            Duration::from_secs(5),
            &format!("{key}.timeout"),
            c,
        ),
    })
}

fn mtls(raw: RawMtls, c: &mut Collector) -> MtlsIdentity {
    let names = raw
        .identity_from
        .unwrap_or_else(|| vec!["uri".into(), "dns".into(), "cn".into()]);
    if names.is_empty() {
        c.push(
            "auth.mtls.identity_from",
            "empty list",
            "list one or more of uri, dns, cn",
        );
    }
    let identity_from = names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n.as_str() {
            "uri" => Some(CertIdentityField::Uri),
            "dns" => Some(CertIdentityField::Dns),
            "cn" => Some(CertIdentityField::CommonName),
            _ => {
                c.push(
                    format!("auth.mtls.identity_from[{i}]"),
                    format!("unknown field {n:?}"),
                    "use uri, dns or cn",
                );
                None
            }
        })
        .collect();
    MtlsIdentity { identity_from }
}

/// Validates the identity keys. `api_keys` tells whether `auth.api_keys` is set.
pub(crate) fn identity(
    raw: RawIdentity,
    api_keys: bool,
    base: &Path,
    c: &mut Collector,
) -> Identity {
    let jwt: Vec<JwtRule> = raw
        .jwt
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| jwt_rule(r, &format!("auth.jwt[{i}]"), None, c))
        .collect();
    let raw_k8s = raw.kubernetes.unwrap_or_default();
    let kubernetes = Kubernetes {
        service_account_tokens: raw_k8s.service_account_tokens.and_then(|r| {
            jwt_rule(
                r,
                "auth.kubernetes.service_account_tokens",
                Some(DEFAULT_K8S_ISSUER),
                c,
            )
        }),
        token_review: raw_k8s.token_review.and_then(|t| token_review(t, base, c)),
    };
    let mut issuers = BTreeSet::new();
    for r in jwt.iter().chain(kubernetes.service_account_tokens.as_ref()) {
        if !issuers.insert(r.issuer.as_str()) {
            c.push(
                "auth.jwt",
                format!("issuer {} is configured twice", r.issuer),
                "merge the rules: a token's `iss` must pick exactly one rule",
            );
        }
    }
    let jwks = jwks_settings(
        raw.jwks.unwrap_or_default(),
        &jwt,
        kubernetes.service_account_tokens.as_ref(),
        c,
    );
    let introspection = raw.introspection.and_then(|i| introspection(i, base, c));
    let mtls = raw.mtls.map(|m| mtls(m, c));
    let configured = |m: IdentityMethod| match m {
        IdentityMethod::ApiKey => api_keys,
        IdentityMethod::Jwt => !jwt.is_empty(),
        IdentityMethod::Kubernetes => {
            kubernetes.service_account_tokens.is_some() || kubernetes.token_review.is_some()
        }
        IdentityMethod::Introspection => introspection.is_some(),
        IdentityMethod::Mtls => mtls.is_some(),
    };
    let order = match raw.order {
        None => IdentityMethod::ALL
            .into_iter()
            .filter(|m| configured(*m))
            .collect(),
        Some(names) => {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let k = format!("auth.order[{i}]");
                match IdentityMethod::parse(n) {
                    None => c.push(
                        k,
                        format!("unknown identity method {n:?}"),
                        "use api_key, jwt, kubernetes, introspection or mtls",
                    ),
                    Some(m) if out.contains(&m) => {
                        c.push(k, format!("{n} is listed twice"), "list each method once")
                    }
                    Some(m) if !configured(m) => c.push(
                        k,
                        format!("{n} is listed but not configured"),
                        format!(
                            "configure auth.{} or remove it from auth.order",
                            if m == IdentityMethod::ApiKey {
                                "api_keys"
                            } else {
                                n
                            }
                        ),
                    ),
                    Some(m) => out.push(m),
                }
            }
            for m in IdentityMethod::ALL {
                if configured(m) && !out.contains(&m) {
                    c.push(
                        "auth.order",
                        format!("{} is configured but not listed", m.as_str()),
                        "add it to auth.order, or remove its configuration",
                    );
                }
            }
            out
        }
    };
    Identity {
        order,
        jwks,
        jwt,
        kubernetes,
        introspection,
        mtls,
    }
}

fn jwks_settings(
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
            "auth.jwks.refresh_interval",
            c,
        ),
        unknown_kid_refetch_interval: duration(
            raw.unknown_kid_refetch_interval.as_deref(),
            d.unknown_kid_refetch_interval,
            "auth.jwks.unknown_kid_refetch_interval",
            c,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: RawIdentity, api_keys: bool) -> (Identity, Vec<String>) {
        let mut c = Collector::default();
        let id = identity(raw, api_keys, Path::new("/nonexistent"), &mut c);
        (
            id,
            c.into_errors()
                .into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
        )
    }

    fn rule(yaml: &str) -> RawJwtRule {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn istio_rule_pastes_in() {
        let r = rule(
            r#"
issuer: https://kubernetes.default.svc.cluster.local
jwksUri: http://cluster-jwks-proxy.istio-system.svc.cluster.local/openid/v1/jwks
forwardOriginalToken: true
outputClaimToHeaders:
- header: kubeflow-userid
  claim: sub
- header: kubeflow-groups
  claim: groups
fromHeaders:
- name: Authorization
  prefix: "Bearer "
"#,
        );
        let (id, errs) = run(
            RawIdentity {
                jwt: Some(vec![rule_clone(&r)]),
                ..Default::default()
            },
            false,
        );
        assert!(errs.is_empty(), "{errs:?}");
        let j = &id.jwt[0];
        assert!(j.forward_original_token);
        assert!(j.require_expiration);
        assert_eq!(j.timeout, Duration::from_secs(5));
        assert_eq!(j.clock_skew, Duration::from_secs(60));
        assert_eq!(j.from_headers[0].prefix, "Bearer ");
        assert_eq!(id.order, vec![IdentityMethod::Jwt]);
        assert_eq!(
            id.jwks.allowed_hosts,
            vec!["cluster-jwks-proxy.istio-system.svc.cluster.local".to_string()]
        );
        assert_eq!(id.jwks.refresh_interval, Duration::from_secs(1200));
        let hs: Vec<_> = id
            .output_headers()
            .iter()
            .map(|h| h.as_str().to_string())
            .collect();
        assert_eq!(hs, ["kubeflow-userid", "kubeflow-groups"]);
    }

    fn rule_clone(r: &RawJwtRule) -> RawJwtRule {
        r.clone()
    }

    #[test]
    fn discovery_and_allowlist() {
        let r = rule("issuer: http://127.0.0.1:9000/\n");
        let jwks = RawJwks {
            allowed_hosts: Some(vec!["idp.example.com".into()]),
            ..Default::default()
        };
        let (id, errs) = run(
            RawIdentity {
                jwt: Some(vec![r]),
                jwks: Some(jwks),
                ..Default::default()
            },
            false,
        );
        assert!(
            matches!(&id.jwt[0].keys, JwksSource::Discovery(u) if *u == "http://127.0.0.1:9000/.well-known/openid-configuration")
        );
        assert_eq!(
            errs,
            ["auth.jwt[0].issuer: host 127.0.0.1:9000 is not in auth.jwks.allowed_hosts"]
        );
    }

    #[test]
    fn bad_rules_name_their_keys() {
        let rules = vec![
            rule("issuer: a\n"),
            rule("issuer: https://x\njwks_uri: ftp://idp/keys\n"),
            rule("issuer: https://y\njwks: '{}'\nhmac_secret: short\n"),
            rule(
                "issuer: https://y\njwks: '{\"keys\":[]}'\noutput_claim_to_headers: [{header: 'a b', claim: sub}]\n",
            ),
        ];
        let (_, errs) = run(
            RawIdentity {
                jwt: Some(rules),
                order: Some(vec!["jwt".into(), "mtls".into()]),
                ..Default::default()
            },
            false,
        );
        let want = [
            "auth.jwt[0]: issuer \"a\" is not an http(s) URL, so its keys cannot be discovered",
            "auth.jwt[1].jwks_uri: invalid URL \"ftp://idp/keys\": scheme must be http or https",
            "auth.jwt[2].jwks: not a JSON Web Key Set",
            "auth.jwt[2].hmac_secret: shorter than 32 bytes",
            "auth.jwt[3].output_claim_to_headers[0].header: invalid header \"a b\"",
            "auth.jwt: issuer https://y is configured twice",
            "auth.order[1]: mtls is listed but not configured",
        ];
        assert_eq!(errs, want);
    }

    #[test]
    fn order_defaults_and_explicit() {
        let raw = RawIdentity {
            mtls: Some(RawMtls::default()),
            jwt: Some(vec![rule("issuer: https://idp\njwks: '{\"keys\":[]}'\n")]),
            ..Default::default()
        };
        let (id, errs) = run(raw.clone(), true);
        assert!(errs.is_empty());
        assert_eq!(
            id.order,
            vec![
                IdentityMethod::ApiKey,
                IdentityMethod::Jwt,
                IdentityMethod::Mtls
            ]
        );
        assert_eq!(
            id.mtls.unwrap().identity_from,
            vec![
                CertIdentityField::Uri,
                CertIdentityField::Dns,
                CertIdentityField::CommonName
            ]
        );
        let (id, errs) = run(
            RawIdentity {
                order: Some(vec!["mtls".into(), "jwt".into(), "api_key".into()]),
                ..raw.clone()
            },
            true,
        );
        assert!(errs.is_empty());
        assert_eq!(
            id.order,
            vec![
                IdentityMethod::Mtls,
                IdentityMethod::Jwt,
                IdentityMethod::ApiKey
            ]
        );
        let (_, errs) = run(
            RawIdentity {
                order: Some(vec!["jwt".into(), "jwt".into(), "saml".into()]),
                ..raw
            },
            true,
        );
        assert_eq!(
            errs,
            [
                "auth.order[1]: jwt is listed twice",
                "auth.order[2]: unknown identity method \"saml\"",
                "auth.order: api_key is configured but not listed",
                "auth.order: mtls is configured but not listed",
            ]
        );
    }

    #[test]
    fn kubernetes_defaults() {
        let raw = RawIdentity {
            kubernetes: Some(RawKubernetes {
                service_account_tokens: Some(rule(
                    "audiences: [istio-ingressgateway.istio-system.svc.cluster.local]\njwks_uri: https://10.0.0.1/openid/v1/jwks\n",
                )),
                token_review: Some(RawTokenReview {
                    api_server: Some("https://127.0.0.1:6443".into()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let (id, errs) = run(raw, false);
        let sa = id.kubernetes.service_account_tokens.unwrap();
        assert_eq!(sa.issuer, "https://kubernetes.default.svc.cluster.local");
        // No pod here: the in-cluster token is missing and must be named.
        assert_eq!(
            errs,
            [
                "auth.kubernetes.token_review.token_file: no bearer token for the API server (not running in a pod?)"
            ]
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let raw = RawIdentity {
            introspection: Some(RawIntrospection {
                endpoint: "http://127.0.0.1:9000/token/introspection".into(),
                client_id: "modelgate".into(),
                client_secret: "s3cr3t-value".into(),
                ca_file: None,
                audiences: None,
                cache_ttl: None,
                timeout: None,
            }),
            ..Default::default()
        };
        let (id, errs) = run(raw, false);
        assert!(errs.is_empty());
        assert!(!format!("{id:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn host_matching() {
        let allowed = vec!["idp.example.com".to_string(), "127.0.0.1:9000".to_string()];
        let u = |s: &str| Uri::from_str(s).unwrap();
        assert!(host_allowed(
            &allowed,
            &u("https://IDP.example.com:8443/jwks")
        ));
        assert!(host_allowed(&allowed, &u("http://127.0.0.1:9000/jwks")));
        assert!(!host_allowed(&allowed, &u("http://127.0.0.1:9001/jwks")));
        assert!(!host_allowed(&allowed, &u("http://169.254.169.254/latest")));
    }
}
