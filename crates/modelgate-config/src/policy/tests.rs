use super::*;
use crate::parse_str;
use std::path::Path;

const BASE: &str = "listen: {address: 127.0.0.1:8080}\nmodels:\n  - name: iris\n    upstream: {url: http://127.0.0.1:9000}\n";

fn load(policies: &str) -> Result<Vec<Policy>, Vec<String>> {
    let text = format!("{BASE}policies:\n{policies}");
    parse_str(&text, "test.yaml", Path::new("."), &|_| None)
        .map(|c| c.policies)
        .map_err(|e| e.errors.iter().map(ToString::to_string).collect())
}

fn errors(policies: &str) -> String {
    load(policies)
        .err()
        .map(|e| e.join("\n"))
        .unwrap_or_default()
}

#[test]
fn seed_004_pasted_object_without_selector() {
    let p = load(
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
    )
    .unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].name, "core-v2-ingress");
    assert_eq!(p[0].action, Action::Deny);
    let rule = &p[0].rules.as_ref().unwrap()[0];
    assert_eq!(
        rule.from[0].fields[0].key,
        "policies[0].spec.rules[0].from[0].source.notRequestPrincipals"
    );
    assert!(rule.from[0].fields[0].negate);
    assert!(
        matches!(&rule.to[0].fields[0].kind, TargetField::Paths(p) if p[0] == PathMatch::Str(StrPattern::Prefix("/v2/".into())))
    );
}

#[test]
fn selector_is_refused_with_a_fix() {
    let e = errors(
        r#"
  - apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: x}
    spec:
      selector: {matchLabels: {app: istio-ingressgateway}}
      action: DENY
      rules: [{}]
"#,
    );
    assert!(
        e.contains("policies[0].spec.selector: workload selectors"),
        "{e}"
    );
    assert!(e.contains("spec.models"), "{e}");
}

#[test]
fn empty_spec_and_empty_rule() {
    let p = load(
        "  - {apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: deny-all}, spec: {}}\n  - {name: allow-all, rules: [{}]}\n",
    )
    .unwrap();
    assert!(p[0].rules.is_none() && p[0].action == Action::Allow);
    assert_eq!(p[1].rules.as_ref().unwrap().len(), 1);
    // Istio refuses a null rule; read as match-all it would err open.
    let e = errors("  - {name: allow-all-null, rules: [~]}\n");
    assert!(e.contains("policies[0].rules[0]: empty rule (null)"), "{e}");
    let e = errors("  - name: deny-null\n    action: DENY\n    rules:\n    - ~\n    - {}\n");
    assert!(e.contains("policies[0].rules[0]: empty rule (null)"), "{e}");
}

#[test]
fn unknown_keys_are_errors_with_path() {
    let e = errors("  - name: a\n    rules:\n    - to:\n      - operation: {path: [/x]}\n");
    assert!(e.contains("policies[0].rules[0].to[0].operation"), "{e}");
    assert!(e.contains("did you mean `paths`"), "{e}");
    let e = errors(
        "  - name: a\n    rules: [{when: [{key: 'request.auth.claim[groups]', values: [a]}]}]\n",
    );
    assert!(
        e.contains("policies[0].rules[0].when[0].key: unknown condition key"),
        "{e}"
    );
    let e = errors(
        "  - name: a\n    rules: [{when: [{key: experimental.envoy.filters.x, values: [a]}]}]\n",
    );
    assert!(e.contains("filter-state"), "{e}");
}

#[test]
fn bad_values_name_the_key() {
    let e = errors("  - name: a\n    action: deny\n    rules: [{}]\n");
    assert!(e.contains("write DENY"), "{e}");
    let e = errors("  - name: a\n    rules: [{to: [{operation: {methods: [get]}}]}]\n");
    assert!(
        e.contains("policies[0].rules[0].to[0].operation.methods[0]"),
        "{e}"
    );
    let e = errors(
        "  - name: a\n    rules: [{to: [{operation: {paths: ['/a//b', '/v2/*/x*', '/a;x', '/a/{**}/{*}', '*']}}]}]\n",
    );
    assert!(e.contains("paths[0]"), "{e}");
    assert!(e.contains("paths[1]"), "{e}");
    assert!(e.contains("paths[2]"), "{e}");
    assert!(e.contains("paths[3]"), "{e}");
    assert!(!e.contains("paths[4]"), "{e}");
    let e = errors(
        "  - name: a\n    rules: [{from: [{source: {ipBlocks: [10.0.0.0/33], requestPrincipals: [nobody]}}]}]\n",
    );
    assert!(
        e.contains("ipBlocks[0]") && e.contains("requestPrincipals[0]"),
        "{e}"
    );
    let e = errors("  - name: a\n    action: CUSTOM\n    rules: [{}]\n");
    assert!(e.contains("policies[0].provider"), "{e}");
    let e = errors("  - name: a\n  - name: a\n");
    assert!(e.contains("defined twice"), "{e}");
    let e = errors("  - name: a\n    rules: [{when: [{key: source.ip}]}]\n");
    assert!(e.contains("needs `values` or `notValues`"), "{e}");
    let e = errors(
        "  - {apiVersion: security.istio.io/v1, kind: RequestAuthentication, metadata: {name: x}, spec: {}}\n",
    );
    assert!(e.contains("under `auth:`"), "{e}");
}

#[test]
fn cel_errors_name_the_key() {
    let e = errors("  - name: a\n    rules: [{cel: 'request.path ==' }]\n");
    assert!(
        e.contains("policies[0].rules[0].cel: invalid CEL expression"),
        "{e}"
    );
    let e = errors("  - name: a\n    rules: [{cel: 'reqest.path == \"/\"' }]\n");
    assert!(e.contains("unknown variable reqest"), "{e}");
    load("  - name: a\n    rules: [{cel: 'auth.groups.exists(g, g == \"admin\") && request.method == \"POST\"' }]\n").unwrap();
}

#[test]
fn conditions_and_patterns() {
    let p = load(
        r#"
  - name: a
    models: [iris, "llama-*"]
    rules:
    - to: [{operation: {hosts: ["Models.Example.com:8080", "*.example.org"], ports: [8080, "9090"], paths: ["/v2/models/{*}/infer", "/v1/{**}"]}}]
      when:
      - {key: "request.auth.claims[realm_access][roles]", values: [admin]}
      - {key: "request.headers[X-Tenant]", notValues: ["*"]}
      - {key: destination.port, values: [8080]}
"#,
    )
    .unwrap();
    let r = &p[0].rules.as_ref().unwrap()[0];
    assert_eq!(
        r.when[0].attribute,
        Attribute::AuthClaims(vec!["realm_access".into(), "roles".into()])
    );
    assert_eq!(
        r.when[1].attribute,
        Attribute::RequestHeader(HeaderName::from_static("x-tenant"))
    );
    match &r.to[0].fields[0].kind {
        TargetField::Hosts(h) => assert_eq!(
            h,
            &[
                StrPattern::Exact("models.example.com".into()),
                StrPattern::Suffix(".example.org".into())
            ]
        ),
        other => panic!("{other:?}"),
    }
    match &r.to[0].fields[2].kind {
        TargetField::Paths(ps) => {
            assert!(ps[0].matches("/v2/models/iris/infer"));
            assert!(!ps[0].matches("/v2/models/iris/x/infer"));
            assert!(!ps[0].matches("/v2/models//infer"));
            assert!(ps[1].matches("/v1/"));
            assert!(ps[1].matches("/v1/models/a:predict"));
            assert!(!ps[1].matches("/v2/x"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn patterns_are_literal_bytes() {
    // CVE-2026-39350: a '.' is a dot, never a regex wildcard.
    let p = StrPattern::parse("ns.a").unwrap();
    assert!(p.matches(b"ns.a"));
    assert!(!p.matches(b"nsxa"));
    assert!(StrPattern::parse("a*b").is_err());
    assert!(StrPattern::parse("*a*").is_err());
    // Non-UTF-8 bytes compare as bytes: a prefix still matches.
    assert!(StrPattern::parse("admin*").unwrap().matches(b"admin\xff"));
    assert!(!StrPattern::Any.matches(b""));
    let rp = PrincipalPattern::parse("https://issuer.example.com/realms/x/alice").unwrap();
    assert_eq!(
        rp,
        PrincipalPattern(StrPattern::Exact(
            "https://issuer.example.com/realms/x/alice".into()
        ))
    );
    // Matched on the whole `iss/sub`: either split of the same string is one principal.
    assert!(rp.matches("https://issuer.example.com/realms/x", "alice"));
    assert!(rp.matches("https://issuer.example.com", "realms/x/alice"));
    assert!(!rp.matches("https://issuer.example.com/realms/x", "alic"));
    assert!(PrincipalPattern::parse("alice").is_err());
    assert!(PrincipalPattern::parse("*").unwrap() == PrincipalPattern::ANY);
}
