//! The decision function without sockets: adapters with and without a body,
//! assumed identities, refusals before routing.

use std::collections::BTreeSet;
use std::path::Path;

use modelgate_authz::{Basis, Verdict};
use modelgate_core::{Grants, ModelName};

use super::*;

const CONFIG: &str = r#"
listen: {address: "127.0.0.1:1"}
admin: {address: "127.0.0.1:2"}
models:
  - name: llama3
    protocols: [openai]
    upstream: {url: "http://127.0.0.1:3"}
  - name: other
    protocols: [openai]
    upstream: {url: "http://127.0.0.1:3"}
"#;

fn explainer() -> Explainer {
    let config = modelgate_config::parse_str(CONFIG, "t.yaml", Path::new("."), &|_| None).unwrap();
    Explainer::build(config).unwrap()
}

fn ask(method: &str, path: &str) -> Ask {
    Ask {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        path: path.into(),
        query: None,
        authority: None,
        headers: HeaderMap::new(),
        client: "127.0.0.1:40000".parse().unwrap(),
        local: "127.0.0.1:1".parse().unwrap(),
        peer: None,
        listener: 0,
        received: Instant::now(),
    }
}

fn llama_user() -> Claimed {
    let grants = Grants::Models(BTreeSet::from([ModelName::parse("llama3").unwrap()]));
    Claimed::Assumed(Arc::new(Principal::api_key("llama-user", grants)))
}

fn decide<B: BodyModel>(ask: Ask, claimed: Claimed, body: &mut B) -> Decision {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = explainer();
    rt.block_on(e.decider().decide(ask, claimed, body, true))
}

#[test]
fn an_adapter_without_a_body_is_refused_when_the_route_needs_the_body_model() {
    let d = decide(
        ask("POST", "/v1/chat/completions"),
        llama_user(),
        &mut NoBody,
    );
    let Err(Reject::BadRequest(msg)) = &d.result else {
        panic!("expected a 400, got {:?}", d.result);
    };
    assert!(msg.contains("model in the request body"), "{msg}");
    // Authentication ran first; authorization never did.
    assert!(matches!(d.identity, Identity::Assumed(_)));
    assert!(d.ruling.is_none());
}

#[test]
fn the_given_body_model_is_bound_and_authorized() {
    let d = decide(
        ask("POST", "/v1/chat/completions"),
        llama_user(),
        &mut GivenModel(Some("llama3".into())),
    );
    // Allowed, but an assumed identity never gets a Permit.
    assert!(matches!(d.result, Ok(None)), "{:?}", d.result);
    let ruling = d.ruling.unwrap();
    assert_eq!(ruling.verdict.basis(), Some(Basis::Grant));
    assert_eq!(d.route.unwrap().model.log_name(), "llama3");
    assert!(
        d.explain
            .iter()
            .any(|l| l.contains("grant covers model llama3"))
    );

    let d = decide(
        ask("POST", "/v1/chat/completions"),
        llama_user(),
        &mut GivenModel(Some("other".into())),
    );
    assert!(matches!(d.result, Err(Reject::Forbidden(_))));
    assert!(matches!(
        d.ruling.unwrap().verdict,
        Verdict::Forbidden {
            basis: Basis::Grant,
            policy: None,
            ..
        }
    ));
}

#[test]
fn refusals_before_routing_stop_the_decision_there() {
    let d = decide(
        ask("GET", "/internal/secrets"),
        Claimed::FromRequest,
        &mut NoBody,
    );
    assert!(matches!(d.result, Err(Reject::NotFound(_))));
    assert!(d.route.is_none() && matches!(d.identity, Identity::NotReached));
    let d = decide(
        ask("GET", "/v1/%2e%2e/models"),
        Claimed::FromRequest,
        &mut NoBody,
    );
    assert!(
        matches!(
            d.result,
            Err(Reject::BadRequest(_)) | Err(Reject::NotFound(_))
        ),
        "{:?}",
        d.result
    );
    let mut wrong = ask("GET", "/v1/models");
    wrong.listener = 7;
    let d = decide(wrong, Claimed::FromRequest, &mut NoBody);
    assert!(matches!(d.result, Err(Reject::Unavailable { .. })));
}

#[test]
fn no_credential_is_401_and_names_no_rule() {
    let d = decide(ask("GET", "/v1/models"), Claimed::FromRequest, &mut NoBody);
    assert!(matches!(
        d.result,
        Err(Reject::Unauthenticated(AuthFailure::CredentialNotFound))
    ));
    assert!(matches!(d.identity, Identity::Failed(_)) && d.ruling.is_none());
}

#[test]
fn admin_paths_are_a_server_operation_that_needs_the_admin_role() {
    // No admin role configured: an identity is refused by the role step,
    // never by grants or ALLOW policies; no identity is 401.
    let d = decide(ask("GET", "/admin/api/keys"), llama_user(), &mut NoBody);
    let route = d.route.as_ref().unwrap();
    assert_eq!(
        (route.protocol, route.operation),
        (
            modelgate_core::Protocol::Admin,
            modelgate_core::Operation::Admin
        )
    );
    assert!(matches!(d.result, Err(Reject::Forbidden(_))));
    assert!(matches!(
        d.ruling.unwrap().verdict,
        Verdict::Forbidden {
            basis: Basis::AdminRole,
            ..
        }
    ));
    let d = decide(
        ask("POST", "/%61dmin/api/keys"),
        Claimed::FromRequest,
        &mut NoBody,
    );
    assert!(matches!(d.result, Err(Reject::Unauthenticated(_))));
    assert_eq!(d.facts.unwrap().path, "/admin/api/keys");
}
