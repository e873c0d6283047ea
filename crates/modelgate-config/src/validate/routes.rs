//! How a model is reached: canonical route prefixes, `hosts:` and public
//! operations.

use http::Method;
use modelgate_core::{ModelName, Operation};

use crate::error::Collector;
use crate::raw::*;
use crate::types::*;

/// A path that is already in the normalised form requests are compared in.
pub(crate) fn canonical_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err("must start with '/'".into());
    }
    if s.contains("//") {
        return Err("must not contain '//'".into());
    }
    if s.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("must not contain '.' or '..' segments".into());
    }
    if let Some(ch) = s
        .chars()
        .find(|ch| matches!(ch, '%' | '?' | '#' | ';' | '\\' | ' ') || ch.is_control())
    {
        return Err(format!("must not contain {ch:?}"));
    }
    Ok(())
}

pub(super) fn prefix_route(raw: RawRoute, key: &str, c: &mut Collector) -> Option<PrefixRoute> {
    let mut ok = true;
    for (field, v) in [("prefix", &raw.prefix), ("rewrite", &raw.rewrite)] {
        if let Err(e) = canonical_path(v) {
            c.push(
                format!("{key}.{field}"),
                format!("{v:?} {e}"),
                "write a plain absolute path such as /kfserving/ns/model",
            );
            ok = false;
        }
    }
    let prefix = raw.prefix.trim_end_matches('/').to_string();
    if ok
        && (prefix.is_empty()
            || ["/v1", "/v2", "/inference.GRPCInferenceService"]
                .iter()
                .any(|p| prefix == *p || prefix.starts_with(&format!("{p}/"))))
    {
        c.push(
            format!("{key}.prefix"),
            format!("{:?} overlaps the protocol paths", raw.prefix),
            "choose a prefix outside /v1 and /v2, e.g. /kfserving/<namespace>/<model>",
        );
        ok = false;
    }
    if ok && !(raw.rewrite.starts_with("/v1/") || raw.rewrite.starts_with("/v2/")) {
        c.push(
            format!("{key}.rewrite"),
            format!("{:?} is not a V1 or V2 model path", raw.rewrite),
            "rewrite onto /v1/models/<model>:predict or /v2/models/<model>/infer",
        );
        ok = false;
    }
    let methods = raw.methods.map(|ms| {
        ms.iter()
            .enumerate()
            .filter_map(|(i, m)| match Method::from_bytes(m.as_bytes()) {
                Ok(mm) if m.bytes().all(|b| b.is_ascii_uppercase()) => Some(mm),
                _ => {
                    c.push(
                        format!("{key}.methods[{i}]"),
                        format!("invalid method {m:?}"),
                        "use upper-case HTTP methods such as POST",
                    );
                    ok = false;
                    None
                }
            })
            .collect()
    });
    ok.then_some(PrefixRoute {
        prefix,
        rewrite: raw.rewrite,
        methods,
    })
}

pub(super) fn check_route_prefixes(models: &[Model], c: &mut Collector) {
    let mut seen: Vec<(&str, &ModelName)> = Vec::new();
    for m in models {
        for r in &m.routes {
            if let Some((_, other)) = seen.iter().find(|(p, _)| *p == r.prefix) {
                c.push(
                    "models",
                    format!(
                        "route prefix {} is used by {} and {}",
                        r.prefix, other, m.name
                    ),
                    "each prefix may route to one model only",
                );
            }
            seen.push((&r.prefix, &m.name));
        }
    }
}

pub(super) fn host(h: &str, key: &str, c: &mut Collector) -> Option<String> {
    let lower = h.to_ascii_lowercase();
    let bare = match lower.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name.to_string()
        }
        _ => lower,
    };
    if bare.is_empty()
        || !bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*'))
    {
        c.push(
            key,
            format!("invalid host {h:?}"),
            "write a DNS name such as sklearn-iris.models.example.com",
        );
        return None;
    }
    Some(bare)
}

pub(super) fn public_operation(s: &str, key: &str, c: &mut Collector) -> Option<Operation> {
    let op = match s {
        "model_ready" => Operation::ModelReady,
        "model_metadata" => Operation::ModelMetadata,
        "infer" => Operation::Infer,
        _ => {
            c.push(
                key,
                format!("{s:?} cannot be made public"),
                "use model_ready, model_metadata or infer",
            );
            return None;
        }
    };
    Some(op)
}
