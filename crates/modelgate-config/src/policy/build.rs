//! Raw policy entries → validated [`Policy`] values; each error names its key and a fix.

use std::collections::HashSet;
use std::str::FromStr;

use http::HeaderName;
use modelgate_core::Protocol;
use yaml_serde::Value;

use super::raw::*;
use super::*;
use crate::error::Collector;
use crate::load::de;

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

fn is_istio_object(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => ["apiVersion", "kind", "metadata", "spec"]
            .iter()
            .any(|k| m.contains_key(*k)),
        _ => false,
    }
}

fn policy(item: Value, key: &str, c: &mut Collector) -> Option<Policy> {
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

fn istio_policy(item: Value, key: &str, c: &mut Collector) -> Option<Policy> {
    let raw: RawIstio = de(item, key, c)?;
    if !matches!(
        raw.api_version.as_str(),
        "security.istio.io/v1" | "security.istio.io/v1beta1"
    ) {
        c.push(
            format!("{key}.apiVersion"),
            format!("unsupported apiVersion {:?}", raw.api_version),
            "use security.istio.io/v1 or security.istio.io/v1beta1",
        );
    }
    if raw.kind != "AuthorizationPolicy" {
        let hint = if raw.kind == "RequestAuthentication" || raw.kind == "PeerAuthentication" {
            "authentication is configured under `auth:` (see docs/identity.md); only AuthorizationPolicy objects go under `policies:`"
        } else {
            "only kind: AuthorizationPolicy is accepted here"
        };
        c.push(
            format!("{key}.kind"),
            format!("unsupported kind {:?}", raw.kind),
            hint,
        );
        return None;
    }
    let _ = (raw.metadata.namespace, raw.metadata.labels);
    let spec = raw.spec.unwrap_or_default();
    let sk = format!("{key}.spec");
    for (field, present) in [
        ("selector", spec.selector.is_some()),
        ("targetRef", spec.target_ref.is_some()),
        ("targetRefs", spec.target_refs.is_some()),
    ] {
        if present {
            c.push(
                format!("{sk}.{field}"),
                "workload selectors choose Kubernetes pods; modelgate is one gateway and has none",
                "delete it (the policy then applies to every request modelgate serves), or scope it to models with `spec.models: [name, …]`",
            );
        }
    }
    let dry_run = match raw
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("istio.io/dry-run"))
    {
        None => false,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => {
            c.push(
                format!("{key}.metadata.annotations"),
                format!("istio.io/dry-run must be \"true\" or \"false\", not {v:?}"),
                "write istio.io/dry-run: \"true\"",
            );
            false
        }
    };
    build_policy(
        raw.metadata.name,
        spec.action,
        spec.provider,
        spec.rules,
        spec.models,
        dry_run,
        key,
        &sk,
        c,
    )
}

#[allow(clippy::too_many_arguments)]
fn build_policy(
    name: String,
    action: Option<String>,
    provider: Option<RawProvider>,
    rules: Option<Vec<Value>>,
    models: Option<Vec<String>>,
    dry_run: bool,
    key: &str,
    body_key: &str,
    c: &mut Collector,
) -> Option<Policy> {
    let name_key = if key == body_key {
        format!("{key}.name")
    } else {
        format!("{key}.metadata.name")
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        c.push(
            &name_key,
            format!("invalid policy name {name:?}"),
            "use letters, digits, '-', '_' and '.'",
        );
    }
    let action = match action.as_deref() {
        None | Some("ALLOW") => Action::Allow,
        Some("DENY") => Action::Deny,
        Some("AUDIT") => Action::Audit,
        Some("CUSTOM") => Action::Custom,
        Some(other) => {
            let hint = match other.to_ascii_uppercase().as_str() {
                u @ ("ALLOW" | "DENY" | "AUDIT" | "CUSTOM") => {
                    format!("actions are upper-case: write {u}")
                }
                _ => "use ALLOW, DENY, AUDIT or CUSTOM".into(),
            };
            c.push(
                format!("{body_key}.action"),
                format!("unknown action {other:?}"),
                hint,
            );
            return None;
        }
    };
    let provider = match (action, provider) {
        (Action::Custom, Some(p)) if !p.name.is_empty() => Some(p.name),
        (Action::Custom, _) => {
            c.push(format!("{body_key}.provider"), "a CUSTOM policy needs `provider: {name: …}`", "name the provider, e.g. provider: {name: modelgate}; modelgate's own identity chain serves every provider name");
            None
        }
        (_, Some(_)) => {
            c.push(
                format!("{body_key}.provider"),
                format!(
                    "only CUSTOM policies take a provider, this one is {}",
                    action.as_str()
                ),
                "remove `provider`, or set action: CUSTOM",
            );
            None
        }
        (_, None) => None,
    };
    let models = models.map(|ms| {
        if ms.is_empty() {
            c.push(
                format!("{body_key}.models"),
                "empty list: the policy would apply to nothing",
                "list model names, or remove `models` to apply it to every request",
            );
        }
        str_patterns(
            ms.into_iter().map(Scalar::Str).collect(),
            &format!("{body_key}.models"),
            c,
        )
    });
    let rules = rules.map(|rs| {
        rs.into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let rk = format!("{body_key}.rules[{i}]");
                // `- {}` and a bare `-` (null) are both the empty, match-all rule.
                let raw: RawRule = match r {
                    Value::Null => RawRule::default(),
                    other => de(other, &rk, c)?,
                };
                Some(rule(raw, &rk, c))
            })
            .collect()
    });
    Some(Policy {
        name,
        key: key.to_string(),
        action,
        provider,
        models,
        rules,
        dry_run,
    })
}

fn rule(raw: RawRule, key: &str, c: &mut Collector) -> Rule {
    let from = raw
        .from
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, f)| source(f.source, &format!("{key}.from[{i}].source"), c))
        .collect();
    let to = raw
        .to
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| target(t.operation, &format!("{key}.to[{i}].operation"), c))
        .collect();
    let when = raw
        .when
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, w)| condition(w, &format!("{key}.when[{i}]"), c))
        .collect();
    let cel = raw.cel.and_then(|src| {
        let path = format!("{key}.cel");
        check_cel(&src, &path, c).then_some(CelExpr { path, source: src })
    });
    Rule {
        from,
        to,
        when,
        cel,
    }
}

/// Compiles a CEL expression to check it; the evaluator compiles it again.
fn check_cel(src: &str, key: &str, c: &mut Collector) -> bool {
    match cel::Program::compile(src) {
        Ok(p) => {
            let refs = p.references();
            let mut unknown: Vec<&str> = refs
                .variables()
                .into_iter()
                .filter(|v| !CEL_VARIABLES.contains(v) && !bound_in_macro(src, v))
                .collect();
            unknown.sort_unstable();
            if unknown.is_empty() {
                true
            } else {
                c.push(
                    key,
                    format!(
                        "unknown variable{} {}",
                        if unknown.len() == 1 { "" } else { "s" },
                        unknown.join(", ")
                    ),
                    format!("CEL conditions can use {}", CEL_VARIABLES.join(", ")),
                );
                false
            }
        }
        Err(e) => {
            c.push(
                key,
                format!(
                    "invalid CEL expression: {}",
                    e.to_string().lines().next().unwrap_or("syntax error")
                ),
                "fix the expression (see docs/policy.md, CEL conditions)",
            );
            false
        }
    }
}

/// Whether `var` is the iteration variable of a macro such as `exists(var, …)`.
fn bound_in_macro(src: &str, var: &str) -> bool {
    ["all(", "exists(", "exists_one(", "map(", "filter("]
        .iter()
        .any(|m| {
            src.match_indices(m).any(|(i, _)| {
                src[i + m.len()..]
                    .trim_start()
                    .strip_prefix(var)
                    .is_some_and(|rest| rest.trim_start().starts_with(','))
            })
        })
}

fn field<K>(fields: &mut Vec<Field<K>>, key: &str, name: &str, negate: bool, kind: Option<K>) {
    if let Some(kind) = kind {
        fields.push(Field {
            key: format!("{key}.{name}"),
            negate,
            kind,
        });
    }
}

fn nonempty(list: List, key: &str, c: &mut Collector) -> Option<Vec<Scalar>> {
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

fn str_patterns(list: Vec<Scalar>, key: &str, c: &mut Collector) -> Vec<StrPattern> {
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

fn typed<T>(
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

fn source(raw: RawSource, key: &str, c: &mut Collector) -> Source {
    let mut f = Vec::new();
    macro_rules! strs {
        ($raw:expr, $name:literal, $neg:expr, $variant:ident) => {{
            let k = format!("{key}.{}", $name);
            let v = nonempty($raw, &k, c).map(|l| SourceField::$variant(str_patterns(l, &k, c)));
            field(&mut f, key, $name, $neg, v);
        }};
    }
    macro_rules! typed_field {
        ($raw:expr, $name:literal, $neg:expr, $variant:ident, $parse:expr, $hint:expr) => {{
            let k = format!("{key}.{}", $name);
            let v = nonempty($raw, &k, c)
                .map(|l| SourceField::$variant(typed(l, &k, c, $parse, $hint)));
            field(&mut f, key, $name, $neg, v);
        }};
    }
    strs!(raw.principals, "principals", false, Principals);
    strs!(raw.not_principals, "notPrincipals", true, Principals);
    let rp_hint =
        "write `*` or `<issuer>/<subject>`, e.g. https://issuer.example.com/alice or api_key/alice";
    typed_field!(
        raw.request_principals,
        "requestPrincipals",
        false,
        RequestPrincipals,
        PrincipalPattern::parse,
        rp_hint
    );
    typed_field!(
        raw.not_request_principals,
        "notRequestPrincipals",
        true,
        RequestPrincipals,
        PrincipalPattern::parse,
        rp_hint
    );
    strs!(raw.namespaces, "namespaces", false, Namespaces);
    strs!(raw.not_namespaces, "notNamespaces", true, Namespaces);
    let sa_hint = "write <namespace>/<serviceaccount> with no wildcards";
    typed_field!(
        raw.service_accounts,
        "serviceAccounts",
        false,
        ServiceAccounts,
        service_account,
        sa_hint
    );
    typed_field!(
        raw.not_service_accounts,
        "notServiceAccounts",
        true,
        ServiceAccounts,
        service_account,
        sa_hint
    );
    strs!(raw.trust_domains, "trustDomains", false, TrustDomains);
    strs!(raw.not_trust_domains, "notTrustDomains", true, TrustDomains);
    let ip_hint = "write an IP address or CIDR such as 10.0.0.0/8";
    typed_field!(
        raw.ip_blocks,
        "ipBlocks",
        false,
        IpBlocks,
        IpNet::parse,
        ip_hint
    );
    typed_field!(
        raw.not_ip_blocks,
        "notIpBlocks",
        true,
        IpBlocks,
        IpNet::parse,
        ip_hint
    );
    typed_field!(
        raw.remote_ip_blocks,
        "remoteIpBlocks",
        false,
        RemoteIpBlocks,
        IpNet::parse,
        ip_hint
    );
    typed_field!(
        raw.not_remote_ip_blocks,
        "notRemoteIpBlocks",
        true,
        RemoteIpBlocks,
        IpNet::parse,
        ip_hint
    );
    Source { fields: f }
}

fn service_account(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, sa))
            if !ns.is_empty() && !sa.is_empty() && !sa.contains('/') && !s.contains('*') =>
        {
            Ok((ns.to_string(), sa.to_string()))
        }
        _ => Err(format!("{s:?} is not <namespace>/<serviceaccount>")),
    }
}

fn target(raw: RawOperation, key: &str, c: &mut Collector) -> Target {
    let mut f = Vec::new();
    for (list, name, neg) in [
        (raw.hosts, "hosts", false),
        (raw.not_hosts, "notHosts", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c).map(|l| {
            TargetField::Hosts(typed(
                l,
                &k,
                c,
                host_pattern,
                "write a host name, `*.example.com` or `*`",
            ))
        });
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.ports, "ports", false),
        (raw.not_ports, "notPorts", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c)
            .map(|l| TargetField::Ports(typed(l, &k, c, port, "write a port number such as 8080")));
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.methods, "methods", false),
        (raw.not_methods, "notMethods", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c).map(|l| {
            TargetField::Methods(typed(
                l,
                &k,
                c,
                method_pattern,
                "methods are upper-case (GET, POST); gRPC is always POST",
            ))
        });
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.paths, "paths", false),
        (raw.not_paths, "notPaths", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c).map(|l| TargetField::Paths(typed(l, &k, c, path_match, "write a normalised path: /exact, /prefix*, *suffix, * or a template such as /v2/models/{*}/infer")));
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.models, "models", false),
        (raw.not_models, "notModels", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c).map(|l| TargetField::Models(str_patterns(l, &k, c)));
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.protocols, "protocols", false),
        (raw.not_protocols, "notProtocols", true),
    ] {
        let k = format!("{key}.{name}");
        let parse = |s: &str| Protocol::parse(s).ok_or_else(|| format!("unknown protocol {s:?}"));
        let v = nonempty(list, &k, c)
            .map(|l| TargetField::Protocols(typed(l, &k, c, parse, "use v1, v2, grpc or openai")));
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.operations, "operations", false),
        (raw.not_operations, "notOperations", true),
    ] {
        let k = format!("{key}.{name}");
        let hint = format!(
            "use one of {}",
            OPERATIONS
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let parse = |s: &str| {
            OPERATIONS
                .iter()
                .copied()
                .find(|o| o.as_str() == s)
                .ok_or_else(|| format!("unknown operation {s:?}"))
        };
        let v =
            nonempty(list, &k, c).map(|l| TargetField::Operations(typed(l, &k, c, parse, &hint)));
        field(&mut f, key, name, neg, v);
    }
    Target { fields: f }
}

/// Hosts compare lower-case with the port stripped (`Example.com:8080` → `example.com`).
fn host_pattern(s: &str) -> Result<StrPattern, String> {
    let lower = s.to_ascii_lowercase();
    let bare = match lower.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && (p == "*" || p.bytes().all(|b| b.is_ascii_digit())) => {
            h.to_string()
        }
        _ => lower,
    };
    if bare.is_empty()
        || !bare.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'[' | b']' | b':')
        })
    {
        return Err(format!("invalid host {s:?}"));
    }
    StrPattern::parse(&bare)
}

fn port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {s:?}"))
}

fn method_pattern(s: &str) -> Result<StrPattern, String> {
    if s != "*" && !s.bytes().all(|b| b.is_ascii_uppercase() || b == b'*') {
        return Err(format!(
            "{s:?} never matches: modelgate refuses methods that are not upper-case"
        ));
    }
    StrPattern::parse(s)
}

/// A path pattern, checked to be in the normalised form requests are compared
/// in: a pattern no normalised path can match is an error, not a silent no-op.
fn path_match(s: &str) -> Result<PathMatch, String> {
    if s.contains('{') || s.contains('}') {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(format!("{s:?}: a template must start with '/'"));
        };
        let mut segs = Vec::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, p) in parts.iter().enumerate() {
            segs.push(match *p {
                "{*}" => TemplateSegment::One,
                "{**}" if i + 1 == parts.len() => TemplateSegment::Rest,
                "{**}" => return Err(format!("{s:?}: {{**}} must be the last segment")),
                lit if lit.contains(['{', '}', '*']) => {
                    return Err(format!(
                        "{s:?}: {{*}} and {{**}} must stand alone as a whole segment"
                    ));
                }
                lit => {
                    crate::validate::canonical_path(&format!("/{lit}"))
                        .map_err(|e| format!("{s:?} {e}"))?;
                    if lit.is_empty() || lit == "." || lit == ".." {
                        return Err(format!("{s:?} has an empty or dot segment"));
                    }
                    TemplateSegment::Literal((*lit).to_string())
                }
            });
        }
        return Ok(PathMatch::Template(segs));
    }
    let p = StrPattern::parse(s)?;
    match &p {
        StrPattern::Any => {}
        StrPattern::Exact(l) => {
            crate::validate::canonical_path(l).map_err(|e| format!("{s:?} {e}"))?
        }
        // `/v2/*` keeps its trailing slash; `/v2/x*` may end mid-segment.
        StrPattern::Prefix(l) => {
            crate::validate::canonical_path(l).map_err(|e| format!("{s:?} {e}"))?;
        }
        StrPattern::Suffix(l) => {
            crate::validate::canonical_path(&format!("/x{l}")).map_err(|e| format!("{s:?} {e}"))?;
        }
    }
    Ok(PathMatch::Str(p))
}

fn condition(raw: RawCondition, path: &str, c: &mut Collector) -> Option<Condition> {
    let key = raw.key.trim().to_string();
    let attribute = match attribute(&key) {
        Ok(a) => a,
        Err((msg, hint)) => {
            c.push(format!("{path}.key"), msg, hint);
            return None;
        }
    };
    if raw.values.is_none() && raw.not_values.is_none() {
        c.push(
            path,
            "a condition needs `values` or `notValues`",
            "add values: [...] or notValues: [...]",
        );
        return None;
    }
    let vals = nonempty(raw.values, &format!("{path}.values"), c)
        .map(|l| values(&attribute, l, &format!("{path}.values"), c));
    let not_values = nonempty(raw.not_values, &format!("{path}.notValues"), c)
        .map(|l| values(&attribute, l, &format!("{path}.notValues"), c));
    Some(Condition {
        path: path.to_string(),
        key,
        attribute,
        values: vals,
        not_values,
    })
}

fn values(attr: &Attribute, l: Vec<Scalar>, key: &str, c: &mut Collector) -> Values {
    let ip_hint = "write an IP address or CIDR such as 10.0.0.0/8";
    match attr {
        Attribute::SourceIp | Attribute::RemoteIp | Attribute::DestinationIp => {
            Values::Ip(typed(l, key, c, IpNet::parse, ip_hint))
        }
        Attribute::DestinationPort => {
            Values::Port(typed(l, key, c, port, "write a port number such as 8080"))
        }
        Attribute::AuthPrincipal => Values::Principal(typed(
            l,
            key,
            c,
            PrincipalPattern::parse,
            "write `*` or `<issuer>/<subject>`",
        )),
        _ => Values::Str(str_patterns(l, key, c)),
    }
}

const KEYS_HINT: &str = "supported keys: request.headers[<name>], request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[<name>]…, source.ip, remote.ip, source.namespace, source.principal, destination.ip, destination.port; use `cel:` for anything else";

fn attribute(key: &str) -> Result<Attribute, (String, String)> {
    let unknown = || {
        (
            format!("unknown condition key {key:?}"),
            KEYS_HINT.to_string(),
        )
    };
    if let Some(rest) = key.strip_prefix("request.headers[") {
        let name = rest.strip_suffix(']').ok_or_else(unknown)?;
        let h = HeaderName::from_str(&name.to_ascii_lowercase()).map_err(|_| {
            (
                format!("invalid header name {name:?}"),
                "write request.headers[x-my-header]".to_string(),
            )
        })?;
        return Ok(Attribute::RequestHeader(h));
    }
    if let Some(rest) = key.strip_prefix("request.auth.claims") {
        let mut path = Vec::new();
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(unknown)?;
            let name = &r[..end];
            if name.is_empty() {
                return Err((
                    format!("empty claim name in {key:?}"),
                    "write request.auth.claims[groups] or request.auth.claims[realm_access][roles]"
                        .into(),
                ));
            }
            path.push(name.to_string());
            rest = &r[end + 1..];
        }
        if !rest.is_empty() || path.is_empty() {
            return Err(unknown());
        }
        return Ok(Attribute::AuthClaims(path));
    }
    Ok(match key {
        "source.ip" => Attribute::SourceIp,
        "remote.ip" => Attribute::RemoteIp,
        "source.namespace" => Attribute::SourceNamespace,
        "source.principal" => Attribute::SourcePrincipal,
        "request.auth.principal" => Attribute::AuthPrincipal,
        "request.auth.audiences" => Attribute::AuthAudiences,
        "request.auth.presenter" => Attribute::AuthPresenter,
        "destination.ip" => Attribute::DestinationIp,
        "destination.port" => Attribute::DestinationPort,
        "connection.sni" => {
            return Err((
                "connection.sni is not available to modelgate policies".into(),
                "match `hosts` instead (modelgate checks the Host against the TLS server name)"
                    .into(),
            ));
        }
        k if k.starts_with("experimental.") => {
            return Err((
                format!("{k:?} is an Envoy filter-state key with no meaning in modelgate"),
                KEYS_HINT.into(),
            ));
        }
        _ => return Err(unknown()),
    })
}
