//! Provider verification: every algorithm, key/alg binding, Envoy statuses.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use modelgate_config::identity::{JwksSource, JwtRule};
use modelgate_core::{AuthFailure, Secret};
use serde_json::{Value, json};

use super::testkeys::{RSA_A, RSA_B, TestKey, hs256, jwks, sign_with};
use super::*;
use crate::fetch::fake::{FakeFetch, ok};
use crate::jwks::{JwksCache, JwksSettings};
use crate::metrics::IdentityMetrics;

const ISS: &str = "https://idp.test";
const NOW: u64 = 1_750_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

fn rule(keys: JwksSource) -> JwtRule {
    JwtRule {
        issuer: ISS.into(),
        audiences: vec!["models".into()],
        keys,
        from_headers: vec![],
        from_params: vec![],
        from_cookies: vec![],
        forward_original_token: false,
        output_claim_to_headers: vec![],
        output_payload_to_header: None,
        timeout: Duration::from_secs(5),
        require_expiration: true,
        clock_skew: Duration::from_secs(60),
        hmac_secret: None,
    }
}

fn provider_with(keys: &[&TestKey], kind: ProviderKind) -> Provider {
    let source = JwksSource::Inline(jwks(keys));
    let r = rule(source.clone());
    let settings = JwksSettings {
        issuer: ISS.into(),
        source,
        allowed_hosts: vec![],
        timeout: r.timeout,
        refresh_interval: Duration::from_secs(1200),
        unknown_kid_refetch_interval: Duration::from_secs(30),
    };
    let cache = JwksCache::new(
        settings,
        FakeFetch::new(|_| ok("{}")),
        IdentityMetrics::default(),
    )
    .unwrap();
    Provider {
        rule: r,
        kind,
        keys: cache,
        verified: Default::default(),
    }
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "alice", "aud": ["models"], "exp": NOW + 300, "iat": NOW, "nbf": NOW, "groups": ["ml", "admins"], "azp": "cli"})
}

async fn check(p: &Provider, token: &str) -> Result<Principal, AuthFailure> {
    let jwt = parse::parse(token).map_err(|e| AuthFailure::InvalidToken(e.into()))?;
    p.verify_with_keys(jwt, now()).await.map(|(p, _)| p)
}

fn inv(s: &str) -> AuthFailure {
    AuthFailure::InvalidToken(s.into())
}

#[tokio::test]
async fn every_algorithm_verifies() {
    let keys = [
        TestKey::rsa("rs256", RSA_A, "RS256"),
        TestKey::rsa("rs384", RSA_A, "RS384"),
        TestKey::rsa("rs512", RSA_A, "RS512"),
        TestKey::rsa("ps256", RSA_B, "PS256"),
        TestKey::rsa("ps384", RSA_B, "PS384"),
        TestKey::rsa("ps512", RSA_B, "PS512"),
        TestKey::ec("es256", "ES256"),
        TestKey::ec("es384", "ES384"),
        TestKey::ed("ed"),
    ];
    let p = provider_with(&keys.iter().collect::<Vec<_>>(), ProviderKind::Jwt);
    for k in &keys {
        let who = check(&p, &k.sign(&claims()))
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", k.alg()));
        assert_eq!(who.name, "alice");
        assert_eq!(who.issuer.as_deref(), Some(ISS));
        assert_eq!(who.groups, ["ml", "admins"]);
        assert_eq!(who.presenter.as_deref(), Some("cli"));
        assert_eq!(
            who.request_principal().as_deref(),
            Some("https://idp.test/alice")
        );
    }
}

#[tokio::test]
async fn key_type_is_bound_to_algorithm() {
    // An EC key published without `alg` must not verify an RS256 header, and
    // an RSA key must not verify a token whose header claims ES256.
    let rsa = TestKey::rsa("k", RSA_A, "RS256");
    let ec = TestKey::ec("k", "ES256");
    let p = provider_with(&[&ec], ProviderKind::Jwt);
    let forged = sign_with(&json!({"alg":"RS256","kid":"k"}), &claims(), |m| {
        rsa.raw_sign(m)
    });
    assert_eq!(
        check(&p, &forged).await.unwrap_err(),
        inv("Jwks doesn't have key to match kid or alg from Jwt")
    );
    let p = provider_with(&[&rsa], ProviderKind::Jwt);
    let forged = sign_with(&json!({"alg":"ES256","kid":"k"}), &claims(), |m| {
        ec.raw_sign(m)
    });
    assert_eq!(
        check(&p, &forged).await.unwrap_err(),
        inv("Jwks doesn't have key to match kid or alg from Jwt")
    );
}

#[tokio::test]
async fn hmac_with_the_public_key_is_refused() {
    let rsa = TestKey::rsa("k", RSA_A, "RS256");
    let p = provider_with(&[&rsa], ProviderKind::Jwt);
    // The classic confusion: HS256 keyed with the RSA public key (as DER and as JWK text).
    for secret in [rsa.rsa_public_der(), rsa.jwk().to_string().into_bytes()] {
        let t = hs256(&secret, &json!({"alg":"HS256","kid":"k"}), &claims());
        assert_eq!(
            check(&p, &t).await.unwrap_err(),
            inv("Jwks doesn't have key to match kid or alg from Jwt")
        );
    }
    // With an explicitly configured secret, HS256 works — and only with it.
    let mut p = provider_with(&[&rsa], ProviderKind::Jwt);
    let secret = "0123456789abcdef0123456789abcdef";
    p.rule.hmac_secret = Some(Secret::new(secret));
    let good = hs256(secret.as_bytes(), &json!({"alg":"HS256"}), &claims());
    assert!(check(&p, &good).await.is_ok());
    let bad = hs256(
        b"another-secret-another-secret-xx",
        &json!({"alg":"HS256"}),
        &claims(),
    );
    assert_eq!(
        check(&p, &bad).await.unwrap_err(),
        inv("Jwt verification fails")
    );
}

#[tokio::test]
async fn statuses_like_envoy() {
    let k = TestKey::rsa("k", RSA_A, "RS256");
    let p = provider_with(&[&k], ProviderKind::Jwt);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        k.sign(&c)
    };
    assert_eq!(
        check(&p, &with(&|c| c["exp"] = json!(NOW - 61)))
            .await
            .unwrap_err(),
        inv("Jwt is expired")
    );
    assert!(
        check(&p, &with(&|c| c["exp"] = json!(NOW - 30)))
            .await
            .is_ok(),
        "60 s skew"
    );
    assert_eq!(
        check(&p, &with(&|c| c["nbf"] = json!(NOW + 3600)))
            .await
            .unwrap_err(),
        inv("Jwt not yet valid")
    );
    assert_eq!(
        check(&p, &with(&|c| c["iat"] = json!(NOW + 3600)))
            .await
            .unwrap_err(),
        inv("Jwt not yet valid")
    );
    assert_eq!(
        check(
            &p,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })
        )
        .await
        .unwrap_err(),
        inv("Jwt is expired")
    );
    assert_eq!(
        check(&p, &with(&|c| c["aud"] = json!("other")))
            .await
            .unwrap_err(),
        AuthFailure::AudienceNotAllowed
    );
    assert_eq!(
        check(
            &p,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })
        )
        .await
        .unwrap_err(),
        AuthFailure::AudienceNotAllowed
    );
    // Tampered payload: same signature, different claims.
    let good = k.sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["sub"] = json!("mallory");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(c.to_string()),
        parts[2]
    );
    assert_eq!(
        check(&p, &tampered).await.unwrap_err(),
        inv("Jwt verification fails")
    );
    // Unknown kid with an inline JWKS: no refetch possible.
    let other = TestKey::rsa("zz", RSA_B, "RS256");
    assert_eq!(
        check(&p, &other.sign(&claims())).await.unwrap_err(),
        inv("Jwks doesn't have key to match kid or alg from Jwt")
    );
    // No kid: any key of the right type is tried.
    let no_kid = sign_with(&json!({"alg":"RS256"}), &claims(), |m| k.raw_sign(m));
    assert!(check(&p, &no_kid).await.is_ok());
    // alg none.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    assert_eq!(
        parse::parse(&none).unwrap_err(),
        "Jwt header [alg] is not supported"
    );
}

#[tokio::test]
async fn service_account_principal() {
    let k = TestKey::rsa("k", RSA_A, "RS256");
    let p = provider_with(&[&k], ProviderKind::ServiceAccount);
    // The shape of seed 002's `kubectl create token … --audience=…` token.
    let c = json!({
        "aud": ["models"], "exp": NOW + 3600, "iat": NOW, "nbf": NOW, "iss": ISS,
        "jti": "bd559fe1-3f81-42cd-aa1f-06402a3cdb3c",
        "kubernetes.io": {"namespace": "kubeflow-test-test-com", "serviceaccount": {"name": "default-editor", "uid": "b86ab207"}},
        "sub": "system:serviceaccount:kubeflow-test-test-com:default-editor"
    });
    let who = check(&p, &k.sign(&c)).await.unwrap();
    assert_eq!(
        who.name,
        "system:serviceaccount:kubeflow-test-test-com:default-editor"
    );
    assert_eq!(who.namespace.as_deref(), Some("kubeflow-test-test-com"));
    assert!(
        who.groups
            .contains(&"system:serviceaccounts:kubeflow-test-test-com".to_string())
    );
    assert_eq!(
        claim_value(
            who.claims.as_ref().unwrap(),
            "kubernetes.io.serviceaccount.name"
        )
        .as_deref(),
        Some("default-editor")
    );
}

#[test]
fn claim_extraction() {
    let c = json!({"sub":"u","n":3,"b":true,"groups":["a"],"a":{"b":{"c":"deep"}},"x.y":"dotted","o":{}});
    let m = c.as_object().unwrap();
    assert_eq!(claim_value(m, "sub").as_deref(), Some("u"));
    assert_eq!(claim_value(m, "n").as_deref(), Some("3"));
    assert_eq!(claim_value(m, "b").as_deref(), Some("true"));
    assert_eq!(claim_value(m, "groups"), None);
    assert_eq!(claim_value(m, "o"), None);
    assert_eq!(claim_value(m, "a.b.c").as_deref(), Some("deep"));
    assert_eq!(claim_value(m, "x.y").as_deref(), Some("dotted"));
    assert_eq!(claim_value(m, "missing"), None);
    assert_eq!(
        service_account_namespace("system:serviceaccount:ns:sa").as_deref(),
        Some("ns")
    );
    assert_eq!(service_account_namespace("alice"), None);
}

#[test]
fn jwks_documents() {
    use keys::KeySet;
    assert_eq!(
        KeySet::parse(b"nope").unwrap_err(),
        "Jwks is an invalid JSON"
    );
    assert_eq!(
        KeySet::parse(b"{}").unwrap_err(),
        "Jwks does not have [keys] field"
    );
    assert_eq!(
        KeySet::parse(br#"{"keys":{}}"#).unwrap_err(),
        "[keys] in Jwks is not an array"
    );
    assert_eq!(
        KeySet::parse(br#"{"keys":[]}"#).unwrap_err(),
        "Jwks doesn't have any valid public key"
    );
    // Encryption keys, HMAC keys and short RSA moduli are left out.
    let ks = KeySet::parse(
        br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#,
    );
    assert!(ks.is_err());
    let k = TestKey::ec("e", "ES256");
    let mut enc = k.jwk();
    enc["use"] = json!("enc");
    let doc = json!({"keys":[enc, k.jwk()]}).to_string();
    assert_eq!(KeySet::parse(doc.as_bytes()).unwrap().len(), 1);
}

/// Verify cost with cached keys (parse + times + audience + signature):
/// `cargo test -p modelgate-authn --release --lib verify_cost -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn verify_cost() {
    let keys = [
        TestKey::rsa("rs", RSA_A, "RS256"),
        TestKey::ec("es", "ES256"),
        TestKey::ed("ed"),
    ];
    let p = provider_with(&keys.iter().collect::<Vec<_>>(), ProviderKind::Jwt);
    for k in &keys {
        let t = k.sign(&claims());
        let n = 3000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            check(&p, &t).await.unwrap();
        }
        let per = start.elapsed() / n;
        println!(
            "{}: {:.1} µs per verified token ({} tokens)",
            k.alg(),
            per.as_secs_f64() * 1e6,
            n
        );
    }
}

#[tokio::test]
async fn cached_tokens_still_expire() {
    let k = TestKey::rsa("rs", RSA_A, "RS256");
    let p = provider_with(&[&k], ProviderKind::Jwt);
    let token = k.sign(&claims());
    assert_eq!(p.verify_token(&token, now()).await.unwrap().name, "alice");
    // Verified once, served from the cache, and still checked for time.
    assert_eq!(p.verify_token(&token, now()).await.unwrap().name, "alice");
    let later = now() + Duration::from_secs(300 + 61);
    assert_eq!(
        p.verify_token(&token, later).await.unwrap_err(),
        inv("Jwt is expired")
    );
    // A different (tampered) token is not a cache hit.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(p.verify_token(&tampered, now()).await.is_err());
}

#[tokio::test]
async fn cached_tokens_die_with_their_keys() {
    use std::sync::Arc as StdArc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let old = TestKey::rsa("old", RSA_A, "RS256");
    let new = TestKey::rsa("new", RSA_B, "RS256");
    let rotated = StdArc::new(AtomicBool::new(false));
    let (before, after) = (jwks(&[&old]), jwks(&[&new]));
    let flag = rotated.clone();
    let fetch = FakeFetch::new(move |_| {
        ok(if flag.load(Ordering::SeqCst) {
            after.clone()
        } else {
            before.clone()
        })
    });
    let source = JwksSource::Uri("http://idp.test/jwks".parse().unwrap());
    let settings = JwksSettings {
        issuer: ISS.into(),
        source: source.clone(),
        allowed_hosts: vec!["idp.test".into()],
        timeout: Duration::from_secs(5),
        refresh_interval: Duration::from_secs(1200),
        unknown_kid_refetch_interval: Duration::from_secs(30),
    };
    let cache = JwksCache::new(settings, fetch, IdentityMetrics::default()).unwrap();
    let p = Provider {
        rule: rule(source),
        kind: ProviderKind::Jwt,
        keys: cache,
        verified: Default::default(),
    };
    let token = old.sign(&claims());
    assert!(p.verify_token(&token, now()).await.is_ok());
    // The IdP rotates its keys; a refresh replaces the key set: the cached
    // verification made with the old set no longer counts.
    rotated.store(true, Ordering::SeqCst);
    assert!(p.keys.refresh().await);
    assert_eq!(
        p.verify_token(&token, now()).await.unwrap_err(),
        inv("Jwks doesn't have key to match kid or alg from Jwt")
    );
    assert!(p.verify_token(&new.sign(&claims()), now()).await.is_ok());
}

/// RFC 7515 §4.1.11: a correctly signed token whose header names a critical
/// extension modelgate does not understand is refused, however valid the
/// signature and claims.
#[tokio::test]
async fn signed_token_with_crit_is_refused() {
    let k = TestKey::rsa("rs", RSA_A, "RS256");
    let p = provider_with(&[&k], ProviderKind::Jwt);
    let plain = json!({"alg": "RS256", "kid": "rs", "typ": "JWT"});
    let good = sign_with(&plain, &claims(), |m| k.raw_sign(m));
    assert!(p.verify_token(&good, now()).await.is_ok());
    for crit in [
        json!(["b64"]),
        json!(["http://example.com/ext"]),
        json!([]),
        json!("b64"),
    ] {
        let header = json!({"alg": "RS256", "kid": "rs", "b64": false, "crit": crit});
        let token = sign_with(&header, &claims(), |m| k.raw_sign(m));
        assert_eq!(
            p.verify_token(&token, now()).await.unwrap_err(),
            inv(status::HEADER_BAD_CRIT),
            "{crit}"
        );
    }
}

/// Only verified tokens enter the cache: 20,000 garbage tokens (malformed or
/// badly signed) leave the good one cached and the cache holding only it.
#[tokio::test]
async fn garbage_tokens_never_enter_the_verified_cache() {
    let k = TestKey::ec("es", "ES256");
    let p = provider_with(&[&k], ProviderKind::Jwt);
    let good = k.sign(&claims());
    assert!(p.verify_token(&good, now()).await.is_ok());
    let (head, _) = good.rsplit_once('.').unwrap();
    for n in 0..20_000u32 {
        let garbage = if n % 20 == 0 {
            format!("{head}.{}", URL_SAFE_NO_PAD.encode(n.to_be_bytes()))
        } else {
            format!("garbage.{n}.x")
        };
        assert!(p.verify_token(&garbage, now()).await.is_err());
    }
    assert_eq!(p.verified.len(), 1);
    assert!(p.verified.get(&good).is_some());
}

/// A hit in the verified-token cache needs the whole token, byte for byte:
/// a token that differs from a cached one in any byte is checked afresh (and
/// refused when its signature or claims are wrong), never served the cached
/// principal, and the cached token stays cached.
#[tokio::test]
async fn a_token_one_byte_off_a_cached_one_is_checked_afresh() {
    let k = TestKey::ec("es", "ES256");
    let p = provider_with(&[&k], ProviderKind::Jwt);
    let good = k.sign(&claims());
    assert!(p.verify_token(&good, now()).await.is_ok());
    assert!(p.verify_token(&good, now()).await.is_ok());
    for at in [good.len() - 2, good.len() / 2, 10] {
        let mut bytes = good.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bytes).unwrap();
        assert!(!p.verified.holds(&bad), "byte {at}");
        assert!(p.verify_token(&bad, now()).await.is_err(), "byte {at}");
    }
    assert!(p.verified.holds(&good));
    assert_eq!(p.verified.len(), 1);
}

/// Attack: the table hashes only a token's tail (its signature's end), so a
/// forged token that reuses a cached token's signature lands in the cached
/// token's bucket. It must still be checked afresh and refused: a payload
/// with another subject or more audiences under a copied signature, a token
/// that is the cached one with bytes prepended, and a cached token's
/// signature alone. The genuine entry survives every attempt.
#[tokio::test]
async fn a_forged_token_sharing_a_cached_signature_is_refused() {
    let k = TestKey::ec("es", "ES256");
    let p = provider_with(&[&k], ProviderKind::Jwt);
    let good = k.sign(&claims());
    let want = p.verify_token(&good, now()).await.unwrap();
    let (_, sig) = good.rsplit_once('.').unwrap();
    let mut admin = claims();
    admin["sub"] = json!("admin");
    admin["aud"] = json!(["everything"]);
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).unwrap());
    let (head, _) = good.split_once('.').unwrap();
    let attempts = [
        format!("{head}.{forged_payload}.{sig}"),
        format!("x{good}"),
        format!("{head}..{sig}"),
        sig.to_string(),
    ];
    for forged in &attempts {
        assert_eq!(
            super::verified::HASHED_TAIL.min(forged.len()),
            super::verified::HASHED_TAIL.min(good.len()),
            "the forgery shares the cached token's hashed tail"
        );
        assert!(forged.ends_with(&good[good.len() - super::verified::HASHED_TAIL..]));
        assert!(!p.verified.holds(forged), "{forged}");
        assert!(p.verify_token(forged, now()).await.is_err(), "{forged}");
        assert!(
            p.verified.holds(&good),
            "the genuine entry was evicted by {forged}"
        );
    }
    assert_eq!(p.verified.len(), 1);
    let again = p.verify_token(&good, now()).await.unwrap();
    assert!(Arc::ptr_eq(&want, &again), "served from the cache");
}

/// Tokens of any length are cached by their bytes: one shorter than the
/// hashed tail, and one of 60 KiB (a header's worth), each hit only by itself.
#[test]
fn short_and_long_tokens_are_cached_by_their_bytes() {
    let cache = super::verified::VerifiedCache::default();
    let v = |name: &str| super::verified::Verified {
        principal: Arc::new(modelgate_core::Principal::api_key(
            name,
            modelgate_core::Grants::Nothing,
        )),
        keys: None,
        times: super::claims::Times::default(),
    };
    let long = "a".repeat(60 * 1024);
    let long_other = format!("b{}", &long[1..]);
    cache.put("ab.c", v("short"));
    cache.put(&long, v("long"));
    assert_eq!(cache.get("ab.c").unwrap().principal.name, "short");
    assert_eq!(cache.get(&long).unwrap().principal.name, "long");
    assert!(cache.get("ab.").is_none());
    assert!(cache.get(&long_other).is_none());
    assert_eq!(cache.len(), 2);
}
