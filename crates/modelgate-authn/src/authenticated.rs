//! The one place an [`Authenticated`] is made: after an identity source in
//! this crate verified the request's credential.

use std::sync::Arc;

pub use modelgate_core::Authenticated;
use modelgate_core::Principal;

/// Seals a verified identity. Only this crate may call the core constructor
/// (workspace `clippy.toml`, `disallowed-methods`).
#[allow(clippy::disallowed_methods)]
pub(crate) fn seal(principal: Arc<Principal>) -> Authenticated {
    Authenticated::verified_by_authn(principal)
}
