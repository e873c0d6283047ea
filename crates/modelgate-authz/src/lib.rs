//! Authorization: decides, with no I/O, whether a verified identity may do
//! what a routed request asks. A [`Permit`] can only be made here, and the
//! backend call requires one.

mod permit;

pub use permit::{Permit, PermitBasis};

use modelgate_authn::Authenticated;
use modelgate_core::{Reject, RequestFacts};
use modelgate_route::{ModelRef, RouteMatch};

/// The authorization rules of one configuration.
#[derive(Debug, Default)]
pub struct Authorizer {}

impl Authorizer {
    pub fn new() -> Self {
        Self {}
    }

    /// A permit for a route that needs no credential (public path or operation).
    pub fn public(&self, route: &RouteMatch) -> Option<Permit> {
        route.public.then(|| Permit::new(None, route.model.known().cloned(), PermitBasis::Public))
    }

    /// Decides whether `who` may perform `route`. With no policies, an
    /// identity may call exactly the models its credential grants, and any
    /// authenticated identity may use server-level operations.
    pub fn authorize(&self, who: &Authenticated, _facts: &RequestFacts, route: &RouteMatch) -> Result<Permit, Reject> {
        let principal = who.principal();
        match &route.model {
            ModelRef::Known(model) => {
                if principal.grants.covers(model) {
                    Ok(Permit::new(Some(principal.clone()), Some(model.clone()), PermitBasis::Grant))
                } else {
                    Err(Reject::Forbidden(format!("not permitted to call model {model}")))
                }
            }
            ModelRef::Unknown(name) => Err(Reject::NotFound(format!("Model with name {name} does not exist."))),
            ModelRef::None => Ok(Permit::new(Some(principal.clone()), None, PermitBasis::Authenticated)),
        }
    }
}
