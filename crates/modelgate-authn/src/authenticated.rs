//! A verified identity. Only this crate can construct one, so holding an
//! `Authenticated` proves an identity source accepted the request.

use std::sync::Arc;

use modelgate_core::Principal;

#[derive(Debug, Clone)]
pub struct Authenticated {
    principal: Arc<Principal>,
}

impl Authenticated {
    pub(crate) fn new(principal: Arc<Principal>) -> Self {
        Self { principal }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The identity, shared (cheap to keep in a permit).
    pub fn shared_principal(&self) -> &Arc<Principal> {
        &self.principal
    }
}
