//! The shape of a policy: a native entry or a pasted Istio
//! AuthorizationPolicy, its action, provider, models and rules.

use super::*;

pub(super) fn istio_policy(item: Value, key: &str, c: &mut Collector) -> Option<Policy> {
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
pub(super) fn build_policy(
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
    check_name(&name, &name_key, c);
    let action = parse_action(action.as_deref(), body_key, c)?;
    let provider = custom_provider(action, provider, body_key, c);
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
    let rules = build_rules(rules, body_key, c);
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

/// A policy name is letters, digits, '-', '_' and '.'.
fn check_name(name: &str, name_key: &str, c: &mut Collector) {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        c.push(
            name_key,
            format!("invalid policy name {name:?}"),
            "use letters, digits, '-', '_' and '.'",
        );
    }
}

/// `action` (ALLOW when absent); `None` (reported) if unknown.
fn parse_action(action: Option<&str>, body_key: &str, c: &mut Collector) -> Option<Action> {
    Some(match action {
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
    })
}

/// The CUSTOM policy's provider name; any other action takes none.
fn custom_provider(
    action: Action,
    provider: Option<RawProvider>,
    body_key: &str,
    c: &mut Collector,
) -> Option<String> {
    match (action, provider) {
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
    }
}

/// `rules`, each a rule; a null entry is refused.
fn build_rules(rules: Option<Vec<Value>>, body_key: &str, c: &mut Collector) -> Option<Vec<Rule>> {
    rules.map(|rs| {
        rs.into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let rk = format!("{body_key}.rules[{i}]");
                // `- {}` is the empty, match-all rule. A bare `-` (null) is
                // refused, as Istio's decoder refuses it: read as match-all it
                // would err open.
                let raw: RawRule = match r {
                    Value::Null => {
                        c.push(
                            rk,
                            "empty rule (null)",
                            "write `- {}` for a rule that matches every request, or remove the `-`",
                        );
                        return None;
                    }
                    other => de(other, &rk, c)?,
                };
                Some(rule(raw, &rk, c))
            })
            .collect()
    })
}

pub(super) fn rule(raw: RawRule, key: &str, c: &mut Collector) -> Rule {
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
