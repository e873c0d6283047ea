//! `listen[].forward_auth`: the paths on a listener that answer the
//! authorization subrequests of nginx `auth_request`, Caddy `forward_auth`
//! and Traefik ForwardAuth, and which headers carry the original request.
//! Those headers are believed only from the listener's `trusted_proxies`,
//! so a listener with endpoints must name its proxies (see `docs/mesh.md`).

use serde::Deserialize;

use crate::error::Collector;
use crate::types::IpNet;

/// One endpoint as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardAuth {
    pub path: String,
    pub headers: String,
}

/// Which headers carry the original request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardHeaders {
    /// nginx `auth_request`: `X-Original-URI`, `X-Original-Method`; the host
    /// from `X-Forwarded-Host`, else `Host`.
    Nginx,
    /// Caddy `forward_auth`, Traefik ForwardAuth: `X-Forwarded-Method`,
    /// `X-Forwarded-Uri`, `X-Forwarded-Host` (else `Host`), `X-Forwarded-Proto`.
    Forwarded,
}

impl ForwardHeaders {
    pub const fn as_str(self) -> &'static str {
        match self {
            ForwardHeaders::Nginx => "nginx",
            ForwardHeaders::Forwarded => "forwarded",
        }
    }
}

/// A validated endpoint: requests to exactly `path` on its listener are
/// forward-auth checks, never proxied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuth {
    pub path: String,
    pub headers: ForwardHeaders,
}

/// Paths the protocols own: an endpoint there would shadow a model route.
const PROTOCOL_PREFIXES: &[&str] = &["/v1/", "/v2/", "/inference.", "/openai/"];

/// Validates `listen[i].forward_auth` (`key` is `listen[i]`).
pub(crate) fn endpoints(
    raw: Option<Vec<RawForwardAuth>>,
    key: &str,
    trusted_proxies: &[IpNet],
    c: &mut Collector,
) -> Vec<ForwardAuth> {
    let raw = raw.unwrap_or_default();
    if !raw.is_empty() {
        check_proxies(trusted_proxies, key, c);
    }
    let mut out: Vec<ForwardAuth> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let k = format!("{key}.forward_auth[{i}]");
        let headers = match r.headers.as_str() {
            "nginx" => Some(ForwardHeaders::Nginx),
            "forwarded" | "caddy" | "traefik" => Some(ForwardHeaders::Forwarded),
            other => {
                c.push(
                    format!("{k}.headers"),
                    format!("unknown header style {other:?}"),
                    "write `nginx` (X-Original-URI/-Method) or `forwarded` (X-Forwarded-Method/-Uri/-Host/-Proto: Caddy, Traefik)",
                );
                None
            }
        };
        let path_ok = valid_path(&r.path, &format!("{k}.path"), c);
        if out.iter().any(|e| e.path == r.path) {
            c.push(
                format!("{k}.path"),
                format!("{:?} is used by another endpoint of this listener", r.path),
                "give each endpoint its own path",
            );
            continue;
        }
        if let (true, Some(headers)) = (path_ok, headers) {
            out.push(ForwardAuth {
                path: r.path,
                headers,
            });
        }
    }
    out
}

fn check_proxies(trusted: &[IpNet], key: &str, c: &mut Collector) {
    if trusted.is_empty() {
        c.push(
            format!("{key}.trusted_proxies"),
            "forward_auth needs trusted proxies: the original request is read from headers only the proxy may set",
            "list the proxy's address, e.g. `trusted_proxies: [127.0.0.1/32]`",
        );
    }
    for (i, n) in trusted.iter().enumerate() {
        if n.prefix == 0 {
            c.push(
                format!("{key}.trusted_proxies[{i}]"),
                "trusting every address lets any client choose the request forward_auth checks",
                "list only the proxies' addresses or networks",
            );
        }
    }
}

fn valid_path(p: &str, key: &str, c: &mut Collector) -> bool {
    let bad_byte = p
        .bytes()
        .any(|b| !b.is_ascii_graphic() || matches!(b, b'?' | b'#' | b'%' | b'\\' | b';'));
    let bad_segment = p
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..");
    if !p.starts_with('/') || p.len() < 2 || bad_byte || bad_segment {
        c.push(
            key,
            format!("invalid path {p:?}"),
            "write a plain absolute path such as /auth (no query, escapes, `.`/`..` or empty segments)",
        );
        return false;
    }
    if PROTOCOL_PREFIXES.iter().any(|x| p.starts_with(x)) {
        c.push(
            key,
            format!("{p:?} is a protocol path"),
            "choose a path outside /v1/, /v2/, /openai/ and the gRPC service, e.g. /auth",
        );
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(listener: &str) -> Result<crate::Config, crate::ConfigErrors> {
        let text = format!(
            "listen: {listener}\nmodels:\n  - {{name: iris, upstream: {{url: \"http://127.0.0.1:9\"}}}}\n"
        );
        crate::parse_str(&text, "t.yaml", Path::new("."), &|_| None)
    }

    fn errors(listener: &str) -> Vec<String> {
        match parse(listener) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(|e| e.path.clone()).collect(),
        }
    }

    #[test]
    fn endpoints_are_read_with_their_header_style() {
        let c = parse(
            "{address: \"127.0.0.1:8080\", trusted_proxies: [127.0.0.1/32], forward_auth: [{path: /auth/nginx, headers: nginx}, {path: /auth/caddy, headers: caddy}]}",
        )
        .unwrap();
        let eps = &c.listeners[0].forward_auth;
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].path, "/auth/nginx");
        assert_eq!(eps[0].headers, super::ForwardHeaders::Nginx);
        assert_eq!(eps[1].headers, super::ForwardHeaders::Forwarded);
        let plain = parse("{address: \"127.0.0.1:8080\"}").unwrap();
        assert!(plain.listeners[0].forward_auth.is_empty());
    }

    #[test]
    fn endpoints_need_named_proxies() {
        assert_eq!(
            errors("{address: \"127.0.0.1:8080\", forward_auth: [{path: /auth, headers: nginx}]}"),
            ["listen.trusted_proxies"]
        );
        assert_eq!(
            errors(
                "{address: \"127.0.0.1:8080\", trusted_proxies: [0.0.0.0/0], forward_auth: [{path: /auth, headers: nginx}]}"
            ),
            ["listen.trusted_proxies[0]"]
        );
    }

    #[test]
    fn bad_paths_styles_and_duplicates_are_named() {
        let l = |eps: &str| {
            errors(&format!(
                "{{address: \"127.0.0.1:8080\", trusted_proxies: [10.0.0.1], forward_auth: [{eps}]}}"
            ))
        };
        for p in [
            "auth", "/", "/a?b", "/a/../b", "/a//b", "/a%2Fb", "/v2/auth", "/a b",
        ] {
            assert_eq!(
                l(&format!("{{path: \"{p}\", headers: nginx}}")),
                ["listen.forward_auth[0].path"],
                "{p}"
            );
        }
        assert_eq!(
            l("{path: /auth, headers: envoy}"),
            ["listen.forward_auth[0].headers"]
        );
        assert_eq!(
            l("{path: /auth, headers: nginx}, {path: /auth, headers: forwarded}"),
            ["listen.forward_auth[1].path"]
        );
        assert!(!l("{path: /auth, header: nginx}").is_empty());
    }
}
