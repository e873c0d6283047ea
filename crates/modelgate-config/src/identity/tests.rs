//! Validation of the identity keys.

use std::str::FromStr;
use std::time::Duration;

use http::Uri;

use super::*;

fn run(raw: RawIdentity, api_keys: bool) -> (Identity, Vec<String>) {
    let mut c = Collector::default();
    let id = identity(raw, api_keys, Path::new("/nonexistent"), &mut c);
    (
        id,
        c.into_errors()
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    )
}

fn rule(yaml: &str) -> RawJwtRule {
    yaml_serde::from_str(yaml).unwrap()
}

#[test]
fn istio_rule_pastes_in() {
    let r = rule(
        r#"
issuer: https://kubernetes.default.svc.cluster.local
jwksUri: http://cluster-jwks-proxy.istio-system.svc.cluster.local/openid/v1/jwks
forwardOriginalToken: true
outputClaimToHeaders:
- header: kubeflow-userid
  claim: sub
- header: kubeflow-groups
  claim: groups
fromHeaders:
- name: Authorization
  prefix: "Bearer "
"#,
    );
    let (id, errs) = run(
        RawIdentity {
            jwt: Some(vec![rule_clone(&r)]),
            ..Default::default()
        },
        false,
    );
    assert!(errs.is_empty(), "{errs:?}");
    let j = &id.jwt[0];
    assert!(j.forward_original_token);
    assert!(j.require_expiration);
    assert_eq!(j.timeout, Duration::from_secs(5));
    assert_eq!(j.clock_skew, Duration::from_secs(60));
    assert_eq!(j.from_headers[0].prefix, "Bearer ");
    assert_eq!(id.order, vec![IdentityMethod::Jwt]);
    assert_eq!(
        id.jwks.allowed_hosts,
        vec!["cluster-jwks-proxy.istio-system.svc.cluster.local".to_string()]
    );
    assert_eq!(id.jwks.refresh_interval, Duration::from_secs(1200));
    let hs: Vec<_> = id
        .output_headers()
        .iter()
        .map(|h| h.as_str().to_string())
        .collect();
    assert_eq!(hs, ["kubeflow-userid", "kubeflow-groups"]);
}

fn rule_clone(r: &RawJwtRule) -> RawJwtRule {
    r.clone()
}

#[test]
fn discovery_and_allowlist() {
    let r = rule("issuer: http://127.0.0.1:9000/\n");
    let jwks = RawJwks {
        allowed_hosts: Some(vec!["idp.example.com".into()]),
        ..Default::default()
    };
    let (id, errs) = run(
        RawIdentity {
            jwt: Some(vec![r]),
            jwks: Some(jwks),
            ..Default::default()
        },
        false,
    );
    assert!(
        matches!(&id.jwt[0].keys, JwksSource::Discovery(u) if *u == "http://127.0.0.1:9000/.well-known/openid-configuration")
    );
    assert_eq!(
        errs,
        ["auth.jwt[0].issuer: host 127.0.0.1:9000 is not in auth.jwks.allowed_hosts"]
    );
}

#[test]
fn bad_rules_name_their_keys() {
    let rules = vec![
        rule("issuer: a\n"),
        rule("issuer: https://x\njwks_uri: ftp://idp/keys\n"),
        rule("issuer: https://y\njwks: '{}'\nhmac_secret: short\n"),
        rule(
            "issuer: https://y\njwks: '{\"keys\":[]}'\noutput_claim_to_headers: [{header: 'a b', claim: sub}]\n",
        ),
    ];
    let (_, errs) = run(
        RawIdentity {
            jwt: Some(rules),
            order: Some(vec!["jwt".into(), "mtls".into()]),
            ..Default::default()
        },
        false,
    );
    let want = [
        "auth.jwt[0]: issuer \"a\" is not an http(s) URL, so its keys cannot be discovered",
        "auth.jwt[1].jwks_uri: invalid URL \"ftp://idp/keys\": scheme must be http or https",
        "auth.jwt[2].jwks: not a JSON Web Key Set",
        "auth.jwt[2].hmac_secret: shorter than 32 bytes",
        "auth.jwt[3].output_claim_to_headers[0].header: invalid header \"a b\"",
        "auth.jwt: issuer https://y is configured twice",
        "auth.order[1]: mtls is listed but not configured",
    ];
    assert_eq!(errs, want);
}

#[test]
fn order_defaults_and_explicit() {
    let raw = RawIdentity {
        mtls: Some(RawMtls::default()),
        jwt: Some(vec![rule("issuer: https://idp\njwks: '{\"keys\":[]}'\n")]),
        ..Default::default()
    };
    let (id, errs) = run(raw.clone(), true);
    assert!(errs.is_empty());
    assert_eq!(
        id.order,
        vec![
            IdentityMethod::ApiKey,
            IdentityMethod::Jwt,
            IdentityMethod::Mtls
        ]
    );
    assert_eq!(
        id.mtls.unwrap().identity_from,
        vec![
            CertIdentityField::Uri,
            CertIdentityField::Dns,
            CertIdentityField::CommonName
        ]
    );
    let (id, errs) = run(
        RawIdentity {
            order: Some(vec!["mtls".into(), "jwt".into(), "api_key".into()]),
            ..raw.clone()
        },
        true,
    );
    assert!(errs.is_empty());
    assert_eq!(
        id.order,
        vec![
            IdentityMethod::Mtls,
            IdentityMethod::Jwt,
            IdentityMethod::ApiKey
        ]
    );
    let (_, errs) = run(
        RawIdentity {
            order: Some(vec!["jwt".into(), "jwt".into(), "saml".into()]),
            ..raw
        },
        true,
    );
    assert_eq!(
        errs,
        [
            "auth.order[1]: jwt is listed twice",
            "auth.order[2]: unknown identity method \"saml\"",
            "auth.order: api_key is configured but not listed",
            "auth.order: mtls is configured but not listed",
        ]
    );
}

#[test]
fn kubernetes_defaults() {
    let raw = RawIdentity {
        kubernetes: Some(RawKubernetes {
            service_account_tokens: Some(rule(
                "audiences: [istio-ingressgateway.istio-system.svc.cluster.local]\njwks_uri: https://10.0.0.1/openid/v1/jwks\n",
            )),
            token_review: Some(RawTokenReview {
                api_server: Some("https://127.0.0.1:6443".into()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let (id, errs) = run(raw, false);
    let sa = id.kubernetes.service_account_tokens.unwrap();
    assert_eq!(sa.issuer, "https://kubernetes.default.svc.cluster.local");
    // No pod here: the in-cluster token is missing and must be named.
    assert_eq!(
        errs,
        [
            "auth.kubernetes.token_review.token_file: no bearer token for the API server (not running in a pod?)"
        ]
    );
}

#[test]
fn secrets_are_redacted() {
    let raw = RawIdentity {
        introspection: Some(RawIntrospection {
            endpoint: "http://127.0.0.1:9000/token/introspection".into(),
            client_id: "modelgate".into(),
            client_secret: "s3cr3t-value".into(),
            ca_file: None,
            audiences: None,
            cache_ttl: None,
            timeout: None,
        }),
        ..Default::default()
    };
    let (id, errs) = run(raw, false);
    assert!(errs.is_empty());
    assert!(!format!("{id:?}").contains("s3cr3t-value"));
}

#[test]
fn host_matching() {
    let allowed = vec!["idp.example.com".to_string(), "127.0.0.1:9000".to_string()];
    let u = |s: &str| Uri::from_str(s).unwrap();
    assert!(host_allowed(
        &allowed,
        &u("https://IDP.example.com:8443/jwks")
    ));
    assert!(host_allowed(&allowed, &u("http://127.0.0.1:9000/jwks")));
    assert!(!host_allowed(&allowed, &u("http://127.0.0.1:9001/jwks")));
    assert!(!host_allowed(&allowed, &u("http://169.254.169.254/latest")));
}
