//! The original request as each proxy style describes it; nothing guessed.

use http::{HeaderMap, HeaderValue, Method};
use modelgate_config::forward_auth::ForwardHeaders::{Forwarded, Nginx};
use modelgate_core::Reject;

use super::{Original, original};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn refused(r: Result<Original, Reject>) -> String {
    match r {
        Err(Reject::Forbidden(m)) => m,
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
}

#[test]
fn nginx_reads_x_original_and_the_forwarded_host() {
    let h = headers(&[
        ("x-original-uri", "/v2/models/iris/infer?a=1"),
        ("x-original-method", "POST"),
        ("x-forwarded-host", "models.example"),
        ("host", "127.0.0.1:9000"),
        // Not nginx's: a client could have sent them through nginx.
        ("x-forwarded-uri", "/v2/health/ready"),
        ("x-forwarded-method", "GET"),
    ]);
    assert_eq!(
        original(&h, Nginx).unwrap(),
        Original {
            method: Method::POST,
            path: "/v2/models/iris/infer".into(),
            query: Some("a=1".into()),
            host: Some("models.example".into()),
        }
    );
}

#[test]
fn forwarded_reads_x_forwarded_and_ignores_x_original() {
    let h = headers(&[
        ("x-forwarded-uri", "/v2/models/iris/ready"),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("host", "gw.example"),
        ("x-original-uri", "/v2/health/ready"),
    ]);
    let o = original(&h, Forwarded).unwrap();
    assert_eq!(o.path, "/v2/models/iris/ready");
    assert_eq!(o.query, None);
    assert_eq!(o.method, Method::GET);
    assert_eq!(o.host.as_deref(), Some("gw.example"));
}

#[test]
fn missing_repeated_or_odd_headers_refuse_the_check() {
    let cases: &[(&[(&str, &str)], _, &str)] = &[
        (
            &[("x-original-method", "GET")],
            Nginx,
            "did not send x-original-uri",
        ),
        (
            &[("x-original-uri", "/v2")],
            Nginx,
            "did not send x-original-method",
        ),
        (
            &[
                ("x-original-uri", "/a"),
                ("x-original-uri", "/b"),
                ("x-original-method", "GET"),
            ],
            Nginx,
            "more than one x-original-uri",
        ),
        (
            &[
                ("x-original-uri", "http://evil/v2"),
                ("x-original-method", "GET"),
            ],
            Nginx,
            "origin form",
        ),
        (
            &[("x-forwarded-uri", "/v2"), ("x-forwarded-method", "G T")],
            Forwarded,
            "not a method",
        ),
        (
            &[
                ("x-forwarded-uri", "/v2"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-proto", "gopher"),
            ],
            Forwarded,
            "not http or https",
        ),
        (
            &[
                ("x-forwarded-uri", "/v2"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-host", "a, b"),
            ],
            Forwarded,
            "one host",
        ),
        // The nginx headers do not stand in for the forwarded ones.
        (
            &[("x-original-uri", "/v2"), ("x-original-method", "GET")],
            Forwarded,
            "x-forwarded-uri",
        ),
    ];
    for (pairs, style, want) in cases {
        let msg = refused(original(&headers(pairs), *style));
        assert!(msg.contains(want), "{pairs:?}: {msg}");
        assert!(msg.starts_with("forward-auth: "), "{msg}");
    }
}

#[test]
fn refusals_reach_the_proxy_as_401_or_403_with_a_reason() {
    use modelgate_core::respond::{RenderContext, X_EXT_AUTH_REASON, for_proxy, render};
    use modelgate_core::{AuthFailure, ErrorShape};
    let ctx = RenderContext { realm: "r" };
    for (reject, status) in [
        (
            Reject::Unauthenticated(AuthFailure::CredentialNotFound),
            401,
        ),
        (
            Reject::NotFound("Model with name x does not exist.".into()),
            403,
        ),
        (Reject::BadRequest("bad path".into()), 403),
        (Reject::MethodNotAllowed, 403),
        (
            Reject::Internal {
                detail: "secret detail".into(),
            },
            403,
        ),
    ] {
        let mut resp = render(&reject, ErrorShape::KServe, &ctx);
        for_proxy(&mut resp, &reject);
        assert_eq!(resp.status().as_u16(), status, "{reject:?}");
        let reason = resp.headers()[X_EXT_AUTH_REASON].to_str().unwrap();
        assert_eq!(reason, reject.client_message());
        assert!(!reason.contains("secret"));
        assert_eq!(
            resp.headers().contains_key(http::header::WWW_AUTHENTICATE),
            status == 401
        );
    }
}
