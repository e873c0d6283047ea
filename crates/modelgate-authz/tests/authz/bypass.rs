//! Every bypass class of the reference (§2.5 and §5): a request a naive engine
//! would let past a DENY is refused with 400, 404 or 403 — never allowed.

use crate::support::*;

fn deny_iris_infer() -> World {
    World::new(
        r#"
  - {name: no-iris-infer, action: DENY, rules: [{to: [{operation: {paths: [/v2/models/iris/infer]}}]}]}
  - {name: no-secret-host, action: DENY, rules: [{to: [{operation: {hosts: [secret.example.com]}}]}]}
"#,
    )
}

#[test]
fn path_tricks_never_pass_a_deny() {
    let w = deny_iris_infer();
    let cases: &[(&str, Outcome)] = &[
        ("/v2/models/iris/infer", Forbidden),
        ("/v2/models/iris%2Finfer", BadRequest), // CVE-2021-31920: encoded slash
        ("/v2/models/iris%2finfer", BadRequest),
        ("/v2/models/iris%5Cinfer", BadRequest), // encoded backslash
        ("/v2/models/iris\\infer", BadRequest),  // raw backslash
        ("//v2/models/iris/infer", Forbidden),   // merged slashes, then matched
        ("/v2//models/iris//infer", Forbidden),
        ("/v2/models/./iris/infer", Forbidden), // CVE-2019-9901: dot segments
        ("/v2/models/x/../iris/infer", Forbidden),
        ("/v2/models/%2e/iris/infer", Forbidden),
        ("/v2/models/ir%69s/infer", Forbidden), // unreserved escapes decoded once
        ("/v2/models/ir%2569s/infer", NotFound), // never decoded twice
        ("/V2/models/iris/infer", NotFound),    // case is kept: unknown route
        ("/v2/models/iris/infer;jsessionid=1", BadRequest), // CVE-2026-73511 class
        ("/v2/models/iris;x/infer", BadRequest),
        ("/v2/models/iris/infer%00", BadRequest),   // NUL
        ("/v2/models/iris/infer#frag", BadRequest), // CVE-2021-39156: fragment
        ("/v2/models/iris/infer?next=/v2/health/live", Forbidden), // query is not the path
        ("/v2/models/iris/infer/", NotFound),
        ("v2/models/iris/infer", BadRequest), // not absolute
    ];
    for (path, want) in cases {
        w.check(&Req::post(path).key("k", &["*"]), want.clone());
    }
    w.check(
        &Req::new("post", "/v2/models/iris/infer").key("k", &["*"]),
        BadRequest,
    ); // lower-case method
    w.check(
        &Req::post("/v2/models/secret/infer").key("k", &["*"]),
        Allow,
    );
}

#[test]
fn host_case_and_port() {
    // CVE-2021-39155: hosts compared case-sensitively.
    let w = deny_iris_infer();
    for host in [
        "secret.example.com",
        "SECRET.example.com",
        "Secret.Example.Com:8443",
        "secret.example.com:80",
    ] {
        w.check(&Req::infer("secret").key("k", &["*"]).host(host), Forbidden);
    }
    w.check(
        &Req::infer("secret")
            .key("k", &["*"])
            .host("secret.example.com.evil"),
        Allow,
    );
    // Two Host headers are ambiguous: refused.
    w.check(
        &Req::infer("secret")
            .key("k", &["*"])
            .header("host", "a")
            .header("host", "b"),
        BadRequest,
    );
}

#[test]
fn repeated_headers_are_each_checked() {
    // CVE-2026-26308 (joined then matched) and CVE-2021-32777 (last value only).
    let w = World::new(
        "  - {name: d, action: DENY, rules: [{when: [{key: 'request.headers[x-user]', values: [mallory]}]}]}",
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-user", "mallory")
            .header("x-user", "alice"),
        Forbidden,
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-user", "alice")
            .header("x-user", "mallory"),
        Forbidden,
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-user", "alice"),
        Allow,
    );
    // ALLOW: every line must satisfy the condition.
    let w = World::new(
        "  - {name: a, rules: [{when: [{key: 'request.headers[x-user]', values: [alice]}]}]}",
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-user", "alice"),
        Allow,
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-user", "alice")
            .header("x-user", "mallory"),
        Forbidden,
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-user", "mallory")
            .header("x-user", "alice"),
        Forbidden,
    );
    // DENY with notValues: any line that is not "good" denies.
    let w = World::new(
        "  - {name: d, action: DENY, rules: [{when: [{key: 'request.headers[x-tier]', notValues: [gold]}]}]}",
    );
    w.check(
        &Req::infer("iris").key("k", &["*"]).header("x-tier", "gold"),
        Allow,
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-tier", "gold")
            .header("x-tier", "free"),
        Forbidden,
    );
    w.check(&Req::infer("iris").key("k", &["*"]), Forbidden); // absent: notValues holds
}

#[test]
fn non_utf8_header_bytes_do_not_fail_open() {
    // CVE-2026-73552: a regex matcher treated non-UTF-8 as "no match", so a
    // negative match succeeded. Byte-wise matching sees the prefix.
    let w = World::new(
        "  - {name: a, rules: [{when: [{key: 'request.headers[x-role]', notValues: ['admin*']}]}]}",
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-role", b"user"),
        Allow,
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-role", b"admin\xff"),
        Forbidden,
    );
    let w = World::new(
        "  - {name: d, action: DENY, rules: [{when: [{key: 'request.headers[x-role]', values: ['admin*']}]}]}",
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-role", b"admin\xfe\xff"),
        Forbidden,
    );
    w.check(
        &Req::infer("iris")
            .key("k", &["*"])
            .header("x-role", b"\xffadmin"),
        Allow,
    );
}

#[test]
fn literals_are_not_regexes() {
    // CVE-2026-39350: '.' in a value acted as a regex wildcard.
    let w =
        World::istio("  - {name: a, rules: [{from: [{source: {serviceAccounts: [ns.a/sa]}}]}]}");
    w.check(
        &Req::infer("iris").peer("spiffe://cluster.local/ns/ns.a/sa/sa"),
        Allow,
    );
    w.check(
        &Req::infer("iris").peer("spiffe://cluster.local/ns/nsxa/sa/sa"),
        Forbidden,
    );
    let w = World::istio(
        "  - {name: a, rules: [{from: [{source: {principals: [cluster.local/ns/a/sa/b]}}]}]}",
    );
    w.check(
        &Req::infer("iris").peer("spiffe://clusterXlocal/ns/a/sa/b"),
        Forbidden,
    );
}

#[test]
fn forwarded_for_spoofing() {
    let w = World::istio(
        "  - {name: d, action: DENY, rules: [{from: [{source: {remoteIpBlocks: [198.51.100.0/24]}}]}]}\n  - {name: a, rules: [{}]}",
    );
    let bad = "198.51.100.66";
    // The blocked client connects directly and claims another address.
    w.check(
        &Req::infer("iris")
            .client_ip(bad)
            .header("x-forwarded-for", "203.0.113.1"),
        Forbidden,
    );
    w.check(
        &Req::infer("iris")
            .client_ip(bad)
            .header("x-real-ip", "203.0.113.1")
            .header("forwarded", "for=203.0.113.1"),
        Forbidden,
    );
    // Through the trusted proxy, prepending a fake hop does not help.
    w.check(
        &Req::infer("iris")
            .client_ip("10.0.0.5")
            .header("x-forwarded-for", format!("203.0.113.1, {bad}")),
        Forbidden,
    );
    w.check(
        &Req::infer("iris")
            .client_ip("10.0.0.5")
            .header("x-forwarded-for", "203.0.113.1")
            .header("x-forwarded-for", bad),
        Forbidden,
    );
    w.check(
        &Req::infer("iris")
            .client_ip("10.0.0.5")
            .header("x-forwarded-for", "203.0.113.1"),
        Allow,
    );
}

#[test]
fn grpc_path_must_be_canonical() {
    let w = World::new(
        "  - {name: d, action: DENY, rules: [{to: [{operation: {paths: [/inference.GRPCInferenceService/ModelInfer]}}]}]}",
    );
    let mut r = Req::post("inference.GRPCInferenceService/ModelInfer").key("k", &["*"]);
    r.grpc = true;
    w.check(&r, BadRequest);
    let mut r = Req::post("//inference.GRPCInferenceService/ModelInfer").key("k", &["*"]);
    r.grpc = true;
    w.check(&r, BadRequest);
}
