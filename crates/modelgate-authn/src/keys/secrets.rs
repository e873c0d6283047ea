//! API keys that arrive in plaintext from outside the key file (Kubernetes
//! Secrets, Authorino style): hashed the moment they arrive, looked up by
//! digest, compared in constant time. Any string is a valid key here, not
//! only the `mgk_` format. A live set is shared with the [`KeyStore`] and
//! swapped whole by its source, so key-file reloads keep it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use modelgate_core::{AuthFailure, Grants, Principal};
use subtle::ConstantTimeEq;

use super::format::digest;
use super::store::{KeyStore, grants};

/// The SHA-256 of a key received in plaintext. The plaintext is never kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// Hashes a plaintext key on arrival.
    pub fn of(plaintext: &str) -> Self {
        Self(digest(plaintext))
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// One key of an outside source, already hashed.
#[derive(Debug, Clone)]
pub struct SecretKeyEntry {
    /// Identity the key verifies as.
    pub name: String,
    /// Models it may call; `["*"]` for all, empty for none.
    pub models: Vec<String>,
    pub digest: KeyDigest,
    /// When set, the key stops working at this time (a rotated-out key in grace).
    pub not_after: Option<SystemTime>,
}

struct Stored {
    principal: Arc<Principal>,
    digest: [u8; 32],
    not_after: Option<SystemTime>,
}

/// An immutable set of outside keys, by digest.
#[derive(Default)]
pub struct SecretKeys {
    by_digest: HashMap<[u8; 32], Stored>,
}

/// The live set: its source swaps it, the [`KeyStore`] reads it.
pub type SharedSecretKeys = Arc<ArcSwap<SecretKeys>>;

/// Why an entry was left out of a [`SecretKeys`] set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    pub name: String,
    pub message: String,
}

impl SecretKeys {
    /// Builds a set; entries with bad model names, or whose digest another
    /// entry already holds (one key in two Secrets), are skipped and returned.
    pub fn build(entries: impl IntoIterator<Item = SecretKeyEntry>) -> (Self, Vec<SkippedKey>) {
        let mut by_digest = HashMap::new();
        let mut skipped = Vec::new();
        for e in entries {
            let g: Grants = match grants(&e.models) {
                Ok(g) => g,
                Err(message) => {
                    skipped.push(SkippedKey {
                        name: e.name,
                        message,
                    });
                    continue;
                }
            };
            if by_digest.contains_key(&e.digest.0) {
                skipped.push(SkippedKey {
                    name: e.name,
                    message: "the same key is already held by another Secret".into(),
                });
                continue;
            }
            let principal = Arc::new(Principal::api_key(e.name.as_str(), g));
            by_digest.insert(
                e.digest.0,
                Stored {
                    principal,
                    digest: e.digest.0,
                    not_after: e.not_after,
                },
            );
        }
        (Self { by_digest }, skipped)
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Whether `presented` is one of these keys (current or in grace).
    pub fn contains(&self, presented: &str) -> bool {
        self.by_digest.contains_key(&digest(presented))
    }

    /// Verifies a key already hashed to `d`.
    fn verify_digest(&self, d: &[u8; 32], now: SystemTime) -> Result<Arc<Principal>, AuthFailure> {
        let Some(k) = self.by_digest.get(d) else {
            return Err(AuthFailure::InvalidApiKey);
        };
        if !bool::from(d.ct_eq(&k.digest)) || k.not_after.is_some_and(|t| now >= t) {
            return Err(AuthFailure::InvalidApiKey);
        }
        Ok(k.principal.clone())
    }
}

impl KeyStore {
    /// This store, also verifying against the live outside set `secrets`.
    pub fn with_secrets(mut self, secrets: Option<SharedSecretKeys>) -> Self {
        self.secrets = secrets;
        self
    }

    /// The live outside set this store reads, to carry over to a reloaded store.
    pub fn secrets(&self) -> Option<SharedSecretKeys> {
        self.secrets.clone()
    }

    /// Whether `presented` is a key of the outside set (any format).
    pub fn holds_secret_key(&self, presented: &str) -> bool {
        self.secrets
            .as_ref()
            .is_some_and(|s| s.load().contains(presented))
    }

    pub(super) fn secret_count(&self) -> usize {
        self.secrets.as_ref().map_or(0, |s| s.load().len())
    }

    pub(super) fn verify_secret(
        &self,
        d: &[u8; 32],
        now: SystemTime,
    ) -> Result<Arc<Principal>, AuthFailure> {
        match &self.secrets {
            Some(s) => s.load().verify_digest(d, now),
            None => Err(AuthFailure::InvalidApiKey),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(name: &str, key: &str, models: &[&str]) -> SecretKeyEntry {
        SecretKeyEntry {
            name: name.into(),
            models: models.iter().map(|m| m.to_string()).collect(),
            digest: KeyDigest::of(key),
            not_after: None,
        }
    }

    fn live(entries: Vec<SecretKeyEntry>) -> SharedSecretKeys {
        Arc::new(ArcSwap::from_pointee(SecretKeys::build(entries).0))
    }

    #[test]
    fn plain_authorino_keys_verify_next_to_the_file_keys() {
        let now = SystemTime::now();
        let set = live(vec![entry(
            "friend",
            "ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx",
            &["iris"],
        )]);
        let store = KeyStore::empty().with_secrets(Some(set.clone()));
        assert!(store.holds_secret_key("ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx"));
        let p = store
            .verify("ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx", now)
            .unwrap();
        assert_eq!(p.name, "friend");
        assert!(matches!(p.grants, Grants::Models(ref m) if m.len() == 1));
        assert_eq!(store.len(), 1);
        assert!(matches!(
            store.verify("ndyBzreUzF4zqDQsqSPMHkRhriEOtcRy", now),
            Err(AuthFailure::InvalidApiKey)
        ));
        // A swap of the live set takes effect on the same store.
        set.store(Arc::new(
            SecretKeys::build(vec![entry("friend", "new-key", &["*"])]).0,
        ));
        assert!(
            store
                .verify("ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx", now)
                .is_err()
        );
        assert!(matches!(
            store.verify("new-key", now).unwrap().grants,
            Grants::AllModels
        ));
        // Carried over to a reloaded store.
        let reloaded = KeyStore::empty().with_secrets(store.secrets());
        assert!(reloaded.verify("new-key", now).is_ok());
    }

    #[test]
    fn keys_in_grace_stop_at_their_end() {
        let now = SystemTime::now();
        let mut old = entry("svc", "old", &["*"]);
        old.not_after = Some(now + Duration::from_secs(5));
        let store = KeyStore::empty().with_secrets(Some(live(vec![old])));
        assert!(store.verify("old", now).is_ok());
        assert!(store.verify("old", now + Duration::from_secs(5)).is_err());
    }

    #[test]
    fn bad_models_and_shared_keys_are_skipped() {
        let (set, skipped) = SecretKeys::build(vec![
            entry("a", "k1", &["iris"]),
            entry("b", "k1", &["iris"]),
            entry("c", "k2", &["bad model name!"]),
        ]);
        assert_eq!(set.len(), 1);
        let names: Vec<_> = skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[test]
    fn digests_do_not_show_in_debug() {
        let e = entry("svc", "plaintext-key", &[]);
        let shown = format!("{e:?}");
        assert!(!shown.contains("plaintext-key"));
        assert!(shown.contains("KeyDigest(..)"));
    }
}
