//! Kubernetes integration: API keys from labelled Secrets (Authorino's
//! `apiKey.selector` model), kept live by a `kube::runtime::watcher` per
//! namespace and published to the key store as a [`SharedSecretKeys`] set.
//! Heavy dependencies (kube, k8s-openapi) stay in this crate.

mod metrics;
mod secret;
mod state;
mod watch;

pub use metrics::WatchMetrics;
pub use modelgate_authn::keys::SharedSecretKeys;
pub use watch::{SecretKeyWatch, StartError};
