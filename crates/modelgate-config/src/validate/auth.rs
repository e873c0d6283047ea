//! `auth`: API keys, identity and header hygiene (the identity sources
//! themselves are validated in `crate::identity`).

use std::path::Path;

use http::HeaderName;

use super::canonical_path;

use crate::error::Collector;
use crate::fields::{header_name, path_of};
use crate::raw::*;
use crate::types::*;

/// Identity headers a client must never be able to set (stripped on ingress).
pub(super) fn reserved_header(h: &HeaderName) -> bool {
    matches!(
        h.as_str(),
        "authorization"
            | "host"
            | "cookie"
            | "content-length"
            | "content-type"
            | "transfer-encoding"
            | "connection"
            | "te"
            | "upgrade"
    )
}

pub(super) fn auth(raw: RawAuth, base: &Path, c: &mut Collector) -> Option<Auth> {
    let realm = raw.realm.unwrap_or_else(|| "modelgate".into());
    if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
        c.push(
            "auth.realm",
            "realm must not contain quotes, backslashes or control characters",
            "use a plain name such as kubernetes-user",
        );
    }
    let identity_header = raw.identity_header.as_deref().and_then(|h| {
        let name = header_name(h, "auth.identity_header", c)?;
        if reserved_header(&name) {
            c.push(
                "auth.identity_header",
                format!("{h} cannot carry the identity"),
                "use a dedicated header such as kubeflow-userid or x-forwarded-user",
            );
            return None;
        }
        Some(name)
    });
    let strip_headers = raw
        .strip_headers
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, h)| header_name(h, &format!("auth.strip_headers[{i}]"), c))
        .collect();
    let public_paths = raw
        .public_paths
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let pat = PathPattern::parse(p);
            let literal = match &pat {
                PathPattern::Exact(s) | PathPattern::Prefix(s) => s.as_str(),
                PathPattern::Suffix(s) => s.as_str(),
                PathPattern::Any => {
                    c.push(
                        format!("auth.public_paths[{i}]"),
                        "\"*\" would make every path public",
                        "list the probe paths, e.g. /v2/health/live",
                    );
                    return None;
                }
            };
            let check = if matches!(pat, PathPattern::Suffix(_)) {
                format!("/x{literal}")
            } else {
                literal.to_string()
            };
            match canonical_path(&check) {
                Ok(()) => Some(pat),
                Err(e) => {
                    c.push(
                        format!("auth.public_paths[{i}]"),
                        format!("{p:?} {e}"),
                        "write normalised paths, e.g. /healthz or /v2/health/*",
                    );
                    None
                }
            }
        })
        .collect();
    let raw_identity = crate::identity::RawIdentity {
        order: raw.order,
        jwks: raw.jwks,
        jwt: raw.jwt,
        kubernetes: raw.kubernetes,
        introspection: raw.introspection,
        mtls: raw.mtls,
    };
    let identity = crate::identity::identity(raw_identity, raw.api_keys.is_some(), base, c);
    let sign_in = crate::identity::sign_in_of(raw.sign_in, &identity.jwt, base, c);
    Some(Auth {
        realm,
        identity,
        api_keys: raw.api_keys.map(|k| ApiKeys {
            file: path_of(base, &k.file),
            kubernetes: crate::kube_keys::validate(k.kubernetes, base, c),
        }),
        identity_header,
        strip_headers,
        public_paths,
        sign_in,
    })
}
