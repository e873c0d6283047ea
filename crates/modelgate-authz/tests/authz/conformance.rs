//! Conformance with Istio's documented AuthorizationPolicy semantics
//! (`security/v1beta1/authorization_policy.proto` and its examples), each as
//! input → expected decision; paths are adapted to model endpoints. Istio's
//! own test cases for request principals and path templates, copied from its
//! sources, are in `principals.rs` and `templates.rs`.

use serde_json::json;

use crate::support::*;

const GOOGLE: &str = "https://accounts.google.com";

#[test]
fn no_policies_is_todays_behaviour() {
    let w = World::new("  []");
    w.check(&Req::infer("iris"), Unauthenticated);
    w.check(&Req::infer("iris").key("a", &["iris"]), Allow);
    w.check(&Req::infer("secret").key("a", &["iris"]), Forbidden);
    w.check(&Req::infer("nope").key("a", &["iris"]), NotFound);
    w.check(&Req::get("/v2/models").key("a", &[]), Allow);
    w.check(&Req::get("/v2/health/live"), Allow); // public path
    // A JWT carries no grants: models need an ALLOW policy.
    w.check(&Req::infer("iris").jwt(jwt(GOOGLE, "alice")), Forbidden);
    w.check(&Req::get("/v2").jwt(jwt(GOOGLE, "alice")), Allow);
}

#[test]
fn spec_empty_is_allow_nothing() {
    // "If rules is unset, the match will never occur … equivalent to deny" for ALLOW.
    let w = World::new(
        "  - {apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: allow-nothing}, spec: {}}",
    );
    w.check(&Req::infer("iris").key("a", &["*"]), Forbidden);
    w.check(&Req::get("/v2").jwt(jwt(GOOGLE, "alice")), Forbidden);
    // DENY with no rules matches nothing: no effect.
    let w = World::new("  - {name: deny-nothing, action: DENY}");
    w.check(&Req::infer("iris").key("a", &["iris"]), Allow);
}

#[test]
fn empty_rule_matches_everything() {
    let w = World::new("  - {name: allow-all, rules: [{}]}");
    w.check(&Req::infer("iris").jwt(jwt(GOOGLE, "alice")), Allow);
    w.check(&Req::infer("secret").key("a", &["iris"]), Forbidden); // grants still restrict
    let w = World::new("  - {name: deny-all, action: DENY, rules: [{}]}");
    w.check(&Req::infer("iris").key("a", &["*"]), Forbidden);
    w.check(&Req::get("/v2/health/live"), Forbidden); // DENY applies to public routes too
}

#[test]
fn istio_reference_example_allow() {
    // The proto's first example: from (principal sleep OR namespace test),
    // to (GET /info* OR POST /data), when iss == accounts.google.com.
    let w = World::istio(
        r#"
  - name: httpbin
    action: ALLOW
    rules:
    - from:
      - source: {principals: [cluster.local/ns/default/sa/sleep]}
      - source: {namespaces: [test]}
      to:
      - operation: {methods: [GET], paths: ["/v2/models/iris*"]}
      - operation: {methods: [POST], paths: [/v2/models/iris/infer]}
      when:
      - key: request.auth.claims[iss]
        values: ["https://accounts.google.com"]
"#,
    );
    let sleep = "spiffe://cluster.local/ns/default/sa/sleep";
    let test_ns = "spiffe://cluster.local/ns/test/sa/any";
    w.check(&Req::infer("iris").peer(sleep).jwt(jwt(GOOGLE, "a")), Allow);
    w.check(
        &Req::get("/v2/models/iris/ready")
            .peer(test_ns)
            .jwt(jwt(GOOGLE, "a")),
        Allow,
    );
    w.check(
        &Req::get("/v2/models/iris")
            .peer(test_ns)
            .jwt(jwt(GOOGLE, "a")),
        Allow,
    );
    // Wrong issuer claim, wrong source, wrong method/path, anonymous.
    w.check(
        &Req::infer("iris")
            .peer(sleep)
            .jwt(jwt("https://other", "a")),
        Forbidden,
    );
    w.check(
        &Req::infer("iris")
            .peer("spiffe://cluster.local/ns/prod/sa/x")
            .jwt(jwt(GOOGLE, "a")),
        Forbidden,
    );
    w.check(
        &Req::get("/v2/models/secret")
            .peer(sleep)
            .jwt(jwt(GOOGLE, "a")),
        Forbidden,
    );
    w.check(&Req::infer("iris").peer(sleep), Forbidden);
}

#[test]
fn deny_not_namespaces() {
    // "deny requests not from namespace foo".
    let w = World::istio(
        "  - {name: d, action: DENY, rules: [{from: [{source: {notNamespaces: [foo]}}]}]}\n  - {name: a, rules: [{}]}",
    );
    w.check(
        &Req::infer("iris").peer("spiffe://cluster.local/ns/foo/sa/x"),
        Allow,
    );
    w.check(
        &Req::infer("iris").peer("spiffe://cluster.local/ns/bar/sa/x"),
        Forbidden,
    );
    w.check(&Req::infer("iris"), Forbidden); // no peer: no namespace → notNamespaces matches
}

#[test]
fn deny_beats_allow_and_custom_runs_first() {
    let w = World::istio(
        r#"
  - {name: allow-all, rules: [{}]}
  - {name: no-secret, action: DENY, rules: [{to: [{operation: {models: [secret]}}]}]}
  - {name: ext, action: CUSTOM, provider: {name: opendatahub-auth-provider}, rules: [{to: [{operation: {notPaths: [/v2/health/live, /v2/health/ready]}}]}]}
"#,
    );
    w.check(&Req::infer("iris").jwt(jwt(GOOGLE, "a")), Allow);
    w.check(&Req::infer("secret").jwt(jwt(GOOGLE, "a")), Forbidden);
    // CUSTOM (in-process) needs a verified credential where it applies → 401.
    w.check(&Req::infer("iris"), Unauthenticated);
    w.check(&Req::get("/v2/health/ready"), Allow); // notPaths: CUSTOM does not apply, ALLOW all
}

#[test]
fn seed_001_custom_not_paths() {
    // Seed 001: CUSTOM with notPaths guards everything but the probes.
    let w = World::istio(
        r#"
  - apiVersion: security.istio.io/v1beta1
    kind: AuthorizationPolicy
    metadata: {name: kserve-predictor, namespace: istio-system}
    spec:
      action: CUSTOM
      provider: {name: opendatahub-auth-provider}
      models: [iris]
      rules:
        - to:
            - operation:
                notPaths: [/healthz, /debug/pprof/, /metrics, /wait-for-drain]
"#,
    );
    w.check(&Req::infer("iris"), Unauthenticated);
    w.check(&Req::infer("iris").key("k", &["iris"]), Allow);
    w.check(&Req::infer("iris").key("k", &["secret"]), Forbidden);
}

#[test]
fn seed_004_deny_not_request_principals() {
    let w = World::istio(
        r#"
  - apiVersion: security.istio.io/v1beta1
    kind: AuthorizationPolicy
    metadata: {name: core-v2-ingress, namespace: istio-system}
    spec:
      action: DENY
      rules:
      - from:
        - source:
            notRequestPrincipals: ['*']
        to:
          - operation:
              paths: [/v2/*]
"#,
    );
    w.check(
        &Req::infer("iris").header("seldon-model", "iris"),
        Forbidden,
    ); // RBAC: access denied
    w.check(&Req::infer("iris").key("alice", &["iris"]), Allow);
    w.check(&Req::infer("secret").key("alice", &["iris"]), Forbidden);
    // Not under /v2/*: no DENY, but anonymous still fails closed (401), not Istio's allow.
    w.check(&Req::post("/v1/models/iris:predict"), Unauthenticated);
    w.check(
        &Req::post("/v1/models/iris:predict").key("alice", &["iris"]),
        Allow,
    );
    // A JWT identity is a request principal too; it carries no grants.
    w.check(&Req::infer("iris").jwt(jwt(GOOGLE, "a")), Forbidden);
}

#[test]
fn require_jwt_allow() {
    // The authz-jwt task: ALLOW requestPrincipals [*]: token → 200, none → 403.
    let w = World::istio(
        "  - {name: require-jwt, rules: [{from: [{source: {requestPrincipals: ['*']}}]}]}",
    );
    w.check(
        &Req::infer("iris").jwt(jwt("testing@secure.istio.io", "testing@secure.istio.io")),
        Allow,
    );
    w.check(&Req::infer("iris"), Forbidden);
    // Matched on the whole `iss/sub` string (Istio's API reference), never
    // split: the same principal string is the same principal.
    let w = World::new(
        "  - {name: p, rules: [{from: [{source: {requestPrincipals: ['https://idp.example.com/realms/x/*']}}]}]}",
    );
    w.check(
        &Req::infer("iris").jwt(jwt("https://idp.example.com/realms/x", "alice")),
        Allow,
    );
    w.check(
        &Req::infer("iris").jwt(jwt("https://idp.example.com/realms/xy", "alice")),
        Forbidden,
    );
    w.check(
        &Req::infer("iris").jwt(jwt("https://idp.example.com/realms", "x/alice")),
        Allow,
    );
    // API keys are request principals `api_key/<name>`.
    let w = World::new(
        "  - {name: p, rules: [{from: [{source: {requestPrincipals: [api_key/alice]}}]}]}",
    );
    w.check(&Req::infer("iris").key("alice", &["*"]), Allow);
    w.check(&Req::infer("iris").key("bob", &["*"]), Forbidden);
}

#[test]
fn claims_lists_nested_scope() {
    let w = World::new(
        r#"
  - name: groups
    rules:
    - when:
      - {key: "request.auth.claims[groups]", values: [admins]}
    - when:
      - {key: "request.auth.claims[realm_access][roles]", values: ["model-*"]}
    - when:
      - {key: "request.auth.claims[scope]", values: [infer]}
      - {key: "request.auth.audiences", values: [modelgate]}
      - {key: "request.auth.presenter", values: [cli]}
"#,
    );
    let c = |v: serde_json::Value| Req::infer("iris").jwt(v);
    w.check(
        &c(json!({"iss": GOOGLE, "sub": "a", "groups": ["users", "admins"]})),
        Allow,
    );
    w.check(
        &c(json!({"iss": GOOGLE, "sub": "a", "groups": ["users"]})),
        Forbidden,
    );
    w.check(
        &c(json!({"iss": GOOGLE, "sub": "a", "realm_access": {"roles": ["model-reader"]}})),
        Allow,
    );
    w.check(&c(json!({"iss": GOOGLE, "sub": "a", "scope": "openid infer", "aud": ["x", "modelgate"], "azp": "cli"})), Allow);
    w.check(
        &c(json!({"iss": GOOGLE, "sub": "a", "scope": "openid infer", "aud": ["x"], "azp": "cli"})),
        Forbidden,
    );
    w.check(&c(json!({"iss": GOOGLE, "sub": "a", "scope": "openidinfer", "aud": "modelgate", "azp": "cli"})), Forbidden);
}

#[test]
fn not_values_and_presence() {
    // Kubeflow: notValues ["*"] on a header means "absent".
    let w = World::istio(
        "  - {name: a, rules: [{when: [{key: 'request.headers[authorization]', notValues: ['*']}]}]}",
    );
    w.check(&Req::infer("iris"), Allow);
    w.check(
        &Req::infer("iris").header("authorization", "Basic x"),
        Forbidden,
    );
    w.check(&Req::infer("iris").header("authorization", ""), Forbidden); // present, even empty
    // A non-string claim is compared as text, so notValues cannot be sidestepped with a bool.
    let w = World::new(
        "  - {name: a, rules: [{when: [{key: 'request.auth.claims[admin]', notValues: ['false']}]}]}",
    );
    w.check(
        &Req::infer("iris").jwt(json!({"iss": GOOGLE, "sub": "a", "admin": false})),
        Forbidden,
    );
    w.check(
        &Req::infer("iris").jwt(json!({"iss": GOOGLE, "sub": "a", "admin": true})),
        Allow,
    );
}

#[test]
fn hosts_ports_methods() {
    let w = World::new(
        "  - {name: a, rules: [{to: [{operation: {hosts: [Models.Example.COM], ports: ['8080'], methods: [POST]}}]}]}",
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .host("MODELS.example.com:8443"),
        Allow,
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .host("other.example.com"),
        Forbidden,
    );
    w.check(&Req::get("/v2/models/iris").key("k", &["*"]), Forbidden);
    let w = World::new("  - {name: a, rules: [{to: [{operation: {ports: [9999]}}]}]}");
    w.check(&Req::infer("iris").key("k", &["*"]), Forbidden);
    let w = World::new("  - {name: a, rules: [{to: [{operation: {hosts: ['*.example.com']}}]}]}");
    w.check(&Req::infer("iris").key("k", &["*"]), Allow);
    w.check(
        &Req::infer("iris").key("k", &["*"]).host("example.com"),
        Forbidden,
    );
}

#[test]
fn ip_blocks_and_remote_ip_blocks() {
    let w = World::istio("  - {name: a, rules: [{from: [{source: {ipBlocks: [192.0.2.0/24]}}]}]}");
    w.check(&Req::infer("iris"), Allow);
    w.check(&Req::infer("iris").client_ip("198.51.100.1"), Forbidden);
    let w = World::istio(
        "  - {name: a, rules: [{from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]}]}",
    );
    // Through the trusted proxy 10.0.0.5, XFF names the client.
    w.check(
        &Req::infer("iris")
            .client_ip("10.0.0.5")
            .header("x-forwarded-for", "203.0.113.7"),
        Allow,
    );
    // Spoofing: an untrusted peer's XFF is ignored.
    w.check(
        &Req::infer("iris")
            .client_ip("198.51.100.1")
            .header("x-forwarded-for", "203.0.113.7"),
        Forbidden,
    );
    // A client-written entry left of the trusted hop's entry is ignored.
    w.check(
        &Req::infer("iris")
            .client_ip("10.0.0.5")
            .header("x-forwarded-for", "203.0.113.7, 198.51.100.1"),
        Forbidden,
    );
    let w = World::istio(
        "  - {name: d, action: DENY, rules: [{from: [{source: {notRemoteIpBlocks: [203.0.113.0/24]}}]}]}\n  - {name: a, rules: [{}]}",
    );
    w.check(
        &Req::infer("iris")
            .client_ip("10.0.0.5")
            .header("x-forwarded-for", "203.0.113.7"),
        Allow,
    );
    w.check(
        &Req::infer("iris")
            .client_ip("10.0.0.5")
            .header("x-forwarded-for", "garbage"),
        Forbidden,
    );
}

#[test]
fn models_protocols_operations_and_scope() {
    let w = World::new(
        "  - {name: readers, rules: [{to: [{operation: {operations: [model_ready, model_metadata], protocols: [v2]}}]}]}",
    );
    w.check(
        &Req::get("/v2/models/iris/ready").jwt(jwt(GOOGLE, "a")),
        Allow,
    );
    w.check(&Req::infer("iris").jwt(jwt(GOOGLE, "a")), Forbidden);
    w.check(
        &Req::get("/v1/models/iris").jwt(jwt(GOOGLE, "a")),
        Forbidden,
    );
    // Policy scope: an ALLOW scoped to iris makes iris allow-listed; secret falls back to defaults.
    let w = World::new(
        "  - {name: iris-admins, models: [iris], rules: [{from: [{source: {requestPrincipals: ['*/admin']}}]}]}",
    );
    w.check(&Req::infer("iris").key("admin", &["*"]), Allow);
    w.check(&Req::infer("iris").key("bob", &["*"]), Forbidden);
    w.check(&Req::infer("secret").key("bob", &["*"]), Allow);
    // OpenAI: the model comes from the body.
    let w = World::new(
        "  - {name: no-llama, action: DENY, rules: [{to: [{operation: {models: ['llama*']}}]}]}",
    );
    w.check(
        &Req::post("/v1/chat/completions")
            .key("k", &["*"])
            .body_model("llama3"),
        Forbidden,
    );
    w.check(&Req::infer("iris").key("k", &["*"]), Allow);
}

#[test]
fn audit_and_dry_run_do_not_decide() {
    let w = World::new(
        r#"
  - {name: audit-all, action: AUDIT, rules: [{}]}
  - apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: trial, annotations: {istio.io/dry-run: "true"}}
    spec: {action: DENY, rules: [{}]}
"#,
    );
    w.check(&Req::infer("iris").key("k", &["iris"]), Allow);
    let (_, why) = w.decide_explained(&Req::infer("iris").key("k", &["iris"]));
    assert!(
        why.iter().any(|l| l.contains("AUDIT audit-all matched")),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|l| l.contains("DENY trial is dry-run: would deny")),
        "{why:?}"
    );
}

#[test]
fn templates_and_suffixes() {
    let w = World::new(
        "  - {name: a, rules: [{to: [{operation: {paths: ['/v2/models/{*}/infer', '*/ready']}}]}]}",
    );
    w.check(&Req::infer("iris").jwt(jwt(GOOGLE, "a")), Allow);
    w.check(
        &Req::get("/v2/models/iris/ready").jwt(jwt(GOOGLE, "a")),
        Allow,
    );
    w.check(
        &Req::get("/v2/models/iris").jwt(jwt(GOOGLE, "a")),
        Forbidden,
    );
    w.check(
        &Req::post("/v2/models/iris/versions/1/infer").jwt(jwt(GOOGLE, "a")),
        Forbidden,
    );
}

#[test]
fn cel_conditions() {
    let w = World::new(
        r#"
  - name: cel
    rules:
    - cel: 'auth.method == "jwt" && auth.claims.groups.exists(g, g == "ml") && request.model == "iris"'
"#,
    );
    w.check(
        &Req::infer("iris").jwt(json!({"iss": GOOGLE, "sub": "a", "groups": ["ml"]})),
        Allow,
    );
    w.check(
        &Req::infer("iris").jwt(json!({"iss": GOOGLE, "sub": "a", "groups": ["x"]})),
        Forbidden,
    );
    // Missing claim: evaluation error → an ALLOW does not match.
    w.check(
        &Req::infer("iris").jwt(json!({"iss": GOOGLE, "sub": "a"})),
        Forbidden,
    );
    // In a DENY, an evaluation error counts as a match (fail closed).
    let w =
        World::new("  - {name: d, action: DENY, rules: [{cel: 'auth.claims.tier != \"gold\"'}]}");
    w.check(&Req::infer("iris").key("k", &["*"]), Forbidden);
    w.check(
        &Req::infer("iris").jwt(json!({"iss": GOOGLE, "sub": "a", "tier": "gold", })),
        Forbidden,
    ); // no grants
    let w = World::new(
        "  - {name: d, action: DENY, rules: [{cel: 'request.headers[\"x-tier\"].exists(v, v != \"gold\")'}]}\n  - {name: a, rules: [{}]}",
    );
    w.check(
        &Req::infer("iris")
            .jwt(jwt(GOOGLE, "a"))
            .header("x-tier", "gold"),
        Allow,
    );
    w.check(
        &Req::infer("iris")
            .jwt(jwt(GOOGLE, "a"))
            .header("x-tier", "gold")
            .header("x-tier", "lead"),
        Forbidden,
    );
}

#[test]
fn explanation_names_policy_rule_and_field() {
    let w = World::istio(
        "  - {name: core-v2-ingress, action: DENY, rules: [{from: [{source: {notRequestPrincipals: ['*']}}], to: [{operation: {paths: [/v2/*]}}]}]}",
    );
    let (out, why) = w.decide_explained(&Req::infer("iris"));
    assert_eq!(out, Forbidden);
    assert!(
        why.iter()
            .any(|l| l == "DENY core-v2-ingress matched by rule 0 → 403"),
        "{why:?}"
    );
    let (_, why) = w.decide_explained(&Req::post("/v1/models/iris:predict"));
    assert!(why.iter().any(|l| l.contains("policies[0].rules[0].to[0].operation.paths [/v2/*]: path \"/v1/models/iris:predict\" did not match")), "{why:?}");
}

#[test]
fn external_custom_is_asked_and_evaluation_goes_on() {
    // A CUSTOM policy naming an extension provider: authorization records
    // "ask provider opa" (no I/O here) and the other steps still decide.
    let w = World::istio(
        "  - {name: ext, action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: [/v2/models/iris/infer]}}]}]}
  - {name: no-sklearn, action: DENY, rules: [{to: [{operation: {paths: [/v2/models/sklearn/*]}}]}]}
  - {name: all, action: ALLOW, rules: [{}]}
extension_providers: [{name: opa, envoyExtAuthzGrpc: {service: 127.0.0.1, port: 9191}}]",
    );
    let (out, why) = w.decide_explained(&Req::new("POST", "/v2/models/iris/infer"));
    // Anonymous: the in-process provider would answer 401; an external one is asked instead.
    assert_eq!(out, Allow, "{why:?}");
    assert!(
        why.iter()
            .any(|l| l.contains("CUSTOM ext") && l.contains("ask external provider opa")),
        "{why:?}"
    );
    let (_, why) = w.decide_explained(&Req::new("GET", "/v2/models/iris/ready"));
    assert!(!why.iter().any(|l| l.contains("ask external")), "{why:?}");
}
