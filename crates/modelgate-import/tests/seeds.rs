//! The seeds' own YAML (tests/fixtures/seeds, verbatim; see its README) →
//! `import` → a configuration modelgate-config accepts, equivalent to the
//! hand-written examples/seed-*.yaml.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modelgate_import::{Imported, Input, Level, Options, import};
use yaml_serde::Value;

/// The repository's fixtures, from `CARGO_MANIFEST_DIR` as cargo sets it when
/// the test runs (the compile-time value names whichever clone built the
/// artifact; a shared target dir shares artifacts across clones).
fn fixtures() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../../tests/fixtures")
}

fn input(rel: &str) -> Input {
    let path = fixtures().join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    Input {
        name: rel.to_string(),
        text,
    }
}

/// `NAME="value"` lines of a seed's shell block, as `--var` would pass them.
fn vars(rel: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixtures().join(rel)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// The configuration must load, with `${ENV}` from `env`.
fn validate(i: &Imported, env: &[(&str, &str)]) -> modelgate_config::Config {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match modelgate_config::parse_str(&i.config, "imported.yaml", Path::new("."), &|k| {
        env.get(k).cloned()
    }) {
        Ok(c) => c,
        Err(e) => panic!(
            "imported config does not validate:\n{e}\n---\n{}\n---\n{}",
            i.config, i.report
        ),
    }
}

fn yaml(i: &Imported) -> Value {
    yaml_serde::from_str(&i.config).unwrap()
}

#[test]
fn seed_000_odh_authconfig_and_vllm() {
    let i = import(
        &[
            input("derived/000-inferenceservice.yaml"),
            input("derived/000-authconfig.yaml"),
        ],
        &Options::default(),
    )
    .unwrap();
    // Outside a cluster there is no in-cluster token: point at one.
    let token = std::env::temp_dir().join(format!("modelgate-import-test-{}", std::process::id()));
    std::fs::write(&token, "gateway-token").unwrap();
    let c = validate(&i, &[("KUBERNETES_TOKEN_FILE", token.to_str().unwrap())]);
    std::fs::remove_file(&token).unwrap();
    assert_eq!(c.models.len(), 1);
    let y = yaml(&i);
    assert_eq!(y["auth"]["realm"].as_str(), Some("kubernetes-user"));
    assert_eq!(y["models"][0]["protocols"][0].as_str(), Some("openai"));
    assert!(y["auth"]["kubernetes"]["token_review"].is_mapping());
    // enable-auth's SubjectAccessReview: `get` on the model's InferenceService.
    let access = c.models[0].kubernetes_access.as_ref().unwrap();
    assert_eq!(
        (access.namespace.as_str(), access.name.as_str()),
        ("demo-rhoai-secured", "llama3")
    );
    assert_eq!(
        (
            access.verb.as_str(),
            access.group.as_str(),
            access.resource.as_str()
        ),
        ("get", "serving.kserve.io", "inferenceservices")
    );
    assert!(
        !i.report
            .at(Level::Untranslated)
            .any(|f| f.path.starts_with("spec.authorization")),
        "{}",
        i.report
    );
}

#[test]
fn seed_001_custom_policy_with_not_paths() {
    let i = import(
        &[
            input("seeds/001-authorizationpolicy.yaml"),
            input("derived/001-inferenceservice.yaml"),
        ],
        &Options::default(),
    )
    .unwrap();
    validate(&i, &[]);
    let y = yaml(&i);
    let spec = &y["policies"][0]["spec"];
    assert_eq!(spec["action"].as_str(), Some("CUSTOM"));
    assert_eq!(
        spec["provider"]["name"].as_str(),
        Some("opendatahub-auth-provider")
    );
    assert_eq!(
        spec["rules"][0]["to"][0]["operation"]["notPaths"]
            .as_sequence()
            .map(Vec::len),
        Some(4)
    );
    assert_eq!(y["models"][0]["name"].as_str(), Some("iris"));
    assert_eq!(y["auth"]["api_keys"]["file"].as_str(), Some("keys.json"));
    assert!(
        y["listen"].get("istio_compat").is_none(),
        "CUSTOM refusals are Authorino's 401, not RBAC"
    );
    let sel = i
        .report
        .find(
            "AuthorizationPolicy/istio-system/kserve-predictor",
            "spec.selector",
        )
        .unwrap();
    assert_eq!(sel.level, Level::Note);
}

#[test]
fn seed_002_virtual_service_and_m2m_tokens() {
    let mut v = vars("seeds/002-inferenceservice.vars");
    v.extend(vars("seeds/002-virtualservice.vars"));
    let opts = Options {
        vars: v,
        ..Options::default()
    };
    let i = import(
        &[
            input("seeds/002-inferenceservice.yaml"),
            input("seeds/002-virtualservice.yaml"),
            input("seeds/002-requestauthentication.yaml"),
        ],
        &opts,
    )
    .unwrap();
    validate(&i, &[]);
    let y = yaml(&i);
    let m = &y["models"][0];
    assert_eq!(m["name"].as_str(), Some("inf-sklearn-iris-model"));
    assert_eq!(
        m["upstream"]["host"].as_str(),
        Some("inf-sklearn-iris-model.kubeflow-test-test-com.svc.cluster.local")
    );
    assert_eq!(
        m["upstream"]["url"].as_str(),
        Some("http://knative-local-gateway.istio-system.svc.cluster.local")
    );
    assert_eq!(m["upstream"]["timeout"].as_str(), Some("300s"));
    assert_eq!(
        m["routes"][0]["prefix"].as_str(),
        Some("/kfserving/kubeflow-test-test-com/inf-sklearn-iris-model")
    );
    assert_eq!(
        m["routes"][0]["rewrite"].as_str(),
        Some("/v1/models/inf-sklearn-iris-model:predict")
    );
    let sa = &y["auth"]["kubernetes"]["service_account_tokens"];
    assert_eq!(
        sa["output_claim_to_headers"][0]["header"].as_str(),
        Some("kubeflow-userid")
    );
    assert_eq!(sa["forward_original_token"].as_bool(), Some(true));
    assert!(
        !i.report
            .findings
            .iter()
            .any(|f| f.message.contains("shell variable")),
        "{}",
        i.report
    );
}

#[test]
fn seed_002_without_vars_says_which_to_pass() {
    let i = import(
        &[input("seeds/002-virtualservice.yaml")],
        &Options::default(),
    )
    .unwrap();
    assert!(
        i.report
            .findings
            .iter()
            .any(|f| f.message.contains("--var INF_MODEL_NAME=")),
        "{}",
        i.report
    );
}

#[test]
fn seed_003_kserve_host_routing() {
    let opts = Options {
        namespace: Some("kubeflow-user-example-com".into()),
        domain: Some("example.com".into()),
        ..Options::default()
    };
    let i = import(
        &[
            input("derived/003-sklearn.yaml"),
            input("seeds/002-requestauthentication.yaml"),
        ],
        &opts,
    )
    .unwrap();
    validate(&i, &[]);
    let y = yaml(&i);
    assert_eq!(
        y["models"][0]["hosts"][0].as_str(),
        Some("sklearn-iris.kubeflow-user-example-com.example.com")
    );
}

#[test]
fn seed_004_pasted_indentation_and_placeholders() {
    let opts = Options {
        upstreams: BTreeMap::from([("iris".to_string(), "http://127.0.0.1:8081".to_string())]),
        ..Options::default()
    };
    let i = import(
        &[
            input("seeds/004-requestauthentication.yaml"),
            input("seeds/004-authorizationpolicy.yaml"),
        ],
        &opts,
    )
    .unwrap();
    validate(
        &i,
        &[
            ("OIDC_TOKEN_ISSUER", "https://idp.example.com"),
            ("OIDC_TOKEN_ISSUER_JWKS", "https://idp.example.com/jwks"),
        ],
    );
    let y = yaml(&i);
    assert_eq!(
        y["auth"]["jwt"][0]["issuer"].as_str(),
        Some("${OIDC_TOKEN_ISSUER}")
    );
    assert_eq!(y["listen"]["istio_compat"].as_bool(), Some(true));
    let rules = &y["policies"][0]["spec"]["rules"][0];
    assert_eq!(
        rules["from"][0]["source"]["notRequestPrincipals"][0].as_str(),
        Some("*")
    );
    let names: Vec<_> = y["policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.get("name"))
        .collect();
    assert_eq!(
        names.len(),
        1,
        "the default allow for verified callers is added"
    );
    assert_eq!(i.report.at(Level::Untranslated).count(), 0, "{}", i.report);
}
