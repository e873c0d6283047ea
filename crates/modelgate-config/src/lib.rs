//! The modelgate configuration file: one YAML document with the sections
//! `listen`, `admin`, `models`, `auth`, `policies`, `log`, `runtime` and
//! `ext_authz`, `wristband` and `extension_providers`.
//!
//! Parsing is strict (unknown keys are errors), `${ENV}` references are
//! expanded in string values, and every error found is reported at once with
//! its key path and a fix.

pub mod admin;
pub mod cost;
mod error;
pub mod ext_authz;
mod fields;
pub mod forward_auth;
pub mod identity;
mod interpolate;
pub mod kube_access;
pub mod kube_keys;
mod limits;
mod load;
pub mod policy;
pub mod providers;
pub mod rate_limits;
pub mod raw;
pub mod redis_store;
mod restart;
mod types;
pub mod units;
pub mod upstream;
mod validate;
pub mod wristband;

pub use error::{ConfigError, ConfigErrors};
pub use load::{load_file, parse_str};
pub use restart::{RESTART_KEYS, listener_changes, restart_required};
pub use types::*;
