//! `auth.sign_in`: defaults, and errors that name the key and the fix.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use modelgate_config::identity::{CookieSecure, RedirectTarget};
use modelgate_config::parse_str;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

fn config(sign_in: &str) -> String {
    format!(
        r#"
listen: {{address: "0.0.0.0:8080"}}
models:
  - name: iris
    upstream: {{url: "http://127.0.0.1:8081"}}
auth:
  jwt:
    - issuer: https://idp.example.com
  sign_in:
{sign_in}
"#
    )
}

fn parse(sign_in: &str) -> Result<modelgate_config::Config, Vec<(String, String)>> {
    parse_str(
        &config(sign_in),
        "t.yaml",
        Path::new("/etc/modelgate"),
        &|_| None,
    )
    .map_err(|e| e.errors.into_iter().map(|e| (e.path, e.message)).collect())
}

#[test]
fn defaults() {
    let cfg = parse(&format!(
        "    issuer: https://idp.example.com\n    client_id: web\n    client_secret: s\n    cookie: {{key: \"{KEY}\"}}"
    ))
    .unwrap();
    let s = cfg.auth.sign_in.unwrap();
    assert_eq!(
        (
            s.login_path.as_str(),
            s.redirect_path.as_str(),
            s.logout_path.as_str(),
            s.landing_path.as_str()
        ),
        ("/oauth2/start", "/oauth2/callback", "/oauth2/sign_out", "/")
    );
    assert_eq!(s.cookie.name, "modelgate_session");
    assert_eq!(s.cookie.lifetime, Duration::from_secs(12 * 3600));
    assert_eq!(s.cookie.secure, CookieSecure::Auto);
    assert_eq!(s.cookie.key.0[0], 1);
    assert!(
        !format!("{:?}", s.cookie.key).contains('1'),
        "the key is never printed"
    );
    assert!(!format!("{:?}", s.client_secret).contains('s'));
    assert_eq!(s.scopes, ["openid", "email", "profile", "groups"]);
    assert_eq!(s.allowed_redirects, [RedirectTarget::Path("/".into())]);
}

#[test]
fn errors_name_the_key() {
    let errs = parse(
        "    issuer: https://other.example.com\n    client_id: web\n    client_secret: \"\"\n    \
         login_path: //evil\n    allowed_redirects: [\"//evil\", \"https://ui.example.com\"]\n    \
         cookie: {key: c2hvcnQ=, lifetime: 8d, secure: sometimes, name: \"a b\"}",
    )
    .unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "auth.sign_in.issuer",
        "auth.sign_in.client_secret",
        "auth.sign_in.login_path",
        "auth.sign_in.allowed_redirects[0]",
        "auth.sign_in.cookie",
        "auth.sign_in.cookie.lifetime",
        "auth.sign_in.cookie.secure",
        "auth.sign_in.cookie.name",
    ] {
        assert!(keys.contains(&k), "{k} missing in {errs:?}");
    }
    assert!(!keys.contains(&"auth.sign_in.allowed_redirects[1]"));
    let both = parse(&format!(
        "    issuer: https://idp.example.com\n    client_id: web\n    client_secret: s\n    cookie: {{key: \"{KEY}\", key_file: k}}"
    ))
    .unwrap_err();
    assert_eq!(both[0].0, "auth.sign_in.cookie");
    let unknown = parse(&format!(
        "    issuer: https://idp.example.com\n    client_id: web\n    client_secret: s\n    cookie: {{key: \"{KEY}\"}}\n    bogus: 1"
    ))
    .unwrap_err();
    assert!(unknown[0].1.contains("bogus"), "{unknown:?}");
}
