//! Bounded caches of remote token checks, keyed by the SHA-256 of the token
//! (the token itself is not stored): the verdicts of TokenReview and
//! introspection. The JWT verified-token cache is `jwt::verified`.
//! Each is a fixed-size CLOCK-Pro cache (`quick_cache`): a flood of tokens
//! seen once only churns its cold part, so entries in use survive it.
//! Failures live in their own small cache, briefly, so garbage tokens
//! never displace good verdicts.

use std::time::Duration;

use modelgate_core::{AuthFailure, Principal};
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Most good verdicts (and verified JWTs, per provider) kept.
pub const GOOD_ENTRIES: usize = 10_000;
/// Most refusals kept, in their own cache.
pub const BAD_ENTRIES: usize = 1_000;
/// Longest a refusal is remembered (it only spares the remote service the
/// same garbage token repeated).
pub const BAD_TTL: Duration = Duration::from_secs(10);

pub type Verdict = Result<Principal, AuthFailure>;

pub fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A bounded cache whose entries each carry their own deadline; an expired
/// entry is a miss and is dropped when seen.
pub struct TtlCache<V: Clone> {
    inner: Cache<[u8; 32], (Instant, V)>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Cache::new(capacity),
        }
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<V> {
        let (until, v) = self.inner.get(key)?;
        if Instant::now() < until {
            return Some(v);
        }
        self.inner.remove(key);
        None
    }

    pub fn insert(&self, key: [u8; 32], until: Instant, v: V) {
        self.inner.insert(key, (until, v));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.len()
    }
}

/// Remote verdicts: good ones until their deadline in the large cache,
/// refusals for at most [`BAD_TTL`] in the small one.
pub struct VerdictCache {
    good: TtlCache<Principal>,
    bad: TtlCache<AuthFailure>,
}

impl Default for VerdictCache {
    fn default() -> Self {
        Self {
            good: TtlCache::new(GOOD_ENTRIES),
            bad: TtlCache::new(BAD_ENTRIES),
        }
    }
}

impl VerdictCache {
    pub fn get(&self, key: &[u8; 32]) -> Option<Verdict> {
        if let Some(p) = self.good.get(key) {
            return Some(Ok(p));
        }
        self.bad.get(key).map(Err)
    }

    pub fn put(&self, key: [u8; 32], until: Instant, verdict: Verdict) {
        match verdict {
            Ok(p) => self.good.insert(key, until, p),
            Err(e) => self.bad.insert(key, until.min(Instant::now() + BAD_TTL), e),
        }
    }
}

/// What TokenReview and introspection share: the verdict cache and the
/// `identity_remote_checks{source,result}` counter.
pub struct RemoteChecks {
    source: &'static str,
    cache: VerdictCache,
    metrics: crate::metrics::IdentityMetrics,
    /// Identical checks in flight at once make one call.
    flight: crate::single_flight::SingleFlight<Verdict>,
}

impl RemoteChecks {
    pub fn new(source: &'static str, metrics: crate::metrics::IdentityMetrics) -> Self {
        Self {
            source,
            cache: VerdictCache::default(),
            metrics,
            flight: crate::single_flight::SingleFlight::default(),
        }
    }

    /// The verdict of `call` for `key`, shared with identical checks in
    /// flight (see [`crate::single_flight`]).
    pub async fn once<Fut>(&self, key: [u8; 32], call: impl FnOnce() -> Fut) -> Verdict
    where
        Fut: std::future::Future<Output = Verdict>,
    {
        self.flight.run(key, call).await
    }

    pub fn count(&self, result: &'static str) {
        self.metrics
            .remote_checks
            .get_or_create(&crate::metrics::CheckLabels {
                source: self.source,
                result,
            })
            .inc();
    }

    /// A cached verdict for `key`, counted as a hit.
    pub fn cached(&self, key: &[u8; 32]) -> Option<Verdict> {
        let v = self.cache.get(key)?;
        self.count("hit");
        Some(v)
    }

    pub fn remember(&self, key: [u8; 32], until: Instant, verdict: Verdict) {
        self.cache.put(key, until, verdict);
    }
}

#[cfg(test)]
mod tests;
