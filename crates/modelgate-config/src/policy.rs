//! The `policies:` section: Istio AuthorizationPolicy semantics as plain data.
//!
//! Each list entry is either modelgate's short form (`{name, action, rules, …}`)
//! or a pasted Istio object (`apiVersion`/`kind: AuthorizationPolicy`/
//! `metadata`/`spec`). Both become the same validated [`Policy`]. Unknown keys
//! are errors (Istio silently ignores them), patterns are checked so that a
//! policy cannot silently never match, and CEL conditions are compiled here so
//! `modelgate validate` reports their errors with the key. The evaluator lives
//! in `modelgate-authz`; see `docs/policy.md`.

use std::net::IpAddr;

use http::HeaderName;
use modelgate_core::{Operation, Protocol};

use crate::types::IpNet;

mod build;
mod raw;

pub(crate) use build::policies;

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

/// A `requestPrincipals` value (and a `request.auth.principal` condition
/// value), matched as the Istio API reference states: on the whole
/// `<iss>/<sub>` string, with one `*` as prefix, suffix or the whole value.
/// Nothing is split at a `/`: a subject may contain `/` (GitHub OIDC's
/// `repo:org/x:ref:refs/heads/main`) and a wildcard may reach into the
/// issuer (`*/repo:org/x:ref:refs/heads/main`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalPattern(pub StrPattern);

impl PrincipalPattern {
    /// `*`: any verified request principal.
    pub const ANY: PrincipalPattern = PrincipalPattern(StrPattern::Any);

    /// Parses a value; an exact value without `/` is refused (a principal is
    /// always `<iss>/<sub>`, so it could never match).
    pub fn parse(s: &str) -> Result<Self, String> {
        let p = StrPattern::parse(s)?;
        match &p {
            StrPattern::Exact(l) if !l.contains('/') => Err(format!(
                "{s:?} is not `*` or `<issuer>/<subject>` (a request principal always has a '/')"
            )),
            StrPattern::Prefix(l) | StrPattern::Suffix(l) if l.is_empty() => {
                Err(format!("{s:?} is an empty pattern"))
            }
            _ => Ok(PrincipalPattern(p)),
        }
    }

    /// Whether the principal `<iss>/<sub>` matches, without building the
    /// joined string. `*` needs a non-empty issuer and subject.
    pub fn matches(&self, iss: &str, sub: &str) -> bool {
        let parts: [&[u8]; 3] = [iss.as_bytes(), b"/", sub.as_bytes()];
        match &self.0 {
            StrPattern::Any => !iss.is_empty() && !sub.is_empty(),
            StrPattern::Exact(e) => {
                e.len() == iss.len() + 1 + sub.len() && joined_starts_with(&parts, e.as_bytes())
            }
            StrPattern::Prefix(p) => joined_starts_with(&parts, p.as_bytes()),
            StrPattern::Suffix(s) => joined_ends_with(&parts, s.as_bytes()),
        }
    }
}

/// Whether the concatenation of `parts` starts with `p`.
fn joined_starts_with(parts: &[&[u8]], mut p: &[u8]) -> bool {
    for part in parts {
        let n = p.len().min(part.len());
        if part.get(..n) != p.get(..n) {
            return false;
        }
        p = p.get(n..).unwrap_or_default();
    }
    p.is_empty()
}

/// Whether the concatenation of `parts` ends with `s`.
fn joined_ends_with(parts: &[&[u8]], mut s: &[u8]) -> bool {
    for part in parts.iter().rev() {
        let n = s.len().min(part.len());
        if part.get(part.len() - n..) != s.get(s.len() - n..) {
            return false;
        }
        s = s.get(..s.len() - n).unwrap_or_default();
    }
    s.is_empty()
}

impl std::fmt::Display for PrincipalPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A `paths` value: an Istio string pattern, or an Envoy URI template with
/// `{*}` (one segment) and `{**}` (any rest, the last operator).
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

/// Envoy's URI template semantics: the template is `/` + its segments joined
/// by `/`; `{*}` is one non-empty segment and `{**}` any run of characters,
/// `/` included and possibly empty. So `/a/{**}` needs `/a/` (not `/a`), and
/// `/store/{**}/cart` matches `/store//cart` and `/store/x/y/cart` but not
/// `/store/cart`.
fn template_matches(segs: &[TemplateSegment], path: &str) -> bool {
    let Some(mut rest) = path.strip_prefix('/') else {
        return false;
    };
    let split = segs.iter().position(|s| *s == TemplateSegment::Rest);
    let (head, tail) = match split {
        Some(i) => (segs.get(..i).unwrap_or_default(), segs.get(i + 1..)),
        None => (segs, None),
    };
    let Some(tail) = tail else {
        // No `{**}`: segment by segment, nothing left over.
        let mut parts = rest.split('/');
        return head
            .iter()
            .all(|seg| parts.next().is_some_and(|p| seg_matches(seg, p)))
            && parts.next().is_none();
    };
    // Each head segment is followed by its `/`.
    for seg in head {
        let Some((p, r)) = rest.split_once('/') else {
            return false;
        };
        if !seg_matches(seg, p) {
            return false;
        }
        rest = r;
    }
    // The tail holds literals only (validated): `/lit` each, from the end.
    for seg in tail.iter().rev() {
        let Some((r, p)) = rest.rsplit_once('/') else {
            return false;
        };
        if !seg_matches(seg, p) {
            return false;
        }
        rest = r;
    }
    true
}

fn seg_matches(seg: &TemplateSegment, p: &str) -> bool {
    match seg {
        TemplateSegment::One => !p.is_empty(),
        TemplateSegment::Literal(l) => p == l,
        TemplateSegment::Rest => true,
    }
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
    Operation::Admin,
];

/// Whether `ip` is in any of `nets`.
pub fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests;
