//! The sign-in flow against a scripted IdP: state single use, nonce and
//! audience checks, and session cookies that are tampered, expired or revoked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use modelgate_config::identity::{
    CookieSecure, JwksSource, JwtRule, RedirectTarget, SessionCookie, SessionKey, SignIn,
};
use modelgate_core::Secret;
use serde_json::json;

use super::flow::{SignInError, query_params};
use super::*;
use crate::fetch::fake::{FakeFetch, ok};
use crate::jwks::{JwksCache, JwksSettings};
use crate::jwt::testkeys::{RSA_A, RSA_B, TestKey, jwks};
use crate::jwt::{Provider, ProviderKind};
use crate::metrics::IdentityMetrics;

const ISS: &str = "https://idp.test";
const NOW: u64 = 1_750_000_000;

fn sign_in(lifetime: u64) -> SignIn {
    SignIn {
        issuer: ISS.into(),
        client_id: "web".into(),
        client_secret: Secret::new("s3cret"),
        redirect_path: "/oauth2/callback".into(),
        login_path: "/oauth2/start".into(),
        logout_path: "/oauth2/sign_out".into(),
        landing_path: "/".into(),
        cookie: SessionCookie {
            name: "authservice_session".into(),
            key: SessionKey([9; 32]),
            lifetime: Duration::from_secs(lifetime),
            secure: CookieSecure::Auto,
        },
        scopes: vec!["openid".into(), "email".into()],
        allowed_redirects: vec![RedirectTarget::Path("/".into())],
        timeout: Duration::from_secs(5),
        flow_lifetime: Duration::from_secs(600),
    }
}

fn provider(key: &TestKey) -> Provider {
    let source = JwksSource::Inline(jwks(&[key]));
    let rule = JwtRule {
        issuer: ISS.into(),
        audiences: vec!["models".into()],
        keys: source.clone(),
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
    };
    let settings = JwksSettings {
        issuer: ISS.into(),
        source,
        allowed_hosts: vec![],
        timeout: rule.timeout,
        refresh_interval: Duration::from_secs(1200),
        unknown_kid_refetch_interval: Duration::from_secs(30),
    };
    let keys = JwksCache::new(
        settings,
        FakeFetch::new(|_| ok("{}")),
        IdentityMetrics::default(),
    )
    .unwrap();
    Provider {
        rule,
        kind: ProviderKind::Jwt,
        keys,
        verified: Default::default(),
    }
}

/// A scripted IdP: discovery, and a token endpoint that answers with the ID
/// token `id_token(nonce)` makes.
struct Idp {
    sessions: Sessions,
    nonce: Arc<Mutex<String>>,
}

fn idp(lifetime: u64, id_token: impl Fn(&str) -> String + Send + 'static) -> Idp {
    let nonce = Arc::new(Mutex::new(String::new()));
    let seen = nonce.clone();
    let fetch = FakeFetch::new(move |req| {
        let uri = req.uri.to_string();
        if uri.ends_with("/.well-known/openid-configuration") {
            return ok(json!({
                "issuer": ISS,
                "authorization_endpoint": "https://idp.test/auth",
                "token_endpoint": "https://idp.test/token",
                "end_session_endpoint": "https://idp.test/session/end",
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            })
            .to_string());
        }
        assert_eq!(uri, "https://idp.test/token");
        let body = String::from_utf8_lossy(&req.body).to_string();
        assert!(
            (body.contains("grant_type=authorization_code") && body.contains("code_verifier="))
                || body.contains("grant_type=refresh_token&refresh_token=rt-1"),
            "{body}"
        );
        assert!(
            req.headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        let n = seen.lock().unwrap().clone();
        ok(
            json!({"id_token": id_token(&n), "token_type": "Bearer", "refresh_token": "rt-1"})
                .to_string(),
        )
    });
    let sessions = Sessions::new(sign_in(lifetime), fetch, vec!["idp.test".into()], None).unwrap();
    Idp { sessions, nonce }
}

fn good_token(key: &TestKey) -> impl Fn(&str) -> String + use<> {
    let key = TestKey::rsa("a", RSA_A, key.alg());
    move |nonce| {
        key.sign(
            &json!({"iss": ISS, "sub": "alice", "aud": "web", "exp": NOW + 300, "iat": NOW,
                         "nonce": nonce, "email": "alice@example.com", "groups": ["ml"]}),
        )
    }
}

fn cookie_header(set_cookies: &[String]) -> HeaderMap {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .collect();
    let mut h = HeaderMap::new();
    h.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&pairs.join("; ")).unwrap(),
    );
    h
}

/// Starts a flow; returns the state, the flow cookie header, and records the nonce.
async fn start(i: &Idp) -> (String, HeaderMap) {
    let r = i
        .sessions
        .start(
            Some("/v1/models/x:predict"),
            "http://gw/oauth2/callback",
            NOW,
            false,
        )
        .await
        .unwrap();
    let q = r.location.split_once('?').unwrap().1;
    let params = query_params(q);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert!(r.location.starts_with("https://idp.test/auth?"));
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("client_id"), "web");
    assert!(r.set_cookies[0].contains("HttpOnly") && r.set_cookies[0].contains("SameSite=Lax"));
    assert!(
        r.set_cookies[0].contains("Path=/oauth2/callback") && !r.set_cookies[0].contains("Secure")
    );
    *i.nonce.lock().unwrap() = get("nonce");
    (get("state"), cookie_header(&r.set_cookies))
}

#[tokio::test]
async fn full_flow_then_state_replay_is_refused() {
    let key = TestKey::rsa("a", RSA_A, "RS256");
    let i = idp(3600, good_token(&key));
    let p = provider(&key);
    let (state, flow) = start(&i).await;
    let q = format!("code=abc&state={state}");
    let done = i.sessions.finish(&p, &q, &flow, NOW, false).await.unwrap();
    assert_eq!(done.location, "/v1/models/x:predict");
    let session = cookie_header(&done.set_cookies[..1]);
    let s = i.sessions.session(&session, NOW + 10).unwrap().unwrap();
    assert_eq!(s.claims["sub"], "alice");
    assert_eq!(s.claims["groups"], json!(["ml"]));
    assert!(!s.claims.contains_key("nonce"));
    // The same callback again: refused before the IdP is asked.
    let again = i.sessions.finish(&p, &q, &flow, NOW + 1, false).await;
    assert!(matches!(again, Err(SignInError::BadRequest(m)) if m.contains("already used")));
    // A state that is not the flow's.
    let other = i
        .sessions
        .finish(&p, "code=abc&state=forged", &flow, NOW, false)
        .await;
    assert!(matches!(other, Err(SignInError::BadRequest(_))));
}

/// Makes an ID token from the flow's nonce.
type MakeToken = Box<dyn Fn(&str) -> String + Send>;

#[tokio::test]
async fn wrong_nonce_audience_or_key_is_refused() {
    let key = TestKey::rsa("a", RSA_A, "RS256");
    let cases: Vec<MakeToken> = vec![
        Box::new(|_n: &str| {
            TestKey::rsa("a", RSA_A, "RS256").sign(
                &json!({"iss": ISS, "sub": "a", "aud": "web", "exp": NOW + 300, "nonce": "other"}),
            )
        }),
        Box::new(|n: &str| {
            TestKey::rsa("a", RSA_A, "RS256").sign(&json!({"iss": ISS, "sub": "a", "aud": "another-client", "exp": NOW + 300, "nonce": n}))
        }),
        Box::new(|n: &str| {
            TestKey::rsa("a", RSA_B, "RS256")
                .sign(&json!({"iss": ISS, "sub": "a", "aud": "web", "exp": NOW + 300, "nonce": n}))
        }),
        Box::new(|n: &str| {
            TestKey::rsa("a", RSA_A, "RS256")
                .sign(&json!({"iss": ISS, "sub": "a", "aud": "web", "exp": NOW - 300, "nonce": n}))
        }),
    ];
    for (n, make) in cases.into_iter().enumerate() {
        let i = idp(3600, make);
        let (state, flow) = start(&i).await;
        let r = i
            .sessions
            .finish(
                &provider(&key),
                &format!("code=c&state={state}"),
                &flow,
                NOW,
                false,
            )
            .await;
        assert!(
            matches!(r, Err(SignInError::Idp(idp::IdpError::IdToken(_)))),
            "case {n}: {r:?}"
        );
    }
}

#[tokio::test]
async fn tampered_expired_and_revoked_sessions_fail() {
    let key = TestKey::rsa("a", RSA_A, "RS256");
    let i = idp(100, good_token(&key));
    let (state, flow) = start(&i).await;
    let done = i
        .sessions
        .finish(
            &provider(&key),
            &format!("code=c&state={state}"),
            &flow,
            NOW,
            false,
        )
        .await
        .unwrap();
    let value = done.set_cookies[0]
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let with = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&format!("other=1; authservice_session={v}")).unwrap(),
        );
        h
    };
    assert!(i.sessions.session(&with(&value), NOW + 1).unwrap().is_ok());
    // Tampered: one character changed.
    let mut t: Vec<char> = value.chars().collect();
    t[20] = if t[20] == 'A' { 'B' } else { 'A' };
    let tampered: String = t.into_iter().collect();
    assert!(
        i.sessions
            .session(&with(&tampered), NOW + 1)
            .unwrap()
            .is_err()
    );
    // The flow cookie's value is not a session.
    let flow_value = flow
        .get("cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert!(
        i.sessions
            .session(&with(&flow_value), NOW + 1)
            .unwrap()
            .is_err()
    );
    // Expired.
    assert!(
        i.sessions
            .session(&with(&value), NOW + 100)
            .unwrap()
            .is_err()
    );
    // A live session is not signed out without its token (a cross-site
    // form or a prefetch), nor with another session's token.
    let sid = i
        .sessions
        .session(&with(&value), NOW + 2)
        .unwrap()
        .unwrap()
        .sid;
    let token = i.sessions.sign_out_token(&sid);
    for wrong in [
        None,
        Some("x"),
        Some(i.sessions.sign_out_token("other").as_str()),
    ] {
        let r = i
            .sessions
            .sign_out(
                &with(&value),
                wrong,
                None,
                Some("http://gw.test"),
                NOW + 2,
                false,
            )
            .await;
        assert!(
            matches!(r, Err(SignInError::Forbidden(_))),
            "{wrong:?}: {r:?}"
        );
    }
    assert!(i.sessions.session(&with(&value), NOW + 2).unwrap().is_ok());
    // Revoked by sign-out, the cookie cleared, and the browser sent through
    // the IdP's end-session endpoint back to an allowed target only.
    let out = i
        .sessions
        .sign_out(
            &with(&value),
            Some(&token),
            Some("//evil"),
            Some("http://gw.test"),
            NOW + 2,
            false,
        )
        .await
        .unwrap();
    let end = out
        .location
        .strip_prefix("https://idp.test/session/end?id_token_hint=")
        .unwrap_or_else(|| panic!("{}", out.location));
    assert!(
        end.ends_with("&client_id=web&post_logout_redirect_uri=http%3A%2F%2Fgw.test%2F"),
        "{end}"
    );
    assert!(
        end.split('&').next().unwrap().split('.').count() == 3,
        "{end}"
    );
    assert!(
        out.set_cookies[0].starts_with("authservice_session=;")
            && out.set_cookies[0].contains("Max-Age=0")
    );
    assert!(i.sessions.session(&with(&value), NOW + 3).unwrap().is_err());
    // Without a live session there is no hint (and no token to check): the
    // dead cookie is cleared, straight to the landing page.
    let again = i
        .sessions
        .sign_out(
            &with(&value),
            None,
            None,
            Some("http://gw.test"),
            NOW + 3,
            false,
        )
        .await
        .unwrap();
    assert_eq!(again.location, "/");
    assert!(again.set_cookies[0].contains("Max-Age=0"));
    // Without any cookie nothing is cleared: a cross-site POST, which carries
    // no SameSite=Lax cookie, cannot end a session in the browser either.
    let none = i
        .sessions
        .sign_out(
            &HeaderMap::new(),
            None,
            None,
            Some("http://gw.test"),
            NOW + 3,
            false,
        )
        .await
        .unwrap();
    assert!(none.location == "/" && none.set_cookies.is_empty());
    // No cookie: not a session at all.
    assert!(i.sessions.session(&HeaderMap::new(), NOW).is_none());
}

#[test]
fn session_cookies_are_stripped_before_forwarding() {
    let i = idp(100, |_| String::new());
    let mut h = HeaderMap::new();
    h.insert(
        http::header::COOKIE,
        HeaderValue::from_static("a=1; authservice_session=x; authservice_session_flow=y; b=2"),
    );
    i.sessions.strip_cookies(&mut h);
    assert_eq!(h.get(http::header::COOKIE).unwrap(), "a=1; b=2");
}

#[tokio::test]
async fn expired_id_token_is_refreshed_within_the_session_lifetime() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let key = TestKey::rsa("a", RSA_A, "RS256");
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let subject = Arc::new(Mutex::new("alice".to_string()));
    let sub = subject.clone();
    let i = idp(3600, move |nonce| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let sub = sub.lock().unwrap().clone();
        TestKey::rsa("a", RSA_A, "RS256").sign(&json!({"iss": ISS, "sub": sub, "aud": "web",
            "exp": NOW + 300 + n * 1000, "iat": NOW, "nonce": nonce, "email": format!("v{n}@example.com")}))
    });
    let p = provider(&key);
    let (state, flow) = start(&i).await;
    let done = i
        .sessions
        .finish(&p, &format!("code=c&state={state}"), &flow, NOW, false)
        .await
        .unwrap();
    let session = cookie_header(&done.set_cookies[..1]);
    // ID token still valid: nothing to do.
    assert!(
        i.sessions
            .refresh(&p, &session, NOW + 100, false)
            .await
            .is_none()
    );
    // Expired ID token: NOW + 400 is past exp (NOW + 300), within the session.
    let Some(refresh::Refreshed::Renewed { value, set_cookie }) =
        i.sessions.refresh(&p, &session, NOW + 400, false).await
    else {
        panic!("not renewed");
    };
    assert!(set_cookie.starts_with("authservice_session=") && set_cookie.contains("Max-Age=3200"));
    let renewed = cookie_header(&[format!("authservice_session={value}")]);
    let s = i.sessions.session(&renewed, NOW + 400).unwrap().unwrap();
    assert_eq!(s.claims["email"], "v1@example.com");
    assert_eq!(s.exp, NOW + 3600, "a refresh never extends the session");
    // The IdP answers for another subject: the refresh fails.
    *subject.lock().unwrap() = "mallory".into();
    let later = cookie_header(&[format!("authservice_session={value}")]);
    assert!(matches!(
        i.sessions.refresh(&p, &later, NOW + 2000, false).await,
        Some(refresh::Refreshed::Failed)
    ));
}
