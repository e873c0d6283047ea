//! Authentication: find the credential a request carries, verify it with an
//! identity source, and produce an [`Authenticated`] value — the only way to
//! obtain one.

mod authenticated;
pub mod credential;
pub mod keys;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use modelgate_config::CredentialSource;
use modelgate_core::{AuthFailure, RequestFacts};

pub use authenticated::Authenticated;
pub use credential::{Credential, find_credential};
pub use keys::{KeyStore, KeyStoreError};

/// The identity sources of one configuration.
pub struct Authenticator {
    /// The live API-key store (swapped in place when the key file changes).
    keys: Option<Arc<ArcSwap<KeyStore>>>,
}

impl Authenticator {
    pub fn new(keys: Option<Arc<ArcSwap<KeyStore>>>) -> Self {
        Self { keys }
    }

    /// Verifies the request's credential. A missing credential is
    /// `CredentialNotFound`; a present but bad one is never passed over for
    /// another source.
    pub async fn authenticate(
        &self,
        facts: &RequestFacts,
        sources: &[CredentialSource],
        now: SystemTime,
    ) -> Result<Authenticated, AuthFailure> {
        let credential = find_credential(&facts.headers, sources)?;
        match &self.keys {
            Some(store) => {
                let principal = store.load().verify(credential.value(), now)?;
                Ok(Authenticated::new(principal))
            }
            None => Err(AuthFailure::InvalidApiKey),
        }
    }
}
