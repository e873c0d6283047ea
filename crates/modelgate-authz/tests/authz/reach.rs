//! `Authorizer::check_reach`: before an OpenAI or gRPC body is read, a
//! caller who may use no model of the protocol is refused without it.

use std::time::Instant;

use http::{HeaderMap, Method};
use modelgate_authz::Caller;
use modelgate_core::{Reject, RequestFacts};

use crate::support::World;

fn chat_facts() -> RequestFacts {
    RequestFacts {
        request_id: "t".into(),
        method: Method::POST,
        path: "/v1/chat/completions".into(),
        query: None,
        host: None,
        headers: HeaderMap::new(),
        client: "192.0.2.1:5000".parse().unwrap(),
        local: "127.0.0.1:8080".parse().unwrap(),
        peer: None,
        received: Instant::now(),
        grpc: false,
    }
}

fn reach(w: &World) -> Result<(), Reject> {
    let facts = chat_facts();
    let route = w
        .routes
        .resolve(&facts.method, &facts.path, None, &facts.headers, false)
        .unwrap();
    assert!(route.model_in_body);
    w.authz.check_reach(
        Caller::Anonymous,
        &facts,
        &route,
        &w.routes,
        &w.config.models,
        &w.config.listeners[0],
    )
}

#[test]
fn anonymous_with_an_openai_model_allowed_reads_the_body() {
    assert_eq!(reach(&World::istio("  - {name: all, rules: [{}]}")), Ok(()));
    let only_llama = "  - {name: a, rules: [{to: [{operation: {models: [llama3]}}]}]}";
    assert_eq!(reach(&World::istio(only_llama)), Ok(()));
}

#[test]
fn anonymous_with_no_openai_model_is_refused_before_the_body() {
    let only_iris = "  - {name: a, rules: [{to: [{operation: {models: [iris]}}]}]}";
    assert!(matches!(
        reach(&World::istio(only_iris)),
        Err(Reject::Forbidden(_))
    ));
    let deny_llama = "  - {name: all, rules: [{}]}\n  - {name: d, action: DENY, rules: [{to: [{operation: {models: [llama3]}}]}]}";
    assert!(matches!(
        reach(&World::istio(deny_llama)),
        Err(Reject::Forbidden(_))
    ));
}
