//! Tokens already verified (like Envoy's `jwt_cache_config`): keyed by a
//! 128-bit keyed SipHash of the token under a random key drawn per cache
//! (the token itself is never stored; nobody without the key can make
//! another token with the same tag, and it costs a fraction of a SHA-256
//! of the token on every request), valid only while the
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

/// A token's cache key: [`VerifiedCache::key`].
pub type TokenTag = [u64; 2];

pub struct VerifiedCache {
    map: Cache<TokenTag, Verified>,
    /// The SipHash key of this cache's tags.
    secret: (u64, u64),
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self {
            map: Cache::new(crate::cache::GOOD_ENTRIES),
            secret: (rand::random(), rand::random()),
        }
    }
}

impl VerifiedCache {
    /// The cache key of `token`.
    pub fn key(&self, token: &str) -> TokenTag {
        crate::siphash::siphash128::<1, 3>(self.secret, token.as_bytes())
    }

    /// Whether `key` is cached (without counting as a use).
    pub fn holds(&self, key: &TokenTag) -> bool {
        self.map.contains_key(key)
    }

    pub fn get(&self, key: &TokenTag) -> Option<Verified> {
        self.map.get(key)
    }

    pub fn remove(&self, key: &TokenTag) {
        self.map.remove(key);
    }

    pub fn put(&self, key: TokenTag, v: Verified) {
        self.map.insert(key, v);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}
