//! The in-memory key store a running server verifies against: an immutable
//! snapshot built from the key file, swapped whole when the file changes.
//!
//! Compact for a million keys: one flat table of fixed-size slots (digest,
//! end time, name in a shared arena, interned grants) and an open-addressing
//! index keyed by the digest's first bytes (SHA-256 output is uniform, so no
//! further hashing). A key's `Principal` is built the first time it verifies.
//! A key that verified once is found again by its keyed tag (`tag.rs`)
//! instead of another SHA-256.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use modelgate_core::{AuthFailure, Grants, ModelName, Principal};
use subtle::ConstantTimeEq;

use super::build::Builder;
use super::file::{KeyFile, KeyFileError};
use super::format::digest;
use super::part::{EntryView, Part};
use super::tag::{FastPath, SlotTag};

/// One stored key (current, in grace, or revoked).
pub(super) struct Slot {
    pub(super) digest: [u8; 32],
    /// The key stops verifying at this time (the epoch for revoked keys).
    pub(super) not_after: Option<SystemTime>,
    /// The key's name: `names[name.0..name.0 + name.1]`.
    pub(super) name: (u32, u32),
    /// Index into `KeyStore::grants`.
    pub(super) grants: u32,
    /// The identity, built on first successful verification.
    pub(super) principal: OnceLock<Arc<Principal>>,
    /// The keyed tag of the key that verified against this slot (fast path).
    pub(super) tag: SlotTag,
}

/// A free entry of the index.
pub(super) const EMPTY: u32 = u32::MAX;

/// Verifies API keys. Cheap to share; rebuilt whole on every reload.
#[derive(Default)]
pub struct KeyStore {
    pub(super) slots: Vec<Slot>,
    /// Open-addressing index into `slots` (`EMPTY` = free), a power of two
    /// at least twice `slots.len()`.
    pub(super) index: Vec<u32>,
    /// All key names, back to back.
    pub(super) names: String,
    /// Distinct grant sets, shared by the keys that have them.
    pub(super) grants: Vec<Grants>,
    /// How many of `slots` are revoked: kept only to name them when they
    /// are presented (they never verify).
    pub(super) revoked: usize,
    /// Keys from Secrets, live (see `secrets.rs`).
    pub(super) secrets: Option<super::secrets::SharedSecretKeys>,
    /// Verified keys found again without SHA-256 (see `tag.rs`).
    pub(super) fast: FastPath,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(transparent)]
    File(#[from] KeyFileError),
    #[error("key file {path}: keys[{index}] ({name}): {message}")]
    Entry {
        path: PathBuf,
        index: usize,
        name: String,
        message: String,
    },
}

/// Where the digest's probe sequence starts.
pub(super) fn home(d: &[u8; 32], mask: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(first) as usize) & mask
}

impl KeyStore {
    /// A store that accepts no key.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads and checks the key file (a missing file is an empty store).
    /// Entries stream from the file's bytes into the store, never held twice.
    pub fn load(path: &Path) -> Result<Self, KeyStoreError> {
        super::load::load(path)
    }

    /// Builds a store from a document, rejecting any malformed entry.
    pub fn from_file(doc: &KeyFile, path: &Path) -> Result<Self, KeyStoreError> {
        let mut part = Part::default();
        for (index, e) in doc.keys.iter().enumerate() {
            let view = EntryView {
                name: &e.name,
                id: &e.id,
                sha256: &e.sha256,
                models: &e.models,
                expires_at: e.expires_at.as_deref(),
                revoked_at: e.revoked_at.as_deref(),
                previous: e
                    .previous
                    .iter()
                    .map(|p| (p.id.as_str(), p.sha256.as_str(), p.valid_until.as_str()))
                    .collect(),
            };
            part.add(path, index, &view);
            if part.error.is_some() {
                break;
            }
        }
        let mut b = Builder::new(path);
        b.merge(part)?;
        b.finish()
    }

    /// Number of keys (current and in grace) that can verify.
    pub fn len(&self) -> usize {
        self.slots.len().saturating_sub(self.revoked) + self.secret_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn name(&self, k: &Slot) -> &str {
        let (start, len) = (k.name.0 as usize, k.name.1 as usize);
        self.names.get(start..start + len).unwrap_or_default()
    }

    fn principal(&self, k: &Slot) -> Arc<Principal> {
        k.principal
            .get_or_init(|| {
                let grants = self.grants.get(k.grants as usize).cloned();
                Arc::new(Principal::api_key(self.name(k), grants.unwrap_or_default()))
            })
            .clone()
    }

    /// The slot holding digest `d` and its index, compared in constant time.
    fn find(&self, d: &[u8; 32]) -> Option<(usize, &Slot)> {
        let mask = self.index.len().checked_sub(1)?;
        let mut i = home(d, mask);
        loop {
            let s = *self.index.get(i)? as usize;
            let slot = self.slots.get(s)?; // EMPTY is out of range
            if bool::from(slot.digest.ct_eq(d)) {
                return Some((s, slot));
            }
            i = (i + 1) & mask;
        }
    }

    /// Verifies a presented key. Unknown and wrong keys give `InvalidApiKey`;
    /// a genuine key that is revoked or expired gives `InactiveApiKey` with
    /// its name (the client sees the same answer for all).
    pub fn verify(&self, presented: &str, now: SystemTime) -> Result<Principal, AuthFailure> {
        self.verify_shared(presented, now).map(|p| (*p).clone())
    }

    /// [`KeyStore::verify`], returning the identity shared with the store.
    pub fn verify_shared(
        &self,
        presented: &str,
        now: SystemTime,
    ) -> Result<Arc<Principal>, AuthFailure> {
        if self.slots.is_empty() {
            return self.verify_secret(&digest(presented), now);
        }
        let tag = self.fast.tag(presented);
        if let Some(k) = self.verified_before(tag) {
            return self.active(k, now);
        }
        let d = digest(presented);
        let Some((i, k)) = self.find(&d) else {
            return self.verify_secret(&d, now);
        };
        let p = self.active(k, now)?;
        self.fast.remember(&k.tag, i, tag);
        Ok(p)
    }

    /// The slot a key with this tag verified against before, if the fast
    /// table still points at it.
    fn verified_before(&self, tag: [u64; 2]) -> Option<&Slot> {
        let k = self.slots.get(self.fast.candidate(tag)?)?;
        k.tag.matches(tag).then_some(k)
    }

    /// The identity of a genuine key, unless it is revoked or expired at `now`.
    fn active(&self, k: &Slot, now: SystemTime) -> Result<Arc<Principal>, AuthFailure> {
        if k.not_after.is_some_and(|t| now >= t) {
            return Err(AuthFailure::InactiveApiKey(self.name(k).to_string()));
        }
        Ok(self.principal(k))
    }

    /// The identity of the active key named `name`, taken on trust without
    /// the secret (`modelgate check --identity`); `None` if no key of that
    /// name is active at `now`.
    pub fn assume(&self, name: &str, now: SystemTime) -> Option<Arc<Principal>> {
        self.slots
            .iter()
            .find(|k| self.name(k) == name && k.not_after.is_none_or(|t| now < t))
            .map(|k| self.principal(k))
    }
}

pub(super) fn grants(models: &[String]) -> Result<Grants, String> {
    if models.iter().any(|m| m == "*") {
        return Ok(Grants::AllModels);
    }
    let mut set = BTreeSet::new();
    for m in models {
        set.insert(ModelName::parse(m).map_err(|e| format!("models: {m:?}: {e}"))?);
    }
    Ok(if set.is_empty() {
        Grants::Nothing
    } else {
        Grants::Models(set)
    })
}

#[cfg(test)]
mod fast_tests;
