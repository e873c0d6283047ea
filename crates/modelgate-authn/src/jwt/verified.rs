//! Tokens already verified (like Envoy's `jwt_cache_config`, which is keyed
//! by the token too): an entry holds the whole token, and a lookup hits only
//! a token equal to it byte for byte. The table hashes only the token's last
//! [`HASHED_TAIL`] bytes (the signature's end: distinct for every token an
//! issuer signs), so a lookup costs the same for a 700-byte token as for a
//! short one; two tokens with the same tail merely share a bucket, and the
//! full comparison tells them apart. Valid only while the key set that
//! verified them is still the provider's current one, with the token's times
//! re-checked on every hit: a signature is checked once per token instead of
//! once per request. Bounded in entries and in bytes, and scan-resistant
//! (see [`crate::cache`]): a flood of tokens seen once does not evict the
//! ones in use, and only verified tokens are ever stored.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{Equivalent, Weighter};

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

/// How many of a token's last bytes the table hashes.
pub const HASHED_TAIL: usize = 32;

/// Bytes of cached tokens kept per provider, beyond which the least useful
/// entries go (tokens are ~1 KiB; a header can carry 64 KiB).
const CACHED_BYTES: u64 = 16 << 20;

/// What an entry costs besides its token.
const ENTRY_OVERHEAD: u64 = 256;

fn tail(token: &str) -> &[u8] {
    let b = token.as_bytes();
    &b[b.len().saturating_sub(HASHED_TAIL)..]
}

/// A cached token (the key of its entry).
#[derive(PartialEq, Eq)]
struct Cached(Box<str>);

impl Hash for Cached {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(tail(&self.0));
    }
}

/// A presented token, looked up without copying it.
struct Presented<'a>(&'a str);

impl Hash for Presented<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(tail(self.0));
    }
}

impl Equivalent<Cached> for Presented<'_> {
    fn equivalent(&self, key: &Cached) -> bool {
        *key.0 == *self.0
    }
}

/// An entry weighs its token's length.
#[derive(Clone)]
struct ByLength;

impl Weighter<Cached, Verified> for ByLength {
    fn weight(&self, key: &Cached, _: &Verified) -> u64 {
        key.0.len() as u64 + ENTRY_OVERHEAD
    }
}

pub struct VerifiedCache {
    map: Cache<Cached, Verified, ByLength>,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self {
            map: Cache::with_weighter(crate::cache::GOOD_ENTRIES, CACHED_BYTES, ByLength),
        }
    }
}

impl VerifiedCache {
    /// Whether `token` is cached (without counting as a use).
    pub fn holds(&self, token: &str) -> bool {
        self.map.contains_key(&Presented(token))
    }

    pub fn get(&self, token: &str) -> Option<Verified> {
        self.map.get(&Presented(token))
    }

    pub fn remove(&self, token: &str) {
        self.map.remove(&Presented(token));
    }

    pub fn put(&self, token: &str, v: Verified) {
        self.map.insert(Cached(token.into()), v);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}
