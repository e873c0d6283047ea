//! A verified identity. Holding an [`Authenticated`] proves an identity
//! source accepted the request: only `modelgate-authn` constructs one.
//!
//! The type lives here, below authn and authz, so that authorization can take
//! it without depending on anything that does I/O. Its one constructor is
//! listed in the workspace `clippy.toml` under `disallowed-methods`; the single
//! call site in `modelgate-authn` is the only place allowed to use it, and
//! `cargo clippy -- -D warnings` refuses any other.

use std::sync::Arc;

use crate::Principal;

#[derive(Debug, Clone)]
pub struct Authenticated {
    principal: Arc<Principal>,
}

impl Authenticated {
    /// For `modelgate-authn` only, after an identity source verified the
    /// credential (enforced by `clippy.toml`'s `disallowed-methods`).
    #[doc(hidden)]
    pub fn verified_by_authn(principal: Arc<Principal>) -> Self {
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
