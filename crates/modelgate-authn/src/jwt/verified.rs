//! Tokens already verified (like Envoy's `jwt_cache_config`): keyed by the
//! token's SHA-256 (the token itself is never stored), valid only while the
//! key set that verified them is still the provider's current one, and with
//! the token's times re-checked on every hit. A signature is then checked
//! once per token instead of once per request. Bounded and scan-resistant
//! (see [`crate::cache`]): a flood of tokens seen once does not evict the
//! ones in use, and only verified tokens are ever stored.

use std::sync::Arc;

use quick_cache::sync::Cache;

use modelgate_core::Principal;

use super::claims::Times;
use crate::jwks::Loaded;

#[derive(Clone)]
pub struct Verified {
    pub principal: Arc<Principal>,
    /// The key set that verified the token (`None`: an HMAC secret of the rule).
    pub keys: Option<Arc<Loaded>>,
    /// The token's times, re-checked on every hit.
    pub times: Times,
}

pub struct VerifiedCache {
    map: Cache<[u8; 32], Verified>,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self {
            map: Cache::new(crate::cache::GOOD_ENTRIES),
        }
    }
}

impl VerifiedCache {
    pub fn get(&self, key: &[u8; 32]) -> Option<Verified> {
        self.map.get(key)
    }

    pub fn remove(&self, key: &[u8; 32]) {
        self.map.remove(key);
    }

    pub fn put(&self, key: [u8; 32], v: Verified) {
        self.map.insert(key, v);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}
