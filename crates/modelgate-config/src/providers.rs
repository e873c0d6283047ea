//! The `extension_providers:` section: external authorizers a CUSTOM policy
//! names, as Istio's `meshConfig.extensionProviders` defines them
//! (`envoyExtAuthzHttp`, `envoyExtAuthzGrpc`). Entries are written in
//! Istio's own camelCase so a mesh config's entries paste in unchanged.
//! A CUSTOM policy whose `provider.name` is not listed here is served
//! in-process by modelgate's identity sources (see `docs/policy.md`).

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::error::Collector;
use crate::fields::{Zero, duration, header_name};

/// Istio's default `timeout` for both provider kinds (10 minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// One `extension_providers[]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtensionProvider {
    pub name: String,
    #[serde(default, rename = "envoyExtAuthzHttp")]
    pub http: Option<RawExtAuthzHttp>,
    #[serde(default, rename = "envoyExtAuthzGrpc")]
    pub grpc: Option<RawExtAuthzGrpc>,
}

/// `envoyExtAuthzHttp` as written (Istio's field names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExtAuthzHttp {
    pub service: String,
    pub port: u16,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub fail_open: Option<bool>,
    #[serde(default)]
    pub status_on_error: Option<String>,
    #[serde(default)]
    pub include_request_headers_in_check: Option<Vec<String>>,
    #[serde(default)]
    pub include_additional_headers_in_check: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub headers_to_upstream_on_allow: Option<Vec<String>>,
    #[serde(default)]
    pub headers_to_downstream_on_deny: Option<Vec<String>>,
    #[serde(default)]
    pub include_request_body_in_check: Option<RawRequestBody>,
}

/// `includeRequestBodyInCheck` as written (Istio's
/// `EnvoyExternalAuthorizationRequestBody`, Envoy's `BufferSettings`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRequestBody {
    #[serde(default)]
    pub max_request_bytes: Option<u32>,
    #[serde(default)]
    pub allow_partial_message: Option<bool>,
    #[serde(default)]
    pub pack_as_bytes: Option<bool>,
}

/// `envoyExtAuthzGrpc` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExtAuthzGrpc {
    pub service: String,
    pub port: u16,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub fail_open: Option<bool>,
    #[serde(default)]
    pub status_on_error: Option<String>,
    #[serde(default)]
    pub include_request_body_in_check: Option<RawRequestBody>,
}

/// A validated external authorizer.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionProvider {
    pub name: String,
    /// `host:port` to connect to (Istio's `service`, its `namespace/` prefix
    /// removed, and `port`).
    pub authority: String,
    /// The deadline for one check, connection included.
    pub timeout: Duration,
    /// On error or timeout: allow (`true`) or refuse with `status_on_error`.
    pub fail_open: bool,
    pub status_on_error: StatusCode,
    /// `includeRequestBodyInCheck`: send the request body with the check.
    pub body: Option<RequestBody>,
    pub kind: ProviderKind,
}

/// How much of the request body goes with the check, as Envoy's ext_authz
/// filter buffers it (`with_request_body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBody {
    /// The most bytes held and sent. A longer body is refused with 413
    /// (even with `failOpen`) unless `allow_partial`.
    pub max_bytes: u32,
    /// Send the first `max_bytes` of a longer body, marked with
    /// `x-envoy-auth-partial-body: true`.
    pub allow_partial: bool,
    /// gRPC: the body goes in `raw_body` (bytes) instead of `body` (UTF-8).
    pub pack_as_bytes: bool,
}

/// Which protocol the authorizer speaks.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    /// Envoy's raw HTTP ext_authz service.
    Http(HttpProvider),
    /// `envoy.service.auth.v3.Authorization/Check` over HTTP/2.
    Grpc,
}

/// The HTTP flavour's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpProvider {
    /// Prefixed to the original path in the check request.
    pub path_prefix: String,
    /// Client headers copied into the check (besides Host, Method, Path).
    pub include_request_headers: Vec<HeaderPattern>,
    /// Fixed headers added to the check.
    pub additional_headers: Vec<(HeaderName, HeaderValue)>,
    /// Authorizer response headers added upstream on allow.
    pub headers_to_upstream_on_allow: Vec<HeaderPattern>,
    /// Authorizer response headers passed to the client on deny.
    pub headers_to_downstream_on_deny: Vec<HeaderPattern>,
}

/// Istio's header match: exact, `prefix*` or `*suffix`, case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl HeaderPattern {
    fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        match (s.strip_suffix('*'), s.strip_prefix('*')) {
            (Some(p), None) if !p.is_empty() && !p.contains('*') => {
                Some(Self::Prefix(p.to_string()))
            }
            (None, Some(p)) if !p.is_empty() && !p.contains('*') => {
                Some(Self::Suffix(p.to_string()))
            }
            (None, None) if !s.contains('*') && HeaderName::from_bytes(s.as_bytes()).is_ok() => {
                Some(Self::Exact(s))
            }
            _ => None,
        }
    }

    /// Whether header `name` (lowercase, as `http` stores it) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(e) => name == e,
            Self::Prefix(p) => name.starts_with(p.as_str()),
            Self::Suffix(s) => name.ends_with(s.as_str()),
        }
    }
}

/// Whether any pattern in `list` matches `name`.
pub fn any_matches(list: &[HeaderPattern], name: &str) -> bool {
    list.iter().any(|p| p.matches(name))
}

pub(crate) fn providers(
    raw: Option<Vec<RawExtensionProvider>>,
    c: &mut Collector,
) -> Vec<ExtensionProvider> {
    let mut out: Vec<ExtensionProvider> = Vec::new();
    for (i, p) in raw.unwrap_or_default().into_iter().enumerate() {
        let key = format!("extension_providers[{i}]");
        if p.name.is_empty() {
            c.push(
                format!("{key}.name"),
                "empty name",
                "name the provider; CUSTOM policies refer to it by provider: {name: …}",
            );
        } else if out.iter().any(|o| o.name == p.name) {
            c.push(
                format!("{key}.name"),
                format!("provider {:?} is defined twice", p.name),
                "give each provider its own name",
            );
        }
        let one = match (p.http, p.grpc) {
            (Some(h), None) => http(h, &format!("{key}.envoyExtAuthzHttp"), c),
            (None, Some(g)) => grpc(g, &format!("{key}.envoyExtAuthzGrpc"), c),
            _ => {
                c.push(key.clone(), "a provider needs exactly one of envoyExtAuthzHttp or envoyExtAuthzGrpc", "keep one of the two blocks (other Istio provider kinds, such as tracing, are not authorizers)");
                None
            }
        };
        if let Some((authority, timeout, fail_open, status_on_error, body, kind)) = one {
            out.push(ExtensionProvider {
                name: p.name,
                authority,
                timeout,
                fail_open,
                status_on_error,
                body,
                kind,
            });
        }
    }
    out
}

type Common = (
    String,
    Duration,
    bool,
    StatusCode,
    Option<RequestBody>,
    ProviderKind,
);

/// `includeRequestBodyInCheck`: Envoy refuses a `max_request_bytes` of 0.
fn request_body(raw: Option<RawRequestBody>, key: &str, c: &mut Collector) -> Option<RequestBody> {
    let raw = raw?;
    let max_bytes = match raw.max_request_bytes {
        Some(n) if n > 0 => n,
        _ => {
            c.push(
                format!("{key}.includeRequestBodyInCheck.maxRequestBytes"),
                "missing or 0",
                "set the most body bytes sent with the check, e.g. maxRequestBytes: 8192",
            );
            return None;
        }
    };
    Some(RequestBody {
        max_bytes,
        allow_partial: raw.allow_partial_message.unwrap_or(false),
        pack_as_bytes: raw.pack_as_bytes.unwrap_or(false),
    })
}

fn common(
    service: &str,
    port: u16,
    timeout: Option<&str>,
    status: Option<&str>,
    key: &str,
    c: &mut Collector,
) -> (String, Duration, StatusCode) {
    // Istio's `[<Namespace>/]<Hostname>`.
    let host = service.rsplit('/').next().unwrap_or(service);
    if host.is_empty() || host.contains([':', '@', '?', '#', ' ']) || port == 0 {
        c.push(format!("{key}.service"), format!("invalid service {service:?} (port {port})"), "write the host as Istio does, [namespace/]hostname, e.g. authz.foo.svc.cluster.local or 127.0.0.1, with `port` set");
    }
    let timeout = duration(
        timeout,
        DEFAULT_TIMEOUT,
        Zero::Refused,
        &format!("{key}.timeout"),
        c,
    );
    let status = match status.map(|s| {
        s.parse::<u16>()
            .ok()
            .and_then(|n| StatusCode::from_u16(n).ok())
    }) {
        None => StatusCode::FORBIDDEN,
        Some(Some(s)) => s,
        Some(None) => {
            c.push(
                format!("{key}.statusOnError"),
                "not an HTTP status code",
                "write a status such as \"403\" or \"503\" (Istio's default is 403)",
            );
            StatusCode::FORBIDDEN
        }
    };
    (format!("{host}:{port}"), timeout, status)
}

fn http(h: RawExtAuthzHttp, key: &str, c: &mut Collector) -> Option<Common> {
    let (authority, timeout, status) = common(
        &h.service,
        h.port,
        h.timeout.as_deref(),
        h.status_on_error.as_deref(),
        key,
        c,
    );
    let body = request_body(h.include_request_body_in_check, key, c);
    let path_prefix = h.path_prefix.unwrap_or_default();
    if !path_prefix.is_empty()
        && (!path_prefix.starts_with('/') || path_prefix.contains(['?', '#', '%']))
    {
        c.push(
            format!("{key}.pathPrefix"),
            format!("invalid path prefix {path_prefix:?}"),
            "write a path starting with `/`, e.g. /check",
        );
    }
    let patterns = |v: Option<Vec<String>>, field: &str, c: &mut Collector| -> Vec<HeaderPattern> {
        v.unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let p = HeaderPattern::parse(s);
                if p.is_none() {
                    c.push(
                        format!("{key}.{field}[{i}]"),
                        format!("invalid header match {s:?}"),
                        "write a header name, `prefix*` or `*suffix`",
                    );
                }
                p
            })
            .collect()
    };
    let include_request_headers = patterns(
        h.include_request_headers_in_check,
        "includeRequestHeadersInCheck",
        c,
    );
    let headers_to_upstream_on_allow = patterns(
        h.headers_to_upstream_on_allow,
        "headersToUpstreamOnAllow",
        c,
    );
    let headers_to_downstream_on_deny = patterns(
        h.headers_to_downstream_on_deny,
        "headersToDownstreamOnDeny",
        c,
    );
    let mut additional_headers = Vec::new();
    for (n, v) in h.include_additional_headers_in_check.unwrap_or_default() {
        let k = format!("{key}.includeAdditionalHeadersInCheck.{n}");
        let name = header_name(&n, &k, c);
        match HeaderValue::from_str(&v) {
            Ok(v) => additional_headers.extend(name.map(|n| (n, v))),
            Err(_) => c.push(k, "invalid header value", "use printable characters"),
        }
    }
    let kind = ProviderKind::Http(HttpProvider {
        path_prefix,
        include_request_headers,
        additional_headers,
        headers_to_upstream_on_allow,
        headers_to_downstream_on_deny,
    });
    Some((
        authority,
        timeout,
        h.fail_open.unwrap_or(false),
        status,
        body,
        kind,
    ))
}

fn grpc(g: RawExtAuthzGrpc, key: &str, c: &mut Collector) -> Option<Common> {
    let (authority, timeout, status) = common(
        &g.service,
        g.port,
        g.timeout.as_deref(),
        g.status_on_error.as_deref(),
        key,
        c,
    );
    let body = request_body(g.include_request_body_in_check, key, c);
    Some((
        authority,
        timeout,
        g.fail_open.unwrap_or(false),
        status,
        body,
        ProviderKind::Grpc,
    ))
}

/// A CUSTOM policy must name a configured provider once any is configured
/// (a typo would otherwise silently fall back to the in-process provider).
pub(crate) fn check_policies(
    providers: &[ExtensionProvider],
    policies: &[crate::policy::Policy],
    c: &mut Collector,
) {
    if providers.is_empty() {
        return;
    }
    for p in policies {
        if let Some(name) = &p.provider
            && !providers.iter().any(|x| &x.name == name)
        {
            let known: Vec<&str> = providers.iter().map(|x| x.name.as_str()).collect();
            c.push(
                format!("{}.provider.name", p.key),
                format!("no extension provider is named {name:?}"),
                format!(
                    "name one of the configured extension_providers: {}",
                    known.join(", ")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
