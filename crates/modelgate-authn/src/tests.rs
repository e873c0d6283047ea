//! Method ordering and token routing through [`Authenticator::authenticate`].

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use modelgate_config::identity::{CertIdentityField, IdentityMethod, JwksSource, MtlsIdentity};
use modelgate_core::{AuthFailure, AuthMethod, PeerIdentity, RequestFacts};
use serde_json::json;

use super::*;
use crate::fetch::fake::{FakeFetch, ok};
use crate::jwt::testkeys::{RSA_A, TestKey, jwks};

const ISS: &str = "https://idp.test";
const K8S: &str = "https://kubernetes.default.svc.cluster.local";

fn facts(
    headers: &[(&'static str, String)],
    query: Option<&str>,
    peer: Option<PeerIdentity>,
) -> RequestFacts {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    RequestFacts {
        request_id: "r".into(),
        method: Method::POST,
        path: "/v2/models/iris/infer".into(),
        query: query.map(str::to_string),
        host: None,
        headers: h,
        client: a,
        local: a,
        peer,
        received: Instant::now(),
        grpc: false,
    }
}

fn sources() -> Vec<CredentialSource> {
    vec![
        CredentialSource::AuthorizationHeader {
            scheme: "Bearer".into(),
        },
        CredentialSource::Header {
            name: HeaderName::from_static("x-api-key"),
        },
    ]
}

fn config(key: &TestKey, order: Option<&str>) -> modelgate_config::Config {
    let text = format!(
        r#"
listen: {{address: "127.0.0.1:8080"}}
models: [{{name: iris, upstream: {{url: "http://127.0.0.1:9"}}}}]
auth:
  {order}
  jwt:
    - issuer: {ISS}
      audiences: [models]
      jwks: '{jwks}'
      output_claim_to_headers: [{{header: kubeflow-userid, claim: sub}}]
      output_payload_to_header: x-jwt-payload
  kubernetes:
    service_account_tokens:
      jwks: '{jwks}'
  introspection:
    endpoint: http://idp.test/introspect
    client_id: modelgate
    client_secret: secret
  mtls: {{identity_from: [uri]}}
"#,
        order = order.map(|o| format!("order: {o}")).unwrap_or_default(),
        jwks = jwks(&[key]),
    );
    modelgate_config::parse_str(&text, "t.yaml", Path::new("/tmp"), &|_| None).unwrap()
}

fn build(key: &TestKey, order: Option<&str>, fetch: Arc<FakeFetch>) -> Authenticator {
    let cfg = config(key, order);
    let f = move |_: Option<&Path>| Ok(fetch.clone() as Arc<dyn Fetch>);
    Authenticator::build(&cfg.auth, None, &IdentityMetrics::default(), None, &f).unwrap()
}

fn claims(iss: &str, sub: &str) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"iss": iss, "sub": sub, "aud": "models", "exp": now + 300, "iat": now})
}

fn introspection_fetch() -> Arc<FakeFetch> {
    FakeFetch::new(|r| {
        if String::from_utf8_lossy(&r.body).contains("token=opaque-good") {
            ok(r#"{"active":true,"sub":"bob"}"#)
        } else {
            ok(r#"{"active":false}"#)
        }
    })
}

#[tokio::test]
async fn tokens_go_to_the_method_that_fits() {
    let k = TestKey::rsa("k", RSA_A, "RS256");
    let a = build(&k, None, introspection_fetch());
    assert_eq!(
        a.order,
        [
            IdentityMethod::Jwt,
            IdentityMethod::Kubernetes,
            IdentityMethod::Introspection,
            IdentityMethod::Mtls
        ]
    );
    let bearer = |t: &str| facts(&[("authorization", format!("Bearer {t}"))], None, None);
    let who = a
        .authenticate(
            &bearer(&k.sign(&claims(ISS, "alice"))),
            &sources(),
            SystemTime::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        (who.principal().method, who.principal().name.as_str()),
        (AuthMethod::Jwt, "alice")
    );
    let sa = k.sign(&claims(K8S, "system:serviceaccount:ns1:runner"));
    let who = a
        .authenticate(&bearer(&sa), &sources(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(who.principal().namespace.as_deref(), Some("ns1"));
    let who = a
        .authenticate(&bearer("opaque-good"), &sources(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(who.principal().method, AuthMethod::Introspection);
    // Present but invalid: refused even though mTLS would have matched.
    let peer = PeerIdentity {
        uris: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
        ..Default::default()
    };
    let f = facts(
        &[("authorization", "Bearer opaque-bad".into())],
        None,
        Some(peer.clone()),
    );
    assert!(matches!(
        a.authenticate(&f, &sources(), SystemTime::now()).await,
        Err(AuthFailure::InvalidToken(_))
    ));
    // A token nobody takes, next to a good certificate: still a bad credential.
    let a2 = {
        let cfg = config(&k, None);
        let mut auth = cfg.auth.clone();
        auth.identity.order = vec![IdentityMethod::Jwt, IdentityMethod::Mtls];
        let f = |_: Option<&Path>| Ok(FakeFetch::new(|_| ok("{}")) as Arc<dyn Fetch>);
        Authenticator::build(&auth, None, &IdentityMetrics::default(), None, &f).unwrap()
    };
    let peer2 = PeerIdentity {
        uris: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
        ..Default::default()
    };
    let f = facts(
        &[("authorization", "Bearer x.y.z".into())],
        None,
        Some(peer2),
    );
    assert!(matches!(
        a2.authenticate(&f, &sources(), SystemTime::now()).await,
        Err(AuthFailure::InvalidToken(_))
    ));
    // No token at all: the certificate is the identity.
    let who = a
        .authenticate(&facts(&[], None, Some(peer)), &sources(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(who.principal().name, "cluster.local/ns/a/sa/b");
    // Nothing: CredentialNotFound, for the anonymous path.
    assert_eq!(
        a.authenticate(&facts(&[], None, None), &sources(), SystemTime::now())
            .await
            .unwrap_err(),
        AuthFailure::CredentialNotFound
    );
    // An API key with no key store configured.
    assert_eq!(
        a.authenticate(&bearer("mgk_abcdefghijkl_x"), &sources(), SystemTime::now())
            .await
            .unwrap_err(),
        AuthFailure::InvalidApiKey
    );
}

#[tokio::test]
async fn order_decides_and_unclaimed_tokens_get_envoy_statuses() {
    let k = TestKey::rsa("k", RSA_A, "RS256");
    let cfg = config(&k, None);
    let mut auth = cfg.auth.clone();
    auth.identity.order = vec![IdentityMethod::Mtls, IdentityMethod::Jwt];
    let f = |_: Option<&Path>| Ok(FakeFetch::new(|_| ok("{}")) as Arc<dyn Fetch>);
    let a = Authenticator::build(&auth, None, &IdentityMetrics::default(), None, &f).unwrap();
    let peer = PeerIdentity {
        uris: vec!["spiffe://td/ns/a/sa/b".into()],
        ..Default::default()
    };
    let token = k.sign(&claims(ISS, "alice"));
    let both = facts(
        &[("authorization", format!("Bearer {token}"))],
        None,
        Some(peer),
    );
    assert_eq!(
        a.authenticate(&both, &sources(), SystemTime::now())
            .await
            .unwrap()
            .principal()
            .method,
        AuthMethod::Mtls
    );
    let bearer = |t: &str| facts(&[("authorization", format!("Bearer {t}"))], None, None);
    let a = &a;
    let e = |t: String| async move {
        a.authenticate(&bearer(&t), &sources(), SystemTime::now())
            .await
            .unwrap_err()
    };
    assert_eq!(
        e(k.sign(&claims("https://other", "x"))).await,
        AuthFailure::InvalidToken("Jwt issuer is not configured".into())
    );
    assert_eq!(
        e("garbage".into()).await,
        AuthFailure::InvalidToken(
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
                .into()
        )
    );
    assert_eq!(
        e("%%%.e30.x".into()).await,
        AuthFailure::InvalidToken("Jwt header is an invalid Base64url encoded".into())
    );
    // Kubernetes is not in this order: its tokens are unclaimed.
    assert_eq!(
        e(k.sign(&claims(K8S, "system:serviceaccount:a:b"))).await,
        AuthFailure::InvalidToken("Jwt issuer is not configured".into())
    );
    // Header and query: one token is fine, two different ones are not.
    let ok_both = facts(
        &[("authorization", format!("Bearer {token}"))],
        Some(&format!("access_token={token}")),
        None,
    );
    assert!(
        a.authenticate(&ok_both, &sources(), SystemTime::now())
            .await
            .is_ok()
    );
    let q = facts(&[], Some(&format!("x=1&access_token={token}")), None);
    assert!(
        a.authenticate(&q, &sources(), SystemTime::now())
            .await
            .is_ok()
    );
    let two = facts(
        &[("authorization", format!("Bearer {token}"))],
        Some("access_token=other"),
        None,
    );
    assert_eq!(
        a.authenticate(&two, &sources(), SystemTime::now())
            .await
            .unwrap_err(),
        AuthFailure::InvalidToken("Found multiple Jwt tokens".into())
    );
}

#[tokio::test]
async fn forward_plan_outputs_claims_and_strips_tokens() {
    let k = TestKey::rsa("k", RSA_A, "RS256");
    let a = build(&k, None, introspection_fetch());
    assert_eq!(
        a.output_headers()
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>(),
        ["kubeflow-userid", "x-jwt-payload"]
    );
    let token = k.sign(&claims(ISS, "alice"));
    let f = facts(&[("authorization", format!("Bearer {token}"))], None, None);
    let who = a
        .authenticate(&f, &sources(), SystemTime::now())
        .await
        .unwrap();
    let plan = a.forward_plan(Some(who.principal()));
    assert!(!plan.keep_token);
    assert_eq!(
        plan.add_headers[0],
        (
            HeaderName::from_static("kubeflow-userid"),
            HeaderValue::from_static("alice")
        )
    );
    let payload = URL_SAFE_NO_PAD
        .decode(plan.add_headers[1].1.as_bytes())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["sub"],
        "alice"
    );
    let mut h = HeaderMap::new();
    assert_eq!(
        a.strip_token_params(&plan, Some(format!("a=1&access_token={token}")), &mut h)
            .as_deref(),
        Some("a=1")
    );
    assert_eq!(a.token_headers(), [http::header::AUTHORIZATION]);
    let _ = (
        JwksSource::Inline(String::new()),
        MtlsIdentity {
            identity_from: vec![CertIdentityField::Uri],
        },
        Duration::ZERO,
    );
}

use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[tokio::test]
async fn a_verified_token_is_routed_by_its_cache_entry_as_by_its_issuer() {
    let k = TestKey::rsa("k", RSA_A, "RS256");
    let a = build(&k, None, introspection_fetch());
    let bearer = |t: &str| facts(&[("authorization", format!("Bearer {t}"))], None, None);
    let user = bearer(&k.sign(&claims(ISS, "alice")));
    let sa = bearer(&k.sign(&claims(K8S, "system:serviceaccount:a:b")));
    let now = SystemTime::now();
    let who = |r: Result<Authenticated, AuthFailure>| {
        r.map(|a| (a.principal().name.clone(), a.principal().method))
    };
    for f in [&user, &sa] {
        let first = who(a.authenticate(f, &sources(), now).await);
        assert!(first.is_ok(), "{first:?}");
        // Now cached by exactly one provider: the one its issuer names.
        let Some(t) = f.headers["authorization"]
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
        else {
            panic!("no bearer token");
        };
        assert_eq!(
            a.providers.iter().filter(|p| p.verified_before(t)).count(),
            1
        );
        assert_eq!(who(a.authenticate(f, &sources(), now).await), first);
    }
    assert_ne!(
        who(a.authenticate(&user, &sources(), now).await),
        who(a.authenticate(&sa, &sources(), now).await)
    );
    // Expired since: the cached path refuses it as a fresh authenticator does.
    let later = now + Duration::from_secs(3600);
    let fresh = build(&k, None, introspection_fetch());
    for f in [&user, &sa] {
        let cached = a.authenticate(f, &sources(), later).await.unwrap_err();
        assert_eq!(
            cached,
            fresh.authenticate(f, &sources(), later).await.unwrap_err()
        );
    }
}
