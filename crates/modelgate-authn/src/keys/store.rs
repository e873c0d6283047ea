//! The in-memory key store a running server verifies against: an immutable
//! snapshot built from the key file, swapped whole when the file changes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use modelgate_core::{AuthFailure, Grants, ModelName, Principal};
use subtle::ConstantTimeEq;

use super::file::{KeyEntry, KeyFile, KeyFileError, parse_time};
use super::format::{digest, parse_key_id};

/// One key id that verifies: its digest, when it stops, and whose it is.
struct Slot {
    digest: [u8; 32],
    not_after: Option<SystemTime>,
    owner: u32,
}

/// A named key entry (a current key and its rotated-out ids share one).
struct Owner {
    name: Box<str>,
    grants: Grants,
    /// The identity this entry verifies as, built on its first use and then
    /// shared, so a million-key store holds a million names, not a million
    /// principals.
    principal: OnceLock<Arc<Principal>>,
}

impl Owner {
    fn principal(&self) -> Arc<Principal> {
        self.principal
            .get_or_init(|| Arc::new(Principal::api_key(&*self.name, self.grants.clone())))
            .clone()
    }
}

/// Verifies API keys. Cheap to share; rebuilt whole on every reload.
///
/// Laid out for large files (issue 14: 1,000,000 keys in well under 300 MB):
/// a map from the 12-byte key id to a slot index, the slots in one vector,
/// and one owner per named entry.
#[derive(Default)]
pub struct KeyStore {
    ids: HashMap<[u8; 12], u32>,
    slots: Vec<Slot>,
    owners: Vec<Owner>,
    /// Keys from Secrets, live (see `secrets.rs`).
    pub(super) secrets: Option<super::secrets::SharedSecretKeys>,
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
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// A key id as the map's key: exactly 12 ASCII letters or digits.
fn id_key(id: &str) -> Option<[u8; 12]> {
    let b: [u8; 12] = id.as_bytes().try_into().ok()?;
    b.iter().all(u8::is_ascii_alphanumeric).then_some(b)
}

/// Builds a [`KeyStore`] one key-file entry at a time (see `stream.rs`).
#[derive(Default)]
pub(super) struct Builder {
    store: KeyStore,
}

impl Builder {
    /// Checks and adds entry `index` of the file at `path`.
    pub(super) fn add(
        &mut self,
        index: usize,
        e: &KeyEntry,
        path: &Path,
    ) -> Result<(), KeyStoreError> {
        let bad = |message: String| KeyStoreError::Entry {
            path: path.into(),
            index,
            name: e.name.clone(),
            message,
        };
        let grants = grants(&e.models).map_err(bad)?;
        let expires = e
            .expires_at
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|m| bad(format!("expires_at: {m}")))?;
        if let Some(t) = &e.revoked_at {
            parse_time(t).map_err(|m| bad(format!("revoked_at: {m}")))?;
            return Ok(());
        }
        let s = &mut self.store;
        let owner = u32::try_from(s.owners.len()).map_err(|_| bad("too many keys".into()))?;
        let mut add = |id: &str, sha: &str, not_after: Option<SystemTime>, field: &str| {
            let digest =
                hex32(sha).ok_or_else(|| bad(format!("{field}: not a SHA-256 hex digest")))?;
            let key = id_key(id).ok_or_else(|| bad(format!("{field}: malformed key id {id:?}")))?;
            let slot = u32::try_from(s.slots.len()).map_err(|_| bad("too many keys".into()))?;
            if s.ids.insert(key, slot).is_some() {
                return Err(bad(format!("{field}: key id {id} appears twice")));
            }
            s.slots.push(Slot {
                digest,
                not_after,
                owner,
            });
            Ok(())
        };
        add(&e.id, &e.sha256, expires, "id")?;
        for (pi, p) in e.previous.iter().enumerate() {
            let until = parse_time(&p.valid_until)
                .map_err(|m| bad(format!("previous[{pi}].valid_until: {m}")))?;
            let not_after = Some(expires.map_or(until, |x| x.min(until)));
            add(&p.id, &p.sha256, not_after, &format!("previous[{pi}]"))?;
        }
        s.owners.push(Owner {
            name: e.name.as_str().into(),
            grants,
            principal: OnceLock::new(),
        });
        Ok(())
    }

    pub(super) fn finish(mut self) -> KeyStore {
        self.store.ids.shrink_to_fit();
        self.store.slots.shrink_to_fit();
        self.store.owners.shrink_to_fit();
        self.store
    }
}

impl KeyStore {
    /// A store that accepts no key.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads and checks the key file (a missing file is an empty store). The
    /// file is parsed straight into the store, entry by entry.
    pub fn load(path: &Path) -> Result<Self, KeyStoreError> {
        super::stream::load(path)
    }

    /// Builds a store from a document, rejecting any malformed entry.
    pub fn from_file(doc: &KeyFile, path: &Path) -> Result<Self, KeyStoreError> {
        let mut b = Builder::default();
        for (index, e) in doc.keys.iter().enumerate() {
            b.add(index, e, path)?;
        }
        Ok(b.finish())
    }

    /// Number of keys (current and in grace) that can verify.
    pub fn len(&self) -> usize {
        self.slots.len() + self.secret_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Verifies a presented key. Unknown, revoked, expired and wrong keys all
    /// give the same `InvalidApiKey`.
    pub fn verify(&self, presented: &str, now: SystemTime) -> Result<Principal, AuthFailure> {
        self.verify_shared(presented, now).map(|p| (*p).clone())
    }

    /// [`KeyStore::verify`], returning the identity shared with the store.
    pub fn verify_shared(
        &self,
        presented: &str,
        now: SystemTime,
    ) -> Result<Arc<Principal>, AuthFailure> {
        let d = digest(presented);
        let stored = parse_key_id(presented)
            .and_then(id_key)
            .and_then(|id| self.ids.get(&id))
            .and_then(|&i| self.slots.get(i as usize));
        let Some(k) = stored else {
            // Same work as a hit, so timing does not tell ids apart.
            let _ = d.ct_eq(&[0u8; 32]);
            return self.verify_secret(&d, now);
        };
        if !bool::from(d.ct_eq(&k.digest)) {
            return self.verify_secret(&d, now);
        }
        if k.not_after.is_some_and(|t| now >= t) {
            return Err(AuthFailure::InvalidApiKey);
        }
        self.owners
            .get(k.owner as usize)
            .map(Owner::principal)
            .ok_or(AuthFailure::InvalidApiKey)
    }

    /// The identity of the active key named `name`, taken on trust without
    /// the secret (`modelgate check --identity`); `None` if no key of that
    /// name is active at `now`.
    pub fn assume(&self, name: &str, now: SystemTime) -> Option<Arc<Principal>> {
        self.slots
            .iter()
            .filter(|k| k.not_after.is_none_or(|t| now < t))
            .filter_map(|k| self.owners.get(k.owner as usize))
            .find(|o| &*o.name == name)
            .map(Owner::principal)
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
