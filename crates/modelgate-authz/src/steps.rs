//! The steps of one authorization decision, in order: CUSTOM, DENY, AUDIT,
//! the admin role (admin routes only), public routes, unknown models, grants,
//! ALLOW, then modelgate's defaults.
//! Each step either decides (returns a [`Verdict`]) or lets the next one run;
//! each names the rule it used, and dry-run and AUDIT policies are recorded.

use modelgate_route::ModelRef;

use crate::decide::{CallerKind, CompiledPolicy, Engine, RBAC_DENIED, grants_restrict};
use crate::eval::Quantifier;
use crate::input::Input;
use crate::verdict::{Basis, DryRun, ExternalCheck, ExternalOutcome, PolicyRef, Verdict};

/// One evaluation in progress.
pub(crate) struct Run<'e, 'i, 'x> {
    pub engine: &'e Engine,
    pub i: &'e Input<'i>,
    pub caller: CallerKind,
    pub explain: Option<&'x mut Vec<String>>,
    pub dry_run: Vec<DryRun>,
    pub audit: Vec<PolicyRef>,
    /// The external authorizer to ask (the first CUSTOM policy with an
    /// external provider that matched).
    pub external: Option<ExternalCheck>,
}

fn named(p: &CompiledPolicy) -> PolicyRef {
    p.reference.clone()
}

impl Run<'_, '_, '_> {
    pub fn decide(&mut self) -> Verdict {
        self.custom()
            .or_else(|| self.deny())
            .or_else(|| {
                self.audit();
                self.admin()
            })
            .or_else(|| self.public())
            .or_else(|| self.unknown_model())
            .or_else(|| self.grants())
            .or_else(|| self.allow())
            .unwrap_or_else(|| self.defaults())
    }

    fn note(&mut self, f: &dyn Fn() -> String) {
        if let Some(e) = self.explain.as_deref_mut() {
            e.push(f());
        }
    }

    fn first_match(&mut self, p: &CompiledPolicy, q: Quantifier) -> Option<usize> {
        self.engine
            .first_match(p, self.i, q, self.explain.as_deref_mut())
    }

    fn would(&mut self, p: &CompiledPolicy, would: &'static str) {
        self.dry_run.push(DryRun {
            policy: named(p),
            would,
        });
    }

    /// Step 1, CUSTOM: an external provider is asked by the decision
    /// function (recorded here, evaluation goes on); the in-process provider
    /// requires a verified identity.
    fn custom(&mut self) -> Option<Verdict> {
        let engine = self.engine;
        for p in &engine.custom {
            let Some(rule) = self.first_match(p, Quantifier::Any) else {
                continue;
            };
            let name = &p.policy.name;
            let provider = p.policy.provider.as_deref().unwrap_or("");
            if engine.external.iter().any(|e| e == provider) {
                self.external_custom(p, rule, provider);
                continue;
            }
            let anonymous = self.i.principal.is_none();
            if p.policy.dry_run {
                self.note(&|| format!("CUSTOM {name} is dry-run: not enforced"));
                let would = if anonymous {
                    "need_credential"
                } else {
                    "allow"
                };
                self.would(p, would);
                continue;
            }
            if anonymous {
                self.note(&|| format!("CUSTOM {name} (provider {provider}, in-process) matched by rule {rule}: no verified credential → 401"));
                return Some(Verdict::NeedCredential {
                    basis: Basis::Policy,
                    policy: Some(named(p)),
                });
            }
            self.note(&|| format!("CUSTOM {name} (provider {provider}, in-process) matched by rule {rule}: verified identity → continue"));
        }
        None
    }

    fn external_custom(&mut self, p: &crate::decide::CompiledPolicy, rule: usize, provider: &str) {
        let name = &p.policy.name;
        if p.policy.dry_run {
            self.note(&|| {
                format!("CUSTOM {name} is dry-run: external provider {provider} not asked")
            });
            self.would(p, "check_external");
        } else if self.external.is_some() {
            self.note(&|| {
                format!(
                    "CUSTOM {name} matched by rule {rule}: an external check is already asked for"
                )
            });
        } else {
            self.note(&|| {
                format!("CUSTOM {name} matched by rule {rule}: ask external provider {provider}")
            });
            self.external = Some(ExternalCheck {
                policy: named(p),
                provider: provider.to_string(),
                outcome: ExternalOutcome::Pending,
            });
        }
    }

    /// 2. DENY.
    fn deny(&mut self) -> Option<Verdict> {
        let engine = self.engine;
        for p in &engine.deny {
            let Some(rule) = self.first_match(p, Quantifier::Any) else {
                continue;
            };
            let name = &p.policy.name;
            if p.policy.dry_run {
                self.note(&|| format!("DENY {name} is dry-run: would deny (rule {rule})"));
                self.would(p, "deny");
                continue;
            }
            self.note(&|| format!("DENY {name} matched by rule {rule} → 403"));
            return Some(Verdict::Forbidden {
                basis: Basis::Policy,
                policy: Some(named(p)),
                message: RBAC_DENIED.into(),
            });
        }
        None
    }

    /// AUDIT never changes the decision; matches are recorded.
    fn audit(&mut self) {
        let engine = self.engine;
        for p in &engine.audit {
            if let Some(rule) = self.first_match(p, Quantifier::Any) {
                let name = &p.policy.name;
                self.note(&|| format!("AUDIT {name} matched by rule {rule} (recorded only)"));
                self.audit.push(named(p));
            }
        }
    }

    /// The admin API and UI: decided by the admin role alone (after CUSTOM
    /// and DENY), so that no ALLOW policy written for models opens it.
    fn admin(&mut self) -> Option<Verdict> {
        if self.i.route.operation != modelgate_core::Operation::Admin {
            return None;
        }
        let Some(p) = self.i.principal else {
            self.note(&|| "admin route without a verified identity → 401".into());
            return Some(Verdict::NeedCredential {
                basis: Basis::AdminRole,
                policy: None,
            });
        };
        if crate::admin::holds_admin_role(&self.engine.admin, p) {
            self.note(&|| format!("{} holds the admin role → allow", p.name));
            return Some(Verdict::Allow {
                basis: Basis::AdminRole,
                policy: None,
            });
        }
        self.note(&|| format!("{} does not hold the admin role → 403", p.name));
        Some(Verdict::Forbidden {
            basis: Basis::AdminRole,
            policy: None,
            message: "the admin role is required".into(),
        })
    }

    /// 3. A public route needs no credential; ALLOW policies do not restrict it.
    fn public(&mut self) -> Option<Verdict> {
        if self.caller != CallerKind::Public {
            return None;
        }
        self.note(&|| {
            "public route: no credential needed; ALLOW policies do not restrict it → allow".into()
        });
        Some(Verdict::Allow {
            basis: Basis::Public,
            policy: None,
        })
    }

    /// An identified caller asking for a model not configured here: 404.
    fn unknown_model(&mut self) -> Option<Verdict> {
        if self.caller != CallerKind::Identified {
            return None;
        }
        self.not_found()
    }

    fn not_found(&mut self) -> Option<Verdict> {
        let i = self.i;
        let ModelRef::Unknown(name) = &i.route.model else {
            return None;
        };
        self.note(&|| format!("model {name} is not configured here → 404"));
        Some(Verdict::NotFound(format!(
            "Model with name {name} does not exist."
        )))
    }

    /// Step 4, grants: an identity that carries grants is an implicit DENY
    /// for other models.
    fn grants(&mut self) -> Option<Verdict> {
        let i = self.i;
        let (Some(p), Some(model)) = (i.principal, i.route.model.known()) else {
            return None;
        };
        if !grants_restrict(p) {
            return None;
        }
        if !p.grants.covers(model) {
            self.note(&|| format!("grants of {} do not include model {model} → 403", p.name));
            return Some(Verdict::Forbidden {
                basis: Basis::Grant,
                policy: None,
                message: format!("not permitted to call model {model}"),
            });
        }
        self.note(&|| format!("grants of {} include model {model}", p.name));
        None
    }

    /// 5. ALLOW: when any applies, one must match.
    fn allow(&mut self) -> Option<Verdict> {
        let engine = self.engine;
        let mut any_allow = false;
        for p in &engine.allow {
            let name = &p.policy.name;
            let in_scope = engine.in_scope(p, self.i);
            if !in_scope {
                self.note(&|| format!("ALLOW {name}: does not apply to this model"));
                continue;
            }
            if p.policy.dry_run {
                let hit = self.first_match(p, Quantifier::All).is_some();
                let would = if hit { "allow" } else { "not allow" };
                self.note(&|| format!("ALLOW {name} is dry-run: would {would}"));
                self.would(p, if hit { "allow" } else { "not_allow" });
                continue;
            }
            any_allow = true;
            if let Some(rule) = self.first_match(p, Quantifier::All) {
                self.note(&|| format!("ALLOW {name} matched by rule {rule} → allow"));
                return Some(self.not_found().unwrap_or(Verdict::Allow {
                    basis: Basis::Policy,
                    policy: Some(named(p)),
                }));
            }
        }
        if !any_allow {
            return None;
        }
        self.note(&|| "ALLOW policies apply but none matched → 403".into());
        Some(Verdict::Forbidden {
            basis: Basis::Policy,
            policy: None,
            message: RBAC_DENIED.into(),
        })
    }

    /// 6. No ALLOW policy applies: modelgate's defaults.
    fn defaults(&mut self) -> Verdict {
        let i = self.i;
        let p = match (self.caller, i.principal) {
            (CallerKind::Anonymous, _) | (_, None) => {
                self.note(&|| {
                    "no ALLOW policy applies and the request is anonymous → 401 (fail closed)"
                        .into()
                });
                return Verdict::NeedCredential {
                    basis: Basis::Default,
                    policy: None,
                };
            }
            (_, Some(p)) => p,
        };
        match i.route.model.known() {
            Some(model) if !p.grants.covers(model) => {
                self.note(&|| {
                    format!(
                        "no ALLOW policy applies and {} has no grant for model {model} → 403",
                        p.name
                    )
                });
                Verdict::Forbidden {
                    basis: Basis::Grant,
                    policy: None,
                    message: format!("not permitted to call model {model}"),
                }
            }
            Some(model) => {
                self.note(&|| {
                    format!("no ALLOW policy applies; grant covers model {model} → allow")
                });
                Verdict::Allow {
                    basis: Basis::Grant,
                    policy: None,
                }
            }
            None => {
                self.note(&|| {
                    "no ALLOW policy applies; server-level operation, authenticated → allow".into()
                });
                Verdict::Allow {
                    basis: Basis::ServerOperation,
                    policy: None,
                }
            }
        }
    }
}
