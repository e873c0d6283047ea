//! Raw policy entries → validated [`Policy`] values, one file per part of a
//! policy: its shape (native or pasted Istio object), `from` (source), `to`
//! (target) and `when` (conditions). Each error names its key and a fix.

mod conditions;
mod shape;
mod source;
mod target;

use std::collections::HashSet;
use std::str::FromStr;

use http::HeaderName;
use modelgate_core::Protocol;
use yaml_serde::Value;

use super::raw::*;
use super::*;
use crate::error::Collector;
use crate::load::de;
use conditions::*;
use shape::*;
use source::*;
use target::*;

/// Validates the `policies:` section (absent or empty = no policies).
pub(crate) fn policies(v: Option<Value>, c: &mut Collector) -> Vec<Policy> {
    let items = match v {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            c.push("policies", "must be a list", "write `policies:` followed by `- name: …` entries or pasted `- apiVersion: security.istio.io/v1 …` objects");
            return Vec::new();
        }
    };
    let mut out: Vec<Policy> = Vec::new();
    let mut names = HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("policies[{i}]");
        let Some(p) = policy(item, &key, c) else {
            continue;
        };
        if !names.insert(p.name.clone()) {
            c.push(
                format!("{key}.name"),
                format!("policy {} is defined twice", p.name),
                "give each policy its own name",
            );
        }
        out.push(p);
    }
    out
}

pub(super) fn is_istio_object(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => ["apiVersion", "kind", "metadata", "spec"]
            .iter()
            .any(|k| m.contains_key(*k)),
        _ => false,
    }
}

pub(super) fn policy(item: Value, key: &str, c: &mut Collector) -> Option<Policy> {
    if is_istio_object(&item) {
        return istio_policy(item, key, c);
    }
    let raw: RawPolicy = de(item, key, c)?;
    build_policy(
        raw.name,
        raw.action,
        raw.provider,
        raw.rules,
        raw.models,
        raw.dry_run.unwrap_or(false),
        key,
        key,
        c,
    )
}

pub(super) fn field<K>(
    fields: &mut Vec<Field<K>>,
    key: &str,
    name: &str,
    negate: bool,
    kind: Option<K>,
) {
    if let Some(kind) = kind {
        fields.push(Field {
            key: format!("{key}.{name}"),
            negate,
            kind,
        });
    }
}

pub(super) fn nonempty(list: List, key: &str, c: &mut Collector) -> Option<Vec<Scalar>> {
    let list = list?;
    if list.is_empty() {
        // Istio treats an empty list as unset; say so rather than guess.
        c.push(
            key,
            "empty list",
            "remove the key (unset means any) or list values",
        );
        return None;
    }
    Some(list)
}

pub(super) fn str_patterns(list: Vec<Scalar>, key: &str, c: &mut Collector) -> Vec<StrPattern> {
    list.into_iter()
        .enumerate()
        .filter_map(|(i, s)| match StrPattern::parse(&s.into_string()) {
            Ok(p) => Some(p),
            Err(e) => {
                c.push(format!("{key}[{i}]"), e, "use exact values, `prefix*`, `*suffix` or `*`; write a `cel:` condition for anything else");
                None
            }
        })
        .collect()
}

pub(super) fn typed<T>(
    list: Vec<Scalar>,
    key: &str,
    c: &mut Collector,
    parse: impl Fn(&str) -> Result<T, String>,
    hint: &str,
) -> Vec<T> {
    list.into_iter()
        .enumerate()
        .filter_map(|(i, s)| match parse(&s.into_string()) {
            Ok(v) => Some(v),
            Err(e) => {
                c.push(format!("{key}[{i}]"), e, hint);
                None
            }
        })
        .collect()
}

pub(super) fn port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {s:?}"))
}
