//! Authorization: decides, with no I/O, whether a request may do what its
//! route asks — Istio AuthorizationPolicy semantics (CUSTOM → DENY → ALLOW),
//! per-credential model grants and CEL conditions. A [`Permit`] can only be
//! made here, and the backend call requires one. See `docs/policy.md`.

mod cel;
mod decide;
pub mod eval;
pub mod input;
mod permit;
mod reach;

pub use decide::{CallerKind, Engine, RBAC_DENIED, Verdict, grants_restrict};
pub use input::{Input, remote_ip};
pub use permit::{Permit, PermitBasis};

use modelgate_authn::Authenticated;
use modelgate_config::{Config, ConfigError, Listener};
use modelgate_core::{AuthFailure, Reject, RequestFacts};
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

    /// The compiled policies (for `modelgate check`).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Decides whether `caller` may perform `route`, and gives the [`Permit`]
    /// the backend call needs. With no policies: public routes are allowed, an
    /// identity may call exactly the models its credential grants and any
    /// server-level operation. At debug level the decision's explanation is
    /// logged (target `modelgate_authz`).
    pub fn authorize(
        &self,
        caller: Caller<'_>,
        facts: &RequestFacts,
        route: &RouteMatch,
        listener: &Listener,
    ) -> Result<Permit, Reject> {
        let caller_principal = match &caller {
            Caller::Identified(a) => Some(*a),
            _ => None,
        };
        let (kind, principal) = match caller {
            Caller::Public => (CallerKind::Public, None),
            Caller::Anonymous => (CallerKind::Anonymous, None),
            Caller::Identified(a) => (CallerKind::Identified, Some(a.principal())),
        };
        let input = Input::new(facts, route, principal, &listener.trusted_proxies);
        let verdict = self.engine.evaluate(&input, kind, None);
        if tracing::enabled!(target: "modelgate_authz", tracing::Level::DEBUG) {
            let mut why = Vec::new();
            let again = self.engine.evaluate(&input, kind, Some(&mut why));
            tracing::debug!(target: "modelgate_authz", request_id = %facts.request_id, decision = ?again, explain = %why.join("; "), "authorization decision");
        }
        match verdict {
            Verdict::Allow { basis, policy } => Ok(Permit::new(
                caller_principal.map(|a| a.shared_principal().clone()),
                route.model.known().cloned(),
                basis,
                policy,
            )),
            Verdict::NeedCredential { .. } => {
                Err(Reject::Unauthenticated(AuthFailure::CredentialNotFound))
            }
            Verdict::Forbidden { message, .. } => Err(Reject::Forbidden(message)),
            Verdict::NotFound(m) => Err(Reject::NotFound(m)),
        }
    }
}
