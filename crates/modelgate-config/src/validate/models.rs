//! `models`: each model's protocols, upstream and routes.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderValue, Uri};
use modelgate_core::{ModelName, Protocol};
use yaml_serde::Value;

use super::routes::{check_route_prefixes, host, prefix_route, public_operation};

use crate::error::Collector;
use crate::fields::{Zero, duration, path_of};
use crate::load::de;
use crate::raw::*;
use crate::types::*;

pub(super) fn models(v: Option<Value>, base: &Path, c: &mut Collector) -> Option<Vec<Model>> {
    let items = match v {
        Some(Value::Sequence(items)) if !items.is_empty() => items,
        Some(Value::Sequence(_)) | None => {
            c.push(
                "models",
                "no models configured",
                "add a list entry with `name:` and `upstream: {url: …}` or `builtin: {dir: …}`",
            );
            return None;
        }
        Some(_) => {
            c.push(
                "models",
                "must be a list",
                "write `models:` followed by `- name: …` entries",
            );
            return None;
        }
    };
    let mut out: Vec<Model> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("models[{i}]");
        let Some(raw) = de::<RawModel>(item, &key, c) else {
            continue;
        };
        if let Some(m) = model(raw, &key, base, c) {
            if out.iter().any(|o| o.name == m.name) {
                c.push(
                    format!("{key}.name"),
                    format!("model {} is configured twice", m.name),
                    "model names must be unique",
                );
            }
            out.push(m);
        }
    }
    check_route_prefixes(&out, c);
    Some(out)
}

pub(super) fn model(raw: RawModel, key: &str, base: &Path, c: &mut Collector) -> Option<Model> {
    let name = match ModelName::parse(&raw.name) {
        Ok(n) => Some(n),
        Err(e) => {
            c.push(
                format!("{key}.name"),
                format!("{e}: {:?}", raw.name),
                "use letters, digits, '.', '_' and '-' only",
            );
            None
        }
    };
    let backend = backend(raw.upstream, raw.builtin, key, base, c);
    let protocols = protocols(
        raw.protocols,
        backend.as_ref(),
        &format!("{key}.protocols"),
        c,
    );
    check_grpc_endpoint(backend.as_ref(), protocols.as_ref(), key, c);
    let routes = raw
        .routes
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| prefix_route(r, &format!("{key}.routes[{i}]"), c))
        .collect();
    let hosts = raw
        .hosts
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| host(&h, &format!("{key}.hosts[{i}]"), c))
        .collect();
    let public_operations = raw
        .public_operations
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, op)| public_operation(&op, &format!("{key}.public_operations[{i}]"), c))
        .collect();
    // SubjectAccessReview hook (kube_access.rs).
    let kubernetes_access = raw.kubernetes_access.and_then(|a| {
        crate::kube_access::kubernetes_access(a, &raw.name, &format!("{key}.kubernetes_access"), c)
    });
    let cost = raw
        .cost
        .and_then(|r| crate::cost::cost(r, &format!("{key}.cost"), c));
    let limits = raw
        .limits
        .map(|r| crate::rate_limits::limit_set(r, &format!("{key}.limits"), c));
    Some(Model {
        cost,
        limits,
        kubernetes_access,
        wristband: raw.wristband.unwrap_or(true),
        name: name?,
        protocols: protocols?,
        backend: backend?,
        routes,
        hosts,
        public_operations,
    })
}

/// Exactly one of `upstream` (proxy) and `builtin` (served here).
fn backend(
    upstream_raw: Option<RawUpstream>,
    builtin: Option<RawBuiltin>,
    key: &str,
    base: &Path,
    c: &mut Collector,
) -> Option<Backend> {
    match (upstream_raw, builtin) {
        (Some(u), None) => upstream(u, &format!("{key}.upstream"), c).map(Backend::Upstream),
        (None, Some(b)) => Some(Backend::Builtin(Builtin {
            dir: path_of(base, &b.dir),
        })),
        (Some(_), Some(_)) => {
            c.push(
                key,
                "both `upstream` and `builtin` are set",
                "keep one: proxy to a model server, or serve the ONNX file yourself",
            );
            None
        }
        (None, None) => {
            c.push(
                key,
                "neither `upstream` nor `builtin` is set",
                "add `upstream: {url: http://host:port}` or `builtin: {dir: path/to/model}`",
            );
            None
        }
    }
}

/// An upstream that speaks gRPC needs its gRPC endpoint.
fn check_grpc_endpoint(
    backend: Option<&Backend>,
    protocols: Option<&BTreeSet<Protocol>>,
    key: &str,
    c: &mut Collector,
) {
    if let (Some(Backend::Upstream(u)), Some(p)) = (backend, protocols)
        && p.contains(&Protocol::Grpc)
        && u.grpc.is_none()
    {
        c.push(
            format!("{key}.upstream.grpc_url"),
            "protocol grpc is enabled but no gRPC endpoint is set",
            "add grpc_url: http://host:grpc-port, or remove grpc from protocols",
        );
    }
}

pub(super) fn protocols(
    raw: Option<Vec<String>>,
    backend: Option<&Backend>,
    key: &str,
    c: &mut Collector,
) -> Option<BTreeSet<Protocol>> {
    let names = raw.unwrap_or_else(|| match backend {
        Some(Backend::Builtin(_)) => vec!["v1".into(), "v2".into(), "grpc".into()],
        _ => vec!["v1".into(), "v2".into()],
    });
    if names.is_empty() {
        c.push(
            key,
            "no protocol enabled",
            "list at least one of v1, v2, grpc, openai",
        );
        return None;
    }
    let mut out = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        match Protocol::parse(n) {
            Some(p) => {
                if p == Protocol::OpenAi && matches!(backend, Some(Backend::Builtin(_))) {
                    c.push(
                        format!("{key}[{i}]"),
                        "built-in models do not speak the OpenAI API",
                        "use v1, v2 or grpc, or proxy to an OpenAI-compatible server",
                    );
                }
                out.insert(p);
            }
            None => c.push(
                format!("{key}[{i}]"),
                format!("unknown protocol {n:?}"),
                "use one of v1, v2, grpc, openai",
            ),
        }
    }
    Some(out)
}

pub(super) fn upstream(raw: RawUpstream, key: &str, c: &mut Collector) -> Option<Upstream> {
    let urls = crate::upstream::urls(&raw, key, c);
    if urls.is_empty() {
        c.push(
            format!("{key}.url"),
            "no upstream URL",
            "add url: http://host:port",
        );
    }
    let endpoints: Vec<Uri> = urls
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let k = crate::upstream::url_key(raw.url.as_ref(), key, i, urls.len());
            endpoint(u, &k, c)
        })
        .collect();
    let llm = Box::new(crate::upstream::extras(&raw, key, c));
    let grpc = raw
        .grpc_url
        .as_deref()
        .and_then(|u| endpoint(u, &format!("{key}.grpc_url"), c));
    let host = raw
        .host
        .as_deref()
        .and_then(|h| match HeaderValue::from_str(h) {
            Ok(v) if !h.is_empty() && !h.contains(['/', ' ', '@']) => Some(v),
            _ => {
                c.push(
                    format!("{key}.host"),
                    format!("invalid Host header value {h:?}"),
                    "write a host name such as iris.models.svc.cluster.local",
                );
                None
            }
        });
    let timeout = duration(
        raw.timeout.as_deref(),
        Duration::from_secs(300),
        Zero::Refused,
        &format!("{key}.timeout"),
        c,
    );
    let connect_timeout = duration(
        raw.connect_timeout.as_deref(),
        Duration::from_secs(5),
        Zero::Refused,
        &format!("{key}.connect_timeout"),
        c,
    );
    if endpoints.len() != urls.len() || urls.is_empty() {
        return None;
    }
    Some(Upstream {
        endpoints,
        grpc,
        timeout,
        connect_timeout,
        host,
        http2: raw.http2.unwrap_or(false),
        llm,
    })
}

pub(super) fn endpoint(s: &str, key: &str, c: &mut Collector) -> Option<Uri> {
    let bad = |c: &mut Collector, why: &str| {
        c.push(key, format!("invalid upstream URL {:?}: {why}", modelgate_core::redact_url(s)), "write scheme://host:port with scheme http or https and no path, e.g. http://127.0.0.1:8080");
        None
    };
    let Ok(uri) = Uri::from_str(s) else {
        return bad(c, "not a URL");
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return bad(c, "scheme must be http or https"),
    }
    let Some(authority) = uri.authority() else {
        return bad(c, "no host");
    };
    if authority.as_str().contains('@') {
        return bad(c, "credentials in the URL are not supported");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return bad(c, "a path or query is not supported");
    }
    Some(uri)
}
