//! Path templates (`{*}`, `{**}`) conform to Istio's own tests: istio/istio
//! `tests/integration/security/authz_test.go` (`TestAuthz_PathTemplating`,
//! policy `testdata/authz/path-templating.yaml.tmpl`) for matching, and
//! `pkg/config/security/security_test.go` (`TestCheckValidPathTemplate`) for
//! what loads. Envoy's URI template: `{**}` is any run of characters, `/`
//! included, and the `/` written before it is required.

use std::path::Path;

use modelgate_config::policy::{PathMatch, TargetField};

use crate::support::*;

fn load(paths: &[&str]) -> Result<Vec<PathMatch>, String> {
    let list = paths
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "{}policies:\n  - {{name: t, rules: [{{to: [{{operation: {{paths: [{list}]}}}}]}}]}}\n",
        BASE.replace("__ISTIO__", "false")
    );
    let cfg = modelgate_config::parse_str(&text, "t.yaml", Path::new("."), &|_| None)
        .map_err(|e| e.to_string())?;
    let rules = cfg.policies[0].rules.as_ref().unwrap();
    match &rules[0].to[0].fields[0].kind {
        TargetField::Paths(p) => Ok(p.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn istio_path_templating_cases() {
    let cases: &[(&str, &[(&str, bool)])] = &[
        (
            "/allow/admin/{**}",
            &[
                ("/allow/admin/", true),
                // A trailing `{**}` needs the `/` before it.
                ("/allow/admin", false),
                ("/allow/user/", false),
                ("/allow", false),
                ("/allow/admin/temp", true),
                ("/allow/admin/temp.txt", true),
                ("/allow/admin/foo/temp.txt", true),
            ],
        ),
        (
            "/foo/{*}/bar/{**}",
            &[
                ("/foo/buzz/bar/bat.txt", true),
                ("/foo/buzz/bar/bat.temp.txt", true),
                ("/foo/buzz/bar/bat/fuzz.txt", true),
                ("/foo/bar/bat.txt", false),
                ("/foo//bar/bat.txt", false),
                ("/foo/buzz/bar/bat", true),
            ],
        ),
        (
            // `{**}` is the last operator, not the last segment.
            "/store/{**}/cart",
            &[
                ("/store//cart", true),
                ("/store/cart", false),
                ("/store/foo/cart", true),
                ("/store/foo/bar/cart", true),
            ],
        ),
    ];
    for (template, checks) in cases {
        let m = load(&[template]).unwrap_or_else(|e| panic!("{template}: {e}"));
        assert_eq!(m[0].to_string(), *template);
        for (path, want) in *checks {
            assert_eq!(m[0].matches(path), *want, "{template} vs {path}");
        }
    }
}

#[test]
fn istio_check_valid_path_template_cases() {
    for ok in ["/{*}/foo", "/{*}/foo/", "/foo/{**}/bar", "/foo/bar/{**}"] {
        load(&[ok]).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "/foo/{**}buzz/bar",
        "/{*}/foo/{}/bar",
        "/foo/{*}/bar/*",
        "/foo/{*}/bar/**/buzz",
        "/foo/{buzz}/bar",
        "/{buzz}",
        "/foo/{buzz}/bar/{**}",
        "/foo/{buzz=*}/bar/{**}",
        "/{*}/foo/{buzz=**}/bar",
        "/{*}/foo/{**}bar",
        "/{*}/foo/{*}.txt",
        "/{*}/foo/{temp",
        "/{*}/foo/temp}/bar",
        "/{*}/foo/temp}/*",
        "/{**}/foo/temp/{*}/bar",
    ] {
        assert!(load(&[bad]).is_err(), "{bad} loaded");
    }
}

#[test]
fn trailing_rest_does_not_widen_an_allow() {
    // `/v2/models/iris/{**}` is iris's sub-resources, not its metadata.
    let w = World::new(
        "  - {name: a, rules: [{to: [{operation: {paths: ['/v2/models/iris/{**}']}}]}]}",
    );
    let alice = || jwt("https://accounts.google.com", "alice");
    w.check(&Req::get("/v2/models/iris/ready").jwt(alice()), Allow);
    w.check(&Req::infer("iris").jwt(alice()), Allow);
    w.check(&Req::get("/v2/models/iris").jwt(alice()), Forbidden);
}
