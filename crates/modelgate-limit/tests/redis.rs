//! The Redis counter store against a real `redis-server` (Debian package;
//! CI installs it, so a missing binary fails loudly): exactness under
//! concurrency from two stores (= two replicas), clamping, TTLs, both failure
//! modes while Redis is stopped, and recovery when it returns.

#![allow(clippy::expect_used, clippy::panic)] // test helpers

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use modelgate_config::redis_store::FailureMode;
use modelgate_limit::redis::{Guarded, RedisStore, StoreMetrics, connect};
use modelgate_limit::store::{Adjustment, CounterStore, Reservation, Window};

mod common;
use common::*;

async fn raw_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_grant_past_the_limit() {
    let server = RedisServer::start(&[]);
    // Generous deadline: this test is about exactness, not latency.
    let a = Arc::new(store(&server.url(), "closed", "5s", "exact"));
    let b = Arc::new(store(&server.url(), "closed", "5s", "exact"));
    let tokens = id("tpm:key:k1", Window::Fixed { secs: 60 }, 600);
    let requests = id("rpm:key:k1", Window::Fixed { secs: 60 }, 600);
    // Tokens bind (1000 / 7 = 142 grants); requests would allow all 200.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let charges = vec![charge(&requests, 10_000, 1), charge(&tokens, 1_000, 7)];
        tasks.push(tokio::spawn(async move { s.reserve(&charges).await }));
    }
    let (mut granted, mut refused) = (0u64, 0u64);
    for t in tasks {
        match t.await.expect("task") {
            Ok(Reservation::Granted { remaining, .. }) => {
                granted += 1;
                assert_eq!(remaining.len(), 2);
            }
            Ok(Reservation::Refused {
                first, remaining, ..
            }) => {
                refused += 1;
                assert_eq!(first, 1, "the token counter is the one that refuses");
                assert!(remaining[1] < 7);
            }
            Err(e) => panic!("store error: {e}"),
        }
    }
    assert_eq!(granted, 142);
    assert_eq!(refused, 58);
    // All-or-nothing: refused reservations added nothing to either counter.
    let values = a.read(&[tokens, requests]).await.expect("read");
    assert_eq!(values, [granted * 7, granted]);
}

#[tokio::test]
async fn refusal_names_the_first_counter_over_and_counts_nothing() {
    let server = RedisServer::start(&[]);
    let s = store(&server.url(), "closed", "2s", "refuse");
    let x = id("x", Window::Total, 0);
    let y = id("y", Window::Month, 1_764_547_200);
    let r = s.reserve(&[charge(&x, 10, 4), charge(&y, 5, 5)]).await;
    assert_eq!(r.expect("reserve"), Reservation::granted(vec![6, 0]));
    let r = s.reserve(&[charge(&x, 10, 1), charge(&y, 5, 1)]).await;
    assert_eq!(
        r.expect("reserve"),
        Reservation::Refused {
            first: 1,
            remaining: vec![6, 0],
            reset_ms: vec![0, 0],
        }
    );
    // The same counter twice in one reservation counts both amounts.
    let r = s.reserve(&[charge(&x, 10, 4), charge(&x, 10, 4)]).await;
    assert!(matches!(r, Ok(Reservation::Refused { first: 1, .. })));
    assert_eq!(s.read(&[x.clone(), y]).await.expect("read"), [4, 5]);
    let never = id("never", Window::Fixed { secs: 60 }, 0);
    assert_eq!(s.read(&[never]).await.expect("read"), [0]);
}

#[tokio::test]
async fn adjust_clamps_at_zero_and_sets_ttls() {
    let server = RedisServer::start(&[]);
    let s = store(&server.url(), "closed", "2s", "adj");
    let lease = id("conc:key:k1", Window::Lease, 0);
    let tokens = id("tpm:key:k1", Window::Fixed { secs: 60 }, 60);
    s.reserve(&[charge(&lease, 8, 1), charge(&tokens, 1000, 300)])
        .await
        .expect("reserve");
    // Settlement + release in one call: usage was 120 of the 300 estimated;
    // the lease is released twice (a duplicate release stays at 0).
    let settle = [
        Adjustment {
            id: tokens.clone(),
            delta: -180,
            ttl_secs: 90,
        },
        Adjustment {
            id: lease.clone(),
            delta: -1,
            ttl_secs: 30,
        },
        Adjustment {
            id: lease.clone(),
            delta: -1,
            ttl_secs: 30,
        },
    ];
    s.adjust(&settle).await.expect("adjust");
    assert_eq!(
        s.read(&[tokens.clone(), lease.clone()])
            .await
            .expect("read"),
        [120, 0]
    );
    let over = Adjustment {
        id: tokens.clone(),
        delta: -1_000,
        ttl_secs: 90,
    };
    s.adjust(&[over]).await.expect("adjust");
    assert_eq!(
        s.read(std::slice::from_ref(&tokens)).await.expect("read"),
        [0]
    );
    let up = Adjustment {
        id: tokens.clone(),
        delta: 50,
        ttl_secs: 90,
    };
    s.adjust(&[up]).await.expect("adjust");
    assert_eq!(s.read(&[tokens]).await.expect("read"), [50]);

    let mut conn = raw_conn(&server.url()).await;
    let ttl: i64 = redis::cmd("TTL")
        .arg("modelgate:{adj}:tpm:key:k1:60s:60")
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!((1..=90).contains(&ttl), "ttl {ttl}");
    let ttl: i64 = redis::cmd("TTL")
        .arg("modelgate:{adj}:conc:key:k1:lease:0")
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!((1..=120).contains(&ttl), "lease ttl {ttl}");
}

/// Pings until the store answers; Redis recovery takes a reconnect.
async fn until_up(s: &Guarded<RedisStore>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = s.ping().await {
        assert!(Instant::now() < deadline, "no recovery: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metric(s: &Guarded<RedisStore>) -> (i64, u64) {
    let m = s.metrics();
    let up = m.up.get_or_create(&[("store", "redis")]).get();
    let errors = m.errors.get_or_create(&[("store", "redis")]).get();
    (up, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_redis_follows_the_failure_mode_then_recovers() {
    let mut server = RedisServer::start(&[]);
    let open = store(&server.url(), "open", "200ms", "fault");
    let closed = store(&server.url(), "closed", "200ms", "fault");
    assert_eq!(open.failure_mode(), FailureMode::Open);
    let c = id("rpm:key:k1", Window::Fixed { secs: 60 }, 0);
    let one = || vec![charge(&c, 100, 1)];
    open.reserve(&one()).await.expect("open reserve");
    closed.reserve(&one()).await.expect("closed reserve");
    assert_eq!(
        closed.read(std::slice::from_ref(&c)).await.expect("read"),
        [2]
    );
    assert_eq!(metric(&closed), (1, 0));

    server.stop();
    let e = closed.reserve(&one()).await.expect_err("closed refuses");
    assert!(e.0.contains("127.0.0.1"), "{e}");
    assert!(closed.read(std::slice::from_ref(&c)).await.is_err());
    assert!(closed.adjust(&[]).await.is_ok(), "nothing to do is no call");
    let r = open.reserve(&one()).await.expect("open grants");
    assert_eq!(r, Reservation::granted(vec![99]));
    let release = Adjustment {
        id: c.clone(),
        delta: -1,
        ttl_secs: 60,
    };
    open.adjust(&[release])
        .await
        .expect("open adjust is dropped");
    assert!(
        open.read(std::slice::from_ref(&c)).await.is_err(),
        "reads never guess"
    );
    let (up, errors) = metric(&closed);
    assert_eq!(up, 0);
    assert!(errors >= 2);
    assert!(!open.is_up());

    // Same port, empty data set: both stores reconnect on their own.
    server.restart();
    until_up(&closed).await;
    until_up(&open).await;
    assert!(open.is_up() && closed.is_up());
    closed
        .reserve(&one())
        .await
        .expect("closed reserve after restart");
    open.reserve(&one())
        .await
        .expect("open reserve after restart");
    assert_eq!(metric(&closed).0, 1);
    // Only what was charged after the restart: the open-mode grant during the
    // outage recorded nothing.
    assert_eq!(closed.read(&[c]).await.expect("read"), [2]);
}

#[tokio::test]
async fn redis_absent_at_start_is_a_failure_not_a_crash() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let url = format!("redis://127.0.0.1:{port}");
    let closed = store(&url, "closed", "100ms", "absent");
    let c = id("c", Window::Total, 0);
    assert!(closed.reserve(&[charge(&c, 1, 1)]).await.is_err());
    assert!(closed.ping().await.is_err());
    let open = store(&url, "open", "100ms", "absent");
    assert!(matches!(
        open.reserve(&[charge(&c, 1, 1)]).await,
        Ok(Reservation::Granted { .. })
    ));
}

#[tokio::test]
async fn passwords_work_and_never_appear_in_errors() {
    let server = RedisServer::start(&["--requirepass", "s3cret-pw"]);
    let good = format!("redis://:s3cret-pw@127.0.0.1:{}", server.port);
    let s = store(&good, "closed", "2s", "pw");
    s.ping().await.expect("authenticated ping");
    let c = id("c", Window::Total, 0);
    s.reserve(&[charge(&c, 5, 1)]).await.expect("reserve");
    let bad = format!("redis://:wrong-pw@127.0.0.1:{}", server.port);
    let cfg = config(&bad, "closed", "2s", "pw");
    assert!(!format!("{cfg:?}").contains("wrong-pw"));
    let s = connect(&cfg).expect("store");
    let e = s
        .reserve(&[charge(&c, 5, 1)])
        .await
        .expect_err("bad password");
    assert!(!e.0.contains("wrong-pw"), "{e}");
    assert!(e.0.contains("127.0.0.1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_settlements_land_exactly() {
    let server = RedisServer::start(&[]);
    let replica = || Arc::new(store(&server.url(), "closed", "5s", "batch"));
    let (a, b) = (replica(), replica());
    let tokens = id("tpm:key:k2", Window::Fixed { secs: 60 }, 0);
    let lease = id("conc:key:k2", Window::Lease, 0);
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (tokens, lease) = (tokens.clone(), lease.clone());
        tasks.push(tokio::spawn(async move {
            let estimate = 50;
            let used = i % 50;
            let r = s
                .reserve(&[
                    charge(&tokens, 1_000_000, estimate),
                    charge(&lease, 1_000, 1),
                ])
                .await;
            assert!(matches!(r, Ok(Reservation::Granted { .. })), "{r:?}");
            let settle = [
                Adjustment {
                    id: tokens.clone(),
                    delta: used as i64 - estimate as i64,
                    ttl_secs: 120,
                },
                Adjustment {
                    id: lease.clone(),
                    delta: -1,
                    ttl_secs: 120,
                },
            ];
            s.adjust(&settle).await.expect("queued");
            used
        }));
    }
    let mut used = 0;
    for t in tasks {
        used += t.await.expect("task");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = a
            .read(&[tokens.clone(), lease.clone()])
            .await
            .expect("read");
        if v == [used, 0] {
            break;
        }
        assert!(Instant::now() < deadline, "settled {v:?}, want [{used}, 0]");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.kind(), "redis");
}

/// Not a test: prints round-trip figures (`cargo test -p modelgate-limit
/// --test redis -- --ignored --nocapture measure`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand"]
async fn measure_reserve_and_settle() {
    let server = RedisServer::start(&[]);
    let s = Arc::new(store(&server.url(), "closed", "1s", "measure"));
    let c = id("tpm:key:m", Window::Fixed { secs: 60 }, 0);
    let r = id("rpm:key:m", Window::Fixed { secs: 60 }, 0);
    let charges = [charge(&c, u64::MAX, 100), charge(&r, u64::MAX, 1)];
    let settle = [Adjustment {
        id: c.clone(),
        delta: -40,
        ttl_secs: 120,
    }];
    let mut lat = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        s.reserve(&charges).await.expect("reserve");
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |p: usize| lat[lat.len() * p / 100];
    println!("sequential reserve: p50 {:?} p99 {:?}", pct(50), pct(99));
    for (label, concurrency) in [("reserve+settle", 64usize)] {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (s, charges, settle) = (s.clone(), charges.clone(), settle.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..100 {
                    s.reserve(&charges).await.expect("reserve");
                    s.adjust(&settle).await.expect("adjust");
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let n = concurrency * 100;
        println!(
            "{label} x{concurrency} concurrent: {n} requests in {:?} = {:.0} req/s",
            t.elapsed(),
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
    // Every reserve and settlement counted: 2000 × 100, then 6400 × (100 − 40).
    let v = s.read(&[c, r]).await.expect("read");
    assert_eq!(v, [2000 * 100 + 6400 * 60, 2000 + 6400]);
}

#[tokio::test]
async fn shared_counters_are_what_the_app_plugs_in() {
    let server = RedisServer::start(&[]);
    let shared = modelgate_limit::redis::shared(
        &config(&server.url(), "closed", "2s", "app"),
        StoreMetrics::default(),
    )
    .expect("shared");
    shared.check().await;
    let store: Arc<dyn CounterStore> = shared.store.clone();
    assert_eq!(store.kind(), "redis");
    let c = id("rpm:key:app", Window::Fixed { secs: 60 }, 0);
    let r = store.reserve(&[charge(&c, 1, 1)]).await.expect("reserve");
    assert_eq!(r, Reservation::granted(vec![0]));
    let r = store.reserve(&[charge(&c, 1, 1)]).await.expect("reserve");
    assert!(matches!(r, Reservation::Refused { first: 0, .. }));
    assert_eq!(
        shared.guarded.location(),
        format!("127.0.0.1:{}", server.port)
    );
    let up = shared
        .metrics()
        .up
        .get_or_create(&[("store", "redis")])
        .get();
    assert_eq!(up, 1);
}
