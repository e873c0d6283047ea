//! The in-memory key store a running server verifies against: an immutable
//! snapshot built from the key file, swapped whole when the file changes.
//!
//! Compact for a million keys: one flat table of fixed-size slots (digest,
//! end time, name in a shared arena, interned grants) and an open-addressing
//! index keyed by the digest's first bytes (SHA-256 output is uniform, so no
//! further hashing). A key's `Principal` is built the first time it verifies.
//! A key that verified once is found again by its keyed tag (`tag.rs`)
//! instead of another SHA-256.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use modelgate_core::{AuthFailure, Grants, ModelName, Principal};
use subtle::ConstantTimeEq;

use super::file::{KeyFile, KeyFileError, parse_time};
use super::format::digest;
use super::tag::{FastPath, SlotTag};

/// One stored key (current, in grace, or revoked).
struct Slot {
    digest: [u8; 32],
    /// The key stops verifying at this time (the epoch for revoked keys).
    not_after: Option<SystemTime>,
    /// The key's name: `names[name.0..name.0 + name.1]`.
    name: (u32, u32),
    /// Index into `KeyStore::grants`.
    grants: u32,
    /// The identity, built on first successful verification.
    principal: OnceLock<Arc<Principal>>,
    /// The keyed tag of the key that verified against this slot (fast path).
    tag: SlotTag,
}

const EMPTY: u32 = u32::MAX;

/// At most this many slots are reserved ahead of a load (16M slots, 1.5 GB
/// of address space; beyond that the table grows as entries arrive).
const MAX_RESERVED_SLOTS: usize = 1 << 24;

/// Verifies API keys. Cheap to share; rebuilt whole on every reload.
#[derive(Default)]
pub struct KeyStore {
    slots: Vec<Slot>,
    /// Open-addressing index into `slots` (`EMPTY` = free), a power of two
    /// at least twice `slots.len()`.
    index: Vec<u32>,
    /// All key names, back to back.
    names: String,
    /// Distinct grant sets, shared by the keys that have them.
    grants: Vec<Grants>,
    /// How many of `slots` are revoked: kept only to name them when they
    /// are presented (they never verify).
    revoked: usize,
    /// Keys from Secrets, live (see `secrets.rs`).
    pub(super) secrets: Option<super::secrets::SharedSecretKeys>,
    /// Verified keys found again without SHA-256 (see `tag.rs`).
    fast: FastPath,
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

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Where the digest's probe sequence starts.
fn home(d: &[u8; 32], mask: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(first) as usize) & mask
}

/// One key-file entry, borrowed from wherever it was parsed.
pub(super) struct EntryView<'a, M> {
    pub name: &'a str,
    pub id: &'a str,
    pub sha256: &'a str,
    pub models: &'a [M],
    pub expires_at: Option<&'a str>,
    pub revoked_at: Option<&'a str>,
    /// `(id, sha256, valid_until)` of keys in grace.
    pub previous: Vec<(&'a str, &'a str, &'a str)>,
}

/// Builds a [`KeyStore`] entry by entry (from a parsed document or a stream).
pub(super) struct Builder<'p> {
    path: &'p Path,
    store: KeyStore,
    /// File index of each slot, for duplicate-digest errors.
    origin: Vec<u32>,
    /// Key ids seen (admin-written file; foldhash is still seeded).
    ids: HashSet<[u8; 12], foldhash::fast::RandomState>,
    interned: HashMap<String, u32, foldhash::fast::RandomState>,
    models_key: String,
}

impl<'p> Builder<'p> {
    pub(super) fn new(path: &'p Path) -> Self {
        Self {
            path,
            store: KeyStore::default(),
            origin: Vec::new(),
            ids: HashSet::default(),
            interned: HashMap::default(),
            models_key: String::new(),
        }
    }

    /// Sizes the tables for a key file of `len` bytes, so they are not
    /// regrown (each regrowth copies and frees the old table) while it
    /// loads. Every slot takes at least its 64 hex digits plus quotes and
    /// `"sha256":` in the file, so `len / 75` slots is an upper bound; the
    /// part never written is never touched (address space, not memory).
    /// A reservation the allocator refuses is skipped.
    pub(super) fn reserve_for_file(&mut self, len: u64) {
        let slots = usize::try_from(len / 75)
            .unwrap_or(usize::MAX)
            .min(MAX_RESERVED_SLOTS);
        let _ = self.store.slots.try_reserve_exact(slots);
        let _ = self.origin.try_reserve_exact(slots);
        // Ids are about half the bound (one slot's bytes at least twice
        // over); a short reservation only regrows once or twice.
        let _ = self.ids.try_reserve(slots / 2);
    }

    fn grants_of<M: AsRef<str>>(&mut self, models: &[M]) -> Result<u32, String> {
        self.models_key.clear();
        for m in models {
            self.models_key.push_str(m.as_ref());
            self.models_key.push('\n');
        }
        if let Some(&g) = self.interned.get(self.models_key.as_str()) {
            return Ok(g);
        }
        let list: Vec<String> = models.iter().map(|m| m.as_ref().to_string()).collect();
        let g = grants(&list)?;
        let at = u32::try_from(self.store.grants.len()).map_err(|_| "too many grant sets")?;
        self.store.grants.push(g);
        self.interned.insert(self.models_key.clone(), at);
        Ok(at)
    }

    /// Adds entry `index` of the file (and its keys in grace).
    pub(super) fn add<M: AsRef<str>>(
        &mut self,
        index: usize,
        e: &EntryView<'_, M>,
    ) -> Result<(), KeyStoreError> {
        let path = self.path;
        let bad = |message: String| KeyStoreError::Entry {
            path: path.into(),
            index,
            name: e.name.to_string(),
            message,
        };
        let grants = self.grants_of(e.models).map_err(bad)?;
        let expires = e
            .expires_at
            .map(parse_time)
            .transpose()
            .map_err(|m| bad(format!("expires_at: {m}")))?;
        let revoked_at = e
            .revoked_at
            .map(parse_time)
            .transpose()
            .map_err(|m| bad(format!("revoked_at: {m}")))?;
        let start = u32::try_from(self.store.names.len()).ok();
        let len = u32::try_from(e.name.len()).ok();
        let (Some(start), Some(len)) = (start, len) else {
            return Err(bad("the key file holds too many names".into()));
        };
        let origin = u32::try_from(index).map_err(|_| bad("too many keys".into()))?;
        self.store.names.push_str(e.name);
        let name = (start, len);
        let add =
            |this: &mut Self, id: &str, sha: &str, not_after: Option<SystemTime>, field: &str| {
                let d =
                    hex32(sha).ok_or_else(|| bad(format!("{field}: not a SHA-256 hex digest")))?;
                let id_bytes: Option<[u8; 12]> = id.as_bytes().try_into().ok();
                let Some(id_bytes) = id_bytes.filter(|b| b.iter().all(u8::is_ascii_alphanumeric))
                else {
                    return Err(bad(format!("{field}: malformed key id {id:?}")));
                };
                if !this.ids.insert(id_bytes) {
                    return Err(bad(format!("{field}: key id {id} appears twice")));
                }
                this.store.slots.push(Slot {
                    digest: d,
                    not_after,
                    name,
                    grants,
                    principal: OnceLock::new(),
                    tag: SlotTag::default(),
                });
                this.origin.push(origin);
                Ok(())
            };
        if revoked_at.is_some() {
            // Never verifies (valid until the epoch); kept to be named.
            add(self, e.id, e.sha256, Some(SystemTime::UNIX_EPOCH), "id")?;
            self.store.revoked += 1;
            return Ok(());
        }
        add(self, e.id, e.sha256, expires, "id")?;
        for (pi, (id, sha, until)) in e.previous.iter().enumerate() {
            let until =
                parse_time(until).map_err(|m| bad(format!("previous[{pi}].valid_until: {m}")))?;
            let not_after = Some(expires.map_or(until, |x| x.min(until)));
            add(self, id, sha, not_after, &format!("previous[{pi}]"))?;
        }
        Ok(())
    }

    /// Indexes the slots by digest; a digest held twice is an error.
    pub(super) fn finish(mut self) -> Result<KeyStore, KeyStoreError> {
        let n = self.store.slots.len();
        if n == 0 {
            return Ok(self.store);
        }
        let size = (n * 2).next_power_of_two().max(16);
        let mask = size - 1;
        let mut index = vec![EMPTY; size];
        for (s, slot) in self.store.slots.iter().enumerate() {
            let mut i = home(&slot.digest, mask);
            while let Some(&other) = index.get(i).filter(|&&o| o != EMPTY) {
                if self.store.slots.get(other as usize).map(|o| o.digest) == Some(slot.digest) {
                    let at = self.origin.get(s).copied().unwrap_or_default() as usize;
                    return Err(KeyStoreError::Entry {
                        path: self.path.into(),
                        index: at,
                        name: self.store.name(slot).to_string(),
                        message: "sha256: the same digest as another key".into(),
                    });
                }
                i = (i + 1) & mask;
            }
            if let Some(free) = index.get_mut(i) {
                // n < 2^32 - 1: checked when the slot's origin was recorded.
                *free = s as u32;
            }
        }
        self.store.index = index;
        self.store.fast = FastPath::new(n);
        self.store.names.shrink_to_fit();
        // `slots` keeps its reserved capacity: the unused tail was never
        // touched (address space, not memory), and shrinking it by more than
        // half makes some allocators (mimalloc) copy the whole table.
        Ok(self.store)
    }
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
        let mut b = Builder::new(path);
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
            b.add(index, &view)?;
        }
        b.finish()
    }

    /// Number of keys (current and in grace) that can verify.
    pub fn len(&self) -> usize {
        self.slots.len().saturating_sub(self.revoked) + self.secret_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn name(&self, k: &Slot) -> &str {
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
