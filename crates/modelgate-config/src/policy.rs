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

/// Whether `ip` is in any of `nets`.
pub fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests;
