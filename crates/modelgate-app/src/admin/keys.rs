//! Key management for the admin API and UI: the same key-file functions as
//! the `modelgate keys` command (`modelgate_authn::keys::KeyFile`, locked
//! and replaced atomically), then the running key store is reloaded at once.
//! A secret is returned only by `create` and `rotate`, to be shown once.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use modelgate_authn::keys::{KeyFile, KeyFileError, KeySummary, parse_grants};
use modelgate_core::Reject;
use serde::Serialize;

use super::console::Console;

/// A key just created or rotated: the only time its secret is shown.
#[derive(Serialize)]
pub(super) struct NewKey {
    pub name: String,
    pub id: String,
    /// The whole key, shown once.
    pub key: String,
}

/// A key-file change asked for by an admin.
pub(super) enum Change {
    Create {
        name: String,
        models: String,
        expires: Option<String>,
    },
    Rotate {
        name: String,
        grace: Option<String>,
    },
    Revoke {
        name: String,
    },
}

fn key_file(c: &Console) -> Result<PathBuf, Reject> {
    c.shared
        .pipeline
        .load()
        .config
        .auth
        .api_keys
        .as_ref()
        .map(|k| k.file.clone())
        .ok_or_else(|| Reject::BadRequest("no key file is configured (auth.api_keys.file)".into()))
}

fn duration(field: &str, s: Option<&str>) -> Result<Option<Duration>, Reject> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => humantime::parse_duration(s).map(Some).map_err(|_| {
            Reject::BadRequest(format!("{field}: write a duration such as 30d or 12h"))
        }),
    }
}

fn refused(e: KeyFileError) -> Reject {
    match e {
        KeyFileError::Read { .. } | KeyFileError::Write { .. } | KeyFileError::Corrupt { .. } => {
            Reject::Internal {
                detail: e.to_string(),
            }
        }
        other => Reject::BadRequest(other.to_string()),
    }
}

/// The keys, without secrets or digests.
pub(super) async fn list(c: &Console) -> Result<Vec<KeySummary>, Reject> {
    let path = key_file(c)?;
    tokio::task::spawn_blocking(move || {
        KeyFile::read(&path).map(|f| f.summaries(SystemTime::now()))
    })
    .await
    .map_err(|e| Reject::Internal {
        detail: format!("key list task: {e}"),
    })?
    .map_err(refused)
}

/// Applies `change` to the key file and reloads the key store.
pub(super) async fn apply(c: &Console, change: Change) -> Result<Option<NewKey>, Reject> {
    let path = key_file(c)?;
    let now = SystemTime::now();
    let done = tokio::task::spawn_blocking(move || -> Result<Option<NewKey>, Reject> {
        match change {
            Change::Create {
                name,
                models,
                expires,
            } => {
                let grants = parse_grants(&models).map_err(Reject::BadRequest)?;
                let expires = duration("expires", expires.as_deref())?;
                let k = KeyFile::update(&path, |f| f.create(&name, grants, expires, now))
                    .map_err(refused)?;
                Ok(Some(NewKey {
                    name,
                    id: k.id.clone(),
                    key: k.key.clone(),
                }))
            }
            Change::Rotate { name, grace } => {
                let grace = duration("grace", grace.as_deref())?.unwrap_or_default();
                let k = KeyFile::update(&path, |f| f.rotate(&name, grace, now)).map_err(refused)?;
                Ok(Some(NewKey {
                    name,
                    id: k.id.clone(),
                    key: k.key.clone(),
                }))
            }
            Change::Revoke { name } => {
                KeyFile::update(&path, |f| f.revoke(&name, now)).map_err(refused)?;
                Ok(None)
            }
        }
    })
    .await
    .map_err(|e| Reject::Internal {
        detail: format!("key change task: {e}"),
    })??;
    let reloader = c.reloader.clone();
    let _ = tokio::task::spawn_blocking(move || reloader.reload_keys()).await;
    Ok(done)
}
