//! The admin UI's view of recent traffic, fed by every decision record: a
//! bounded broadcast of decisions (the live view), the last few kept for
//! late subscribers, and per configured model a bounded ring of latency
//! samples (p50/p99, latency sparkline) and exact request counts in
//! 5-second buckets ([`crate::rate`]: the request rate and its sparkline).
//! Model keys are metric labels (configured names only), so the state is
//! bounded by the configuration, never by clients.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::decision::Decision;
use crate::rate::RateRing;

/// Decisions kept for a subscriber that arrives late.
pub const RECENT: usize = 200;
/// Broadcast buffer: a slow subscriber skips what it missed.
const CHANNEL: usize = 512;
/// Latency samples kept per model.
const SAMPLES: usize = 4096;
/// The window of the rate and percentiles.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sparkline buckets over the window.
pub const BUCKETS: usize = crate::rate::BUCKETS;

/// One decision as the live view shows it: never a credential.
#[derive(Debug, Clone, Serialize)]
pub struct TapEvent {
    /// Unix time in milliseconds.
    pub ts_ms: u64,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub identity: Option<String>,
    pub auth_method: Option<&'static str>,
    /// `allow`, `deny` or `reject`.
    pub decision: &'static str,
    pub status: u16,
    pub reason: Option<String>,
    pub basis: Option<&'static str>,
    pub policy: Option<String>,
    pub total_ms: f64,
}

impl TapEvent {
    fn of(d: &Decision<'_>) -> Self {
        Self {
            ts_ms: unix_ms(d.ts),
            request_id: d.request_id.to_string(),
            method: d.method.to_string(),
            path: d.path.to_string(),
            model: d.model.map(str::to_string),
            identity: d.identity.map(str::to_string),
            auth_method: d.auth_method,
            decision: d.decision.as_str(),
            status: d.status,
            reason: d.reason.map(str::to_string),
            basis: d.rule.basis,
            policy: d.rule.policy.as_ref().map(|p| p.name.to_string()),
            total_ms: ms(d.total_ms),
        }
    }
}

/// The recent decisions, oldest first: kept as their parts (one text buffer
/// per decision, reused when the ring wraps), made into [`TapEvent`]s only
/// for a subscriber. Nothing is allocated per request once the ring is full.
struct Recent {
    slots: Vec<Kept>,
    /// The slot the next decision overwrites once the ring is full (the
    /// oldest).
    next: usize,
}

impl Recent {
    fn push(&mut self, d: &Decision<'_>) {
        if self.slots.len() < RECENT {
            let mut k = Kept::default();
            k.fill(d);
            self.slots.push(k);
        } else if let Some(k) = self.slots.get_mut(self.next) {
            k.fill(d);
            self.next = (self.next + 1) % RECENT;
        }
    }

    fn events(&self) -> Vec<Arc<TapEvent>> {
        let (newer, older) = self.slots.split_at(self.next.min(self.slots.len()));
        older
            .iter()
            .chain(newer)
            .map(|k| Arc::new(k.event()))
            .collect()
    }
}

/// One decision's parts in the [`Recent`] ring.
#[derive(Default)]
struct Kept {
    ts: Option<SystemTime>,
    /// The request id, method, path, model, identity, reason and policy, one
    /// after the other (the absent ones left out).
    text: String,
    /// Where each part of `text` ends; `None` for an absent one.
    ends: [Option<usize>; 7],
    auth_method: Option<&'static str>,
    decision: &'static str,
    status: u16,
    basis: Option<&'static str>,
    total: Duration,
}

impl Kept {
    /// Overwrites `self` with `d`, reusing the text's buffer.
    fn fill(&mut self, d: &Decision<'_>) {
        self.ts = Some(d.ts);
        self.text.clear();
        let parts = [
            Some(d.request_id),
            Some(d.method),
            Some(d.path),
            d.model,
            d.identity,
            d.reason,
            d.rule.policy.as_ref().map(|p| p.name),
        ];
        for (end, part) in self.ends.iter_mut().zip(parts) {
            *end = part.map(|p| {
                self.text.push_str(p);
                self.text.len()
            });
        }
        self.auth_method = d.auth_method;
        self.decision = d.decision.as_str();
        self.status = d.status;
        self.basis = d.rule.basis;
        self.total = d.total_ms;
    }

    /// The event, as [`TapEvent::of`] made it from the decision.
    fn event(&self) -> TapEvent {
        let mut parts = [const { None }; 7];
        let mut start = 0;
        for (part, end) in parts.iter_mut().zip(self.ends) {
            if let Some(end) = end {
                *part = self.text.get(start..end).map(str::to_string);
                start = end;
            }
        }
        let [request_id, method, path, model, identity, reason, policy] = parts;
        TapEvent {
            ts_ms: self.ts.map_or(0, unix_ms),
            request_id: request_id.unwrap_or_default(),
            method: method.unwrap_or_default(),
            path: path.unwrap_or_default(),
            model,
            identity,
            auth_method: self.auth_method,
            decision: self.decision,
            status: self.status,
            reason,
            basis: self.basis,
            policy,
            total_ms: ms(self.total),
        }
    }
}

/// A duration in (fractional) milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A decision's time as Unix milliseconds.
fn unix_ms(ts: SystemTime) -> u64 {
    ts.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

/// A model's traffic over the last [`WINDOW`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelStats {
    /// Requests per second over the window.
    pub rate_per_s: f64,
    pub requests: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Requests per bucket, oldest first ([`BUCKETS`] over the window; the
    /// last is the current, partial bucket).
    pub rate_series: Vec<u64>,
    /// Median latency per bucket in ms (0 when empty), oldest first.
    pub latency_series: Vec<f64>,
}

/// One model's latency samples (capped) and request counts (exact).
struct Samples {
    latency: VecDeque<(Instant, f64)>,
    counts: RateRing,
}

/// A configured model's samples, held by its pre-resolved metric series
/// ([`crate::Metrics`]) so that a request reaches them without a map lookup.
pub(crate) struct ModelSamples(Mutex<Samples>);

/// See the module docs.
pub struct DecisionTap {
    tx: broadcast::Sender<Arc<TapEvent>>,
    recent: Mutex<Recent>,
    samples: Mutex<HashMap<Arc<str>, Arc<ModelSamples>>>,
    /// Where the rate buckets of every model start.
    origin: Instant,
}

impl Default for DecisionTap {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CHANNEL).0,
            recent: Mutex::new(Recent {
                slots: Vec::with_capacity(RECENT),
                next: 0,
            }),
            samples: Mutex::new(HashMap::new()),
            origin: Instant::now(),
        }
    }
}

impl DecisionTap {
    /// The samples of configured model `model`, made on first use.
    pub(crate) fn samples(&self, model: &Arc<str>) -> Arc<ModelSamples> {
        let fresh = || {
            Arc::new(ModelSamples(Mutex::new(Samples {
                latency: VecDeque::new(),
                counts: RateRing::new(self.origin),
            })))
        };
        match self.samples.lock() {
            Ok(mut s) => s.entry(model.clone()).or_insert_with(fresh).clone(),
            // Not kept: the admin UI shows no samples, the request is counted.
            Err(_) => fresh(),
        }
    }

    /// Records one decision, and its latency in `samples` (a configured
    /// model's; `""` and unknown model labels have none).
    pub(crate) fn observe(&self, d: &Decision<'_>, samples: Option<&ModelSamples>, now: Instant) {
        let live = self.tx.receiver_count() > 0;
        if let Ok(mut r) = self.recent.lock() {
            r.push(d);
            // Sent under the lock, as the ring's order.
            if live {
                let _ = self.tx.send(Arc::new(TapEvent::of(d)));
            }
        } else if live {
            let _ = self.tx.send(Arc::new(TapEvent::of(d)));
        }
        if let Some(Ok(mut m)) = samples.map(|s| s.0.lock()) {
            m.counts.add(now, 1);
            if m.latency.len() == SAMPLES {
                m.latency.pop_front();
            }
            m.latency.push_back((now, ms(d.total_ms)));
        }
    }

    /// Drops the samples of a model no longer configured.
    pub(crate) fn forget(&self, model: &str) {
        if let Ok(mut s) = self.samples.lock() {
            s.remove(model);
        }
    }

    /// The live stream, and the recent decisions it started after.
    pub fn subscribe(&self) -> (Vec<Arc<TapEvent>>, broadcast::Receiver<Arc<TapEvent>>) {
        let rx = self.tx.subscribe();
        let recent = self.recent.lock().map(|r| r.events()).unwrap_or_default();
        (recent, rx)
    }

    /// The traffic of `model` over the last [`WINDOW`], as of `now`.
    pub fn stats(&self, model: &str, now: Instant) -> ModelStats {
        let Ok(s) = self.samples.lock() else {
            return ModelStats::default();
        };
        let m = s.get(model).cloned();
        drop(s);
        let Some(Ok(m)) = m.as_ref().map(|m| m.0.lock()) else {
            return ModelStats {
                rate_series: vec![0; BUCKETS],
                latency_series: vec![0.0; BUCKETS],
                ..ModelStats::default()
            };
        };
        summarize(&m.latency, &m.counts, now)
    }
}

/// Latency from the samples; the request count, rate and rate series from
/// the exact counters.
fn summarize(ring: &VecDeque<(Instant, f64)>, counts: &RateRing, now: Instant) -> ModelStats {
    let bucket = WINDOW / u32::try_from(BUCKETS).unwrap_or(1);
    let mut all = Vec::new();
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); BUCKETS];
    for (at, ms) in ring {
        let age = now.saturating_duration_since(*at);
        if age >= WINDOW {
            continue;
        }
        all.push(*ms);
        let back = usize::try_from(age.as_nanos() / bucket.as_nanos().max(1)).unwrap_or(0);
        if let Some(b) = per.get_mut(BUCKETS.saturating_sub(1 + back)) {
            b.push(*ms);
        }
    }
    let rate_series = counts.series(now);
    let requests: u64 = rate_series.iter().sum();
    ModelStats {
        rate_per_s: requests as f64 / WINDOW.as_secs_f64(),
        requests,
        p50_ms: percentile(&mut all, 50),
        p99_ms: percentile(&mut all, 99),
        rate_series,
        latency_series: per
            .iter_mut()
            .map(|b| percentile(b, 50).unwrap_or(0.0))
            .collect(),
    }
}

/// The nearest-rank percentile of `v` (sorted in place).
fn percentile(v: &mut [f64], p: usize) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (p * v.len()).div_ceil(100).max(1);
    v.get(rank - 1).copied()
}

#[cfg(test)]
mod tests;
