//! The fuzzed functions, shared by the libFuzzer targets and the stable runner.
//! Each checks properties, not just "no panic".

mod authn;
mod bodies;
mod signin;

pub use authn::{credentials, jwks_parse, jwt_parse, remote_answers};
pub use bodies::{grpc_body, grpc_peek, openai_model, v2_rest};
pub use signin::signin;

use std::path::Path;

/// A fuzzed function: property checks on one input.
pub type Target = fn(&[u8]);

/// Every target, by name, for the stable runner and `run.sh`.
pub const TARGETS: &[(&str, Target)] = &[
    ("normalize", normalize),
    ("policy_parse", policy_parse),
    ("jwt_parse", jwt_parse),
    ("jwks_parse", jwks_parse),
    ("credentials", credentials),
    ("remote_answers", remote_answers),
    ("openai_model", openai_model),
    ("v2_rest", v2_rest),
    ("grpc_body", grpc_body),
    ("grpc_peek", grpc_peek),
    ("signin", signin),
];

/// Path normalisation: never panics; a normalised path is canonical and a
/// fixed point; refused inputs stay refused after any prefix of `/`.
pub fn normalize(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = modelgate_route::normalize_host(s);
    if let Ok(n) = modelgate_route::normalize_path(s) {
        assert!(n.starts_with('/'), "{s:?} → {n:?}");
        assert!(!n.contains("//"), "{s:?} → {n:?}");
        assert!(
            !n.split('/').any(|seg| seg == "." || seg == ".."),
            "{s:?} → {n:?}"
        );
        assert!(!n.contains(['#', ';', '\\', '\0']), "{s:?} → {n:?}");
        assert_eq!(
            modelgate_route::normalize_path(&n).as_deref(),
            Ok(n.as_str()),
            "not idempotent for {s:?}"
        );
    }
}

const BASE: &str = "listen: {address: \"127.0.0.1:8080\"}\nmodels:\n  - {name: iris, upstream: {url: \"http://127.0.0.1:9000\"}}\npolicies:\n";

/// The policy parser: any text under `policies:` is either a configuration or
/// a list of errors that each name a key — never a panic.
pub fn policy_parse(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if s.len() > 4096 {
        return;
    }
    let text = format!("{BASE}{s}");
    match modelgate_config::parse_str(&text, "fuzz.yaml", Path::new("."), &|_| None) {
        Ok(cfg) => {
            for p in &cfg.policies {
                assert!(!p.name.is_empty());
            }
        }
        Err(e) => assert!(!e.errors.is_empty()),
    }
}
