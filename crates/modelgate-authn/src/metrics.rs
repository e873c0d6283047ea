//! Metrics of the identity sources, labelled by provider (the issuer, or
//! `tokenreview` / `introspection`). Created once per process and registered
//! by the app (`Metrics::register`); every pipeline build shares them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    pub provider: String,
    /// `ok` or `error`.
    pub result: &'static str,
    /// `refresh` (scheduled), `cold` (no keys yet) or `unknown_kid`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub source: &'static str,
    /// `hit`, `active`, `inactive` or `error`.
    pub result: &'static str,
}

/// The identity metrics. Each field is registered under the name in its doc.
#[derive(Clone, Default)]
pub struct IdentityMetrics {
    /// `jwks_fetches`: JWKS fetches by provider, result and reason.
    pub jwks_fetches: Family<FetchLabels, Counter>,
    /// `jwks_keys`: usable keys in the provider's cached set (0 = none: requests fail closed).
    pub jwks_keys: Family<ProviderLabels, Gauge>,
    /// `jwks_last_success_timestamp_seconds`: when the cached set was fetched;
    /// its age is `time() - this`.
    pub jwks_last_success: Family<ProviderLabels, Gauge>,
    /// `identity_remote_checks`: TokenReview / introspection answers by source and result.
    pub remote_checks: Family<CheckLabels, Counter>,
}
