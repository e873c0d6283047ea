//! A permission to call the backend. Only the authorizer constructs one.

use std::sync::Arc;

use modelgate_core::{ModelName, Principal};

/// Why a request was permitted, for the decision log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermitBasis {
    /// A public path or operation: no credential needed.
    Public,
    /// The credential grants the model (no ALLOW policy applies).
    Grant,
    /// Any authenticated identity may perform this server-level operation.
    Authenticated,
    /// An ALLOW policy matched.
    Policy,
}

impl PermitBasis {
    pub const fn as_str(self) -> &'static str {
        match self {
            PermitBasis::Public => "public",
            PermitBasis::Grant => "grant",
            PermitBasis::Authenticated => "authenticated",
            PermitBasis::Policy => "policy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Permit {
    principal: Option<Arc<Principal>>,
    model: Option<ModelName>,
    basis: PermitBasis,
    policy: Option<String>,
}

impl Permit {
    pub(crate) fn new(
        principal: Option<Arc<Principal>>,
        model: Option<ModelName>,
        basis: PermitBasis,
        policy: Option<String>,
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

    pub fn basis(&self) -> PermitBasis {
        self.basis
    }

    /// The ALLOW policy that permitted the request, if one did.
    pub fn policy(&self) -> Option<&str> {
        self.policy.as_deref()
    }
}
