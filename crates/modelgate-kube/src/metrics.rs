//! The Secret watch's metrics: is the watch up, how often it broke or had to
//! relist, how many Secret keys are in force, how many Secrets were unusable.
//! No label comes from a Secret.

use modelgate_audit::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Handles to the watch metrics (cheap clones of shared atomics).
#[derive(Clone, Default)]
pub struct WatchMetrics {
    pub up: Gauge,
    pub errors: Counter,
    pub relists: Counter,
    pub keys: Gauge,
    pub skipped: Counter,
}

impl WatchMetrics {
    /// Creates the metrics and registers them (as `modelgate_kube_*`).
    pub fn registered(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "kube_watch_up",
            "1 while every Secret watch is listed and healthy; 0 after an error until it relists (the last good keys stay in force)",
            m.up.clone(),
        );
        metrics.register(
            "kube_watch_errors",
            "Secret list/watch failures (each is logged; the watch retries with backoff)",
            m.errors.clone(),
        );
        metrics.register(
            "kube_watch_relists",
            "Relists after the API server expired the watch's resourceVersion (410 Gone)",
            m.relists.clone(),
        );
        metrics.register(
            "kube_secret_keys",
            "API keys from Secrets in force, including rotated-out keys in grace",
            m.keys.clone(),
        );
        metrics.register(
            "kube_secrets_skipped",
            "Selected Secrets that gave no key (missing or malformed key, bad annotation; logged)",
            m.skipped.clone(),
        );
        m
    }
}
