//! A small bounded cache of remote verdicts (TokenReview, introspection),
//! keyed by the SHA-256 of the token — the token itself is never stored.

use std::collections::HashMap;
use std::sync::Mutex;

use modelgate_core::{AuthFailure, Principal};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Most verdicts kept; past it, expired ones go first, then everything.
const MAX_ENTRIES: usize = 10_000;

pub type Verdict = Result<Principal, AuthFailure>;

#[derive(Default)]
pub struct VerdictCache {
    entries: Mutex<HashMap<[u8; 32], (Instant, Verdict)>>,
}

pub fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerdictCache {
    pub fn get(&self, key: &[u8; 32]) -> Option<Verdict> {
        let mut map = self.entries.lock().ok()?;
        match map.get(key) {
            Some((until, v)) if Instant::now() < *until => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: [u8; 32], until: Instant, verdict: Verdict) {
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if map.len() >= MAX_ENTRIES {
            let now = Instant::now();
            map.retain(|_, (u, _)| *u > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (until, verdict));
    }
}

/// What TokenReview and introspection share: the verdict cache and the
/// `identity_remote_checks{source,result}` counter.
pub struct RemoteChecks {
    source: &'static str,
    cache: VerdictCache,
    metrics: crate::metrics::IdentityMetrics,
}

impl RemoteChecks {
    pub fn new(source: &'static str, metrics: crate::metrics::IdentityMetrics) -> Self {
        Self {
            source,
            cache: VerdictCache::default(),
            metrics,
        }
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
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let c = VerdictCache::default();
        let k = token_key("t");
        c.put(
            k,
            Instant::now() + Duration::from_secs(10),
            Err(AuthFailure::InvalidToken("x".into())),
        );
        assert!(c.get(&k).is_some());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(c.get(&k).is_none());
        assert_ne!(token_key("t"), token_key("u"));
    }
}
