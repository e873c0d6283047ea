//! The verdict caches: expiry, failures kept briefly and apart, and good
//! entries surviving a flood of tokens seen once.

use std::time::Duration;

use modelgate_core::{AuthMethod, Grants};

use super::*;

fn who(name: &str) -> Principal {
    Principal {
        method: AuthMethod::Introspection,
        name: name.into(),
        issuer: None,
        subject: name.into(),
        audiences: vec![],
        presenter: None,
        namespace: None,
        groups: vec![],
        grants: Grants::Nothing,
        claims: None,
    }
}

fn bad() -> AuthFailure {
    AuthFailure::InvalidToken("x".into())
}

#[tokio::test(start_paused = true)]
async fn entries_expire() {
    let c = VerdictCache::default();
    let k = token_key("t");
    c.put(k, Instant::now() + Duration::from_secs(10), Ok(who("a")));
    assert!(c.get(&k).is_some());
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(c.get(&k).is_none());
    assert_ne!(token_key("t"), token_key("u"));
}

#[tokio::test(start_paused = true)]
async fn failures_are_kept_briefly_and_apart() {
    let c = VerdictCache::default();
    let k = token_key("garbage");
    c.put(k, Instant::now() + Duration::from_secs(3600), Err(bad()));
    assert!(matches!(c.get(&k), Some(Err(e)) if e == bad()));
    assert_eq!((c.good.len(), c.bad.len()), (0, 1));
    tokio::time::advance(BAD_TTL + Duration::from_millis(1)).await;
    assert!(c.get(&k).is_none(), "a refusal outlived BAD_TTL");
}

#[tokio::test(start_paused = true)]
async fn twenty_thousand_garbage_verdicts_evict_no_good_one() {
    let c = VerdictCache::default();
    let hour = Instant::now() + Duration::from_secs(3600);
    let good: Vec<_> = (0..100).map(|i| token_key(&format!("good-{i}"))).collect();
    for (i, k) in good.iter().enumerate() {
        c.put(*k, hour, Ok(who(&format!("user-{i}"))));
        assert!(c.get(k).is_some());
    }
    for i in 0..20_000 {
        c.put(token_key(&format!("garbage-{i}")), hour, Err(bad()));
    }
    assert!(c.bad.len() <= BAD_ENTRIES + BAD_ENTRIES / 10);
    for (i, k) in good.iter().enumerate() {
        let p = c.get(k).and_then(Result::ok);
        assert_eq!(p.map(|p| p.name), Some(format!("user-{i}")));
    }
}

/// Even good entries seen only once (a flood of valid tokens from one
/// tenant) do not push out the ones in use: CLOCK-Pro keeps them hot.
#[tokio::test(start_paused = true)]
async fn a_flood_of_one_time_entries_keeps_the_hot_ones() {
    let c: TtlCache<u32> = TtlCache::new(GOOD_ENTRIES);
    let hour = Instant::now() + Duration::from_secs(3600);
    let hot: Vec<_> = (0..500).map(|i| token_key(&format!("hot-{i}"))).collect();
    for (i, k) in hot.iter().enumerate() {
        c.insert(*k, hour, i as u32);
    }
    for k in &hot {
        assert!(c.get(k).is_some());
    }
    for i in 0..20_000 {
        c.insert(token_key(&format!("once-{i}")), hour, 0);
    }
    assert!(c.len() <= GOOD_ENTRIES + GOOD_ENTRIES / 10);
    let kept = hot.iter().filter(|k| c.get(k).is_some()).count();
    assert_eq!(kept, hot.len(), "hot entries evicted by a one-time flood");
}
