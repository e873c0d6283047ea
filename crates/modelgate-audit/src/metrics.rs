//! Prometheus metrics, served on the admin listener's `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use crate::Decision;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    model: String,
    protocol: &'static str,
    decision: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type Hist = Family<ModelLabels, Histogram, fn() -> Histogram>;

/// (protocol, model) → (total, upstream) latency histograms.
type HistogramCache = HashMap<(&'static str, Box<str>), (Histogram, Histogram)>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// All of modelgate's metrics, in one registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: Hist,
    upstream_duration: Hist,
    auth_failures: Family<ReasonLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    keystore_reloads: Family<ResultLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    keystore_keys: Gauge,
    decisions_dropped: Counter,
    histogram_cache: RwLock<HistogramCache>,
}

/// Lets the cache be searched with borrowed `(&str, &str)` keys.
trait HistKey {
    fn key(&self) -> (&str, &str);
}

impl HistKey for (&'static str, Box<str>) {
    fn key(&self) -> (&str, &str) {
        (self.0, &self.1)
    }
}

impl HistKey for (&'static str, &str) {
    fn key(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn HistKey + 'a> for (&'static str, Box<str>) {
    fn borrow(&self) -> &(dyn HistKey + 'a) {
        self
    }
}

impl PartialEq for dyn HistKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn HistKey + '_ {}

impl std::hash::Hash for dyn HistKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("modelgate");
        let requests = Family::default();
        r.register(
            "requests",
            "Requests by model, protocol, decision and status",
            requests.clone(),
        );
        let duration: Hist = Family::new_with_constructor(latency_histogram);
        r.register(
            "request_duration_seconds",
            "Total request latency",
            duration.clone(),
        );
        let upstream_duration: Hist = Family::new_with_constructor(latency_histogram);
        r.register(
            "upstream_duration_seconds",
            "Time to the backend's response headers",
            upstream_duration.clone(),
        );
        let auth_failures = Family::default();
        r.register(
            "auth_failures",
            "Authentication and authorization failures by reason",
            auth_failures.clone(),
        );
        let upstream_errors = Family::default();
        r.register(
            "upstream_errors",
            "Backend failures by model and kind",
            upstream_errors.clone(),
        );
        let keystore_reloads = Family::default();
        r.register(
            "keystore_reloads",
            "API-key store reloads by result",
            keystore_reloads.clone(),
        );
        let config_reloads = Family::default();
        r.register(
            "config_reloads",
            "Configuration reloads by result",
            config_reloads.clone(),
        );
        let keystore_keys = Gauge::default();
        r.register(
            "keystore_keys",
            "API keys (current and in grace) the store accepts",
            keystore_keys.clone(),
        );
        let decisions_dropped = Counter::default();
        r.register(
            "decision_log_dropped",
            "Decision records dropped because the log writer fell behind",
            decisions_dropped.clone(),
        );
        Self {
            registry: Mutex::new(r),
            requests,
            duration,
            upstream_duration,
            auth_failures,
            upstream_errors,
            keystore_reloads,
            config_reloads,
            keystore_keys,
            decisions_dropped,
            histogram_cache: RwLock::new(HashMap::new()),
        }
    }

    /// Registers a further metric (identity sources, runtime).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        if let Ok(mut r) = self.registry.lock() {
            r.register(name, help, metric);
        }
    }

    /// Counts one finished request.
    pub fn record(
        &self,
        d: &Decision<'_>,
        deny_reason: Option<&'static str>,
        upstream_error: Option<&'static str>,
    ) {
        let model = d.model.unwrap_or_default();
        let protocol = d.protocol.unwrap_or("");
        self.requests
            .get_or_create(&RequestLabels {
                model: model.to_string(),
                protocol,
                decision: d.decision.as_str(),
                status: d.status,
            })
            .inc();
        let (total, upstream) = self.histograms(model, protocol);
        total.observe(d.total_ms.as_secs_f64());
        if let Some(u) = d.upstream_ms {
            upstream.observe(u.as_secs_f64());
        }
        if let Some(reason) = deny_reason {
            self.auth_failures
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
        if let Some(kind) = upstream_error {
            self.upstream_errors
                .get_or_create(&UpstreamErrorLabels {
                    model: model.to_string(),
                    kind,
                })
                .inc();
        }
    }

    /// The latency histograms of (model, protocol), looked up without
    /// allocating once they exist.
    fn histograms(&self, model: &str, protocol: &'static str) -> (Histogram, Histogram) {
        if let Ok(cache) = self.histogram_cache.read()
            && let Some(h) = cache.get(&(protocol, model) as &dyn HistKey)
        {
            return h.clone();
        }
        let ml = ModelLabels {
            model: model.to_string(),
            protocol,
        };
        let pair = (
            self.duration.get_or_create(&ml).clone(),
            self.upstream_duration.get_or_create(&ml).clone(),
        );
        if let Ok(mut cache) = self.histogram_cache.write() {
            cache.insert((protocol, Box::from(model)), pair.clone());
        }
        pair
    }

    pub fn keystore_reloaded(&self, ok: bool, keys: usize) {
        let result = if ok { "ok" } else { "error" };
        self.keystore_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
        if ok {
            self.keystore_keys
                .set(i64::try_from(keys).unwrap_or(i64::MAX));
        }
    }

    pub fn config_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn decision_dropped(&self) {
        self.decisions_dropped.inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock()
            && prometheus_client::encoding::text::encode(&mut out, &r).is_err()
        {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use std::time::{Duration, SystemTime};

    #[test]
    fn counts_and_encodes() {
        let m = Metrics::new();
        let d = Decision {
            ts: SystemTime::now(),
            request_id: "r",
            client: "127.0.0.1:1".parse().unwrap(),
            method: "POST",
            path: "/v2/models/iris/infer",
            host: None,
            model: Some("iris"),
            protocol: Some("v2"),
            operation: Some("infer"),
            identity: Some("alice"),
            auth_method: Some("api_key"),
            issuer: None,
            decision: Outcome::Deny,
            authorized: false,
            response: "UNAUTHENTICATED",
            reason: Some("credential not found"),
            status: 401,
            upstream: None,
            upstream_ms: None,
            total_ms: Duration::from_micros(120),
            rule: Default::default(),
        };
        m.record(&d, Some("credential_not_found"), None);
        m.keystore_reloaded(true, 3);
        let text = m.encode();
        assert!(text.contains("modelgate_requests_total{model=\"iris\",protocol=\"v2\",decision=\"deny\",status=\"401\"} 1"), "{text}");
        assert!(text.contains("modelgate_auth_failures_total{reason=\"credential_not_found\"} 1"));
        assert!(text.contains("modelgate_keystore_keys 3"));
        assert!(text.contains("modelgate_request_duration_seconds_bucket"));
    }
}
