//! The `ext_authz:` section: where modelgate answers Envoy's external
//! authorization `Check` (gRPC v3) and the HTTP flavour (Istio
//! `envoyExtAuthzHttp`), and which `listen[]` entry's settings apply.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::error::Collector;
use crate::raw::RawTls;
use crate::types::{Listener, Tls};

/// `ext_authz:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtAuthz {
    pub address: String,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub listener: Option<usize>,
    #[serde(default)]
    pub http_path_prefix: Option<String>,
}

/// The validated `ext_authz:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtAuthz {
    /// One socket serving both gRPC (`/envoy.service.auth.v3.Authorization/Check`,
    /// HTTP/2) and, when enabled, the HTTP flavour (HTTP/1.1 or HTTP/2).
    pub address: SocketAddr,
    /// TLS (and mTLS, with `client_ca`) towards Envoy. Default: plain TCP.
    pub tls: Option<Tls>,
    /// Index of the `listen:` entry whose settings (credential locations,
    /// `istio_compat`, `max_body_bytes`) the checks use. Default 0.
    pub listener: usize,
    /// The HTTP flavour answers under this prefix (Envoy's `path_prefix`,
    /// Istio's `pathPrefix`); `None`: HTTP flavour off. `""`: original paths.
    pub http_path_prefix: Option<String>,
}

pub(crate) fn ext_authz(
    raw: Option<RawExtAuthz>,
    listeners: Option<&[Listener]>,
    admin: Option<SocketAddr>,
    base: &Path,
    c: &mut Collector,
) -> Option<ExtAuthz> {
    let raw = raw?;
    let address = crate::validate::socket_addr(&raw.address, "ext_authz.address", c);
    let tls = raw
        .tls
        .map(|t| crate::validate::tls(t, "ext_authz.tls", base, c));
    let listener = raw.listener.unwrap_or(0);
    if let Some(ls) = listeners {
        if listener >= ls.len() {
            c.push(
                "ext_authz.listener",
                format!("there is no listen[{listener}] ({} configured)", ls.len()),
                "name the index of the `listen:` entry whose credential settings the checks use (0 is the first)",
            );
        }
        if let Some(a) = address
            && let Some(i) = ls.iter().position(|l| l.address == a)
        {
            c.push(
                "ext_authz.address",
                format!("{a} is also listen[{i}].address"),
                "give ext_authz its own port",
            );
        }
    }
    if let (Some(a), Some(admin)) = (address, admin)
        && a == admin
    {
        c.push(
            "ext_authz.address",
            format!("{a} is also the admin address"),
            "give ext_authz its own port",
        );
    }
    let http_path_prefix = raw.http_path_prefix.map(|p| {
        if !p.is_empty() && (!p.starts_with('/') || p.ends_with('/') || p.contains(['?', '#', '%'])) {
            c.push(
                "ext_authz.http_path_prefix",
                format!("invalid path prefix {p:?}"),
                "write it as Envoy's path_prefix: empty, or starting with `/` and not ending with `/`, e.g. /ext-authz",
            );
        }
        p
    });
    Some(ExtAuthz {
        address: address?,
        tls,
        listener,
        http_path_prefix,
    })
}

#[cfg(test)]
mod tests {
    use crate::parse_str;

    const BASE: &str = "listen: {address: 127.0.0.1:8080}\nmodels: [{name: iris, upstream: {url: \"http://127.0.0.1:9\"}}]\n";

    fn errors(extra: &str) -> String {
        match parse_str(
            &format!("{BASE}{extra}"),
            "t.yaml",
            std::path::Path::new("."),
            &|_| None,
        ) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_a_valid_section() {
        let cfg = parse_str(
            &format!("{BASE}ext_authz: {{address: 127.0.0.1:9191, http_path_prefix: /authz}}\n"),
            "t.yaml",
            std::path::Path::new("."),
            &|_| None,
        )
        .unwrap();
        let e = cfg.ext_authz.unwrap();
        assert_eq!(e.address.port(), 9191);
        assert_eq!(e.listener, 0);
        assert_eq!(e.http_path_prefix.as_deref(), Some("/authz"));
        assert!(e.tls.is_none());
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = errors("ext_authz: {address: 127.0.0.1:9191, listener: 3}\n");
        assert!(
            e.contains("ext_authz.listener") && e.contains("no listen[3]"),
            "{e}"
        );
        let e = errors("ext_authz: {address: 127.0.0.1:8080}\n");
        assert!(
            e.contains("ext_authz.address") && e.contains("own port"),
            "{e}"
        );
        let e = errors("ext_authz: {address: 127.0.0.1:9191, http_path_prefix: authz/}\n");
        assert!(e.contains("ext_authz.http_path_prefix"), "{e}");
        let e = errors("ext_authz: {address: 127.0.0.1:9191, grpc: true}\n");
        assert!(e.contains("ext_authz") && e.contains("grpc"), "{e}");
        let e = errors("ext_authz: {address: nowhere}\n");
        assert!(e.contains("ext_authz.address"), "{e}");
    }
}
