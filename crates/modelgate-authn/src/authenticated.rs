//! A verified identity. Only this crate can construct one, so holding an
//! `Authenticated` proves an identity source accepted the request.

use modelgate_core::Principal;

#[derive(Debug, Clone)]
pub struct Authenticated {
    principal: Principal,
}

impl Authenticated {
    pub(crate) fn new(principal: Principal) -> Self {
        Self { principal }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}
