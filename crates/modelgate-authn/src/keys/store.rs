//! The in-memory key store a running server verifies against: an immutable
//! snapshot built from the key file, swapped whole when the file changes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use modelgate_core::{AuthFailure, Grants, ModelName, Principal};
use subtle::ConstantTimeEq;

use super::file::{KeyFile, KeyFileError, parse_time};
use super::format::{digest, parse_key_id};

struct StoredKey {
    /// The identity this key verifies as, built once at load.
    principal: Arc<Principal>,
    digest: [u8; 32],
    not_after: Option<SystemTime>,
}

/// Verifies API keys. Cheap to share; rebuilt whole on every reload.
#[derive(Default)]
pub struct KeyStore {
    by_id: HashMap<String, StoredKey>,
    /// How many of `by_id` are revoked: kept only to name them when they
    /// are presented (they never verify).
    revoked: usize,
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

impl KeyStore {
    /// A store that accepts no key.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads and checks the key file (a missing file is an empty store).
    pub fn load(path: &Path) -> Result<Self, KeyStoreError> {
        let doc = KeyFile::read(path)?;
        Self::from_file(&doc, path)
    }

    /// Builds a store from a document, rejecting any malformed entry.
    pub fn from_file(doc: &KeyFile, path: &Path) -> Result<Self, KeyStoreError> {
        let mut by_id = HashMap::new();
        let mut revoked = 0;
        for (index, e) in doc.keys.iter().enumerate() {
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
            let revoked_at = e
                .revoked_at
                .as_deref()
                .map(parse_time)
                .transpose()
                .map_err(|m| bad(format!("revoked_at: {m}")))?;
            let principal = Arc::new(Principal::api_key(e.name.as_str(), grants.clone()));
            let mut add = |id: &str, sha: &str, not_after: Option<SystemTime>, field: &str| {
                let d =
                    hex32(sha).ok_or_else(|| bad(format!("{field}: not a SHA-256 hex digest")))?;
                if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(bad(format!("{field}: malformed key id {id:?}")));
                }
                let stored = StoredKey {
                    principal: principal.clone(),
                    digest: d,
                    not_after,
                };
                if by_id.insert(id.to_string(), stored).is_some() {
                    return Err(bad(format!("{field}: key id {id} appears twice")));
                }
                Ok(())
            };
            if revoked_at.is_some() {
                // Never verifies (valid until the epoch); kept to be named.
                add(&e.id, &e.sha256, Some(SystemTime::UNIX_EPOCH), "id")?;
                revoked += 1;
                continue;
            }
            add(&e.id, &e.sha256, expires, "id")?;
            for (pi, p) in e.previous.iter().enumerate() {
                let until = parse_time(&p.valid_until)
                    .map_err(|m| bad(format!("previous[{pi}].valid_until: {m}")))?;
                let not_after = Some(expires.map_or(until, |x| x.min(until)));
                add(&p.id, &p.sha256, not_after, &format!("previous[{pi}]"))?;
            }
        }
        Ok(Self {
            by_id,
            revoked,
            secrets: None,
        })
    }

    /// Number of keys (current and in grace) that can verify.
    pub fn len(&self) -> usize {
        self.by_id.len().saturating_sub(self.revoked) + self.secret_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let d = digest(presented);
        let stored = parse_key_id(presented).and_then(|id| self.by_id.get(id));
        let Some(k) = stored else {
            // Same work as a hit, so timing does not tell ids apart.
            let _ = d.ct_eq(&[0u8; 32]);
            return self.verify_secret(&d, now);
        };
        if !bool::from(d.ct_eq(&k.digest)) {
            return self.verify_secret(&d, now);
        }
        if k.not_after.is_some_and(|t| now >= t) {
            return Err(AuthFailure::InactiveApiKey(k.principal.name.clone()));
        }
        Ok(k.principal.clone())
    }

    /// The identity of the active key named `name`, taken on trust without
    /// the secret (`modelgate check --identity`); `None` if no key of that
    /// name is active at `now`.
    pub fn assume(&self, name: &str, now: SystemTime) -> Option<Arc<Principal>> {
        self.by_id
            .values()
            .find(|k| k.principal.name == name && k.not_after.is_none_or(|t| now < t))
            .map(|k| k.principal.clone())
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
