//! `requestPrincipals` and `request.auth.principal` conformance: Istio's own
//! examples, matched on the whole `<iss>/<sub>` string.

use crate::support::*;

/// (issuer, subject, whether the pattern matches).
type Check<'a> = (&'a str, &'a str, bool);

/// Istio's own `requestPrincipals` examples, from istio/istio
/// `pilot/pkg/security/authz/model/generator_test.go` (`TestRequestPrincipal`:
/// `*`, `foo*`, `foo/*`, `foo/bar*`, `*foo`, `*/foo`, `*bar/foo`, `foo/bar`)
/// and the API reference (`<ISS>/<SUB>`; exact, prefix, suffix and presence
/// match), as pattern → (iss, sub, matches). Istio's current generator splits
/// the pattern at its last `/`; where that and the whole-string match of the
/// API reference differ (a `/` inside the subject), we follow the reference.
#[test]
fn istio_request_principal_examples() {
    let cases: &[(&str, &[Check])] = &[
        ("*", &[("foo", "bar", true)]),
        (
            "foo*",
            &[
                ("foo", "x", true),
                ("foobar", "x", true),
                ("fo", "x", false),
            ],
        ),
        ("foo/*", &[("foo", "bar", true), ("foox", "bar", false)]),
        (
            "foo/bar*",
            &[
                ("foo", "bar", true),
                ("foo", "barbaz", true),
                ("foo", "ba", false),
                ("fo", "bar", false),
            ],
        ),
        (
            "*foo",
            &[("x", "foo", true), ("x", "xfoo", true), ("x", "fo", false)],
        ),
        ("*/foo", &[("x", "foo", true), ("x", "xfoo", false)]),
        (
            "*bar/foo",
            &[
                ("xbar", "foo", true),
                ("bar", "foo", true),
                ("xbaz", "foo", false),
            ],
        ),
        (
            "foo/bar",
            &[
                ("foo", "bar", true),
                ("foo", "baz", false),
                ("foo/bar", "", false),
            ],
        ),
        // GitHub OIDC: the subject holds '/', the wildcard reaches into the issuer.
        (
            "https://token.actions.githubusercontent.com/repo:org/x:ref:refs/heads/main",
            &[(
                "https://token.actions.githubusercontent.com",
                "repo:org/x:ref:refs/heads/main",
                true,
            )],
        ),
        (
            "*/repo:org/x:ref:refs/heads/main",
            &[
                (
                    "https://token.actions.githubusercontent.com",
                    "repo:org/x:ref:refs/heads/main",
                    true,
                ),
                (
                    "https://token.actions.githubusercontent.com",
                    "repo:org/y:ref:refs/heads/main",
                    false,
                ),
            ],
        ),
        (
            "https://token.actions.githubusercontent.com/repo:org/x:*",
            &[
                (
                    "https://token.actions.githubusercontent.com",
                    "repo:org/x:ref:refs/heads/dev",
                    true,
                ),
                (
                    "https://token.actions.githubusercontent.com",
                    "repo:org/xy:ref:refs/heads/dev",
                    false,
                ),
            ],
        ),
        (
            "*.example.com/alice",
            &[("https://idp.example.com", "alice", true)],
        ),
    ];
    for (pattern, checks) in cases {
        let w = World::new(&format!(
            "  - {{name: deny, action: DENY, rules: [{{from: [{{source: {{requestPrincipals: ['{pattern}']}}}}]}}]}}\n  - {{name: allow, rules: [{{}}]}}"
        ));
        let when = World::new(&format!(
            "  - {{name: deny, action: DENY, rules: [{{when: [{{key: request.auth.principal, values: ['{pattern}']}}]}}]}}\n  - {{name: allow, rules: [{{}}]}}"
        ));
        for (iss, sub, hit) in *checks {
            let want = if *hit { Forbidden } else { Allow };
            let r = Req::infer("iris").jwt(jwt(iss, sub));
            assert_eq!(w.decide(&r), want, "{pattern} vs {iss}/{sub}");
            assert_eq!(when.decide(&r), want, "when {pattern} vs {iss}/{sub}");
        }
    }
}
