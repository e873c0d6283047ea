//! The `policies:` section: Istio AuthorizationPolicy semantics as plain data.
//!
//! Each list entry is either modelgate's short form (`{name, action, rules, …}`)
//! or a pasted Istio object (`apiVersion`/`kind: AuthorizationPolicy`/
//! `metadata`/`spec`). Both become the same validated [`Policy`]. Unknown keys
//! are errors (Istio silently ignores them), patterns are checked so that a
//! policy cannot silently never match, and CEL conditions are compiled here so
//! `modelgate validate` reports their errors with the key. The evaluator lives
//! in `modelgate-authz`; see `docs/policy.md`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderName;
use modelgate_core::{Operation, Protocol};
use serde::Deserialize;
use yaml_serde::Value;

use crate::error::Collector;
use crate::load::de;
use crate::types::IpNet;

// ---------------------------------------------------------------------------
// validated types
// ---------------------------------------------------------------------------

/// What a policy does when one of its rules matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Allow the request (when any ALLOW policy exists, only matching requests pass).
    Allow,
    /// Deny the request.
    Deny,
    /// Record the match; never changes the decision.
    Audit,
    /// Delegate to a provider. Today every provider is modelgate's own
    /// identity chain: a matching request must carry a verified credential.
    Custom,
}

impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        }
    }
}

/// One validated authorization policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// Where it was written (`policies[3]`), for explanations.
    pub key: String,
    pub action: Action,
    /// CUSTOM provider name (served in-process, see [`Action::Custom`]).
    pub provider: Option<String>,
    /// The models the policy applies to (the modelgate analogue of Istio's
    /// workload selector); `None` = every request.
    pub models: Option<Vec<StrPattern>>,
    /// `None` (rules unset) matches nothing: ALLOW with no rules denies all.
    /// An empty rule (`rules: [{}]`) matches everything.
    pub rules: Option<Vec<Rule>>,
    /// Evaluated and logged, never enforced (`istio.io/dry-run: "true"`).
    pub dry_run: bool,
}

/// Matches when at least one source, one target and every condition match.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// Empty = any source.
    pub from: Vec<Source>,
    /// Empty = any target.
    pub to: Vec<Target>,
    pub when: Vec<Condition>,
    /// A CEL expression that must evaluate to `true` (modelgate extension).
    pub cel: Option<CelExpr>,
}

/// `from[i].source`: every field must match (AND).
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub fields: Vec<Field<SourceField>>,
}

/// `to[i].operation`: every field must match (AND).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub fields: Vec<Field<TargetField>>,
}

/// One field of a source or target. `negate` is the `not…` form: it matches
/// when the attribute matches none of the values (or is absent).
#[derive(Debug, Clone)]
pub struct Field<K> {
    /// The key as written, e.g. `rules[0].from[0].source.notRequestPrincipals`.
    pub key: String,
    pub negate: bool,
    pub kind: K,
}

#[derive(Debug, Clone)]
pub enum SourceField {
    /// mTLS peer identity (`cluster.local/ns/<ns>/sa/<sa>`).
    Principals(Vec<StrPattern>),
    /// `<iss>/<sub>` of the verified request credential.
    RequestPrincipals(Vec<PrincipalPattern>),
    Namespaces(Vec<StrPattern>),
    /// `<ns>/<sa>`, exact (no wildcards, as in Istio).
    ServiceAccounts(Vec<(String, String)>),
    TrustDomains(Vec<StrPattern>),
    /// The connecting peer's address.
    IpBlocks(Vec<IpNet>),
    /// The client address from `X-Forwarded-For`, read through the listener's trusted proxies.
    RemoteIpBlocks(Vec<IpNet>),
}

#[derive(Debug, Clone)]
pub enum TargetField {
    /// Lower-case, port stripped; compared case-insensitively.
    Hosts(Vec<StrPattern>),
    Ports(Vec<u16>),
    /// Case-sensitive.
    Methods(Vec<StrPattern>),
    Paths(Vec<PathMatch>),
    /// modelgate extension: the routed model.
    Models(Vec<StrPattern>),
    /// modelgate extension: v1, v2, grpc, openai.
    Protocols(Vec<Protocol>),
    /// modelgate extension: infer, model_ready, list_models, …
    Operations(Vec<Operation>),
}

/// A string pattern with Istio's meaning. Compared byte-wise, never as a regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrPattern {
    Exact(String),
    /// `abc*`: starts with `abc` (also matches `abc`).
    Prefix(String),
    /// `*abc`: ends with `abc`.
    Suffix(String),
    /// `*`: present and non-empty (for headers: present).
    Any,
}

impl StrPattern {
    /// Parses `s`; a `*` anywhere but at one end is refused (it would be a
    /// literal `*` in Istio, which is never what was meant).
    pub fn parse(s: &str) -> Result<Self, String> {
        let p = if s == "*" {
            StrPattern::Any
        } else if let Some(p) = s.strip_suffix('*') {
            StrPattern::Prefix(p.to_string())
        } else if let Some(p) = s.strip_prefix('*') {
            StrPattern::Suffix(p.to_string())
        } else {
            StrPattern::Exact(s.to_string())
        };
        match &p {
            StrPattern::Exact(l) | StrPattern::Prefix(l) | StrPattern::Suffix(l)
                if l.contains('*') =>
            {
                Err(format!(
                    "{s:?} has a '*' that is not a single leading or trailing wildcard"
                ))
            }
            StrPattern::Exact(l) if l.is_empty() => Err("empty value".into()),
            _ => Ok(p),
        }
    }

    /// Whether `v` matches. `Any` needs a non-empty value.
    pub fn matches(&self, v: &[u8]) -> bool {
        match self {
            StrPattern::Exact(e) => v == e.as_bytes(),
            StrPattern::Prefix(p) => v.starts_with(p.as_bytes()),
            StrPattern::Suffix(s) => v.ends_with(s.as_bytes()),
            StrPattern::Any => !v.is_empty(),
        }
    }

    /// The literal part (for checks and explanations).
    pub fn literal(&self) -> &str {
        match self {
            StrPattern::Exact(s) | StrPattern::Prefix(s) | StrPattern::Suffix(s) => s,
            StrPattern::Any => "",
        }
    }
}

impl std::fmt::Display for StrPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StrPattern::Exact(s) => write!(f, "{s}"),
            StrPattern::Prefix(s) => write!(f, "{s}*"),
            StrPattern::Suffix(s) => write!(f, "*{s}"),
            StrPattern::Any => f.write_str("*"),
        }
    }
}

/// A `requestPrincipals` value: `*`, or `<iss>/<sub>` split at the last `/`
/// (issuers are URLs), each side a [`StrPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalPattern {
    /// `*`: any verified request principal.
    Any,
    Split {
        iss: StrPattern,
        sub: StrPattern,
    },
}

impl PrincipalPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(PrincipalPattern::Any);
        }
        let Some((iss, sub)) = s.rsplit_once('/') else {
            return Err(format!("{s:?} is not `*` or `<issuer>/<subject>`"));
        };
        let iss = if iss.is_empty() {
            Err("empty issuer".to_string())
        } else {
            StrPattern::parse(iss)
        }?;
        let sub = if sub.is_empty() {
            Err("empty subject".to_string())
        } else {
            StrPattern::parse(sub)
        }?;
        Ok(PrincipalPattern::Split { iss, sub })
    }
}

impl std::fmt::Display for PrincipalPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrincipalPattern::Any => f.write_str("*"),
            PrincipalPattern::Split { iss, sub } => write!(f, "{iss}/{sub}"),
        }
    }
}

/// A `paths` value: an Istio string pattern, or an Envoy URI template with
/// `{*}` (one segment) and `{**}` (zero or more segments, last only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Str(StrPattern),
    Template(Vec<TemplateSegment>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSegment {
    Literal(String),
    /// `{*}`: exactly one non-empty segment.
    One,
    /// `{**}`: the rest of the path (zero or more segments).
    Rest,
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Str(p) => p.matches(path.as_bytes()),
            PathMatch::Template(segs) => template_matches(segs, path),
        }
    }
}

fn template_matches(segs: &[TemplateSegment], path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut parts = rest.split('/');
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            TemplateSegment::Rest => return i + 1 == segs.len(),
            TemplateSegment::One => match parts.next() {
                Some(p) if !p.is_empty() => {}
                _ => return false,
            },
            TemplateSegment::Literal(l) => match parts.next() {
                Some(p) if p == l => {}
                _ => return false,
            },
        }
    }
    parts.next().is_none()
}

impl std::fmt::Display for PathMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathMatch::Str(p) => write!(f, "{p}"),
            PathMatch::Template(segs) => {
                for s in segs {
                    match s {
                        TemplateSegment::Literal(l) => write!(f, "/{l}")?,
                        TemplateSegment::One => f.write_str("/{*}")?,
                        TemplateSegment::Rest => f.write_str("/{**}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// A `when` condition: the attribute must match one of `values` (if set) and
/// none of `not_values` (if set).
#[derive(Debug, Clone)]
pub struct Condition {
    /// The key path in the file, e.g. `policies[0].rules[1].when[0]`.
    pub path: String,
    /// The Istio key as written, e.g. `request.auth.claims[groups]`.
    pub key: String,
    pub attribute: Attribute,
    pub values: Option<Values>,
    pub not_values: Option<Values>,
}

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    RequestHeader(HeaderName),
    SourceIp,
    RemoteIp,
    SourceNamespace,
    SourcePrincipal,
    AuthPrincipal,
    AuthAudiences,
    AuthPresenter,
    /// `request.auth.claims[a][b]`: the path into the claims.
    AuthClaims(Vec<String>),
    DestinationIp,
    DestinationPort,
}

/// Condition values, typed by the attribute.
#[derive(Debug, Clone)]
pub enum Values {
    Str(Vec<StrPattern>),
    Ip(Vec<IpNet>),
    Port(Vec<u16>),
    Principal(Vec<PrincipalPattern>),
}

/// A CEL condition: the source (compiled again by the evaluator) and its key.
#[derive(Debug, Clone)]
pub struct CelExpr {
    pub path: String,
    pub source: String,
}

/// The variables a CEL condition may use.
pub const CEL_VARIABLES: &[&str] = &["request", "source", "destination", "auth"];

/// Every operation name, for `operations:`.
pub const OPERATIONS: &[Operation] = &[
    Operation::ServerLive,
    Operation::ServerReady,
    Operation::ServerMetadata,
    Operation::ListModels,
    Operation::ModelReady,
    Operation::ModelMetadata,
    Operation::Infer,
    Operation::Explain,
    Operation::Completions,
    Operation::ChatCompletions,
    Operation::Embeddings,
];

// ---------------------------------------------------------------------------
// raw shapes
// ---------------------------------------------------------------------------

/// modelgate's short form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    provider: Option<RawProvider>,
    #[serde(default)]
    rules: Option<Vec<Value>>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// A pasted Istio object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawIstio {
    api_version: String,
    kind: String,
    metadata: RawMetadata,
    #[serde(default)]
    spec: Option<RawSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMetadata {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    provider: Option<RawProvider>,
    #[serde(default)]
    rules: Option<Vec<Value>>,
    #[serde(default)]
    selector: Option<Value>,
    #[serde(default)]
    target_ref: Option<Value>,
    #[serde(default)]
    target_refs: Option<Value>,
    /// modelgate extension, the analogue of `selector`.
    #[serde(default)]
    models: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    from: Option<Vec<RawFrom>>,
    #[serde(default)]
    to: Option<Vec<RawTo>>,
    #[serde(default)]
    when: Option<Vec<RawCondition>>,
    #[serde(default)]
    cel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrom {
    source: RawSource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTo {
    operation: RawOperation,
}

type List = Option<Vec<Scalar>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSource {
    principals: List,
    not_principals: List,
    request_principals: List,
    not_request_principals: List,
    namespaces: List,
    not_namespaces: List,
    service_accounts: List,
    not_service_accounts: List,
    trust_domains: List,
    not_trust_domains: List,
    ip_blocks: List,
    not_ip_blocks: List,
    remote_ip_blocks: List,
    not_remote_ip_blocks: List,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOperation {
    hosts: List,
    not_hosts: List,
    ports: List,
    not_ports: List,
    methods: List,
    not_methods: List,
    paths: List,
    not_paths: List,
    models: List,
    not_models: List,
    protocols: List,
    not_protocols: List,
    operations: List,
    not_operations: List,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCondition {
    key: String,
    #[serde(default)]
    values: List,
    #[serde(default)]
    not_values: List,
}

/// YAML scalars written where Istio wants strings (`ports: [8080]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------
// validation
// ---------------------------------------------------------------------------

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

/// Whether `ip` is in any of `nets`.
pub fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests;
