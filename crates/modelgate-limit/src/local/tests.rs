use super::*;
use crate::store::{ManualClock, Window};

/// Unix microseconds of `secs`.
fn s(secs: u64) -> u64 {
    secs * US
}

fn id(name: &str) -> CounterId {
    CounterId {
        name: name.into(),
        window: Window::Fixed { secs: 60 },
        start: 0,
    }
}

fn charge(name: &str, limit: u64, amount: u64) -> Charge {
    Charge {
        id: id(name),
        limit,
        amount,
        ttl_secs: 60,
    }
}

fn rate(name: &str, limit: u64, period_ms: u64) -> Charge {
    Charge {
        id: CounterId {
            name: name.into(),
            window: Window::Gcra { period_ms },
            start: 0,
        },
        limit,
        amount: 1,
        ttl_secs: 0,
    }
}

#[test]
fn reserve_is_all_or_nothing() {
    let st = LocalStore::new();
    let r = st.reserve_at(&[charge("a", 10, 6), charge("b", 5, 5)], s(100));
    assert_eq!(r.unwrap(), Reservation::granted(vec![4, 0]));
    let r = st.reserve_at(&[charge("a", 10, 4), charge("b", 5, 1)], s(100));
    assert_eq!(
        r.unwrap(),
        Reservation::Refused {
            first: 1,
            remaining: vec![4, 0],
            reset_ms: vec![0, 0],
        }
    );
    assert_eq!(st.read_at(&[id("a"), id("b")], s(100)).unwrap(), vec![6, 5]);
}

#[test]
fn same_counter_twice_in_one_reserve_counts_both() {
    let st = LocalStore::new();
    let r = st.reserve_at(&[charge("a", 10, 6), charge("a", 10, 6)], s(1));
    assert!(matches!(r.unwrap(), Reservation::Refused { first: 1, .. }));
    assert_eq!(st.read_at(&[id("a")], s(1)).unwrap(), vec![0]);
    let r = st.reserve_at(&[rate("r", 2, 1000), rate("r", 2, 1000)], s(1));
    assert!(matches!(r.unwrap(), Reservation::Granted { .. }));
    let r = st.reserve_at(&[rate("r", 2, 1000)], s(1));
    assert!(matches!(r.unwrap(), Reservation::Refused { first: 0, .. }));
}

#[test]
fn adjust_clamps_at_zero_and_settles() {
    let st = LocalStore::new();
    st.reserve_at(&[charge("a", 100, 50)], s(1)).unwrap();
    let adj = |delta| Adjustment {
        id: id("a"),
        delta,
        ttl_secs: 60,
    };
    st.adjust_at(&[adj(-20)], s(1)).unwrap();
    assert_eq!(st.read_at(&[id("a")], s(1)).unwrap(), vec![30]);
    st.adjust_at(&[adj(-100)], s(1)).unwrap();
    assert_eq!(st.read_at(&[id("a")], s(1)).unwrap(), vec![0]);
}

#[test]
fn expired_counters_read_zero_and_are_swept() {
    let st = LocalStore::new();
    st.reserve_at(&[charge("a", 10, 10)], s(100)).unwrap();
    assert_eq!(st.read_at(&[id("a")], s(159)).unwrap(), vec![10]);
    assert_eq!(st.read_at(&[id("a")], s(160)).unwrap(), vec![0]);
    // A reserve after the TTL starts again from 0, and the sweep drops it.
    st.reserve_at(&[charge("b", 10, 1)], s(200)).unwrap();
    assert_eq!(st.len(), 1);
}

#[test]
fn concurrent_reserves_grant_exactly_the_limit() {
    let st = std::sync::Arc::new(LocalStore::new());
    let granted: usize = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let st = st.clone();
                scope.spawn(move || {
                    (0..25)
                        .filter(|_| {
                            matches!(
                                st.reserve_at(&[charge("t", 1000, 7)], s(5)),
                                Ok(Reservation::Granted { .. })
                            )
                        })
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    assert_eq!(granted, 1000 / 7);
    assert_eq!(st.read_at(&[id("t")], s(5)).unwrap(), vec![7 * (1000 / 7)]);
}

/// Reserves one request per call through the trait, on the injected clock.
async fn passes(st: &LocalStore, c: &Charge) -> Reservation {
    st.reserve(std::slice::from_ref(c)).await.unwrap()
}

#[tokio::test]
async fn gcra_allows_a_burst_of_the_limit_then_one_per_interval() {
    let clock = Arc::new(ManualClock::new(s(1_000)));
    let st = LocalStore::with_clock(clock.clone());
    // 6 per minute: a burst of 6, then one every 10 s.
    let c = rate("rpm:key:k", 6, 60_000);
    for left in (0..6).rev() {
        match passes(&st, &c).await {
            Reservation::Granted {
                remaining,
                reset_ms,
            } => {
                assert_eq!(remaining, [left]);
                // Back to a full burst after (6 − left) intervals.
                assert_eq!(reset_ms, [(6 - left) * 10_000]);
            }
            r => panic!("refused early: {r:?}"),
        }
    }
    let r = passes(&st, &c).await;
    assert_eq!(
        r,
        Reservation::Refused {
            first: 0,
            remaining: vec![0],
            reset_ms: vec![10_000],
        }
    );
    clock.advance_ms(9_999);
    match passes(&st, &c).await {
        Reservation::Refused { reset_ms, .. } => assert_eq!(reset_ms, [1]),
        r => panic!("{r:?}"),
    }
    clock.advance_ms(1);
    assert!(matches!(passes(&st, &c).await, Reservation::Granted { .. }));
    assert!(matches!(passes(&st, &c).await, Reservation::Refused { .. }));
    // Reads give the backlog: a full burst in use is the whole period.
    assert_eq!(
        st.read(std::slice::from_ref(&c.id)).await.unwrap(),
        [60_000_000]
    );
    // After a whole idle period the full burst is back; the counter is gone.
    clock.advance_ms(60_000);
    assert_eq!(st.read(std::slice::from_ref(&c.id)).await.unwrap(), [0]);
    for _ in 0..6 {
        assert!(matches!(passes(&st, &c).await, Reservation::Granted { .. }));
    }
}

#[tokio::test]
async fn gcra_refusal_of_another_charge_spends_no_request() {
    let clock = Arc::new(ManualClock::new(s(50)));
    let st = LocalStore::with_clock(clock.clone());
    let r = rate("rps:key:k", 2, 1000);
    let tokens = charge("tpm:key:k", 10, 8);
    let got = st.reserve(&[r.clone(), tokens.clone()]).await.unwrap();
    assert!(matches!(got, Reservation::Granted { .. }));
    let got = st.reserve(&[r.clone(), tokens.clone()]).await.unwrap();
    assert_eq!(
        got,
        Reservation::Refused {
            first: 1,
            remaining: vec![1, 2],
            reset_ms: vec![500, 0],
        }
    );
    // Only the first request is in the GCRA counter: one more passes now.
    assert!(matches!(passes(&st, &r).await, Reservation::Granted { .. }));
    assert!(matches!(passes(&st, &r).await, Reservation::Refused { .. }));
    // Adjustments never touch a rate counter.
    let back = Adjustment {
        id: r.id.clone(),
        delta: -5,
        ttl_secs: 1,
    };
    st.adjust(&[back]).await.unwrap();
    assert_eq!(
        st.read(std::slice::from_ref(&r.id)).await.unwrap(),
        [1_000_000]
    );
}

#[test]
fn gcra_sustained_rate_never_exceeds_the_limit() {
    let st = LocalStore::new();
    // 7 per second, tried every millisecond for 10 s: the burst (7) plus
    // at most one per ⌈1e6/7⌉ µs.
    let c = rate("rps:key:k", 7, 1000);
    let granted = (0..10_000u64)
        .filter(|ms| {
            matches!(
                st.reserve_at(std::slice::from_ref(&c), s(100) + ms * 1000),
                Ok(Reservation::Granted { .. })
            )
        })
        .count();
    assert_eq!(granted, 7 + 69);
}

#[test]
fn scan_lists_live_ids_of_one_scope_bounded() {
    let st = LocalStore::new();
    let names = [
        "tpd:group:eng",
        "rpm:group:eng",
        "tpd:group:ops",
        "tpm:key:group:x",
    ];
    for n in names {
        st.reserve_at(&[charge(n, 100, 1)], s(10)).unwrap();
    }
    let mut got = st.scan_at("group", 10, s(10)).unwrap();
    got.sort();
    assert_eq!(got, ["eng", "ops"]);
    assert_eq!(st.scan_at("group", 1, s(10)).unwrap().len(), 1);
    // Expired counters are not listed.
    assert!(st.scan_at("group", 10, s(100)).unwrap().is_empty());
}
