//! `wristband:` validation: defaults, and each refusal names its key.

use std::path::Path;

use crate::wristband::WristbandAlgorithm;

fn parse(listen: &str, section: &str) -> Result<crate::Config, crate::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pem"), "not checked here").unwrap();
    let text = format!(
        "listen: {listen}\nmodels:\n  - {{name: iris, upstream: {{url: \"http://127.0.0.1:9\"}}}}\n  - {{name: bert, upstream: {{url: \"http://127.0.0.1:9\"}}, wristband: false}}\nauth: {{identity_header: kubeflow-userid}}\nwristband: {section}\n"
    );
    crate::parse_str(&text, "t.yaml", dir.path(), &|_| None)
}

fn errors(section: &str) -> Vec<(String, String)> {
    parse("{address: \"127.0.0.1:8080\"}", section)
        .unwrap_err()
        .errors
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

#[test]
fn defaults() {
    let c = parse(
        "{address: \"127.0.0.1:8080\"}",
        "{issuer: \"https://gw.example/wb/\", signing_keys: [k.pem]}",
    )
    .unwrap();
    let w = c.wristband.unwrap();
    assert_eq!(w.issuer, "https://gw.example/wb");
    assert_eq!(w.issuer_path, "/wb");
    assert_eq!(w.header.as_str(), "x-modelgate-wristband");
    assert_eq!(w.ttl.as_secs(), 300);
    assert_eq!(w.algorithm, WristbandAlgorithm::Es256);
    assert_eq!(w.audience, None);
    assert!(w.signing_keys[0].ends_with("k.pem"));
    assert!(c.models[0].wristband);
    assert!(!c.models[1].wristband);
}

#[test]
fn absent_section_is_none() {
    let text = "listen: {address: \"127.0.0.1:8080\"}\nmodels: [{name: iris, upstream: {url: \"http://127.0.0.1:9\"}}]\n";
    let c = crate::parse_str(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    assert!(c.wristband.is_none());
}

#[test]
fn refusals_name_their_key() {
    let e = errors("{issuer: \"ftp://x\", signing_keys: [k.pem]}");
    assert_eq!(e[0].0, "wristband.issuer");
    let e = errors("{issuer: \"https://x\", signing_keys: [k.pem], ttl: 2h}");
    assert_eq!(
        e,
        [(
            "wristband.ttl".into(),
            "7200s is longer than the 1h maximum".into()
        )]
    );
    let e = errors("{issuer: \"https://x\", signing_keys: [k.pem], algorithm: RS256}");
    assert_eq!(e[0].0, "wristband.algorithm");
    let e = errors("{issuer: \"https://x\", signing_keys: []}");
    assert_eq!(e[0].0, "wristband.signing_keys");
    let e = errors("{issuer: \"https://x\", signing_keys: [k.pem, missing.pem]}");
    assert_eq!(e[0].0, "wristband.signing_keys[1]");
    let e = errors("{issuer: \"https://x\", signing_keys: [k.pem], extra: 1}");
    assert!(e[0].0.starts_with("wristband"), "{e:?}");
}

#[test]
fn header_must_be_its_own() {
    for h in [
        "host",
        "Content-Length",
        "connection",
        "authorization",
        "kubeflow-userid",
    ] {
        let e = errors(&format!(
            "{{issuer: \"https://x\", signing_keys: [k.pem], header: {h}}}"
        ));
        assert_eq!(e.len(), 1, "{h}: {e:?}");
        assert_eq!(e[0].0, "wristband.header", "{h}");
    }
    let e = parse(
        "{address: \"127.0.0.1:8080\", credentials: [!custom_header x-api-key]}",
        "{issuer: \"https://x\", signing_keys: [k.pem], header: x-api-key}",
    )
    .unwrap_err();
    assert_eq!(e.errors[0].path, "wristband.header");
    assert!(e.errors[0].message.contains("listen[0]"), "{}", e.errors[0]);
}
