//! Unit tests per kind: what each manifest becomes, and what the report says.

use super::*;

mod api_keys;

fn run(yaml: &str, opts: &Options) -> Imported {
    import(
        &[Input {
            name: "t.yaml".into(),
            text: yaml.into(),
        }],
        opts,
    )
    .unwrap()
}

fn cfg(i: &Imported) -> Value {
    yaml_serde::from_str(&i.config).unwrap()
}

fn untranslated(i: &Imported) -> Vec<String> {
    i.report
        .at(Level::Untranslated)
        .map(|f| format!("{}: {}", f.object, f.path))
        .collect()
}

#[test]
fn inference_service_with_enable_auth() {
    let i = run(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: iris\n  namespace: ns\n  annotations: {security.opendatahub.io/enable-auth: \"true\"}\nspec:\n  predictor:\n    serviceAccountName: sa\n    model: {modelFormat: {name: sklearn}, storageUri: s3://x}\n",
        &Options {
            domain: Some("example.com".into()),
            ..Options::default()
        },
    );
    let c = cfg(&i);
    let m = &c["models"][0];
    assert_eq!(m["name"].as_str(), Some("iris"));
    assert_eq!(
        m["upstream"]["url"].as_str(),
        Some("http://iris-predictor.ns.svc.cluster.local")
    );
    assert_eq!(m["hosts"][0].as_str(), Some("iris.ns.example.com"));
    assert!(m.get("public_operations").is_none());
    assert_eq!(c["auth"]["api_keys"]["file"].as_str(), Some("keys.json"));
    let u = untranslated(&i);
    assert!(
        u.contains(&"InferenceService/ns/iris: spec.predictor.serviceAccountName".to_string()),
        "{u:?}"
    );
    assert!(
        u.contains(&"InferenceService/ns/iris: spec.predictor.model.storageUri".to_string()),
        "{u:?}"
    );
    assert!(!u.iter().any(|x| x.contains("enable-auth")));
}

#[test]
fn vllm_is_openai_and_enable_auth_false_is_public() {
    let i = run(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: llama3, namespace: ns, annotations: {security.opendatahub.io/enable-auth: \"false\"}}\nspec: {predictor: {model: {modelFormat: {name: vLLM}}}}\n",
        &Options::default(),
    );
    let c = cfg(&i);
    assert_eq!(c["models"][0]["protocols"][0].as_str(), Some("openai"));
    assert_eq!(
        c["models"][0]["public_operations"]
            .as_sequence()
            .map(Vec::len),
        Some(3)
    );
}

#[test]
fn virtual_service_prefix_rewrite_and_host() {
    let i = run(
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: vs, namespace: ns}\nspec:\n  gateways: [kubeflow/kubeflow-gateway]\n  hosts: ['*']\n  http:\n  - match: [{uri: {prefix: /kfserving/ns/m}}]\n    route:\n    - destination: {host: gw.istio-system.svc.cluster.local, port: {number: 80}}\n      headers: {request: {set: {Host: m.ns.svc.cluster.local}}}\n      weight: 100\n    rewrite: {uri: '/v1/models/m:predict'}\n    timeout: 300s\n    retries: {attempts: 3}\n",
        &Options::default(),
    );
    let c = cfg(&i);
    let m = &c["models"][0];
    assert_eq!(m["name"].as_str(), Some("m"));
    assert_eq!(m["protocols"][0].as_str(), Some("v1"));
    assert_eq!(
        m["upstream"]["url"].as_str(),
        Some("http://gw.istio-system.svc.cluster.local:80")
    );
    assert_eq!(
        m["upstream"]["host"].as_str(),
        Some("m.ns.svc.cluster.local")
    );
    assert_eq!(m["upstream"]["timeout"].as_str(), Some("300s"));
    assert_eq!(m["routes"][0]["prefix"].as_str(), Some("/kfserving/ns/m"));
    assert_eq!(
        m["routes"][0]["rewrite"].as_str(),
        Some("/v1/models/m:predict")
    );
    assert_eq!(
        untranslated(&i),
        vec!["VirtualService/ns/vs: spec.http[0].retries.attempts"]
    );
}

#[test]
fn upstream_flag_wins_and_adds_models() {
    let opts = Options {
        upstreams: BTreeMap::from([("iris".to_string(), "http://127.0.0.1:1".to_string())]),
        ..Options::default()
    };
    let i = run(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n",
        &opts,
    );
    let c = cfg(&i);
    assert_eq!(
        c["models"][0]["upstream"]["url"].as_str(),
        Some("http://127.0.0.1:1")
    );
    assert!(
        i.report
            .find("ConfigMap/-/x", "")
            .is_some_and(|f| f.level == Level::Untranslated)
    );
}

#[test]
fn request_authentication_rules() {
    let i = run(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra, namespace: ns}\nspec:\n  selector: {matchLabels: {app: gw}}\n  jwtRules:\n  - issuer: https://idp\n    jwksUri: https://idp/jwks\n    audiences: [a]\n    outputClaimToHeaders: [{header: x-user, claim: sub}]\n    spaceDelimitedClaims: [scope]\n  - issuer: https://kubernetes.default.svc.cluster.local\n",
        &Options {
            jwks_uris: BTreeMap::from([(
                "https://idp".to_string(),
                "http://local/jwks".to_string(),
            )]),
            ..Options::default()
        },
    );
    let c = cfg(&i);
    assert_eq!(c["auth"]["jwt"][0]["issuer"].as_str(), Some("https://idp"));
    assert_eq!(
        c["auth"]["jwt"][0]["jwks_uri"].as_str(),
        Some("http://local/jwks")
    );
    assert_eq!(
        c["auth"]["jwt"][0]["output_claim_to_headers"][0]["header"].as_str(),
        Some("x-user")
    );
    assert_eq!(
        c["auth"]["kubernetes"]["service_account_tokens"]["issuer"].as_str(),
        Some("https://kubernetes.default.svc.cluster.local")
    );
    assert_eq!(
        untranslated(&i),
        vec!["RequestAuthentication/ns/ra: spec.jwtRules[0].spaceDelimitedClaims[0]"]
    );
    // Istio lets any verified token through when no ALLOW policy exists.
    assert_eq!(
        c["policies"][0]["rules"][0]["cel"].as_str(),
        Some("auth != null")
    );
    assert!(
        c.get("listen")
            .and_then(|l| l.get("istio_compat"))
            .is_none()
    );
}

#[test]
fn authorization_policy_keeps_rules_and_drops_selector() {
    let i = run(
        "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: istio-system}\nspec:\n  action: DENY\n  selector: {matchLabels: {app: gw}}\n  rules:\n  - from: [{source: {notRequestPrincipals: ['*'], serviceAccounts: [x]}}]\n    to: [{operation: {paths: [/v2/*]}}]\n",
        &Options::default(),
    );
    let c = cfg(&i);
    let p = &c["policies"][0];
    assert_eq!(p["kind"].as_str(), Some("AuthorizationPolicy"));
    assert!(p["spec"].get("selector").is_none());
    assert_eq!(
        p["spec"]["rules"][0]["to"][0]["operation"]["paths"][0].as_str(),
        Some("/v2/*")
    );
    assert!(
        p["spec"]["rules"][0]["from"][0]["source"]
            .get("serviceAccounts")
            .is_none()
    );
    assert_eq!(c["listen"]["istio_compat"].as_bool(), Some(true));
    assert_eq!(
        untranslated(&i),
        vec!["AuthorizationPolicy/istio-system/p: spec.rules[0].from[0].source.serviceAccounts"]
    );
    assert!(
        i.report
            .find("AuthorizationPolicy/istio-system/p", "spec.selector")
            .is_some_and(|f| f.level == Level::Note)
    );
}

const AUTHCONFIG: &str = "apiVersion: authorino.kuadrant.io/VERSION
kind: AuthConfig
metadata: {name: ac, namespace: ns}
spec:
  hosts: [m.example.com]
  authentication:
    keys:
      apiKey: {selector: {matchLabels: {group: friends}}}
      credentials: {authorizationHeader: {prefix: APIKEY}}
    sso:
      priority: 1
      jwt: {issuerUrl: 'https://sso'}
  authorization:
    methods:
      patternMatching:
        patterns: [{selector: request.method, operator: eq, value: POST}]
    rego:
      opa: {rego: allow = true}
  response:
    unauthorized: {code: 302}
    success:
      headers:
        x-user: {plain: {SELECTOR}}
";

#[test]
fn auth_config_v1beta2_and_v1beta3_read_alike() {
    for (version, selector) in [
        ("v1beta2", "valueFrom: {authJSON: auth.identity.sub}"),
        ("v1beta3", "selector: auth.identity.sub"),
    ] {
        let text = AUTHCONFIG
            .replace("VERSION", version)
            .replace("SELECTOR", selector);
        let i = run(&text, &Options::default());
        let c = cfg(&i);
        assert_eq!(c["auth"]["realm"].as_str(), Some("keys"), "{version}");
        assert_eq!(c["auth"]["api_keys"]["file"].as_str(), Some("keys.json"));
        let kube = &c["auth"]["api_keys"]["kubernetes"];
        assert_eq!(
            kube["selector"]["matchLabels"]["group"].as_str(),
            Some("friends")
        );
        assert_eq!(kube["namespaces"][0].as_str(), Some("ns"));
        assert_eq!(c["auth"]["jwt"][0]["issuer"].as_str(), Some("https://sso"));
        assert_eq!(
            c["auth"]["identity_header"].as_str(),
            Some("x-user"),
            "{version}"
        );
        let deny = &c["policies"][0];
        assert_eq!(deny["action"].as_str(), Some("DENY"));
        assert_eq!(
            deny["rules"][0]["cel"].as_str(),
            Some("!(request.method == \"POST\")")
        );
        assert_eq!(
            deny["rules"][0]["to"][0]["operation"]["hosts"][0].as_str(),
            Some("m.example.com")
        );
        // OPA is untranslated, so no default allow is added.
        assert_eq!(c["policies"].as_sequence().map(Vec::len), Some(1));
        let u = untranslated(&i);
        assert!(!u.iter().any(|x| x.contains("apiKey")), "{u:?}");
        for path in ["spec.authorization.rego", "spec.response.unauthorized"] {
            assert!(
                u.contains(&format!("AuthConfig/ns/ac: {path}")),
                "{version} {path}: {u:?}"
            );
        }
    }
}

/// The repository's fixtures, from `CARGO_MANIFEST_DIR` as cargo sets it when
/// the test runs (the compile-time value names whichever clone built the
/// artifact; a shared target dir shares artifacts across clones).
fn fixtures_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from,
        )
        .join("../../tests/fixtures")
}

fn fixture(path: &str) -> Input {
    let full = fixtures_dir().join(path);
    Input {
        name: path.into(),
        text: std::fs::read_to_string(full).unwrap(),
    }
}

#[test]
fn seed_001_subject_access_review_becomes_kubernetes_access() {
    let inputs = [
        fixture("derived/001-inferenceservice.yaml"),
        fixture("derived/001-authconfig.yaml"),
    ];
    let i = import(&inputs, &Options::default()).unwrap();
    let c = cfg(&i);
    let iris = &c["models"][0];
    assert_eq!(iris["name"].as_str(), Some("iris"));
    let a = &iris["kubernetes_access"];
    for (k, v) in [
        ("namespace", "authorino-test"),
        ("name", "iris"),
        ("verb", "get"),
        ("group", "serving.kserve.io"),
        ("resource", "inferenceservices"),
    ] {
        assert_eq!(a[k].as_str(), Some(v), "{k}: {}", i.config);
    }
    assert!(a.get("subresource").is_none());
    assert!(c["auth"]["kubernetes"]["token_review"].is_mapping());
    // The review runs after the policies allow: authenticated callers pass them.
    assert_eq!(
        c["policies"][0]["name"].as_str(),
        Some("imported-authenticated-callers")
    );
    let u = untranslated(&i);
    assert!(!u.iter().any(|x| x.contains("kubernetes")), "{u:?}");
}

/// The untranslated finding of `AuthConfig/ns/ac` at exactly `path`.
fn untranslated_at<'a>(i: &'a Imported, path: &str) -> &'a Finding {
    i.report
        .at(Level::Untranslated)
        .find(|f| f.object == "AuthConfig/ns/ac" && f.path == path)
        .unwrap()
}

const SAR_V1BETA3: &str = "apiVersion: authorino.kuadrant.io/v1beta3\nkind: AuthConfig\nmetadata: {name: ac, namespace: ns}\nspec:\n  authentication:\n    kubernetes-user:\n      credentials: {authorizationHeader: {}}\n      kubernetesTokenReview: {audiences: ['https://kubernetes.default.svc']}\n  authorization:\n    rbac:\n      kubernetesSubjectAccessReview:\n        user: {selector: auth.identity.user.username}\n";

#[test]
fn v1beta3_static_attributes_translate_for_an_upstream_model() {
    let text = format!(
        "{SAR_V1BETA3}        resourceAttributes:\n          namespace: {{value: ns}}\n          name: {{value: m}}\n          verb: {{value: create}}\n          group: {{value: ''}}\n          resource: {{value: services}}\n          subresource: {{value: proxy}}\n"
    );
    let opts = Options {
        upstreams: BTreeMap::from([("m".to_string(), "http://127.0.0.1:1".to_string())]),
        ..Options::default()
    };
    let i = run(&text, &opts);
    let a = &cfg(&i)["models"][0]["kubernetes_access"];
    assert_eq!(a["verb"].as_str(), Some("create"));
    assert_eq!(a["group"].as_str(), Some(""));
    assert_eq!(a["resource"].as_str(), Some("services"));
    assert_eq!(a["subresource"].as_str(), Some("proxy"));
    assert!(untranslated(&i).is_empty(), "{:?}", untranslated(&i));
}

#[test]
fn selector_based_attributes_are_reported_and_fail_closed() {
    let text = format!(
        "{SAR_V1BETA3}        resourceAttributes:\n          namespace: {{selector: context.request.http.headers.ns}}\n          name: {{value: m}}\n          verb: {{value: get}}\n          resource: {{value: inferenceservices}}\n"
    );
    let opts = Options {
        upstreams: BTreeMap::from([("m".to_string(), "http://127.0.0.1:1".to_string())]),
        ..Options::default()
    };
    let i = run(&text, &opts);
    let c = cfg(&i);
    assert!(c["models"][0].get("kubernetes_access").is_none());
    assert!(c.get("policies").is_none(), "no default allow");
    let f = untranslated_at(
        &i,
        "spec.authorization.rbac.kubernetesSubjectAccessReview.resourceAttributes.namespace",
    );
    assert!(
        f.message
            .contains("selector-based namespace (`context.request.http.headers.ns`)"),
        "{}",
        f.message
    );
}

#[test]
fn a_review_without_its_model_or_user_fails_closed() {
    // v1beta2 spelling `kubernetes`, a model nobody imports.
    let text = "apiVersion: authorino.kuadrant.io/v1beta2\nkind: AuthConfig\nmetadata: {name: ac, namespace: ns}\nspec:\n  authentication:\n    k:\n      kubernetesTokenReview: {}\n  authorization:\n    rbac:\n      kubernetes:\n        user: {valueFrom: {authJSON: auth.identity.user.username}}\n        resourceAttributes: {namespace: {value: ns}, name: {value: gone}, verb: {value: get}, resource: {value: inferenceservices}}\n";
    let i = run(text, &Options::default());
    assert!(cfg(&i).get("policies").is_none());
    let f = untranslated_at(&i, "spec.authorization.rbac.kubernetes");
    assert!(f.message.contains("no model of this name"), "{}", f.message);
    // A fixed user is not the caller.
    let text = text.replace(
        "{valueFrom: {authJSON: auth.identity.user.username}}",
        "{value: admin}",
    );
    let i = run(&text, &Options::default());
    let f = untranslated_at(&i, "spec.authorization.rbac.kubernetes.user");
    assert!(f.message.contains("fixed user"), "{}", f.message);
    assert!(cfg(&i).get("policies").is_none());
}

#[test]
fn old_authconfig_versions_are_reported_whole() {
    let i = run(
        "apiVersion: authorino.kuadrant.io/v1beta1\nkind: AuthConfig\nmetadata: {name: a}\nspec: {identity: []}\n",
        &Options::default(),
    );
    assert!(
        i.report
            .find("AuthConfig/-/a", "")
            .is_some_and(|f| f.level == Level::Untranslated)
    );
}

#[test]
fn bad_yaml_is_an_error() {
    let e = import(
        &[Input {
            name: "x.yaml".into(),
            text: "a: [".into(),
        }],
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(e.source_name, "x.yaml");
}

#[test]
fn istio_mesh_config_extension_providers_and_custom_policy() {
    let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    accessLogFile: /dev/stdout
    extensionProviders:
    - name: sample-ext-authz-http
      envoyExtAuthzHttp:
        service: ext-authz.foo.svc.cluster.local
        port: 8000
        includeHeadersInCheck: ["x-ext-authz"]
        includeRequestBodyInCheck:
          maxRequestBytes: 100
          allowPartialMessage: true
        includeHeadersInCheckNext: [x-unknown]
    - name: sample-ext-authz-grpc
      envoyExtAuthzGrpc:
        service: ext-authz.foo.svc.cluster.local
        port: 9000
        includeRequestBodyInCheck: {maxRequestBytes: 4096, packAsBytes: true}
    - name: otel
      opentelemetry: {service: otel.svc, port: 4317}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: sample-ext-authz-grpc}
  rules: [{to: [{operation: {paths: ["/v2/*"]}}]}]
"#;
    let i = run(yaml, &Options::default());
    let c = cfg(&i);
    let p = &c["extension_providers"];
    assert_eq!(p[0]["name"].as_str(), Some("sample-ext-authz-http"));
    assert_eq!(
        p[0]["envoyExtAuthzHttp"]["includeRequestHeadersInCheck"][0].as_str(),
        Some("x-ext-authz")
    );
    // includeRequestBodyInCheck is carried over as written.
    let hb = &p[0]["envoyExtAuthzHttp"]["includeRequestBodyInCheck"];
    assert_eq!(hb["maxRequestBytes"].as_u64(), Some(100));
    assert_eq!(hb["allowPartialMessage"].as_bool(), Some(true));
    assert!(
        p[0]["envoyExtAuthzHttp"]
            .get("includeHeadersInCheckNext")
            .is_none()
    );
    assert_eq!(p[1]["envoyExtAuthzGrpc"]["port"].as_u64(), Some(9000));
    let gb = &p[1]["envoyExtAuthzGrpc"]["includeRequestBodyInCheck"];
    assert_eq!(gb["packAsBytes"].as_bool(), Some(true));
    assert!(
        p.get(2).is_none(),
        "a tracing provider is not an authorizer"
    );
    let u = untranslated(&i);
    for want in [
        "ConfigMap/istio-system/istio: data.mesh.accessLogFile",
        "ConfigMap/istio-system/istio: data.mesh.extensionProviders[2].opentelemetry",
        "ConfigMap/istio-system/istio: data.mesh.extensionProviders[0].envoyExtAuthzHttp.includeHeadersInCheckNext",
    ] {
        assert!(u.contains(&want.to_string()), "{want} not in {u:?}");
    }
    assert!(
        !u.iter().any(|x| x.contains("includeRequestBodyInCheck")),
        "{u:?}"
    );
    let note = i
        .report
        .find("AuthorizationPolicy/foo/ext-authz", "spec.provider")
        .unwrap();
    assert!(note.message.contains("external authorizer"), "{note}");
    // The output loads, and the CUSTOM policy names a configured provider.
    let loaded = modelgate_config::parse_str(
        &i.config
            .replace("${MODELGATE_LISTEN:-0.0.0.0:8080}", "127.0.0.1:8080")
            .replace("${MODELGATE_ADMIN:-127.0.0.1:9901}", "127.0.0.1:9901"),
        "out.yaml",
        std::path::Path::new("."),
        &|_| None,
    );
    if let Err(e) = &loaded {
        assert!(!e.to_string().contains("provider"), "{e}");
    }
}
