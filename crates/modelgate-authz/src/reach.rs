//! Before a body that names the model is read: can it change the outcome?
//! A pure query over the authorizer — may this caller use any model that the
//! body could name (a configured model of the route's protocol, on this host)?
//! If none, every body gets a refusal, so it is given without reading one.

use modelgate_config::{Listener, Model};
use modelgate_core::{Reject, RequestFacts};
use modelgate_route::{RouteMatch, RouteTable};

use crate::{Authorizer, Caller};

impl Authorizer {
    /// `Ok(())` if some model the body could name would be permitted for
    /// `caller` (or the route needs no body model, or no model could be named
    /// here at all — then reading decides, under its deadline). Otherwise the
    /// refusal such a body would get: a missing credential is preferred over
    /// a plain denial, so an anonymous caller learns it needs one.
    pub fn check_reach(
        &self,
        caller: Caller<'_>,
        facts: &RequestFacts,
        route: &RouteMatch,
        routes: &RouteTable,
        models: &[Model],
        listener: &Listener,
    ) -> Result<(), Reject> {
        if !route.model_in_body {
            return Ok(());
        }
        let mut refusal: Option<Reject> = None;
        for m in models
            .iter()
            .filter(|m| m.protocols.contains(&route.protocol))
        {
            let mut bound = route.clone();
            let host = facts.host.as_deref();
            if routes
                .bind_body_model(&mut bound, m.name.as_str(), host, &facts.headers)
                .is_err()
                || bound.model.known().is_none()
            {
                continue;
            }
            match self
                .judge(caller, facts, &bound, listener, None)
                .ruling
                .verdict
                .reject()
            {
                None => return Ok(()),
                Some(r) => {
                    let better = matches!(r, Reject::Unauthenticated(_))
                        && !matches!(refusal, Some(Reject::Unauthenticated(_)));
                    if refusal.is_none() || better {
                        refusal = Some(r);
                    }
                }
            }
        }
        refusal.map_or(Ok(()), Err)
    }
}
