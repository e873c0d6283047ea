//! Authorization: decides, with no I/O, whether a request may do what its
//! route asks — Istio AuthorizationPolicy semantics (CUSTOM → DENY → ALLOW),
//! per-credential model grants and CEL conditions. A [`Permit`] can only be
//! made here, and the backend call requires one. See `docs/policy.md`.

pub mod admin;
mod cel;
mod decide;
pub mod eval;
pub mod input;
mod permit;
mod reach;
mod steps;
mod verdict;

pub use decide::{CallerKind, Engine, RBAC_DENIED, grants_restrict};
pub use input::{Input, remote_ip};
pub use permit::Permit;
pub use verdict::{
    Basis, Basis as PermitBasis, DryRun, ExternalCheck, ExternalOutcome, PolicyRef, Ruling, Verdict,
};

use modelgate_config::{Config, ConfigError, Listener};
use modelgate_core::{Authenticated, Principal, Reject, RequestFacts};
use modelgate_route::RouteMatch;

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// The route is public: authentication was not attempted.
    Public,
    /// No credential was sent, on an Istio-compatible listener.
    Anonymous,
    /// A verified identity.
    Identified(&'a Authenticated),
    /// An identity taken on trust (`modelgate check --identity/--claims`):
    /// judged like a verified one, but never given a [`Permit`].
    Assumed(&'a Principal),
}

impl Caller<'_> {
    fn kind(&self) -> CallerKind {
        match self {
            Caller::Public => CallerKind::Public,
            Caller::Anonymous => CallerKind::Anonymous,
            Caller::Identified(_) | Caller::Assumed(_) => CallerKind::Identified,
        }
    }

    fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Identified(a) => Some(a.principal()),
            Caller::Assumed(p) => Some(p),
            Caller::Public | Caller::Anonymous => None,
        }
    }
}

/// One authorization decision: the ruling (verdict, the rule that made it,
/// dry-run and AUDIT policies) and, when it allows a caller that may reach
/// the backend, the [`Permit`].
#[derive(Debug)]
pub struct Judgement {
    pub ruling: Ruling,
    /// `Some` exactly when the verdict allows and the caller is not assumed.
    pub permit: Option<Permit>,
}

impl Judgement {
    /// The permit, or the refusal the client gets.
    pub fn into_permit(self) -> Result<Permit, Reject> {
        match self.permit {
            Some(p) => Ok(p),
            None => Err(self
                .ruling
                .verdict
                .reject()
                .unwrap_or_else(|| Reject::Internal {
                    detail: "allowed without a permit (assumed identity)".into(),
                })),
        }
    }
}

/// The authorization rules of one configuration, compiled once per load.
#[derive(Debug)]
pub struct Authorizer {
    engine: Engine,
}

impl Authorizer {
    /// Compiles the configuration's policies.
    pub fn new(config: &Config) -> Result<Self, Vec<ConfigError>> {
        Ok(Self {
            engine: Engine::new(config)?,
        })
    }

    /// The compiled policies.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Decides whether `caller` may perform `route`. With no policies: public
    /// routes are allowed, an identity may call exactly the models its
    /// credential grants and any server-level operation. `explain` collects
    /// one line per step when given.
    pub fn judge(
        &self,
        caller: Caller<'_>,
        facts: &RequestFacts,
        route: &RouteMatch,
        listener: &Listener,
        explain: Option<&mut Vec<String>>,
    ) -> Judgement {
        let input = Input::new(facts, route, caller.principal(), &listener.trusted_proxies);
        let ruling = self.engine.rule(&input, caller.kind(), explain);
        let permit = match (&ruling.verdict, caller) {
            (_, Caller::Assumed(_)) => None,
            (Verdict::Allow { basis, policy, .. }, caller) => Some(Permit::new(
                match caller {
                    Caller::Identified(a) => Some(a.shared_principal().clone()),
                    _ => None,
                },
                route.model.known().cloned(),
                *basis,
                policy.clone(),
            )),
            _ => None,
        };
        Judgement { ruling, permit }
    }

    /// [`Authorizer::judge`] for a caller that goes on to the backend: the
    /// [`Permit`] it needs, or the refusal.
    pub fn authorize(
        &self,
        caller: Caller<'_>,
        facts: &RequestFacts,
        route: &RouteMatch,
        listener: &Listener,
    ) -> Result<Permit, Reject> {
        self.judge(caller, facts, route, listener, None)
            .into_permit()
    }
}
