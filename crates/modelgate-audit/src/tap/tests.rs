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

#[test]
fn the_ring_keeps_order_before_and_across_each_wrap() {
    let tap = DecisionTap::default();
    let seen = |tap: &DecisionTap| ids(&tap.subscribe().0);
    assert!(seen(&tap).is_empty());
    for i in 0..3 {
        tap.observe(&decision(&format!("r{i}"), None), None, Instant::now());
    }
    assert_eq!(seen(&tap), ["r0", "r1", "r2"]);
    // Twice round the ring and a little more: always the last RECENT, oldest first.
    for i in 3..(2 * RECENT + 5) {
        tap.observe(&decision(&format!("r{i}"), None), None, Instant::now());
        if i + 1 == RECENT || i + 1 == 2 * RECENT || i == 2 * RECENT + 4 {
            let want: Vec<String> = (i + 1 - RECENT..=i).map(|k| format!("r{k}")).collect();
            assert_eq!(seen(&tap), want);
        }
    }
}
