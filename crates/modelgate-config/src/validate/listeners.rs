//! `listen`: addresses, TLS, body limit, timeouts, credentials, trusted proxies.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use http::HeaderName;
use yaml_serde::Value;

use super::socket_addr;

use crate::error::Collector;
use crate::fields::{Zero, duration, existing_file, header_name};
use crate::load::de;
use crate::raw::*;
use crate::types::*;

pub(super) const DEFAULT_MAX_BODY: u64 = 4 << 20;

pub(super) fn listeners(v: Option<Value>, base: &Path, c: &mut Collector) -> Option<Vec<Listener>> {
    let Some(v) = v else {
        c.push(
            "listen",
            "missing section",
            "add `listen: {address: 0.0.0.0:8080}`",
        );
        return None;
    };
    let raws: Vec<(String, Option<RawListener>)> = match v {
        Value::Sequence(items) if items.is_empty() => {
            c.push(
                "listen",
                "no listener configured",
                "add at least one `address:`",
            );
            return None;
        }
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let key = format!("listen[{i}]");
                let raw = de(item, &key, c);
                (key, raw)
            })
            .collect(),
        other => {
            let raw = de(other, "listen", c);
            vec![("listen".to_string(), raw)]
        }
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (key, raw) in raws {
        let Some(raw) = raw else { continue };
        if let Some(l) = listener(raw, &key, base, c) {
            if !seen.insert(l.address) {
                c.push(
                    format!("{key}.address"),
                    "address used twice",
                    "give each listener its own port",
                );
            }
            out.push(l);
        }
    }
    Some(out)
}

pub(super) fn listener(
    raw: RawListener,
    key: &str,
    base: &Path,
    c: &mut Collector,
) -> Option<Listener> {
    let address = socket_addr(&raw.address, &format!("{key}.address"), c);
    let tls = raw.tls.map(|t| tls(t, &format!("{key}.tls"), base, c));
    let max_body_bytes = match raw.max_body_bytes.map(|s| s.bytes()) {
        None => DEFAULT_MAX_BODY,
        Some(Ok(0)) => {
            c.push(
                format!("{key}.max_body_bytes"),
                "must be greater than 0",
                "e.g. 4MiB",
            );
            DEFAULT_MAX_BODY
        }
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            c.push(
                format!("{key}.max_body_bytes"),
                e,
                "write a size such as 4MiB or 1048576",
            );
            DEFAULT_MAX_BODY
        }
    };
    let credentials = credentials(raw.credentials, key, c);
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match IpNet::parse(s) {
            Ok(n) => Some(n),
            Err(e) => {
                c.push(
                    format!("{key}.trusted_proxies[{i}]"),
                    e,
                    "write a CIDR such as 10.0.0.0/8",
                );
                None
            }
        })
        .collect::<Vec<_>>();
    let forward_auth = crate::forward_auth::endpoints(raw.forward_auth, key, &trusted_proxies, c);
    Some(Listener {
        address: address?,
        tls,
        http2: raw.http2.unwrap_or(true),
        max_body_bytes,
        header_read_timeout: duration(
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
            Zero::Refused,
            &format!("{key}.header_read_timeout"),
            c,
        ),
        drain_timeout: duration(
            raw.drain_timeout.as_deref(),
            Duration::from_secs(30),
            // 0s: close connections at once on shutdown (no drain).
            Zero::Allowed,
            &format!("{key}.drain_timeout"),
            c,
        ),
        credentials,
        trusted_proxies,
        istio_compat: raw.istio_compat.unwrap_or(false),
        limits: crate::limits::limits(raw.limits.unwrap_or_default(), key, c),
        forward_auth,
    })
}

pub(super) fn credential_source(
    s: RawCredentialSource,
    key: &str,
    c: &mut Collector,
) -> Option<CredentialSource> {
    match s {
        RawCredentialSource::AuthorizationHeader(scheme) => {
            if scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                c.push(
                    key,
                    format!("invalid authorization scheme {scheme:?}"),
                    "use a single word such as Bearer or APIKEY",
                );
                return None;
            }
            Some(CredentialSource::AuthorizationHeader { scheme })
        }
        RawCredentialSource::CustomHeader(name) => {
            let name = header_name(&name, key, c)?;
            Some(CredentialSource::Header { name })
        }
    }
}

/// `listen.tls`: the files must exist; requiring client certificates needs a CA.
/// A `tls:` block (listeners, `ext_authz`), under key path `k`.
pub(crate) fn tls(t: RawTls, k: &str, base: &Path, c: &mut Collector) -> Tls {
    let cert = existing_file(base, &t.cert, &format!("{k}.cert"), c);
    let key_path = existing_file(base, &t.key, &format!("{k}.key"), c);
    let client_ca = t
        .client_ca
        .as_deref()
        .map(|ca| existing_file(base, ca, &format!("{k}.client_ca"), c));
    let require = t.require_client_cert.unwrap_or(client_ca.is_some());
    if require && client_ca.is_none() {
        c.push(
            format!("{k}.require_client_cert"),
            "client certificates are required but no client_ca is set",
            "set client_ca to the PEM bundle of CAs that sign client certificates",
        );
    }
    Tls {
        cert,
        key: key_path,
        client_ca,
        require_client_cert: require,
    }
}

/// `listen.credentials`: where API keys are read from (default: both
/// `Authorization` schemes and `x-api-key`).
fn credentials(
    list: Option<Vec<RawCredentialSource>>,
    key: &str,
    c: &mut Collector,
) -> Vec<CredentialSource> {
    match list {
        None => vec![
            CredentialSource::AuthorizationHeader {
                scheme: "Bearer".into(),
            },
            CredentialSource::AuthorizationHeader {
                scheme: "APIKEY".into(),
            },
            CredentialSource::Header {
                name: HeaderName::from_static("x-api-key"),
            },
        ],
        Some(list) => {
            if list.is_empty() {
                c.push(
                    format!("{key}.credentials"),
                    "no credential location configured",
                    "list at least one, e.g. `- authorization_header: Bearer`",
                );
            }
            list.into_iter()
                .enumerate()
                .filter_map(|(i, s)| credential_source(s, &format!("{key}.credentials[{i}]"), c))
                .collect()
        }
    }
}
