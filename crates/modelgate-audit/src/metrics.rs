//! Prometheus metrics, served on the admin listener's `/metrics`.
//!
//! Every label value comes from a closed set fixed by the configuration, never
//! by traffic: `model` is a configured model's name, `""` (the request names
//! no model) or [`UNKNOWN_MODEL`]; the other labels are `&'static str`s or an
//! HTTP status in 100–599. So the number of series is bounded by the config.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::Decision;

/// The `model` label of every request for a model that is not configured
/// (whatever name the client sent). Not a valid model name, so it never
/// merges with a configured model's series.
pub const UNKNOWN_MODEL: &str = "(unknown)";

/// A label value, escaped as the text exposition format requires
/// (`\`, `"` and newline); prometheus-client writes values as given.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LabelValue(Arc<str>);

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    model: LabelValue,
    protocol: &'static str,
    decision: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: LabelValue,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    model: LabelValue,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type Hist = Family<ModelLabels, Histogram, fn() -> Histogram>;

/// One request's series, resolved once per (protocol, decision, status,
/// model) and then found with a single lookup (issue 14: pre-resolved
/// handles instead of three label hashes per request).
struct Series {
    requests: Counter,
    total: Histogram,
    upstream: Histogram,
    /// The admin UI's samples of a configured model (`None` for `""` and
    /// unknown names, which get none).
    samples: Option<Arc<crate::tap::ModelSamples>>,
}

/// The cache's hasher: several times cheaper than std's SipHash for these
/// short keys, and still seeded per process (from addresses that ASLR
/// randomises: the crate is built without `std` so as not to change the
/// features every other user of foldhash is built with). Lookups may carry a
/// client-sent model name, but only configured names are ever stored, so no
/// key a client picks can grow the map or collide its way into a slow path.
type Fast = foldhash::fast::RandomState;

/// (protocol, decision, status, model name) → its series. Only configured
/// model names (and `""`) are inserted, so the map is bounded by the config;
/// it is cleared whenever the configured models change.
type SeriesCache = HashMap<SeriesId, Series, Fast>;

/// The label sets made for one configured model, so that a reload that
/// removes the model can remove its series (a `Family` cannot be searched
/// by label). Filled off the hot path: when a series is first resolved
/// and when a backend error is counted.
#[derive(Default)]
struct Made {
    requests: HashSet<(&'static str, &'static str, u16)>,
    upstream_errors: HashSet<&'static str>,
}

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
    series: RwLock<SeriesCache>,
    /// Names of the configured models: the only `model` label values
    /// besides `""` and [`UNKNOWN_MODEL`].
    known_models: RwLock<HashSet<Arc<str>>>,
    /// Per configured model, the label sets it has series under.
    made: Mutex<HashMap<Arc<str>, Made>>,
    unknown_model: Arc<str>,
    /// The admin UI's view of recent decisions (fed by [`Metrics::record`]).
    pub tap: crate::tap::DecisionTap,
    no_model: Arc<str>,
}

/// Lets the cache be searched with a borrowed model name.
trait SeriesKey {
    fn key(&self) -> (&str, &str, u16, &str);
}

/// A cached series' labels: protocol, decision, status and model name.
struct SeriesId(&'static str, &'static str, u16, Arc<str>);

impl SeriesKey for SeriesId {
    fn key(&self) -> (&str, &str, u16, &str) {
        (self.0, self.1, self.2, &self.3)
    }
}

impl SeriesKey for (&'static str, &'static str, u16, &str) {
    fn key(&self) -> (&str, &str, u16, &str) {
        (self.0, self.1, self.2, self.3)
    }
}

impl<'a> std::borrow::Borrow<dyn SeriesKey + 'a> for SeriesId {
    fn borrow(&self) -> &(dyn SeriesKey + 'a) {
        self
    }
}

impl PartialEq for dyn SeriesKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        let (p, d, s, m) = self.key();
        let (op, od, os, om) = other.key();
        // The protocol and decision are fixed words, usually the very same
        // `&'static str`s: compared by address first.
        let word = |a: &str, b: &str| std::ptr::eq(a, b) || a == b;
        s == os && word(p, op) && word(d, od) && m == om
    }
}

impl Eq for dyn SeriesKey + '_ {}

impl std::hash::Hash for dyn SeriesKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (protocol, decision, status, model) = self.key();
        // The protocol and decision are each one of a few fixed words, told
        // apart by their lengths and first two bytes (two that agree on all
        // of those only share a hash: the comparison still tells them apart).
        let word = |w: &str| {
            let b = w.as_bytes();
            let at = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
            (w.len() as u64 & 0xff) | (at(0) << 8) | (at(1) << 16)
        };
        state.write_u64(u64::from(status) | (word(protocol) << 16) | (word(decision) << 40));
        state.write(model.as_bytes());
    }
}

impl std::hash::Hash for SeriesId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self as &dyn SeriesKey).hash(state);
    }
}

impl PartialEq for SeriesId {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn SeriesKey) == (other as &dyn SeriesKey)
    }
}

impl Eq for SeriesId {}

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
            series: RwLock::new(HashMap::default()),
            known_models: RwLock::new(HashSet::new()),
            made: Mutex::new(HashMap::new()),
            unknown_model: Arc::from(UNKNOWN_MODEL),
            tap: crate::tap::DecisionTap::default(),
            no_model: Arc::from(""),
        }
    }

    /// Registers a further metric (identity sources, runtime).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        if let Ok(mut r) = self.registry.lock() {
            r.register(name, help, metric);
        }
    }

    /// Sets the configured models (at start and after each reload). Other
    /// names are counted under [`UNKNOWN_MODEL`]. The series of a model the
    /// new set lacks are removed from `/metrics` (and its admin UI samples);
    /// the others keep their counts. So the number of series is bounded by
    /// the current configuration.
    pub fn set_models<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let set: HashSet<Arc<str>> = names.into_iter().map(Arc::from).collect();
        // Held throughout: a request resolving its series waits, then sees
        // the new set, so no series of a removed model is made afterwards.
        let Ok(mut known) = self.known_models.write() else {
            return;
        };
        let removed: Vec<Arc<str>> = known.difference(&set).cloned().collect();
        *known = set;
        if let Ok(mut cache) = self.series.write() {
            cache.clear();
        }
        for model in &removed {
            self.forget(model);
        }
    }

    /// Removes every series of `model` (no longer configured).
    fn forget(&self, model: &Arc<str>) {
        let made = self
            .made
            .lock()
            .ok()
            .and_then(|mut m| m.remove(model))
            .unwrap_or_default();
        let label = || LabelValue(model.clone());
        let mut protocols = HashSet::new();
        for (protocol, decision, status) in made.requests {
            self.requests.remove(&RequestLabels {
                model: label(),
                protocol,
                decision,
                status,
            });
            protocols.insert(protocol);
        }
        for protocol in protocols {
            let ml = ModelLabels {
                model: label(),
                protocol,
            };
            self.duration.remove(&ml);
            self.upstream_duration.remove(&ml);
        }
        for kind in made.upstream_errors {
            self.upstream_errors.remove(&UpstreamErrorLabels {
                model: label(),
                kind,
            });
        }
        self.tap.forget(model);
    }

    /// Notes a label set made for a configured model (see [`Made`]).
    fn note_made(&self, model: &Arc<str>, add: impl FnOnce(&mut Made)) {
        if let Ok(mut m) = self.made.lock() {
            add(m.entry(model.clone()).or_default());
        }
    }

    /// Counts one finished request.
    pub fn record(
        &self,
        d: &Decision<'_>,
        deny_reason: Option<&'static str>,
        upstream_error: Option<&'static str>,
    ) {
        self.record_at(d, deny_reason, upstream_error, Instant::now());
    }

    /// [`Metrics::record`] with the clock already read (`now`: when the
    /// request finished, the end of its `total_ms`).
    pub fn record_at(
        &self,
        d: &Decision<'_>,
        deny_reason: Option<&'static str>,
        upstream_error: Option<&'static str>,
        now: Instant,
    ) {
        let protocol = d.protocol.unwrap_or("");
        let key = (
            protocol,
            d.decision.as_str(),
            status_label(d.status),
            d.model.unwrap_or(""),
        );
        let count = |s: &Series| {
            self.tap.observe(d, s.samples.as_deref(), now);
            s.requests.inc();
            s.total.observe(d.total_ms.as_secs_f64());
            if let Some(u) = d.upstream_ms {
                s.upstream.observe(u.as_secs_f64());
            }
        };
        // One lookup for a cached series (every configured model and `""`);
        // the tap is fed under the read lock, which it never takes itself.
        let cached = match self.series.read() {
            Ok(cache) => cache.get(&key as &dyn SeriesKey).map(count).is_some(),
            Err(_) => false,
        };
        if !cached {
            count(&self.resolve(key));
        }
        if let Some(reason) = deny_reason {
            self.auth_failures
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
        if let Some(kind) = upstream_error {
            self.count_upstream_error(d.model, kind);
        }
    }

    /// Counts a backend failure, with the configured set held so that a
    /// concurrent reload never leaves a removed model's series behind.
    fn count_upstream_error(&self, name: Option<&str>, kind: &'static str) {
        let known = self.known_models.read().ok();
        let model = match (&known, name) {
            (_, None | Some("")) => self.no_model.clone(),
            (Some(k), Some(n)) => k
                .get(n)
                .cloned()
                .unwrap_or_else(|| self.unknown_model.clone()),
            (None, _) => self.unknown_model.clone(),
        };
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                model: LabelValue(model.clone()),
                kind,
            })
            .inc();
        if known.is_some() && !model.is_empty() && !Arc::ptr_eq(&model, &self.unknown_model) {
            self.note_made(&model, |m| {
                m.upstream_errors.insert(kind);
            });
        }
        drop(known);
    }

    /// Creates (or finds) the series of `key` in the families, and caches
    /// them when the model name is its own label (a configured model or `""`).
    fn resolve(&self, key: (&'static str, &'static str, u16, &str)) -> Series {
        let (protocol, decision, status, name) = key;
        // Held until the series is cached, so a concurrent `set_models`
        // clears the cache after this insert, never before it.
        let known = self.known_models.read().ok();
        let model = match (&known, name) {
            (_, "") => self.no_model.clone(),
            (Some(k), _) => k
                .get(name)
                .cloned()
                .unwrap_or_else(|| self.unknown_model.clone()),
            (None, _) => self.unknown_model.clone(),
        };
        let ml = ModelLabels {
            model: LabelValue(model.clone()),
            protocol,
        };
        let configured =
            known.is_some() && !model.is_empty() && !Arc::ptr_eq(&model, &self.unknown_model);
        let series = Series {
            samples: configured.then(|| self.tap.samples(&model)),

            requests: self
                .requests
                .get_or_create(&RequestLabels {
                    model: LabelValue(model.clone()),
                    protocol,
                    decision,
                    status,
                })
                .clone(),
            total: self.duration.get_or_create(&ml).clone(),
            upstream: self.upstream_duration.get_or_create(&ml).clone(),
        };
        if known.is_some() && &*model == name && !model.is_empty() {
            self.note_made(&model, |m| {
                m.requests.insert((protocol, decision, status));
            });
        }
        if known.is_some()
            && &*model == name
            && let Ok(mut cache) = self.series.write()
        {
            let copy = Series {
                requests: series.requests.clone(),
                total: series.total.clone(),
                upstream: series.upstream.clone(),
                samples: series.samples.clone(),
            };
            cache.insert(SeriesId(protocol, decision, status, model), copy);
        }
        drop(known);
        series
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

/// An HTTP status as a label: 100–599, anything else 0.
fn status_label(status: u16) -> u16 {
    if (100..=599).contains(&status) {
        status
    } else {
        0
    }
}

impl Metrics {
    /// Registers `modelgate_config_restart_required` (keys changed in the
    /// file that only a restart applies; 0 when the file matches what runs)
    /// and returns its setter. Call once per process.
    pub fn config_restart_required(&self) -> Box<dyn Fn(usize) + Send + Sync> {
        let g: Gauge = Gauge::default();
        self.register(
            "config_restart_required",
            "Keys changed in the configuration file that need a restart to apply (0: none)",
            g.clone(),
        );
        Box::new(move |n| {
            g.set(i64::try_from(n).unwrap_or(i64::MAX));
        })
    }
}

#[cfg(test)]
mod tests;
