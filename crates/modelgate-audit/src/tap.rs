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
            ts_ms: unix_ms(d),
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
            total_ms: d.total_ms.as_secs_f64() * 1000.0,
        }
    }

    /// Overwrites `self` with `d`, reusing its strings' buffers: equal to
    /// `*self = TapEvent::of(d)`, without an allocation once the buffers are
    /// large enough (the steady state of the recent ring).
    fn refill(&mut self, d: &Decision<'_>) {
        fn set(to: &mut String, from: &str) {
            to.clear();
            to.push_str(from);
        }
        fn set_opt(to: &mut Option<String>, from: Option<&str>) {
            match (to.as_mut(), from) {
                (Some(t), Some(f)) => set(t, f),
                (_, f) => *to = f.map(str::to_string),
            }
        }
        self.ts_ms = unix_ms(d);
        set(&mut self.request_id, d.request_id);
        set(&mut self.method, d.method);
        set(&mut self.path, d.path);
        set_opt(&mut self.model, d.model);
        set_opt(&mut self.identity, d.identity);
        self.auth_method = d.auth_method;
        self.decision = d.decision.as_str();
        self.status = d.status;
        set_opt(&mut self.reason, d.reason);
        self.basis = d.rule.basis;
        set_opt(&mut self.policy, d.rule.policy.as_ref().map(|p| p.name));
        self.total_ms = d.total_ms.as_secs_f64() * 1000.0;
    }
}

/// A decision's time as Unix milliseconds.
fn unix_ms(d: &Decision<'_>) -> u64 {
    d.ts.duration_since(SystemTime::UNIX_EPOCH)
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
    recent: Mutex<VecDeque<Arc<TapEvent>>>,
    samples: Mutex<HashMap<Arc<str>, Arc<ModelSamples>>>,
    /// Where the rate buckets of every model start.
    origin: Instant,
}

impl Default for DecisionTap {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CHANNEL).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
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
            // The evicted event is reused when nobody else holds it (no
            // subscriber has it queued or in hand): no allocation per request.
            let evicted = if r.len() == RECENT {
                r.pop_front()
            } else {
                None
            };
            let event = match evicted {
                Some(mut e) => match Arc::get_mut(&mut e) {
                    Some(slot) => {
                        slot.refill(d);
                        e
                    }
                    None => Arc::new(TapEvent::of(d)),
                },
                None => Arc::new(TapEvent::of(d)),
            };
            if live {
                let _ = self.tx.send(event.clone());
            }
            r.push_back(event);
        } else if live {
            let _ = self.tx.send(Arc::new(TapEvent::of(d)));
        }
        if let Some(Ok(mut m)) = samples.map(|s| s.0.lock()) {
            m.counts.add(now, 1);
            if m.latency.len() == SAMPLES {
                m.latency.pop_front();
            }
            m.latency
                .push_back((now, d.total_ms.as_secs_f64() * 1000.0));
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
        let recent = self
            .recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default();
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
mod tests {
    use super::*;
    use crate::{Outcome, PolicyNote, Rule};

    fn decision<'a>(id: &'a str, identity: Option<&'a str>) -> Decision<'a> {
        Decision {
            ts: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            request_id: id,
            client: "127.0.0.1:1".parse().unwrap(),
            method: "POST",
            path: "/v2/models/iris/infer",
            host: None,
            model: Some("iris"),
            protocol: Some("v2"),
            operation: Some("infer"),
            identity,
            auth_method: identity.map(|_| "api_key"),
            issuer: None,
            decision: Outcome::Allow,
            authorized: true,
            response: "OK",
            reason: identity.is_none().then_some("no identity"),
            status: 200,
            upstream: None,
            upstream_ms: None,
            upstream_ttfb_ms: None,
            stream_ms: None,
            total_ms: Duration::from_micros(1500),
            rule: Rule {
                basis: Some("policy"),
                policy: identity.map(|_| PolicyNote {
                    name: "p1",
                    action: "ALLOW",
                    would: None,
                }),
                ..Rule::default()
            },
            wristband: None,
            tokens: None,
        }
    }

    fn ids(events: &[Arc<TapEvent>]) -> Vec<String> {
        events.iter().map(|e| e.request_id.clone()).collect()
    }

    #[test]
    fn a_reused_event_equals_a_fresh_one() {
        let tap = DecisionTap::default();
        // Alternate fields present and absent so every `Option` is both
        // overwritten and cleared by the reuse.
        for i in 0..(RECENT + 7) {
            let id = format!("r{i}");
            let who = (i % 2 == 0).then_some("alice");
            tap.observe(&decision(&id, who), None, Instant::now());
        }
        let (recent, _) = tap.subscribe();
        assert_eq!(recent.len(), RECENT);
        for (k, e) in recent.iter().enumerate() {
            let i = k + 7;
            let id = format!("r{i}");
            let fresh = TapEvent::of(&decision(&id, (i % 2 == 0).then_some("alice")));
            assert_eq!(
                serde_json::to_value(&**e).unwrap(),
                serde_json::to_value(&fresh).unwrap()
            );
        }
    }

    #[test]
    fn events_a_subscriber_holds_are_never_overwritten() {
        let tap = DecisionTap::default();
        for i in 0..RECENT {
            tap.observe(
                &decision(&format!("a{i}"), Some("alice")),
                None,
                Instant::now(),
            );
        }
        let (held, mut rx) = tap.subscribe();
        let before = ids(&held);
        for i in 0..10 {
            tap.observe(&decision(&format!("b{i}"), None), None, Instant::now());
        }
        assert_eq!(ids(&held), before);
        for i in 0..10 {
            assert_eq!(rx.try_recv().unwrap().request_id, format!("b{i}"));
        }
        let (now, _) = tap.subscribe();
        assert_eq!(now.len(), RECENT);
        assert_eq!(now.last().unwrap().request_id, "b9");
        assert_eq!(now.first().unwrap().request_id, "a10");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50), Some(50.0));
        assert_eq!(percentile(&mut v, 99), Some(99.0));
        assert_eq!(percentile(&mut [7.0], 99), Some(7.0));
        assert_eq!(percentile(&mut [], 50), None);
    }

    #[test]
    fn only_the_last_minute_counts_and_buckets_run_oldest_first() {
        let now = Instant::now() + Duration::from_secs(120);
        let ring: VecDeque<(Instant, f64)> = [
            (now - Duration::from_secs(90), 1000.0), // outside the window
            (now - Duration::from_secs(58), 10.0),
            (now - Duration::from_secs(1), 20.0),
            (now - Duration::from_secs(2), 30.0),
        ]
        .into_iter()
        .collect();
        let mut counts = RateRing::new(now - Duration::from_millis(119_900));
        for (at, _) in &ring {
            counts.add(*at, 1);
        }
        let s = summarize(&ring, &counts, now);
        assert_eq!(s.requests, 3);
        assert_eq!(s.rate_series.first(), Some(&1));
        assert_eq!(s.rate_series.last(), Some(&2));
        assert_eq!(s.rate_series.iter().sum::<u64>(), 3);
        assert!((s.rate_per_s - 3.0 / 60.0).abs() < 1e-9);
        assert_eq!(s.p99_ms, Some(30.0));
        assert_eq!(s.p50_ms, Some(20.0));
        assert_eq!(s.latency_series.last(), Some(&20.0));
    }
}
