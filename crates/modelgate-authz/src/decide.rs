//! The policy engine: compiled policies grouped by action, and the decision
//! (Istio's order CUSTOM → DENY → ALLOW, then modelgate's grant and default
//! rules) whose named steps live in `steps.rs`. See `docs/policy.md`.

use std::sync::Arc;

use cel::Env;
use modelgate_config::policy::{Action, Policy};
use modelgate_config::{Config, ConfigError};
use modelgate_core::{AuthMethod, Grants, Principal};

use crate::cel::CelCondition;
use crate::eval::{CompiledRule, Quantifier, rule_matches};
use crate::input::Input;
use crate::steps::Run;
use crate::verdict::{PolicyRef, Ruling, Verdict};

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

/// One policy, compiled.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub policy: Policy,
    pub rules: Option<Vec<CompiledRule>>,
    /// The policy as verdicts name it, built once.
    pub reference: PolicyRef,
}

/// Every policy of one configuration, grouped by action in file order.
pub struct Engine {
    pub(crate) custom: Vec<CompiledPolicy>,
    pub(crate) deny: Vec<CompiledPolicy>,
    pub(crate) allow: Vec<CompiledPolicy>,
    pub(crate) audit: Vec<CompiledPolicy>,
    /// Names of the configured external authorizers (`extension_providers`).
    pub(crate) external: Vec<String>,
    /// Who holds the admin role (`admin.roles`, `admin.keys`).
    pub(crate) admin: modelgate_config::admin::AdminRole,
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
            external: config
                .extension_providers
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            admin: config.admin.role.clone(),
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
                reference: PolicyRef {
                    name: Arc::from(p.name.as_str()),
                    action: p.action,
                },
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
        explain: Option<&mut Vec<String>>,
    ) -> Verdict {
        self.rule(i, caller, explain).verdict
    }

    /// Decides, and names what watched: dry-run policies (with what they
    /// would have done) and matching AUDIT policies. In Istio's order:
    /// CUSTOM → DENY → AUDIT, then public routes, grants, ALLOW, defaults.
    pub fn rule(
        &self,
        i: &Input<'_>,
        caller: CallerKind,
        explain: Option<&mut Vec<String>>,
    ) -> Ruling {
        let mut run = Run {
            engine: self,
            i,
            caller,
            explain,
            dry_run: Vec::new(),
            audit: Vec::new(),
            external: None,
        };
        let verdict = run.decide();
        Ruling {
            verdict,
            dry_run: run.dry_run,
            audit: run.audit,
            external: run.external,
        }
    }

    pub(crate) fn in_scope(&self, p: &CompiledPolicy, i: &Input<'_>) -> bool {
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
    pub(crate) fn first_match(
        &self,
        p: &CompiledPolicy,
        i: &Input<'_>,
        q: Quantifier,
        mut explain: Option<&mut Vec<String>>,
    ) -> Option<usize> {
        let mut note = |f: &dyn Fn() -> String| {
            if let Some(e) = explain.as_deref_mut() {
                e.push(f());
            }
        };
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
