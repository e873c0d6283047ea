//! Introspection against a scripted endpoint.

use std::time::{Duration, SystemTime};

use modelgate_config::identity::Introspection;
use modelgate_core::{AuthFailure, AuthMethod, Secret};

use super::*;
use crate::fetch::fake::{FakeFetch, ok};

const NOW: u64 = 1_750_000_000;

fn cfg() -> Introspection {
    Introspection {
        endpoint: "http://idp.test/token/introspection".parse().unwrap(),
        client_id: "modelgate".into(),
        client_secret: Secret::new("s3cret&=x"),
        ca_file: None,
        audiences: vec![],
        cache_ttl: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

#[tokio::test(start_paused = true)]
async fn active_inactive_and_cache() {
    let f = FakeFetch::new(|r| {
        let body = String::from_utf8_lossy(&r.body).to_string();
        if body.contains("token=good") {
            ok(format!(
                r#"{{"active":true,"sub":"alice","client_id":"cli","iss":"http://idp.test","aud":"models","scope":"infer","exp":{}}}"#,
                NOW + 30
            ))
        } else {
            ok(r#"{"active":false}"#)
        }
    });
    let i = Introspector::new(cfg(), f.clone(), IdentityMetrics::default());
    let who = i.verify("good", now()).await.unwrap();
    assert_eq!(who.method, AuthMethod::Introspection);
    assert_eq!(who.name, "alice");
    assert_eq!(who.issuer.as_deref(), Some("http://idp.test"));
    assert_eq!(
        i.verify("bad", now()).await.unwrap_err(),
        AuthFailure::InvalidToken(NOT_ACTIVE.into())
    );
    assert_eq!(f.calls(), 2);
    // Client authentication: HTTP Basic of the form-encoded id and secret.
    let (_, auth, body) = f.seen.lock().unwrap()[0].clone();
    assert_eq!(
        auth,
        format!("Basic {}", STANDARD.encode("modelgate:s3cret%26%3Dx"))
    );
    assert_eq!(body, "token=good&token_type_hint=access_token");
    // Cached: no new call…
    i.verify("good", now()).await.unwrap();
    assert_eq!(f.calls(), 2);
    // …but never past the token's exp (30 s), even though cache_ttl is 60 s.
    tokio::time::advance(Duration::from_secs(31)).await;
    i.verify("good", now()).await.unwrap();
    assert_eq!(f.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn expired_audience_and_outage() {
    let f = FakeFetch::new(|_| ok(format!(r#"{{"active":true,"sub":"a","exp":{}}}"#, NOW - 1)));
    let i = Introspector::new(cfg(), f.clone(), IdentityMetrics::default());
    assert_eq!(
        i.verify("t", now()).await.unwrap_err(),
        AuthFailure::InvalidToken(NOT_ACTIVE.into())
    );
    let mut c = cfg();
    c.audiences = vec!["models".into()];
    f.set(|_| ok(r#"{"active":true,"sub":"a","aud":["other"]}"#));
    let i = Introspector::new(c, f.clone(), IdentityMetrics::default());
    assert_eq!(
        i.verify("t", now()).await.unwrap_err(),
        AuthFailure::AudienceNotAllowed
    );
    f.set(|_| Err("connection refused".into()));
    let i = Introspector::new(cfg(), f.clone(), IdentityMetrics::default());
    assert_eq!(
        i.verify("u", now()).await.unwrap_err(),
        AuthFailure::Unavailable(UNAVAILABLE.into())
    );
    // Errors are not cached.
    f.set(|_| ok(r#"{"active":true,"sub":"a"}"#));
    assert!(i.verify("u", now()).await.is_ok());
}

/// 20,000 garbage tokens (each refused by the endpoint) evict none of the
/// good verdicts: the good tokens are not asked again afterwards, and a
/// repeated garbage token is spared the endpoint only briefly.
#[tokio::test(start_paused = true)]
async fn garbage_flood_keeps_good_verdicts() {
    let f = FakeFetch::new(|r| {
        let body = String::from_utf8_lossy(&r.body).to_string();
        if body.contains("token=good-") {
            ok(r#"{"active":true,"sub":"alice"}"#)
        } else {
            ok(r#"{"active":false}"#)
        }
    });
    let i = Introspector::new(cfg(), f.clone(), IdentityMetrics::default());
    let good: Vec<String> = (0..50).map(|n| format!("good-{n}")).collect();
    for t in &good {
        assert_eq!(i.verify(t, now()).await.unwrap().name, "alice");
        i.verify(t, now()).await.unwrap();
    }
    assert_eq!(f.calls(), good.len());
    for n in 0..20_000 {
        assert!(i.verify(&format!("garbage-{n}"), now()).await.is_err());
    }
    assert_eq!(f.calls(), good.len() + 20_000);
    f.seen.lock().unwrap().clear();
    for t in &good {
        assert_eq!(i.verify(t, now()).await.unwrap().name, "alice");
    }
    assert_eq!(f.calls(), good.len() + 20_000, "a good verdict was evicted");
    // The same garbage token twice in a row: one call; after BAD_TTL: asked again.
    let before = f.calls();
    assert!(i.verify("garbage-x", now()).await.is_err());
    assert!(i.verify("garbage-x", now()).await.is_err());
    assert_eq!(f.calls(), before + 1);
    tokio::time::advance(crate::cache::BAD_TTL + Duration::from_secs(1)).await;
    assert!(i.verify("garbage-x", now()).await.is_err());
    assert_eq!(f.calls(), before + 2);
}
