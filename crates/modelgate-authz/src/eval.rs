//! Matching one request against policies: sources, targets, conditions and
//! CEL, with Istio's meaning of every field. Pure functions over [`Input`];
//! nothing here allocates unless an explanation is asked for (or a claim or
//! CEL condition needs a value built).
//!
//! Repeated headers: every field line is one value and is checked on its own
//! (never joined, never last-only). Where lines disagree the condition takes
//! the restrictive reading: in a DENY, CUSTOM or AUDIT policy it holds if it
//! holds for *any* line; in an ALLOW policy only if it holds for *every* line.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use cel::Env;
use modelgate_config::IpNet;
use modelgate_config::policy::{
    Attribute, Condition, Field, PathMatch, PrincipalPattern, Rule, Source, SourceField,
    StrPattern, Target, TargetField, Values,
};

use crate::cel::CelCondition;
use crate::input::Input;

/// How a multi-valued header condition is read (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// Holds if it holds for some value (DENY, CUSTOM, AUDIT).
    Any,
    /// Holds only if it holds for every value (ALLOW).
    All,
}

/// Why a rule did not match: a reference into the policy, rendered only when
/// an explanation is wanted.
#[derive(Debug)]
pub enum Miss<'p> {
    Source(&'p Field<SourceField>),
    Target(&'p Field<TargetField>),
    NoSource(usize),
    NoTarget(usize),
    Condition(&'p Condition),
    Cel(&'p CelCondition, Option<String>),
}

/// A rule with its compiled CEL condition.
#[derive(Debug)]
pub struct CompiledRule {
    pub rule: Rule,
    pub cel: Option<CelCondition>,
}

/// Whether `rule` matches; `Err` names the first part that did not.
/// A CEL error counts as a match for restrictive quantifiers (fail closed).
pub fn rule_matches<'p>(
    r: &'p CompiledRule,
    i: &Input<'_>,
    q: Quantifier,
    env: &Arc<Env>,
) -> Result<(), Miss<'p>> {
    let rule = &r.rule;
    if !rule.from.is_empty() {
        let mut miss = None;
        if !rule.from.iter().any(|s| match source_mismatch(s, i) {
            None => true,
            Some(f) => {
                miss.get_or_insert(f);
                false
            }
        }) {
            return Err(match (rule.from.len(), miss) {
                (1, Some(f)) => Miss::Source(f),
                (n, _) => Miss::NoSource(n),
            });
        }
    }
    if !rule.to.is_empty() {
        let mut miss = None;
        if !rule.to.iter().any(|t| match target_mismatch(t, i) {
            None => true,
            Some(f) => {
                miss.get_or_insert(f);
                false
            }
        }) {
            return Err(match (rule.to.len(), miss) {
                (1, Some(f)) => Miss::Target(f),
                (n, _) => Miss::NoTarget(n),
            });
        }
    }
    if let Some(c) = rule.when.iter().find(|c| !condition_holds(c, i, q)) {
        return Err(Miss::Condition(c));
    }
    if let Some(c) = &r.cel {
        match c.eval(env, i) {
            Ok(true) => {}
            Ok(false) => return Err(Miss::Cel(c, None)),
            Err(_) if q == Quantifier::Any => {}
            Err(e) => return Err(Miss::Cel(c, Some(e))),
        }
    }
    Ok(())
}

fn source_mismatch<'p>(s: &'p Source, i: &Input<'_>) -> Option<&'p Field<SourceField>> {
    s.fields.iter().find(|f| f.negate == source_any(&f.kind, i))
}

fn target_mismatch<'p>(t: &'p Target, i: &Input<'_>) -> Option<&'p Field<TargetField>> {
    t.fields.iter().find(|f| f.negate == target_any(&f.kind, i))
}

fn any_str(pats: &[StrPattern], v: Option<&str>) -> bool {
    v.is_some_and(|v| pats.iter().any(|p| p.matches(v.as_bytes())))
}

fn any_ip(nets: &[IpNet], ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
}

/// `requestPrincipals` / `request.auth.principal`: Istio's string match on
/// the whole `<iss>/<sub>` (see [`PrincipalPattern`]).
fn principal_matches(p: &PrincipalPattern, iss: &str, sub: &str) -> bool {
    p.matches(iss, sub)
}

/// Whether the attribute matches any of the field's values (before `not`).
pub fn source_any(f: &SourceField, i: &Input<'_>) -> bool {
    match f {
        SourceField::Principals(p) => any_str(p, i.peer_principal.as_deref()),
        SourceField::RequestPrincipals(p) => i
            .request_principal()
            .is_some_and(|(iss, sub)| p.iter().any(|p| principal_matches(p, iss, sub))),
        SourceField::Namespaces(p) => any_str(p, i.namespace()),
        SourceField::ServiceAccounts(sas) => i
            .peer_parts()
            .is_some_and(|(_, ns, sa)| sas.iter().any(|(n, s)| n == ns && s == sa)),
        SourceField::TrustDomains(p) => any_str(p, i.peer_parts().map(|(td, _, _)| td)),
        SourceField::IpBlocks(n) => any_ip(n, Some(i.client)),
        SourceField::RemoteIpBlocks(n) => any_ip(n, i.remote),
    }
}

/// Whether the attribute matches any of the field's values (before `not`).
pub fn target_any(f: &TargetField, i: &Input<'_>) -> bool {
    match f {
        TargetField::Hosts(p) => any_str(p, i.host),
        TargetField::Ports(ports) => ports.contains(&i.local.port()),
        TargetField::Methods(p) => any_str(p, Some(i.method)),
        TargetField::Paths(p) => p.iter().any(|p| p.matches(i.path)),
        TargetField::Models(p) => any_str(p, i.route.model.known().map(|m| m.as_str())),
        TargetField::Protocols(ps) => ps.contains(&i.route.protocol),
        TargetField::Operations(os) => os.contains(&i.route.operation),
    }
}

/// One value of an attribute.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Bytes(Cow<'a, [u8]>),
    Ip(IpAddr),
    Port(u16),
    Principal(&'a str, &'a str),
}

/// Whether `v` matches one of `vs`. Types that differ never match.
fn hit(vs: &Values, v: &Value<'_>, header: bool) -> bool {
    {
        match (vs, v) {
            (Values::Str(ps), Value::Bytes(b)) => ps.iter().any(|p| {
                if header && *p == StrPattern::Any {
                    true
                } else {
                    p.matches(b)
                }
            }),
            (Values::Ip(ns), Value::Ip(ip)) => ns.iter().any(|n| n.contains(*ip)),
            (Values::Port(ps), Value::Port(p)) => ps.contains(p),
            (Values::Principal(ps), Value::Principal(iss, sub)) => {
                ps.iter().any(|p| principal_matches(p, iss, sub))
            }
            _ => false,
        }
    }
}

/// The values of a condition's attribute for this request.
pub fn attribute_values<'a>(a: &Attribute, i: &'a Input<'_>) -> Vec<Value<'a>> {
    let bytes = |s: &'a str| Value::Bytes(Cow::Borrowed(s.as_bytes()));
    match a {
        Attribute::RequestHeader(h) => i
            .headers
            .get_all(h)
            .iter()
            .map(|v| Value::Bytes(Cow::Borrowed(v.as_bytes())))
            .collect(),
        Attribute::SourceIp => vec![Value::Ip(i.client)],
        Attribute::RemoteIp => i.remote.map(Value::Ip).into_iter().collect(),
        Attribute::SourceNamespace => i.namespace().map(bytes).into_iter().collect(),
        Attribute::SourcePrincipal => i.peer_principal.as_deref().map(bytes).into_iter().collect(),
        Attribute::AuthPrincipal => i
            .request_principal()
            .map(|(a, b)| Value::Principal(a, b))
            .into_iter()
            .collect(),
        Attribute::AuthAudiences => i
            .principal
            .map(|p| p.audiences.iter().map(|a| bytes(a)).collect())
            .unwrap_or_default(),
        Attribute::AuthPresenter => i
            .principal
            .and_then(|p| p.presenter.as_deref())
            .map(bytes)
            .into_iter()
            .collect(),
        Attribute::AuthClaims(path) => claim_values(i, path),
        Attribute::DestinationIp => vec![Value::Ip(i.local.ip())],
        Attribute::DestinationPort => vec![Value::Port(i.local.port())],
    }
}

/// A claim's values: a string (split on spaces for `scope` and `permission`,
/// as Istio does), each element of a list, numbers and booleans as text.
fn claim_values<'a>(i: &'a Input<'_>, path: &[String]) -> Vec<Value<'a>> {
    let Some(claims) = i.principal.and_then(|p| p.claims.as_deref()) else {
        return Vec::new();
    };
    let mut cur = match path.first().and_then(|k| claims.get(k)) {
        Some(v) => v,
        None => return Vec::new(),
    };
    for k in &path[1..] {
        match cur.get(k.as_str()) {
            Some(v) => cur = v,
            None => return Vec::new(),
        }
    }
    let split = matches!(
        path.last().map(String::as_str),
        Some("scope" | "permission")
    ) && path.len() == 1;
    let mut out = Vec::new();
    let mut push = |v: &'a serde_json::Value| match v {
        serde_json::Value::String(s) if split => out.extend(
            s.split(' ')
                .filter(|p| !p.is_empty())
                .map(|p| Value::Bytes(Cow::Borrowed(p.as_bytes()))),
        ),
        serde_json::Value::String(s) => out.push(Value::Bytes(Cow::Borrowed(s.as_bytes()))),
        serde_json::Value::Number(n) => {
            out.push(Value::Bytes(Cow::Owned(n.to_string().into_bytes())))
        }
        serde_json::Value::Bool(b) => out.push(Value::Bytes(Cow::Borrowed(if *b {
            b"true"
        } else {
            b"false"
        }))),
        _ => {}
    };
    match cur {
        serde_json::Value::Array(items) => items.iter().for_each(&mut push),
        other => push(other),
    }
    out
}

/// Whether a condition holds. Lists (audiences, list claims) are sets: a
/// value matches if any element does. Repeated headers follow `q`.
pub fn condition_holds(c: &Condition, i: &Input<'_>, q: Quantifier) -> bool {
    let header = matches!(c.attribute, Attribute::RequestHeader(_));
    let vals = attribute_values(&c.attribute, i);
    if header {
        // Per line: it must match `values` (if set) and no `notValues`.
        let sat = |v: &Value<'_>| {
            c.values.as_ref().is_none_or(|vs| hit(vs, v, true))
                && c.not_values.as_ref().is_none_or(|ns| !hit(ns, v, true))
        };
        if vals.is_empty() {
            return c.values.is_none();
        }
        return match q {
            Quantifier::Any => vals.iter().any(sat),
            Quantifier::All => vals.iter().all(sat),
        };
    }
    let pos = c
        .values
        .as_ref()
        .is_none_or(|vs| vals.iter().any(|v| hit(vs, v, false)));
    let neg = c
        .not_values
        .as_ref()
        .is_none_or(|ns| !vals.iter().any(|v| hit(ns, v, false)));
    pos && neg
}

/// Renders a value for explanations (lossy, printable, bounded).
pub fn show(v: &Value<'_>) -> String {
    match v {
        Value::Bytes(b) => {
            let s: String = String::from_utf8_lossy(b)
                .chars()
                .take(80)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            format!("{s:?}")
        }
        Value::Ip(ip) => ip.to_string(),
        Value::Port(p) => p.to_string(),
        Value::Principal(a, b) => format!("{a}/{b}"),
    }
}

/// Renders what a field saw, for explanations.
pub fn describe_source(f: &Field<SourceField>, i: &Input<'_>) -> String {
    let seen = match &f.kind {
        SourceField::Principals(_)
        | SourceField::ServiceAccounts(_)
        | SourceField::TrustDomains(_) => i
            .peer_principal
            .clone()
            .map_or("no mTLS peer identity".into(), |p| format!("peer {p:?}")),
        SourceField::RequestPrincipals(_) => i
            .request_principal()
            .map_or("no request principal (anonymous)".into(), |(a, b)| {
                format!("request principal {a}/{b}")
            }),
        SourceField::Namespaces(_) => i
            .namespace()
            .map_or("no namespace".into(), |n| format!("namespace {n:?}")),
        SourceField::IpBlocks(_) => format!("peer address {}", i.client),
        SourceField::RemoteIpBlocks(_) => i.remote.map_or(
            "remote address unknown (bad X-Forwarded-For from a trusted proxy)".into(),
            |r| format!("remote address {r}"),
        ),
    };
    let list = match &f.kind {
        SourceField::Principals(p) | SourceField::Namespaces(p) | SourceField::TrustDomains(p) => {
            join(p)
        }
        SourceField::RequestPrincipals(p) => join(p),
        SourceField::ServiceAccounts(s) => s
            .iter()
            .map(|(a, b)| format!("{a}/{b}"))
            .collect::<Vec<_>>()
            .join(", "),
        SourceField::IpBlocks(n) | SourceField::RemoteIpBlocks(n) => n
            .iter()
            .map(|n| format!("{}/{}", n.addr, n.prefix))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{} [{list}]: {seen}", f.key)
}

/// Renders what a field saw, for explanations.
pub fn describe_target(f: &Field<TargetField>, i: &Input<'_>) -> String {
    let (list, seen) = match &f.kind {
        TargetField::Hosts(p) => (join(p), format!("host {:?}", i.host.unwrap_or(""))),
        TargetField::Ports(p) => (
            p.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
            format!("port {}", i.local.port()),
        ),
        TargetField::Methods(p) => (join(p), format!("method {}", i.method)),
        TargetField::Paths(p) => (join::<PathMatch>(p), format!("path {:?}", i.path)),
        TargetField::Models(p) => (
            join(p),
            i.route
                .model
                .known()
                .map_or("no model".into(), |m| format!("model {m}")),
        ),
        TargetField::Protocols(p) => (
            p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
            format!("protocol {}", i.route.protocol),
        ),
        TargetField::Operations(o) => (
            o.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(", "),
            format!("operation {}", i.route.operation),
        ),
    };
    format!("{} [{list}]: {seen}", f.key)
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| format!("{x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders a condition and what it saw.
pub fn describe_condition(c: &Condition, i: &Input<'_>) -> String {
    let vals = attribute_values(&c.attribute, i);
    let seen = if vals.is_empty() {
        "absent".to_string()
    } else {
        vals.iter().map(show).collect::<Vec<_>>().join(", ")
    };
    format!("{} (key {}): saw {seen}", c.path, c.key)
}

impl Miss<'_> {
    pub fn describe(&self, i: &Input<'_>) -> String {
        match self {
            Miss::Source(f) => format!("{} did not match", describe_source(f, i)),
            Miss::Target(f) => format!("{} did not match", describe_target(f, i)),
            Miss::NoSource(n) => format!("none of the {n} `from` sources matched"),
            Miss::NoTarget(n) => format!("none of the {n} `to` operations matched"),
            Miss::Condition(c) => format!("condition {} did not hold", describe_condition(c, i)),
            Miss::Cel(c, None) => format!("{} `{}` was false", c.path, c.source),
            Miss::Cel(c, Some(e)) => format!("{} `{}` failed: {e}", c.path, c.source),
        }
    }
}
