//! Properties: the decision for a request equals the decision for its
//! normalised form; the host's case and port never matter; nothing panics.

use proptest::prelude::*;

use crate::support::*;

fn world() -> World {
    World::istio(
        r#"
  - {name: core-v2-ingress, action: DENY, rules: [{from: [{source: {notRequestPrincipals: ['*']}}], to: [{operation: {paths: [/v2/*]}}]}]}
  - {name: no-secret, action: DENY, rules: [{to: [{operation: {paths: ['/v2/models/secret/*', /v1/models/secret]}}]}]}
  - {name: h, action: DENY, rules: [{to: [{operation: {hosts: [blocked.example.com]}}]}]}
  - {name: a, rules: [{to: [{operation: {paths: ['/v2/models/{*}/infer', '/v2/models/{*}', /v1/models/iris, '*:predict']}}]}]}
"#,
    )
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v2".to_string()),
        Just("v1".to_string()),
        Just("models".to_string()),
        Just("iris".to_string()),
        Just("secret".to_string()),
        Just("infer".to_string()),
        Just("iris:predict".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just(String::new()),
        Just("%2e".to_string()),
        Just("%2E%2E".to_string()),
        Just("ir%69s".to_string()),
        Just("s%65cret".to_string()),
        Just("%2F".to_string()),
        Just("a;b".to_string()),
        Just("V2".to_string()),
        Just("x#y".to_string()),
        "[a-z%0-9.]{1,4}",
    ]
}

fn raw_path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..7).prop_map(|s| format!("/{}", s.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decision_equals_decision_of_normalised(path in raw_path(), keyed in any::<bool>(), method in prop_oneof![Just("GET"), Just("POST")]) {
        let w = world();
        let mk = |p: &str| {
            let r = Req::new(method, p);
            if keyed { r.key("k", &["*"]) } else { r }
        };
        let raw = w.decide(&mk(&path));
        match modelgate_route::normalize_path(&path) {
            Ok(norm) => prop_assert_eq!(raw, w.decide(&mk(&norm)), "raw {} normalised {}", path, norm),
            Err(_) => prop_assert_eq!(raw, BadRequest),
        }
    }

    #[test]
    fn host_case_and_port_do_not_matter(upper in prop::collection::vec(any::<bool>(), 19), port in prop::option::of(1u16..)) {
        let w = world();
        let host: String = "blocked.example.com".chars().zip(upper).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c }).collect();
        let host = match port { Some(p) => format!("{host}:{p}"), None => host };
        prop_assert_eq!(w.decide(&Req::infer("iris").key("k", &["*"]).host(&host)), Forbidden);
    }

    #[test]
    fn nothing_panics(path in "\\PC{0,60}", hv in prop::collection::vec(any::<u8>(), 0..40), host in "\\PC{0,30}") {
        let w = world();
        let _ = w.decide(&Req::post(&path).header("x-any", &hv).header("x-forwarded-for", &hv).host(&host));
        let _ = w.decide(&Req::post(&path).key("k", &["iris"]).header("authorization", &hv));
    }
}
