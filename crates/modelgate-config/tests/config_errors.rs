//! Configuration parsing: valid files load with their defaults; every error
//! names its key path and a fix, and all errors are reported together.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use modelgate_config::{Backend, CredentialSource, DecisionSink, parse_str};
use modelgate_core::Protocol;

fn env(name: &str) -> Option<String> {
    match name {
        "IRIS_URL" => Some("http://127.0.0.1:8081".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<modelgate_config::Config, modelgate_config::ConfigErrors> {
    parse_str(text, "test.yaml", Path::new("/etc/modelgate"), &env)
}

fn errors(text: &str) -> Vec<(String, String, String)> {
    parse(text)
        .unwrap_err()
        .errors
        .into_iter()
        .map(|e| (e.path, e.message, e.hint))
        .collect()
}

const MINIMAL: &str = r#"
listen: {address: "0.0.0.0:8080"}
models:
  - name: iris
    upstream: {url: "${IRIS_URL}"}
"#;

#[test]
fn minimal_file_gets_defaults() {
    let cfg = parse(MINIMAL).unwrap();
    assert_eq!(cfg.listeners.len(), 1);
    let l = &cfg.listeners[0];
    assert!(l.http2);
    assert_eq!(l.max_body_bytes, 4 << 20);
    assert_eq!(l.credentials.len(), 3);
    assert!(
        matches!(&l.credentials[0], CredentialSource::AuthorizationHeader { scheme } if scheme == "Bearer")
    );
    assert_eq!(cfg.admin.address.to_string(), "127.0.0.1:9901");
    let m = &cfg.models[0];
    assert_eq!(m.name.as_str(), "iris");
    assert!(m.protocols.contains(&Protocol::V1) && m.protocols.contains(&Protocol::V2));
    let Backend::Upstream(u) = &m.backend else {
        panic!()
    };
    assert_eq!(u.endpoints[0].to_string(), "http://127.0.0.1:8081/");
    assert_eq!(u.timeout.as_secs(), 300);
    assert_eq!(cfg.auth.realm, "modelgate");
    assert_eq!(cfg.log.decisions, DecisionSink::Stdout);
}

#[test]
fn misspelt_key_names_path_and_suggests() {
    let errs = errors(
        r#"
listen: {address: "0.0.0.0:8080"}
models:
  - name: iris
    upstream: {url: "http://a:1", timout: 5s}
"#,
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "models[0].upstream.timout");
    assert!(
        errs[0].1.contains("unknown field `timout`"),
        "{}",
        errs[0].1
    );
    assert!(
        errs[0].2.contains("did you mean `timeout`"),
        "{}",
        errs[0].2
    );
}

#[test]
fn unknown_section_is_an_error() {
    let errs = errors(&format!("{MINIMAL}\nmodles: []\n"));
    assert_eq!(errs[0].0, "modles");
    assert!(errs[0].2.contains("did you mean `models`"));
}

#[test]
fn all_errors_are_reported_at_once() {
    let errs = errors(
        r#"
listen: {address: "nowhere"}
admin: {address: "127.0.0.1:9901", extra: 1}
models:
  - name: "bad/name"
    upstream: {url: "ftp://x"}
  - name: ok
    upstream: {url: "http://a:1"}
    protocols: [v3]
  - name: ok
    builtin: {dir: m}
    upstream: {url: "http://a:1"}
auth: {identity_header: "authorization"}
log: {format: xml}
"#,
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    for want in [
        "listen.address",
        "admin.extra",
        "models[0].name",
        "models[0].upstream.url",
        "models[1].protocols[0]",
        "models[2]",
        "auth.identity_header",
        "log.format",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
    assert!(
        errs.iter().all(|e| !e.2.is_empty()),
        "every error has a fix"
    );
}

#[test]
fn missing_env_var_names_key_and_variable() {
    let errs = errors(
        "listen: {address: \"${LISTEN_ADDR}\"}\nmodels: [{name: a, upstream: {url: \"http://a:1\"}}]\n",
    );
    assert_eq!(errs[0].0, "listen.address");
    assert!(errs[0].1.contains("LISTEN_ADDR"));
}

#[test]
fn env_default_applies() {
    let cfg = parse("listen: {address: \"${LISTEN_ADDR:-127.0.0.1:8080}\"}\nmodels: [{name: a, upstream: {url: \"http://a:1\"}}]\n").unwrap();
    assert_eq!(cfg.listeners[0].address.to_string(), "127.0.0.1:8080");
}

#[test]
fn upstream_urls_are_checked_without_leaking_credentials() {
    let errs = errors(
        "listen: {address: \"0.0.0.0:1\"}\nmodels: [{name: a, upstream: {url: \"http://user:s3cret@h:1/path\"}}]\n",
    );
    assert_eq!(errs[0].0, "models[0].upstream.url");
    assert!(!errs[0].1.contains("s3cret"), "{}", errs[0].1);
}

#[test]
fn grpc_needs_an_endpoint() {
    let errs = errors(
        "listen: {address: \"0.0.0.0:1\"}\nmodels: [{name: a, protocols: [grpc], upstream: {url: \"http://h:1\"}}]\n",
    );
    assert_eq!(errs[0].0, "models[0].upstream.grpc_url");
}

#[test]
fn route_prefixes_must_be_canonical_and_outside_protocol_paths() {
    let errs = errors(
        r#"
listen: {address: "0.0.0.0:1"}
models:
  - name: a
    upstream: {url: "http://h:1"}
    routes:
      - {prefix: "/kfserving/ns/../a", rewrite: "/v1/models/a:predict"}
      - {prefix: "/v2/models/a", rewrite: "/v1/models/a:predict"}
      - {prefix: "/ok", rewrite: "/tokenize"}
      - {prefix: "/ok2", rewrite: "/v1/models/a:predict", methods: [post]}
"#,
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "models[0].routes[0].prefix",
            "models[0].routes[1].prefix",
            "models[0].routes[2].rewrite",
            "models[0].routes[3].methods[0]"
        ]
    );
}

#[test]
fn public_paths_cannot_be_everything() {
    let errs = errors(&format!(
        "{MINIMAL}auth: {{public_paths: [\"*\", \"/a//b\"]}}\n"
    ));
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].0, "auth.public_paths[0]");
    assert_eq!(errs[1].0, "auth.public_paths[1]");
}

#[test]
fn not_yaml_is_a_clear_error() {
    let errs = errors("listen: [unclosed\n");
    assert!(errs[0].1.starts_with("not valid YAML"));
}

#[test]
fn listen_may_be_a_list() {
    let cfg = parse("listen: [{address: \"0.0.0.0:1\"}, {address: \"0.0.0.0:2\", http2: false}]\nmodels: [{name: a, upstream: {url: \"http://h:1\"}}]\n").unwrap();
    assert_eq!(cfg.listeners.len(), 2);
    assert!(!cfg.listeners[1].http2);
}

#[test]
fn zero_timeouts_are_refused_where_they_are_nonsense() {
    let errs = errors(
        r#"
listen: {address: "0.0.0.0:8080", header_read_timeout: 0s, drain_timeout: 0s}
models:
  - name: iris
    upstream: {url: "${IRIS_URL}", timeout: 0s, connect_timeout: 0ms}
auth:
  jwt:
  - issuer: https://idp.example.com
    jwks_uri: https://idp.example.com/jwks
    clock_skew: 0s
    timeout: 0s
"#,
    );
    let paths: Vec<&str> = errs.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "listen.header_read_timeout",
            "models[0].upstream.timeout",
            "models[0].upstream.connect_timeout",
            "auth.jwt[0].timeout",
        ],
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .all(|(_, m, _)| m == "must be greater than zero")
    );
    // A zero drain (close at once) and a zero clock skew are meaningful.
    let cfg = parse(
        r#"
listen: {address: "0.0.0.0:8080", drain_timeout: 0s}
models:
  - name: iris
    upstream: {url: "${IRIS_URL}"}
"#,
    )
    .unwrap();
    assert!(cfg.listeners[0].drain_timeout.is_zero());
}
