use std::time::Duration;

use super::*;
use crate::parse_str;

const BASE: &str = "listen: {address: 127.0.0.1:8080}\nmodels: [{name: iris, upstream: {url: \"http://127.0.0.1:9\"}}]\n";

fn parse(extra: &str) -> Result<crate::Config, String> {
    parse_str(
        &format!("{BASE}{extra}"),
        "t.yaml",
        std::path::Path::new("."),
        &|_| None,
    )
    .map_err(|e| e.to_string())
}

#[test]
fn istio_entries_paste_in() {
    let cfg = parse(
        "extension_providers:
  - name: ext-http
    envoyExtAuthzHttp:
      service: foo/authz.foo.svc.cluster.local
      port: 8000
      timeout: 250ms
      pathPrefix: /check
      includeRequestHeadersInCheck: [x-ext-authz, x-b3-*]
      includeAdditionalHeadersInCheck: {x-from: modelgate}
      headersToUpstreamOnAllow: [x-user, '*-id']
      headersToDownstreamOnDeny: [x-reason]
  - name: ext-grpc
    envoyExtAuthzGrpc: {service: 127.0.0.1, port: 9000, failOpen: true, statusOnError: '503'}
policies:
  - {name: c, action: CUSTOM, provider: {name: ext-http}, rules: [{}]}
",
    )
    .unwrap();
    let [h, g] = &cfg.extension_providers[..] else {
        panic!("two providers expected");
    };
    assert_eq!(h.authority, "authz.foo.svc.cluster.local:8000");
    assert_eq!(h.timeout, Duration::from_millis(250));
    assert!(!h.fail_open, "fail closed by default");
    assert_eq!(h.status_on_error, StatusCode::FORBIDDEN);
    let ProviderKind::Http(hp) = &h.kind else {
        panic!("http expected");
    };
    assert_eq!(hp.path_prefix, "/check");
    assert!(any_matches(&hp.include_request_headers, "x-b3-traceid"));
    assert!(!any_matches(&hp.include_request_headers, "authorization"));
    assert!(any_matches(&hp.headers_to_upstream_on_allow, "x-tenant-id"));
    assert_eq!(hp.additional_headers[0].0, "x-from");
    assert_eq!(g.kind, ProviderKind::Grpc);
    assert_eq!(g.timeout, DEFAULT_TIMEOUT);
    assert!(g.fail_open);
    assert_eq!(g.status_on_error, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn errors_name_the_key_and_the_fix() {
    let e = parse("extension_providers: [{name: a}]\n").unwrap_err();
    assert!(
        e.contains("extension_providers[0]") && e.contains("exactly one"),
        "{e}"
    );
    let e = parse("extension_providers: [{name: a, envoyExtAuthzHttp: {service: x, port: 1, failopen: true}}]\n").unwrap_err();
    assert!(
        e.contains("extension_providers[0].envoyExtAuthzHttp") && e.contains("failopen"),
        "{e}"
    );
    let e = parse("extension_providers: [{name: a, envoyExtAuthzGrpc: {service: x, port: 1, statusOnError: nope}}]\n").unwrap_err();
    assert!(
        e.contains("extension_providers[0].envoyExtAuthzGrpc.statusOnError"),
        "{e}"
    );
    let e = parse("extension_providers: [{name: a, envoyExtAuthzHttp: {service: x, port: 1, headersToUpstreamOnAllow: ['a*b']}}]\n").unwrap_err();
    assert!(e.contains("headersToUpstreamOnAllow[0]"), "{e}");
    let e = parse("extension_providers: [{name: a, envoyExtAuthzGrpc: {service: x, port: 1, includeRequestBodyInCheck: {allowPartialMessage: true}}}]\n").unwrap_err();
    assert!(
        e.contains(
            "extension_providers[0].envoyExtAuthzGrpc.includeRequestBodyInCheck.maxRequestBytes"
        ) && e.contains("maxRequestBytes: 8192"),
        "{e}"
    );
    let e = parse("extension_providers: [{name: a, envoyExtAuthzHttp: {service: x, port: 1, includeRequestBodyInCheck: {maxRequestBytes: 10, partial: true}}}]\n").unwrap_err();
    assert!(e.contains("partial"), "{e}");
}

#[test]
fn request_body_settings_as_istio_writes_them() {
    // The shape of Istio's own example (ext-authz task, meshConfig).
    let cfg = parse(
        "extension_providers:
  - name: sample-ext-authz-http
    envoyExtAuthzHttp:
      service: ext-authz.foo.svc.cluster.local
      port: 8000
      includeRequestHeadersInCheck: [x-ext-authz]
      includeRequestBodyInCheck:
        maxRequestBytes: 1024
        allowPartialMessage: true
  - name: sample-ext-authz-grpc
    envoyExtAuthzGrpc:
      service: ext-authz.foo.svc.cluster.local
      port: 9000
      includeRequestBodyInCheck: {maxRequestBytes: 4096, packAsBytes: true}
",
    )
    .unwrap();
    let [h, g] = &cfg.extension_providers[..] else {
        panic!("two providers expected");
    };
    assert_eq!(
        h.body,
        Some(RequestBody {
            max_bytes: 1024,
            allow_partial: true,
            pack_as_bytes: false
        })
    );
    assert_eq!(
        g.body,
        Some(RequestBody {
            max_bytes: 4096,
            allow_partial: false,
            pack_as_bytes: true
        })
    );
    let none =
        parse("extension_providers: [{name: a, envoyExtAuthzGrpc: {service: x, port: 1}}]\n")
            .unwrap();
    assert_eq!(none.extension_providers[0].body, None);
}

#[test]
fn custom_policy_must_name_a_configured_provider() {
    let e = parse(
        "extension_providers: [{name: a, envoyExtAuthzGrpc: {service: x, port: 1}}]
policies:
  - {name: c, action: CUSTOM, provider: {name: typo}, rules: [{}]}
",
    )
    .unwrap_err();
    assert!(
        e.contains("policies[0].provider.name") && e.contains("\"typo\""),
        "{e}"
    );
    // With no providers configured, CUSTOM is served in-process (as before).
    parse("policies:\n  - {name: c, action: CUSTOM, provider: {name: anything}, rules: [{}]}\n")
        .unwrap();
}
