//! `when` conditions (Istio's keys) and `cel:` expressions.

use super::*;

/// Compiles a CEL expression to check it; the evaluator compiles it again.
pub(super) fn check_cel(src: &str, key: &str, c: &mut Collector) -> bool {
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
pub(super) fn bound_in_macro(src: &str, var: &str) -> bool {
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

pub(super) fn condition(raw: RawCondition, path: &str, c: &mut Collector) -> Option<Condition> {
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

pub(super) fn values(attr: &Attribute, l: Vec<Scalar>, key: &str, c: &mut Collector) -> Values {
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

pub(super) const KEYS_HINT: &str = "supported keys: request.headers[<name>], request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[<name>]…, source.ip, remote.ip, source.namespace, source.principal, destination.ip, destination.port; use `cel:` for anything else";

pub(super) fn attribute(key: &str) -> Result<Attribute, (String, String)> {
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
