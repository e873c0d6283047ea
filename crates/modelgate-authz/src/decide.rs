//! The decision: Istio's order CUSTOM → DENY → ALLOW, then modelgate's grant
//! and default rules. See `docs/policy.md` for the table this implements.

use std::sync::Arc;

use cel::Env;
use modelgate_config::policy::{Action, Policy};
use modelgate_config::{Config, ConfigError};
use modelgate_core::{AuthFailure, AuthMethod, Grants, Principal, Reject};
use modelgate_route::ModelRef;

use crate::PermitBasis;
use crate::cel::CelCondition;
use crate::eval::{CompiledRule, Quantifier, rule_matches};
use crate::input::Input;

/// Who is asking, as far as authorization is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// A public route: no credential was asked for.
    Public,
    /// No credential, on an Istio-compatible listener.
    Anonymous,
    /// A verified identity (in [`Input::principal`]).
    Identified,
}

/// The body text of policy refusals (Envoy's RBAC filter), also used inside
/// JSON error bodies so that clients grepping for it keep working.
pub const RBAC_DENIED: &str = "RBAC: access denied";

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow {
        basis: PermitBasis,
        policy: Option<String>,
    },
    /// 401: a credential is needed (anonymous request not allowed).
    NeedCredential { policy: Option<String> },
    /// 403 with this client message.
    Forbidden {
        policy: Option<String>,
        message: String,
    },
    /// 404 with this client message.
    NotFound(String),
}

impl Verdict {
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }

    /// The refusal the client gets; `None` for an allow.
    pub fn reject(&self) -> Option<Reject> {
        match self {
            Verdict::Allow { .. } => None,
            Verdict::NeedCredential { .. } => {
                Some(Reject::Unauthenticated(AuthFailure::CredentialNotFound))
            }
            Verdict::Forbidden { message, .. } => Some(Reject::Forbidden(message.clone())),
            Verdict::NotFound(m) => Some(Reject::NotFound(m.clone())),
        }
    }
}

/// One policy, compiled.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub policy: Policy,
    pub rules: Option<Vec<CompiledRule>>,
}

/// Every policy of one configuration, grouped by action in file order.
pub struct Engine {
    custom: Vec<CompiledPolicy>,
    deny: Vec<CompiledPolicy>,
    allow: Vec<CompiledPolicy>,
    audit: Vec<CompiledPolicy>,
    env: Arc<Env>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("custom", &self.custom.len())
            .field("deny", &self.deny.len())
            .field("allow", &self.allow.len())
            .field("audit", &self.audit.len())
            .finish()
    }
}

impl Engine {
    pub fn new(config: &Config) -> Result<Self, Vec<ConfigError>> {
        let mut e = Engine {
            custom: Vec::new(),
            deny: Vec::new(),
            allow: Vec::new(),
            audit: Vec::new(),
            env: crate::cel::env(),
        };
        let mut errors = Vec::new();
        for p in &config.policies {
            let rules = p.rules.as_ref().map(|rs| {
                rs.iter()
                    .map(|r| CompiledRule {
                        rule: r.clone(),
                        cel: r.cel.as_ref().and_then(|c| {
                            match CelCondition::compile(&c.path, &c.source) {
                                Ok(cc) => Some(cc),
                                Err(msg) => {
                                    errors.push(ConfigError::new(
                                        &c.path,
                                        msg,
                                        "fix the expression (docs/policy.md)",
                                    ));
                                    None
                                }
                            }
                        }),
                    })
                    .collect()
            });
            let cp = CompiledPolicy {
                policy: p.clone(),
                rules,
            };
            match p.action {
                Action::Custom => e.custom.push(cp),
                Action::Deny => e.deny.push(cp),
                Action::Allow => e.allow.push(cp),
                Action::Audit => e.audit.push(cp),
            }
        }
        if errors.is_empty() {
            Ok(e)
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.custom.is_empty()
            && self.deny.is_empty()
            && self.allow.is_empty()
            && self.audit.is_empty()
    }

    /// Decides. `explain` collects the reasons, one line per step, when given.
    pub fn evaluate(
        &self,
        i: &Input<'_>,
        caller: CallerKind,
        mut explain: Option<&mut Vec<String>>,
    ) -> Verdict {
        let mut note = |f: &dyn Fn() -> String| {
            if let Some(e) = explain.as_deref_mut() {
                e.push(f());
            }
        };
        // 1. CUSTOM: the in-process provider requires a verified identity.
        for p in &self.custom {
            if let Some(rule) = self.first_match(p, i, Quantifier::Any, &mut note) {
                let provider = p.policy.provider.as_deref().unwrap_or("");
                if p.policy.dry_run {
                    note(&|| format!("CUSTOM {} is dry-run: not enforced", p.policy.name));
                    continue;
                }
                if i.principal.is_none() {
                    note(&|| {
                        format!(
                            "CUSTOM {} (provider {provider}, in-process) matched by rule {rule}: no verified credential → 401",
                            p.policy.name
                        )
                    });
                    return Verdict::NeedCredential {
                        policy: Some(p.policy.name.clone()),
                    };
                }
                note(&|| {
                    format!(
                        "CUSTOM {} (provider {provider}, in-process) matched by rule {rule}: verified identity → continue",
                        p.policy.name
                    )
                });
            }
        }
        // 2. DENY.
        for p in &self.deny {
            if let Some(rule) = self.first_match(p, i, Quantifier::Any, &mut note) {
                if p.policy.dry_run {
                    note(&|| {
                        format!(
                            "DENY {} is dry-run: would deny (rule {rule})",
                            p.policy.name
                        )
                    });
                    continue;
                }
                note(&|| format!("DENY {} matched by rule {rule} → 403", p.policy.name));
                return Verdict::Forbidden {
                    policy: Some(p.policy.name.clone()),
                    message: RBAC_DENIED.into(),
                };
            }
        }
        // AUDIT never changes the decision.
        for p in &self.audit {
            if let Some(rule) = self.first_match(p, i, Quantifier::Any, &mut note) {
                note(&|| {
                    format!(
                        "AUDIT {} matched by rule {rule} (recorded only)",
                        p.policy.name
                    )
                });
            }
        }
        if caller == CallerKind::Public {
            note(&|| {
                "public route: no credential needed; ALLOW policies do not restrict it → allow"
                    .into()
            });
            return Verdict::Allow {
                basis: PermitBasis::Public,
                policy: None,
            };
        }
        if caller == CallerKind::Identified
            && let ModelRef::Unknown(name) = &i.route.model
        {
            note(&|| format!("model {name} is not configured here → 404"));
            return Verdict::NotFound(format!("Model with name {name} does not exist."));
        }
        // 3. Grants: an identity that carries grants is an implicit DENY for other models.
        if let (Some(p), Some(model)) = (i.principal, i.route.model.known())
            && grants_restrict(p)
        {
            if !p.grants.covers(model) {
                note(&|| format!("grants of {} do not include model {model} → 403", p.name));
                return Verdict::Forbidden {
                    policy: None,
                    message: format!("not permitted to call model {model}"),
                };
            }
            note(&|| format!("grants of {} include model {model}", p.name));
        }
        // 4. ALLOW.
        let mut any_allow = false;
        for p in &self.allow {
            if !self.in_scope(p, i) || p.policy.dry_run {
                if p.policy.dry_run && self.in_scope(p, i) {
                    let hit = self.first_match(p, i, Quantifier::All, &mut note);
                    note(&|| {
                        format!(
                            "ALLOW {} is dry-run: would {}",
                            p.policy.name,
                            if hit.is_some() { "allow" } else { "not allow" }
                        )
                    });
                } else {
                    note(&|| format!("ALLOW {}: does not apply to this model", p.policy.name));
                }
                continue;
            }
            any_allow = true;
            if let Some(rule) = self.first_match(p, i, Quantifier::All, &mut note) {
                note(&|| format!("ALLOW {} matched by rule {rule} → allow", p.policy.name));
                return self.allowed(i, Some(&p.policy.name), &mut note);
            }
        }
        if any_allow {
            note(&|| "ALLOW policies apply but none matched → 403".into());
            return Verdict::Forbidden {
                policy: None,
                message: RBAC_DENIED.into(),
            };
        }
        // 5. No ALLOW policy: modelgate's defaults.
        match (caller, i.principal) {
            (CallerKind::Anonymous, _) | (_, None) => {
                note(&|| {
                    "no ALLOW policy applies and the request is anonymous → 401 (fail closed)"
                        .into()
                });
                Verdict::NeedCredential { policy: None }
            }
            (_, Some(p)) => match i.route.model.known() {
                Some(model) if !p.grants.covers(model) => {
                    note(&|| {
                        format!(
                            "no ALLOW policy applies and {} has no grant for model {model} → 403",
                            p.name
                        )
                    });
                    Verdict::Forbidden {
                        policy: None,
                        message: format!("not permitted to call model {model}"),
                    }
                }
                Some(model) => {
                    note(&|| {
                        format!("no ALLOW policy applies; grant covers model {model} → allow")
                    });
                    Verdict::Allow {
                        basis: PermitBasis::Grant,
                        policy: None,
                    }
                }
                None => {
                    note(&|| {
                        "no ALLOW policy applies; server-level operation, authenticated → allow"
                            .into()
                    });
                    Verdict::Allow {
                        basis: PermitBasis::Authenticated,
                        policy: None,
                    }
                }
            },
        }
    }

    fn allowed(
        &self,
        i: &Input<'_>,
        policy: Option<&str>,
        note: &mut dyn FnMut(&dyn Fn() -> String),
    ) -> Verdict {
        if let ModelRef::Unknown(name) = &i.route.model {
            note(&|| format!("model {name} is not configured here → 404"));
            return Verdict::NotFound(format!("Model with name {name} does not exist."));
        }
        Verdict::Allow {
            basis: PermitBasis::Policy,
            policy: policy.map(str::to_string),
        }
    }

    fn in_scope(&self, p: &CompiledPolicy, i: &Input<'_>) -> bool {
        match &p.policy.models {
            None => true,
            Some(ms) => i
                .route
                .model
                .known()
                .is_some_and(|m| ms.iter().any(|pat| pat.matches(m.as_str().as_bytes()))),
        }
    }

    /// The index of the first matching rule, if the policy applies and matches.
    fn first_match(
        &self,
        p: &CompiledPolicy,
        i: &Input<'_>,
        q: Quantifier,
        note: &mut dyn FnMut(&dyn Fn() -> String),
    ) -> Option<usize> {
        let name = &p.policy.name;
        let action = p.policy.action.as_str();
        if !self.in_scope(p, i) {
            note(&|| {
                format!(
                    "{action} {name}: does not apply to this model (models: {})",
                    p.policy
                        .models
                        .as_ref()
                        .map(|m| m
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                )
            });
            return None;
        }
        let Some(rules) = &p.rules else {
            note(&|| format!("{action} {name}: no rules, matches nothing"));
            return None;
        };
        for (n, r) in rules.iter().enumerate() {
            match rule_matches(r, i, q, &self.env) {
                Ok(()) => return Some(n),
                Err(miss) => note(&|| format!("{action} {name} rule {n}: {}", miss.describe(i))),
            }
        }
        if rules.is_empty() {
            note(&|| format!("{action} {name}: empty rule list, matches nothing"));
        }
        None
    }
}

/// Whether an identity's grants restrict the models it may call: API keys
/// always do; other identities only when their source attached grants.
pub fn grants_restrict(p: &Principal) -> bool {
    p.method == AuthMethod::ApiKey || p.grants != Grants::Nothing
}
