//! The key file: a JSON document listing named keys by id and SHA-256 digest.
//! Commands change it under an exclusive lock and replace it atomically
//! (temp file + fsync + rename), so a running server never reads half a file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::format::{self, GeneratedKey};

/// The key file's document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
}

/// One named key. Only the digest of the secret is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    pub id: String,
    /// SHA-256 of the whole key, lower-case hex.
    pub sha256: String,
    /// Model names this key may call; `["*"]` for all.
    pub models: Vec<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Keys replaced by `rotate` that stay valid until their grace period ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PreviousKey>,
    /// This key's own limits (`keys create --rpm …`), kept across rotation;
    /// they replace the matching `limits.per_key` values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<KeyLimits>,
}

/// Limits stored with a key; absent values fall back to `limits.per_key`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    /// Spend budgets in micro-USD (`keys create --budget-daily 5` = 5000000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_daily_micro_usd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_monthly_micro_usd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_total_micro_usd: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousKey {
    pub id: String,
    pub sha256: String,
    pub valid_until: String,
}

/// What `keys list` shows: never a secret or a digest.
#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    pub name: String,
    pub id: String,
    pub models: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub status: &'static str,
    /// Old keys still accepted after a rotation, with their end time.
    pub grace_until: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a key named {0:?} already exists")]
    Exists(String),
    #[error("no key named {0:?}")]
    NoSuchKey(String),
    #[error("key {0:?} is revoked")]
    Revoked(String),
    #[error("invalid key name {0:?}: use 1-64 letters, digits, '.', '_', '-', '@' or ':'")]
    BadName(String),
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub(crate) fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s).map_err(|e| format!("invalid time {s:?}: {e}"))
}

/// Parses a comma-separated grant list (`a,b` or `*`), as `modelgate keys
/// create --models` and the admin API take it.
pub fn parse_grants(list: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err("models is empty: give model names (a,b) or '*'".into());
    }
    for m in &items {
        if m != "*" {
            modelgate_core::ModelName::parse(m).map_err(|e| format!("models: {m:?}: {e}"))?;
        }
    }
    Ok(items)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':'))
}

impl KeyFile {
    /// Reads the file; a missing file is an empty key set.
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KeyFile {
                    version: 1,
                    keys: Vec::new(),
                });
            }
            Err(source) => {
                return Err(KeyFileError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        let doc: KeyFile = serde_json::from_str(&text).map_err(|e| KeyFileError::Corrupt {
            path: path.into(),
            message: e.to_string(),
        })?;
        if doc.version != 1 {
            return Err(KeyFileError::Corrupt {
                path: path.into(),
                message: format!(
                    "unsupported version {}; this modelgate reads version 1",
                    doc.version
                ),
            });
        }
        Ok(doc)
    }

    /// Reads, changes and atomically rewrites the file under an exclusive lock
    /// (`<file>.lock`), so concurrent commands never lose each other's changes.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut KeyFile) -> Result<T, KeyFileError>,
    ) -> Result<T, KeyFileError> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let werr = |source| KeyFileError::Write {
            path: path.into(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(werr)?;
        let lock_path = lock_path(path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(werr)?;
        lock.lock().map_err(werr)?;
        let mut doc = Self::read(path)?;
        let out = change(&mut doc)?;
        doc.write_atomic(path)?;
        drop(lock);
        Ok(out)
    }

    fn write_atomic(&self, path: &Path) -> Result<(), KeyFileError> {
        let werr = |source| KeyFileError::Write {
            path: path.into(),
            source,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".modelgate-keys")
            .tempfile_in(dir)
            .map_err(werr)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| KeyFileError::Corrupt {
            path: path.into(),
            message: e.to_string(),
        })?;
        tmp.write_all(text.as_bytes()).map_err(werr)?;
        tmp.write_all(b"\n").map_err(werr)?;
        tmp.as_file().sync_all().map_err(werr)?;
        set_private(tmp.as_file()).map_err(werr)?;
        tmp.persist(path).map_err(|e| werr(e.error))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn entry_mut(&mut self, name: &str) -> Result<&mut KeyEntry, KeyFileError> {
        self.keys
            .iter_mut()
            .find(|k| k.name == name)
            .ok_or_else(|| KeyFileError::NoSuchKey(name.into()))
    }

    /// Adds a key and returns it; the caller shows it once.
    pub fn create(
        &mut self,
        name: &str,
        models: Vec<String>,
        expires_in: Option<Duration>,
        now: SystemTime,
    ) -> Result<GeneratedKey, KeyFileError> {
        if !valid_name(name) {
            return Err(KeyFileError::BadName(name.into()));
        }
        if let Some(pos) = self.keys.iter().position(|k| k.name == name) {
            if self.keys[pos].revoked_at.is_none() {
                return Err(KeyFileError::Exists(name.into()));
            }
            self.keys.remove(pos);
        }
        let g = format::generate();
        self.keys.push(KeyEntry {
            name: name.into(),
            id: g.id.clone(),
            sha256: g.hash.clone(),
            models,
            created_at: rfc3339(now),
            expires_at: expires_in.map(|d| rfc3339(now + d)),
            revoked_at: None,
            previous: Vec::new(),
            limits: None,
        });
        Ok(g)
    }

    /// Revokes a key and any rotated-out predecessors, at once.
    pub fn revoke(&mut self, name: &str, now: SystemTime) -> Result<(), KeyFileError> {
        let e = self.entry_mut(name)?;
        e.revoked_at = Some(rfc3339(now));
        e.previous.clear();
        Ok(())
    }

    /// Replaces a key's secret. The old key stays valid for `grace`.
    pub fn rotate(
        &mut self,
        name: &str,
        grace: Duration,
        now: SystemTime,
    ) -> Result<GeneratedKey, KeyFileError> {
        let e = self.entry_mut(name)?;
        if e.revoked_at.is_some() {
            return Err(KeyFileError::Revoked(name.into()));
        }
        e.previous
            .retain(|p| parse_time(&p.valid_until).is_ok_and(|t| t > now));
        if !grace.is_zero() {
            e.previous.push(PreviousKey {
                id: e.id.clone(),
                sha256: e.sha256.clone(),
                valid_until: rfc3339(now + grace),
            });
        }
        let g = format::generate();
        e.id = g.id.clone();
        e.sha256 = g.hash.clone();
        Ok(g)
    }

    pub fn summaries(&self, now: SystemTime) -> Vec<KeySummary> {
        self.keys
            .iter()
            .map(|k| {
                let expired = k
                    .expires_at
                    .as_deref()
                    .and_then(|t| parse_time(t).ok())
                    .is_some_and(|t| t <= now);
                KeySummary {
                    name: k.name.clone(),
                    id: k.id.clone(),
                    models: k.models.clone(),
                    created_at: k.created_at.clone(),
                    expires_at: k.expires_at.clone(),
                    status: if k.revoked_at.is_some() {
                        "revoked"
                    } else if expired {
                        "expired"
                    } else {
                        "active"
                    },
                    grace_until: k
                        .previous
                        .iter()
                        .filter(|p| parse_time(&p.valid_until).is_ok_and(|t| t > now))
                        .map(|p| p.valid_until.clone())
                        .collect(),
                }
            })
            .collect()
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

#[cfg(unix)]
fn set_private(f: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_: &File) -> std::io::Result<()> {
    Ok(())
}
