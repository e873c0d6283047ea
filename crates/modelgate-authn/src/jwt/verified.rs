//! Tokens already verified (like Envoy's `jwt_cache_config`): keyed by the
//! token's SHA-256 (the token itself is never stored), valid only while the
//! key set that verified them is still the provider's current one, and with
//! the token's times re-checked on every hit. A signature is then checked
//! once per token instead of once per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use modelgate_core::Principal;

use crate::jwks::Loaded;

/// Most tokens kept per provider; past it the cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Clone)]
pub struct Verified {
    pub principal: Arc<Principal>,
    /// The key set that verified the token (`None`: an HMAC secret of the rule).
    pub keys: Option<Arc<Loaded>>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
}

#[derive(Default)]
pub struct VerifiedCache {
    map: Mutex<HashMap<[u8; 32], Verified>>,
}

impl VerifiedCache {
    pub fn get(&self, key: &[u8; 32]) -> Option<Verified> {
        self.map.lock().ok()?.get(key).cloned()
    }

    pub fn remove(&self, key: &[u8; 32]) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(key);
        }
    }

    pub fn put(&self, key: [u8; 32], v: Verified) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.insert(key, v);
        }
    }
}
