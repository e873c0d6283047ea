#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Decision time with 10, 100 and 1,000 rules (the matching rule last: every
//! rule is tried), and path normalisation. `cargo bench -p modelgate-authz`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use modelgate_authz::{Authorizer, CallerKind, Input};
use modelgate_core::{Grants, ModelName, Principal, RequestFacts};
use modelgate_route::{RouteTable, normalize_path};

fn config(rules: usize) -> String {
    let mut s = String::from(
        "listen: {address: \"127.0.0.1:8080\"}\nmodels:\n  - {name: iris, protocols: [v1, v2], upstream: {url: \"http://127.0.0.1:9000\"}}\npolicies:\n",
    );
    // Two DENY policies that do not match, then one ALLOW with `rules` rules.
    s.push_str("  - {name: d1, action: DENY, rules: [{from: [{source: {notRequestPrincipals: ['*']}}], to: [{operation: {paths: [/v2/*]}}]}]}\n");
    s.push_str("  - {name: d2, action: DENY, rules: [{when: [{key: 'request.headers[x-user]', values: [mallory]}]}]}\n");
    s.push_str("  - name: allow\n    rules:\n");
    for i in 0..rules {
        let sub = if i + 1 == rules {
            "alice".to_string()
        } else {
            format!("user-{i}")
        };
        let _ = writeln!(
            s,
            "    - from: [{{source: {{requestPrincipals: [api_key/{sub}]}}}}]\n      to: [{{operation: {{methods: [POST], paths: ['/v2/models/{{*}}/infer'], hosts: [models.example.com]}}}}]"
        );
    }
    s
}

fn decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");
    for n in [10usize, 100, 1000] {
        let cfg = modelgate_config::parse_str(&config(n), "bench.yaml", Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let routes = RouteTable::build(&cfg).unwrap_or_else(|e| panic!("{e:?}"));
        let authz = Authorizer::new(&cfg).unwrap_or_else(|e| panic!("{e:?}"));
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-user", HeaderValue::from_static("alice"));
        let facts = RequestFacts {
            request_id: "b".into(),
            method: Method::POST,
            path: "/v2/models/iris/infer".into(),
            query: None,
            host: Some("models.example.com".into()),
            headers,
            client: "192.0.2.1:4000".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            peer: None,
            received: Instant::now(),
            grpc: false,
        };
        let route = routes
            .resolve(
                &facts.method,
                &facts.path,
                facts.host.as_deref(),
                &facts.headers,
                false,
            )
            .unwrap();
        let who = Principal::api_key(
            "alice",
            Grants::Models(
                [ModelName::parse("iris").unwrap()]
                    .into_iter()
                    .collect::<BTreeSet<_>>(),
            ),
        );
        let trusted = cfg.listeners[0].trusted_proxies.clone();
        let v = authz.engine().evaluate(
            &Input::new(&facts, &route, Some(&who), &trusted),
            CallerKind::Identified,
            None,
        );
        assert!(v.is_allow(), "{v:?}");
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let input = Input::new(black_box(&facts), &route, Some(&who), &trusted);
                black_box(
                    authz
                        .engine()
                        .evaluate(&input, CallerKind::Identified, None),
                )
            })
        });
    }
    g.finish();
}

fn normalisation(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize");
    g.bench_function("clean", |b| {
        b.iter(|| normalize_path(black_box("/v2/models/iris/versions/1/infer")))
    });
    g.bench_function("dirty", |b| {
        b.iter(|| normalize_path(black_box("//v2/./models/x/../ir%69s//infer")))
    });
    g.finish();
}

criterion_group!(benches, decision, normalisation);
criterion_main!(benches);
