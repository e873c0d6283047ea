//! GCRA request rates and the group scan, against a real `redis-server`:
//! one scenario on an injected clock run against both stores (Redis and in
//! process) with the same answers, exactness across two replicas on Redis's
//! own clock, and the bounded `SCAN` the usage report lists groups with.

#![allow(clippy::expect_used, clippy::panic)] // test helpers

use std::sync::Arc;

use modelgate_limit::LocalStore;
use modelgate_limit::redis::{StoreMetrics, connect_with};
use modelgate_limit::store::{
    Charge, Clock, CounterStore, ManualClock, Reservation, SystemClock, Window,
};

mod common;
use common::*;

fn rate(name: &str, limit: u64, period_ms: u64) -> Charge {
    Charge {
        id: id(name, Window::Gcra { period_ms }, 0),
        limit,
        amount: 1,
        ttl_secs: 0,
    }
}

/// What one step of the scenario answers: granted?, remaining, reset_ms.
fn brief(r: &Reservation) -> (bool, Vec<u64>, Vec<u64>) {
    match r {
        Reservation::Granted {
            remaining,
            reset_ms,
        } => (true, remaining.clone(), reset_ms.clone()),
        Reservation::Refused {
            remaining,
            reset_ms,
            ..
        } => (false, remaining.clone(), reset_ms.clone()),
    }
}

/// 6 per minute (one per 10 s, burst 6) with a token counter beside it, on
/// `clock`: the answers of every step.
async fn scenario(s: &dyn CounterStore, clock: &ManualClock) -> Vec<(bool, Vec<u64>, Vec<u64>)> {
    let rpm = rate("rpm:key:k", 6, 60_000);
    let tokens = charge(&id("tpm:key:k", Window::Fixed { secs: 60 }, 0), 1_000, 100);
    let both = [rpm.clone(), tokens];
    let mut out = Vec::new();
    let mut step = |r: Reservation| out.push(brief(&r));
    for _ in 0..7 {
        step(s.reserve(&both).await.expect("reserve"));
    }
    clock.advance_ms(9_999);
    step(
        s.reserve(std::slice::from_ref(&rpm))
            .await
            .expect("reserve"),
    );
    clock.advance_ms(1);
    step(
        s.reserve(std::slice::from_ref(&rpm))
            .await
            .expect("reserve"),
    );
    step(
        s.reserve(std::slice::from_ref(&rpm))
            .await
            .expect("reserve"),
    );
    let backlog = s.read(std::slice::from_ref(&rpm.id)).await.expect("read");
    out.push((true, backlog, vec![]));
    clock.advance_ms(60_000);
    let backlog = s.read(std::slice::from_ref(&rpm.id)).await.expect("read");
    out.push((true, backlog, vec![]));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_answers_the_same_in_redis_and_in_process() {
    let server = RedisServer::start(&[]);
    let start = SystemClock.now_us();
    let clock = Arc::new(ManualClock::new(start));
    let cfg = config(&server.url(), "closed", "2s", "gcra");
    let redis = connect_with(&cfg, Some(clock.clone()), StoreMetrics::default()).expect("store");
    let on_redis = scenario(&redis, &clock).await;
    clock.set(start);
    let local = LocalStore::with_clock(clock.clone());
    let in_process = scenario(&local, &clock).await;
    assert_eq!(on_redis, in_process);
    let want: Vec<(bool, Vec<u64>, Vec<u64>)> = vec![
        (true, vec![5, 900], vec![10_000, 0]),
        (true, vec![4, 800], vec![20_000, 0]),
        (true, vec![3, 700], vec![30_000, 0]),
        (true, vec![2, 600], vec![40_000, 0]),
        (true, vec![1, 500], vec![50_000, 0]),
        (true, vec![0, 400], vec![60_000, 0]),
        // The 7th is refused by the rate: retry in one interval; the
        // tokens of the refused request were not added.
        (false, vec![0, 400], vec![10_000, 0]),
        (false, vec![0], vec![1]),
        (true, vec![0], vec![60_000]),
        (false, vec![0], vec![10_000]),
        (true, vec![60_000_000], vec![]),
        (true, vec![0], vec![]),
    ];
    assert_eq!(on_redis, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_gcra_burst_on_redis_time() {
    let server = RedisServer::start(&[]);
    let a = Arc::new(store(&server.url(), "closed", "5s", "gcra2"));
    let b = Arc::new(store(&server.url(), "closed", "5s", "gcra2"));
    // 100 per hour: one per 36 s, so only the burst passes during the test.
    let c = rate("rph:key:k", 100, 3_600_000);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            s.reserve(std::slice::from_ref(&c)).await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.expect("task").expect("reserve") {
            Reservation::Granted { .. } => granted += 1,
            Reservation::Refused { reset_ms, .. } => {
                // Retry-After is about one interval away, never a window.
                assert!((1..=36_000).contains(&reset_ms[0]), "{reset_ms:?}");
            }
        }
    }
    assert_eq!(granted, 100);
    let backlog = a.read(std::slice::from_ref(&c.id)).await.expect("read")[0];
    assert!(
        backlog > 99 * 36_000_000 && backlog <= 100 * 36_000_000,
        "{backlog}"
    );
}

#[tokio::test]
async fn scan_lists_the_ids_of_one_scope_bounded() {
    let server = RedisServer::start(&[]);
    let s = store(&server.url(), "closed", "2s", "scan");
    let other = store(&server.url(), "closed", "2s", "other");
    for g in 0..30 {
        for m in ["tpd", "rpm"] {
            let c = charge(&id(&format!("{m}:group:g{g}"), Window::Total, 0), 9, 1);
            s.reserve(&[c]).await.expect("reserve");
        }
    }
    let key_named_like_a_group = charge(&id("tpm:key:group:x", Window::Total, 0), 9, 1);
    s.reserve(&[key_named_like_a_group]).await.expect("reserve");
    let elsewhere = charge(&id("tpd:group:not-ours", Window::Total, 0), 9, 1);
    other.reserve(&[elsewhere]).await.expect("reserve");
    let mut got = s.scan("group", 1000).await.expect("scan");
    got.sort();
    let mut want: Vec<String> = (0..30).map(|g| format!("g{g}")).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(s.scan("group", 7).await.expect("scan").len(), 7);
}
