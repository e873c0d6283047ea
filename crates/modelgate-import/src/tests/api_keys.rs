//! Authorino API-key AuthConfigs: a label selector becomes `auth.api_keys.kubernetes`
//! (seed 000's key Secret), what does not translate is reported.

use super::*;

/// Seed 000's InferenceService and the Authorino API-key AuthConfig its
/// rotation section refers to (the key Secret the seed patches).
fn seed_000_with_api_key(extra: &str) -> Imported {
    let isvc =
        std::fs::read_to_string(fixtures_dir().join("derived/000-inferenceservice.yaml")).unwrap();
    let ac =
        std::fs::read_to_string(fixtures_dir().join("derived/000-authconfig-apikey.yaml")).unwrap();
    import(
        &[
            Input {
                name: "isvc.yaml".into(),
                text: isvc,
            },
            Input {
                name: "ac.yaml".into(),
                text: format!("{ac}{extra}"),
            },
        ],
        &Options::default(),
    )
    .unwrap()
}

#[test]
fn seed_000_api_key_selector_becomes_secret_keys() {
    let i = seed_000_with_api_key("");
    let c = cfg(&i);
    let kube = &c["auth"]["api_keys"]["kubernetes"];
    assert_eq!(
        kube["selector"]["matchLabels"]["opendatahub.io/dashboard"].as_str(),
        Some("true"),
        "{}",
        i.config
    );
    assert_eq!(kube["namespaces"][0].as_str(), Some("demo-rhoai-secured"));
    assert_eq!(kube["default_models"][0].as_str(), Some("llama3"));
    let u = untranslated(&i);
    assert!(!u.iter().any(|x| x.contains("apiKey")), "{u:?}");
    assert!(i.report.to_string().contains("auth.api_keys.kubernetes"));
}

#[test]
fn all_namespaces_and_a_second_selector() {
    let i = seed_000_with_api_key(
        "---
apiVersion: authorino.kuadrant.io/v1beta3
kind: AuthConfig
metadata: {name: other, namespace: ns2}
spec:
  hosts: ['*']
  authentication:
    k:
      apiKey: {selector: {matchLabels: {group: other}}, allNamespaces: true}
",
    );
    let c = cfg(&i);
    let kube = &c["auth"]["api_keys"]["kubernetes"];
    assert_eq!(kube["namespaces"][0].as_str(), Some("demo-rhoai-secured"));
    // One selector per gateway: the second is reported, not merged or dropped silently.
    let u = untranslated(&i);
    assert!(
        u.contains(&"AuthConfig/ns2/other: spec.authentication.k.apiKey".to_string()),
        "{u:?}"
    );
    let same = seed_000_with_api_key(
        "---
apiVersion: authorino.kuadrant.io/v1beta3
kind: AuthConfig
metadata: {name: llama3, namespace: ns2}
spec:
  authentication:
    k:
      apiKey: {selector: {matchLabels: {opendatahub.io/dashboard: 'true', authorino.kuadrant.io/managed-by: authorino}}, allNamespaces: true}
",
    );
    let c = cfg(&same);
    let ns = &c["auth"]["api_keys"]["kubernetes"]["namespaces"];
    assert_eq!(ns.as_sequence().map(Vec::len), Some(1));
    assert_eq!(ns[0].as_str(), Some("*"));
}

#[test]
fn api_key_without_labels_stays_on_the_key_file() {
    let i = run(
        "apiVersion: authorino.kuadrant.io/v1beta3\nkind: AuthConfig\nmetadata: {name: a, namespace: n}\nspec:\n  authentication:\n    k:\n      apiKey: {selector: {matchExpressions: [{key: a, operator: Exists}]}}\n",
        &Options::default(),
    );
    let c = cfg(&i);
    assert!(c["auth"]["api_keys"].get("kubernetes").is_none());
    assert_eq!(c["auth"]["api_keys"]["file"].as_str(), Some("keys.json"));
    let u = untranslated(&i);
    assert!(
        u.contains(&"AuthConfig/n/a: spec.authentication.k.apiKey.selector".to_string()),
        "{u:?}"
    );
}
