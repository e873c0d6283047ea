//! SubjectAccessReview against a scripted API server.

use std::sync::Arc;
use std::time::Duration;

use modelgate_config::identity::TokenReview;
use modelgate_config::kube_access::KubernetesAccess;
use modelgate_core::{AuthMethod, Grants, Principal};
use serde_json::{Value, json};

use super::*;
use crate::fetch::fake::{FakeFetch, ok};

fn cfg(token_file: &std::path::Path) -> TokenReview {
    TokenReview {
        api_server: "https://127.0.0.1:6443/".parse().unwrap(),
        ca_file: None,
        token_file: Some(token_file.into()),
        audiences: vec![],
        cache_ttl: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    }
}

fn iris() -> KubernetesAccess {
    KubernetesAccess {
        namespace: "models".into(),
        name: "iris".into(),
        verb: "get".into(),
        group: "serving.kserve.io".into(),
        resource: "inferenceservices".into(),
        subresource: None,
    }
}

fn who(method: AuthMethod, subject: &str) -> Principal {
    Principal {
        method,
        namespace: None,
        name: subject.into(),
        issuer: None,
        subject: subject.into(),
        audiences: vec![],
        presenter: None,
        groups: vec![],
        grants: Grants::Nothing,
        claims: None,
    }
}

/// Allows `system:serviceaccount:models:scorer` only.
fn api_server() -> Arc<FakeFetch> {
    FakeFetch::new(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let allowed = body["spec"]["user"] == "system:serviceaccount:models:scorer";
        ok(
            json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "status": {"allowed": allowed, "reason": "stub"}})
            .to_string(),
        )
    })
}

fn token() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    std::fs::write(&tf, "gateway-token\n").unwrap();
    (dir, tf)
}

#[tokio::test]
async fn sends_the_real_shape_and_caches() {
    let (_d, tf) = token();
    let f = api_server();
    let r = AccessReviewer::new(cfg(&tf), f.clone(), IdentityMetrics::default()).unwrap();
    let sa = who(AuthMethod::Jwt, "system:serviceaccount:models:scorer");
    assert_eq!(r.review(&sa, &iris()).await, Ok(()));
    let (uri, auth, body) = f.seen.lock().unwrap()[0].clone();
    assert_eq!(
        uri,
        "https://127.0.0.1:6443/apis/authorization.k8s.io/v1/subjectaccessreviews"
    );
    assert_eq!(auth, "Bearer gateway-token");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["kind"], "SubjectAccessReview");
    assert_eq!(body["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(
        body["spec"]["resourceAttributes"],
        json!({"namespace": "models", "verb": "get", "group": "serving.kserve.io",
               "resource": "inferenceservices", "name": "iris"})
    );
    let groups = body["spec"]["groups"].as_array().unwrap();
    assert!(groups.contains(&json!("system:serviceaccounts:models")));
    assert_eq!(r.review(&sa, &iris()).await, Ok(()));
    assert_eq!(f.calls(), 1, "the second review is cached");
}

#[tokio::test]
async fn denied_unavailable_and_not_kubernetes() {
    let (_d, tf) = token();
    let f = api_server();
    let r = AccessReviewer::new(cfg(&tf), f.clone(), IdentityMetrics::default()).unwrap();
    let other = who(
        AuthMethod::KubernetesTokenReview,
        "system:serviceaccount:other:x",
    );
    assert!(matches!(
        r.review(&other, &iris()).await,
        Err(AccessRefusal::Denied(_))
    ));
    let key = who(AuthMethod::ApiKey, "team-a");
    assert_eq!(
        r.review(&key, &iris()).await,
        Err(AccessRefusal::NotKubernetes)
    );
    assert_eq!(f.calls(), 1, "an API key never reaches the API server");
    f.set(|_| Err("connection refused".into()));
    let sa = who(AuthMethod::Jwt, "system:serviceaccount:models:scorer");
    assert_eq!(
        r.review(&sa, &iris()).await,
        Err(AccessRefusal::Unavailable)
    );
    f.set(|_| ok("{\"kind\": \"Status\"}"));
    assert_eq!(
        r.review(&sa, &iris()).await,
        Err(AccessRefusal::Unavailable),
        "no status: fail closed, not cached as allowed"
    );
}

#[test]
fn only_the_boolean_true_allows() {
    assert_eq!(judge(&json!({"allowed": true})), Ok(()));
    assert!(judge(&json!({"allowed": "true"})).is_err());
    assert!(judge(&json!({"allowed": true, "denied": true})).is_err());
    assert!(judge(&json!({})).is_err());
}

#[tokio::test]
async fn fifty_concurrent_identical_reviews_make_one_call() {
    let (_d, tf) = token();
    let f = api_server();
    let r = Arc::new(AccessReviewer::new(cfg(&tf), f.clone(), IdentityMetrics::default()).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let sa = who(AuthMethod::Jwt, "system:serviceaccount:models:scorer");
            r.review(&sa, &iris()).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(()));
    }
    assert_eq!(f.calls(), 1);
}
