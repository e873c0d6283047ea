//! A permission to call the backend. Only the authorizer constructs one.

use std::sync::Arc;

use modelgate_core::{ModelName, Principal};

use crate::verdict::{Basis, PolicyRef};

#[derive(Debug, Clone)]
pub struct Permit {
    principal: Option<Arc<Principal>>,
    model: Option<ModelName>,
    basis: Basis,
    policy: Option<PolicyRef>,
}

impl Permit {
    pub(crate) fn new(
        principal: Option<Arc<Principal>>,
        model: Option<ModelName>,
        basis: Basis,
        policy: Option<PolicyRef>,
    ) -> Self {
        Self {
            principal,
            model,
            basis,
            policy,
        }
    }

    /// The verified identity; absent for public routes and anonymous requests.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// The model this permit is for (`None` for server-level operations).
    pub fn model(&self) -> Option<&ModelName> {
        self.model.as_ref()
    }

    pub fn basis(&self) -> Basis {
        self.basis
    }

    /// The ALLOW policy that permitted the request, if one did.
    pub fn policy(&self) -> Option<&PolicyRef> {
        self.policy.as_ref()
    }
}
