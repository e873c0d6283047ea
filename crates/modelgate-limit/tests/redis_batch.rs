//! The Redis writer against a real `redis-server`: concurrent calls share
//! script calls (counted by Redis itself), the store metrics are the
//! process's (a store rebuilt at a reload updates the registered series),
//! and a figure for reserve + settle throughput (ignored, run by hand).

#![allow(clippy::expect_used, clippy::panic)] // test helpers

use std::sync::Arc;
use std::time::Instant;

use modelgate_limit::redis::{StoreMetrics, connect_with, shared};
use modelgate_limit::store::{Adjustment, CounterStore, Reservation, Window};
use prometheus_client::registry::Registry;

mod common;
use common::*;

/// `calls` of the script commands in `INFO commandstats`.
async fn script_calls(url: &str) -> u64 {
    script_stats(url).await.0
}

/// `(calls, usec)` of the script commands in `INFO commandstats`: how many
/// script runs, and the CPU time Redis spent in them.
async fn script_stats(url: &str) -> (u64, u64) {
    let mut conn = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("info");
    let field = |name: &str| -> u64 {
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| l.split(name).nth(1)?.split(',').next()?.parse::<u64>().ok())
            .sum()
    };
    (field("calls="), field("usec="))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_script_calls_and_stay_exact() {
    let server = RedisServer::start(&[]);
    let s = Arc::new(store(&server.url(), "closed", "5s", "coalesce"));
    let tokens = id("tpm:key:c", Window::Fixed { secs: 60 }, 0);
    let before = script_calls(&server.url()).await;
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let (s, tokens) = (s.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let r = s.reserve(&[charge(&tokens, 1_000, 10)]).await;
            let granted = matches!(r, Ok(Reservation::Granted { .. }));
            if granted {
                let settle = Adjustment {
                    id: tokens.clone(),
                    delta: -4,
                    ttl_secs: 120,
                };
                s.adjust(&[settle]).await.expect("settle");
            }
            granted
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += u64::from(t.await.expect("task"));
    }
    let calls = script_calls(&server.url()).await - before;
    // 256 reservations and their settlements in far fewer script calls.
    assert!(calls * 4 <= 256 + granted, "{calls} script calls");
    // Settlements free room, so more than 100 pass; never past the limit.
    let v = s.read(&[tokens]).await.expect("read")[0];
    assert!(granted >= 100, "{granted}");
    assert!(v <= 1_000 && v == granted * 6, "{v} for {granted}");
}

#[tokio::test]
async fn store_metrics_survive_a_rebuilt_store() {
    let mut server = RedisServer::start(&[]);
    let metrics = StoreMetrics::default();
    let mut registry = Registry::with_prefix("modelgate");
    registry.register("limit_store_errors", "errors", metrics.errors.clone());
    registry.register("limit_store_up", "up", metrics.up.clone());
    let text = |r: &Registry| {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, r).expect("encode");
        out
    };
    let c = charge(&id("c", Window::Total, 0), 9, 1);
    {
        let first = shared(
            &config(&server.url(), "closed", "500ms", "a"),
            metrics.clone(),
        )
        .expect("store");
        first
            .store
            .reserve(std::slice::from_ref(&c))
            .await
            .expect("reserve");
    }
    // A reload builds another store (other prefix) on the same metrics.
    let second = shared(
        &config(&server.url(), "closed", "500ms", "b"),
        metrics.clone(),
    )
    .expect("store");
    second
        .store
        .reserve(std::slice::from_ref(&c))
        .await
        .expect("reserve");
    server.stop();
    assert!(
        second
            .store
            .reserve(std::slice::from_ref(&c))
            .await
            .is_err()
    );
    let out = text(&registry);
    assert!(
        out.contains("modelgate_limit_store_up{store=\"redis\"} 0"),
        "{out}"
    );
    assert!(
        out.contains("modelgate_limit_store_errors_total{store=\"redis\"} 1"),
        "{out}"
    );
    // And the clock-injected constructor shares them the same way.
    let third = connect_with(
        &config(&server.url(), "open", "100ms", "c"),
        None,
        metrics.clone(),
    )
    .expect("store");
    assert!(
        third.reserve(std::slice::from_ref(&c)).await.is_ok(),
        "open"
    );
    assert!(text(&registry).contains("modelgate_limit_store_errors_total{store=\"redis\"} 2"));
}

/// Not a test: prints reserve + settle throughput with 64 concurrent tasks
/// (`cargo test -p modelgate-limit --release --test redis_batch -- --ignored
/// --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand"]
async fn measure_reserve_and_settle_64_concurrent() {
    let server = RedisServer::start(&[]);
    let s = Arc::new(store(&server.url(), "closed", "1s", "measure"));
    let tokens = id("tpm:key:m", Window::Fixed { secs: 60 }, 0);
    let rpm = id("rpm:key:m", Window::Gcra { period_ms: 60_000 }, 0);
    let charges = [charge(&tokens, u64::MAX, 100), charge(&rpm, 1 << 40, 1)];
    let settle = [Adjustment {
        id: tokens.clone(),
        delta: -40,
        ttl_secs: 120,
    }];
    for round in 0..3 {
        let before = script_stats(&server.url()).await;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (s, charges, settle) = (s.clone(), charges.clone(), settle.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    s.reserve(&charges).await.expect("reserve");
                    s.adjust(&settle).await.expect("adjust");
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let n = 64 * 200;
        let elapsed = t.elapsed();
        let after = script_stats(&server.url()).await;
        println!(
            "round {round}: reserve+settle x64 concurrent: {n} in {elapsed:?} = {:.0} req/s; \
             {} script runs for {} calls, Redis CPU {} µs",
            n as f64 / elapsed.as_secs_f64(),
            after.0 - before.0,
            2 * n,
            after.1 - before.1
        );
    }
    let v = s.read(&[tokens]).await.expect("read");
    assert_eq!(v, [3 * 64 * 200 * 60]);
}
