//! JWKS lifecycle with a scripted IdP and tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::Uri;
use modelgate_config::identity::JwksSource;
use modelgate_core::AuthFailure;

use super::*;
use crate::fetch::fake::{FakeFetch, ok};
use crate::jwt::testkeys::{RSA_A, RSA_B, TestKey, jwks};

fn settings(source: JwksSource) -> JwksSettings {
    JwksSettings {
        issuer: "http://idp.test".into(),
        source,
        allowed_hosts: vec!["idp.test".into()],
        timeout: Duration::from_secs(5),
        refresh_interval: Duration::from_secs(1200),
        unknown_kid_refetch_interval: Duration::from_secs(30),
    }
}

fn uri(s: &str) -> JwksSource {
    JwksSource::Uri(s.parse::<Uri>().unwrap())
}

#[tokio::test(start_paused = true)]
async fn cold_cache_fails_closed_then_recovers() {
    let up = Arc::new(AtomicBool::new(false));
    let body = jwks(&[&TestKey::rsa("a", RSA_A, "RS256")]);
    let u = up.clone();
    let fetch = FakeFetch::new(move |_| {
        if u.load(Ordering::SeqCst) {
            ok(body.clone())
        } else {
            Err("connection refused".into())
        }
    });
    let m = IdentityMetrics::default();
    let c = JwksCache::new(
        settings(uri("http://idp.test/jwks")),
        fetch.clone(),
        m.clone(),
    )
    .unwrap();
    let err = c.current().await.unwrap_err();
    assert_eq!(
        err,
        AuthFailure::Unavailable("Jwks remote fetch is failed".into())
    );
    // Within a second of a failure, requests do not hammer the IdP.
    assert!(c.current().await.is_err());
    assert_eq!(fetch.calls(), 1);
    up.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(1100)).await;
    let l = c.current().await.unwrap();
    assert_eq!(l.keys.len(), 1);
    assert_eq!(fetch.calls(), 2);
    let labels = crate::metrics::ProviderLabels {
        provider: "http://idp.test".into(),
    };
    assert_eq!(m.jwks_keys.get_or_create(&labels).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn warm_cache_survives_idp_outage() {
    let body = jwks(&[&TestKey::rsa("a", RSA_A, "RS256")]);
    let fetch = FakeFetch::new(move |_| ok(body.clone()));
    let c = JwksCache::new(
        settings(uri("http://idp.test/jwks")),
        fetch.clone(),
        IdentityMetrics::default(),
    )
    .unwrap();
    assert!(c.refresh().await);
    fetch.set(|_| Err("down".into()));
    assert!(!c.refresh().await);
    assert_eq!(c.current().await.unwrap().keys.len(), 1);
    // A 500 or a garbage body does not replace good keys either.
    fetch.set(|_| {
        Ok(crate::fetch::HttpResponse {
            status: 500,
            body: "oops".into(),
        })
    });
    assert!(!c.refresh().await);
    fetch.set(|_| ok("{\"keys\": []}"));
    assert!(!c.refresh().await);
    assert_eq!(c.current().await.unwrap().keys.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_kid_refetch_is_rate_limited() {
    let old = jwks(&[&TestKey::rsa("a", RSA_A, "RS256")]);
    let new = jwks(&[&TestKey::rsa("b", RSA_B, "RS256")]);
    let fetch = FakeFetch::new(move |_| ok(old.clone()));
    let c = JwksCache::new(
        settings(uri("http://idp.test/jwks")),
        fetch.clone(),
        IdentityMetrics::default(),
    )
    .unwrap();
    let seen = c.current().await.unwrap();
    let n = new.clone();
    fetch.set(move |_| ok(n.clone()));
    let newer = c.refetch_for_unknown_kid(&seen).await.unwrap();
    assert_eq!(newer.keys.keys[0].kid.as_deref(), Some("b"));
    assert_eq!(fetch.calls(), 2);
    // Another unknown kid right away: no new fetch.
    assert!(c.refetch_for_unknown_kid(&newer).await.is_none());
    assert_eq!(fetch.calls(), 2);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(c.refetch_for_unknown_kid(&newer).await.is_none());
    assert_eq!(fetch.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn discovery_checks_issuer_and_host() {
    let body = jwks(&[&TestKey::ec("e", "ES256")]);
    let fetch = FakeFetch::new(move |r| match r.uri.path() {
        "/.well-known/openid-configuration" => ok(
            r#"{"issuer":"http://idp.test","jwks_uri":"http://169.254.169.254/latest/meta-data"}"#,
        ),
        _ => ok(body.clone()),
    });
    let disc = JwksSource::Discovery(
        "http://idp.test/.well-known/openid-configuration"
            .parse()
            .unwrap(),
    );
    let c = JwksCache::new(
        settings(disc.clone()),
        fetch.clone(),
        IdentityMetrics::default(),
    )
    .unwrap();
    // The discovered jwks_uri points off the allow-list: never fetched.
    assert!(c.current().await.is_err());
    assert_eq!(fetch.calls(), 1);
    fetch.set(|r| match r.uri.path() {
        "/.well-known/openid-configuration" => {
            ok(r#"{"issuer":"http://evil.test","jwks_uri":"http://idp.test/jwks"}"#)
        }
        _ => ok("{}"),
    });
    assert!(!c.refresh().await);
    let body = jwks(&[&TestKey::ec("e", "ES256")]);
    fetch.set(move |r| match r.uri.path() {
        "/.well-known/openid-configuration" => {
            ok(r#"{"issuer":"http://idp.test/","jwks_uri":"http://idp.test/jwks"}"#)
        }
        _ => ok(body.clone()),
    });
    assert!(c.refresh().await);
    assert_eq!(c.current().await.unwrap().keys.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn configured_uri_off_the_allow_list_is_not_fetched() {
    let fetch = FakeFetch::new(|_| ok("{}"));
    let c = JwksCache::new(
        settings(uri("http://10.0.0.1/jwks")),
        fetch.clone(),
        IdentityMetrics::default(),
    )
    .unwrap();
    assert!(c.current().await.is_err());
    assert_eq!(fetch.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn refresh_loop_refreshes_and_backs_off() {
    let up = Arc::new(AtomicBool::new(true));
    let body = jwks(&[&TestKey::rsa("a", RSA_A, "RS256")]);
    let u = up.clone();
    let fetch = FakeFetch::new(move |_| {
        if u.load(Ordering::SeqCst) {
            ok(body.clone())
        } else {
            Err("down".into())
        }
    });
    let c = JwksCache::new(
        settings(uri("http://idp.test/jwks")),
        fetch.clone(),
        IdentityMetrics::default(),
    )
    .unwrap();
    c.spawn_refresh();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(fetch.calls(), 1);
    tokio::time::sleep(Duration::from_secs(1200)).await;
    assert_eq!(fetch.calls(), 2);
    up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1200)).await;
    assert_eq!(fetch.calls(), 3);
    // Failures retry after 1 s, 2 s, 4 s …
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(fetch.calls(), 4);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(fetch.calls(), 5);
    assert_eq!(c.current().await.unwrap().keys.len(), 1, "cached keys kept");
    // Dropping the cache ends the loop.
    drop(c);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(fetch.calls() <= 6);
}

#[test]
fn inline_keys_are_checked_at_build() {
    let fetch = FakeFetch::new(|_| ok("{}"));
    let bad = JwksCache::new(
        settings(JwksSource::Inline(
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into(),
        )),
        fetch.clone(),
        IdentityMetrics::default(),
    );
    assert_eq!(bad.err().unwrap(), "Jwks doesn't have any valid public key");
}
