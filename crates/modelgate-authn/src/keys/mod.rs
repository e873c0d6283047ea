//! API keys: the key format, the on-disk key file (written atomically by the
//! `modelgate keys` commands) and the in-memory store that verifies keys.
//!
//! A key looks like `mgk_<id>_<secret>`: `id` (12 base62 characters) is public
//! and used for lookup; the whole key is stored only as its SHA-256 digest and
//! compared in constant time.

mod build;
mod entry;
mod file;
mod format;
mod load;
mod part;
mod secrets;
mod split;
mod store;
mod tag;

pub use file::{KeyEntry, KeyFile, KeyFileError, KeyLimits, KeySummary, PreviousKey, parse_grants};
pub use format::{GeneratedKey, KEY_PREFIX, parse_key_id};
pub use secrets::{KeyDigest, SecretKeyEntry, SecretKeys, SharedSecretKeys, SkippedKey};
pub use store::{KeyStore, KeyStoreError};

#[cfg(test)]
mod tests;
