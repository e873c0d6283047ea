//! TokenReview against a scripted API server.

use std::time::{Duration, SystemTime};

use modelgate_config::identity::TokenReview;
use modelgate_core::{AuthFailure, AuthMethod};

use super::*;
use crate::fetch::fake::{FakeFetch, ok};

fn cfg(token_file: &std::path::Path, audiences: &[&str]) -> TokenReview {
    TokenReview {
        api_server: "https://127.0.0.1:6443".parse().unwrap(),
        ca_file: None,
        token_file: Some(token_file.into()),
        audiences: audiences.iter().map(|s| s.to_string()).collect(),
        cache_ttl: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(start_paused = true)]
async fn reviews_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    std::fs::write(&tf, "gateway-token\n").unwrap();
    let f = FakeFetch::new(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let ok_token = body["spec"]["token"] == "sa-token";
        let status = if ok_token {
            json!({"authenticated": true, "audiences": body["spec"]["audiences"], "user": {"username": "system:serviceaccount:team-a:scorer", "uid": "1", "groups": ["system:serviceaccounts", "system:serviceaccounts:team-a"]}})
        } else {
            json!({"authenticated": false, "error": "invalid bearer token"})
        };
        Ok(crate::fetch::HttpResponse {
            status: 201,
            body: json!({"kind": "TokenReview", "status": status})
                .to_string()
                .into(),
        })
    });
    let r =
        TokenReviewer::new(cfg(&tf, &["models"]), f.clone(), IdentityMetrics::default()).unwrap();
    let who = r.verify("sa-token", SystemTime::now()).await.unwrap();
    assert_eq!(who.method, AuthMethod::KubernetesTokenReview);
    assert_eq!(who.name, "system:serviceaccount:team-a:scorer");
    assert_eq!(who.namespace.as_deref(), Some("team-a"));
    let (uri, auth, body) = f.seen.lock().unwrap()[0].clone();
    assert_eq!(
        uri,
        "https://127.0.0.1:6443/apis/authentication.k8s.io/v1/tokenreviews"
    );
    assert_eq!(auth, "Bearer gateway-token");
    assert!(body.contains(r#""audiences":["models"]"#));
    assert_eq!(
        r.verify("nope", SystemTime::now()).await.unwrap_err(),
        AuthFailure::InvalidToken(NOT_AUTHENTICATED.into())
    );
    r.verify("sa-token", SystemTime::now()).await.unwrap();
    assert_eq!(f.calls(), 2, "cached");
    tokio::time::advance(Duration::from_secs(11)).await;
    r.verify("sa-token", SystemTime::now()).await.unwrap();
    assert_eq!(f.calls(), 3, "cache expired");
}

#[tokio::test(start_paused = true)]
async fn audience_and_outage() {
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    std::fs::write(&tf, "gateway-token").unwrap();
    let f = FakeFetch::new(|_| {
        ok(json!({"status": {"authenticated": true, "audiences": ["other"], "user": {"username": "u"}}}).to_string())
    });
    let r =
        TokenReviewer::new(cfg(&tf, &["models"]), f.clone(), IdentityMetrics::default()).unwrap();
    assert_eq!(
        r.verify("t", SystemTime::now()).await.unwrap_err(),
        AuthFailure::AudienceNotAllowed
    );
    f.set(|_| {
        Ok(crate::fetch::HttpResponse {
            status: 403,
            body: "forbidden".into(),
        })
    });
    let r = TokenReviewer::new(cfg(&tf, &[]), f.clone(), IdentityMetrics::default()).unwrap();
    assert_eq!(
        r.verify("t2", SystemTime::now()).await.unwrap_err(),
        AuthFailure::Unavailable(UNAVAILABLE.into())
    );
}
