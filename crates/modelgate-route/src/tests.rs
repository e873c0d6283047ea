//! Route-table tests over a configuration like the seeds'.

use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};
use modelgate_core::{Operation, Protocol, Reject};

use crate::{ModelRef, RouteTable};

const CONFIG: &str = r#"
listen: {address: "0.0.0.0:8080"}
auth:
  public_paths: [/v2/health/live, /v2/health/ready]
models:
  - name: iris
    protocols: [v1, v2, grpc]
    upstream: {url: "http://127.0.0.1:9000", grpc_url: "http://127.0.0.1:9001"}
    public_operations: [model_ready]
  - name: sklearn-iris
    hosts: [sklearn-iris.kubeflow-user-example-com.example.com]
    upstream: {url: "http://127.0.0.1:9002"}
  - name: inf-sklearn-iris-model
    protocols: [v1]
    upstream: {url: "http://127.0.0.1:9003", host: inf-sklearn-iris-model.kubeflow-test-test-com.svc.cluster.local}
    routes:
      - prefix: /kfserving/kubeflow-test-test-com/inf-sklearn-iris-model
        rewrite: "/v1/models/inf-sklearn-iris-model:predict"
        methods: [POST]
  - name: llama3
    protocols: [openai]
    upstream: {url: "http://127.0.0.1:9004"}
"#;

fn table() -> RouteTable {
    let cfg = modelgate_config::parse_str(CONFIG, "t", Path::new("."), &|_| None).unwrap();
    RouteTable::build(&cfg).unwrap()
}

fn route(method: Method, path: &str, host: Option<&str>) -> Result<crate::RouteMatch, Reject> {
    table().resolve(&method, path, host, &HeaderMap::new(), false)
}

fn known(r: &crate::RouteMatch) -> &str {
    r.model.known().map(|m| m.as_str()).unwrap_or("<none>")
}

#[test]
fn protocol_paths_route_to_models() {
    let r = route(Method::POST, "/v2/models/iris/infer", None).unwrap();
    assert_eq!(
        (r.protocol, r.operation, known(&r)),
        (Protocol::V2, Operation::Infer, "iris")
    );
    assert!(!r.public);
    let r = route(Method::POST, "/v1/models/iris:predict", None).unwrap();
    assert_eq!((r.protocol, r.operation), (Protocol::V1, Operation::Infer));
    assert_eq!(r.upstream_path, "/v1/models/iris:predict");
}

#[test]
fn unknown_paths_are_not_found() {
    for p in [
        "/v2/repository/models/iris/load",
        "/tokenize",
        "/invocations",
        "/metrics",
        "/",
    ] {
        assert!(
            matches!(route(Method::POST, p, None), Err(Reject::NotFound(_))),
            "{p}"
        );
    }
}

#[test]
fn unknown_model_is_decided_after_authentication() {
    let r = route(Method::POST, "/v2/models/nope/infer", None).unwrap();
    assert_eq!(r.model, ModelRef::Unknown("nope".into()));
    // A known model on a protocol it does not speak is unknown too.
    let r = route(Method::POST, "/v2/models/llama3/infer", None).unwrap();
    assert_eq!(r.model, ModelRef::Unknown("llama3".into()));
}

#[test]
fn wrong_method_is_405() {
    assert_eq!(
        route(Method::GET, "/v2/models/iris/infer", None),
        Err(Reject::MethodNotAllowed)
    );
}

#[test]
fn public_paths_and_operations() {
    assert!(route(Method::GET, "/v2/health/live", None).unwrap().public);
    assert!(
        route(Method::GET, "/v2/models/iris/ready", None)
            .unwrap()
            .public
    );
    assert!(!route(Method::GET, "/v2/models/iris", None).unwrap().public);
    assert!(
        !route(Method::GET, "/v2/models/sklearn-iris/ready", None)
            .unwrap()
            .public
    );
}

#[test]
fn hosts_restrict_models_case_insensitively_after_normalisation() {
    let h = crate::normalize_host("Sklearn-Iris.Kubeflow-User-Example-Com.Example.com:8080");
    let r = route(Method::POST, "/v1/models/sklearn-iris:predict", Some(&h)).unwrap();
    assert_eq!(known(&r), "sklearn-iris");
    let r = route(
        Method::POST,
        "/v1/models/sklearn-iris:predict",
        Some("evil.example.com"),
    )
    .unwrap();
    assert!(matches!(r.model, ModelRef::Unknown(_)));
}

#[test]
fn seed_002_prefix_rewrite() {
    let r = route(
        Method::POST,
        "/kfserving/kubeflow-test-test-com/inf-sklearn-iris-model",
        None,
    )
    .unwrap();
    assert_eq!(r.upstream_path, "/v1/models/inf-sklearn-iris-model:predict");
    assert_eq!(
        (r.protocol, r.operation, known(&r)),
        (Protocol::V1, Operation::Infer, "inf-sklearn-iris-model")
    );
    assert_eq!(
        route(
            Method::GET,
            "/kfserving/kubeflow-test-test-com/inf-sklearn-iris-model",
            None
        ),
        Err(Reject::MethodNotAllowed)
    );
    // Below the prefix, the rewritten path is no protocol path: refused.
    assert!(matches!(
        route(
            Method::POST,
            "/kfserving/kubeflow-test-test-com/inf-sklearn-iris-model/x",
            None
        ),
        Err(Reject::NotFound(_))
    ));
    // A look-alike prefix does not match.
    assert!(
        route(
            Method::POST,
            "/kfserving/kubeflow-test-test-com/inf-sklearn-iris-model2",
            None
        )
        .is_err()
    );
}

#[test]
fn seldon_model_header() {
    let t = table();
    let mut h = HeaderMap::new();
    h.insert("seldon-model", HeaderValue::from_static("iris"));
    let r = t
        .resolve(&Method::POST, "/v2/models/iris/infer", None, &h, false)
        .unwrap();
    assert_eq!(known(&r), "iris");
    // A server-level path that is not public goes to the named model's server…
    let r = t.resolve(&Method::GET, "/v2", None, &h, false).unwrap();
    assert_eq!((known(&r), r.public), ("iris", false));
    h.insert("seldon-model", HeaderValue::from_static("other"));
    assert!(matches!(
        t.resolve(&Method::POST, "/v2/models/iris/infer", None, &h, false),
        Err(Reject::BadRequest(_))
    ));
    h.append("seldon-model", HeaderValue::from_static("iris"));
    assert!(matches!(
        t.resolve(&Method::GET, "/v2/health/ready", None, &h, false),
        Err(Reject::BadRequest(_))
    ));
}

#[test]
fn openai_models_bind_from_body() {
    let t = table();
    let h = HeaderMap::new();
    let mut r = t
        .resolve(&Method::POST, "/v1/chat/completions", None, &h, false)
        .unwrap();
    assert!(r.model_in_body);
    assert_eq!(r.model, ModelRef::None);
    t.bind_body_model(&mut r, "llama3", None, &h).unwrap();
    assert_eq!(known(&r), "llama3");
    let mut r = t
        .resolve(&Method::POST, "/v1/completions", None, &h, false)
        .unwrap();
    t.bind_body_model(&mut r, "iris", None, &h).unwrap();
    assert_eq!(r.model, ModelRef::Unknown("iris".into()));
    let r = t
        .resolve(&Method::GET, "/v1/models", None, &h, false)
        .unwrap();
    assert_eq!(
        (r.protocol, r.operation),
        (Protocol::OpenAi, Operation::ListModels)
    );
    let r = t
        .resolve(&Method::GET, "/v1/models/llama3", None, &h, false)
        .unwrap();
    assert_eq!(
        (r.protocol, r.operation, known(&r)),
        (Protocol::OpenAi, Operation::ModelMetadata, "llama3")
    );
}

#[test]
fn grpc_routes() {
    let t = table();
    let h = HeaderMap::new();
    let r = t
        .resolve(
            &Method::POST,
            "/inference.GRPCInferenceService/ModelInfer",
            None,
            &h,
            true,
        )
        .unwrap();
    assert!(r.model_in_body);
    assert_eq!(r.protocol, Protocol::Grpc);
    assert!(
        t.resolve(
            &Method::POST,
            "/inference.GRPCInferenceService/RepositoryModelLoad",
            None,
            &h,
            true
        )
        .is_err()
    );
}

#[test]
fn rewrite_must_target_own_model() {
    let bad = CONFIG.replace(
        "rewrite: \"/v1/models/inf-sklearn-iris-model:predict\"",
        "rewrite: \"/v1/models/iris:predict\"",
    );
    let cfg = modelgate_config::parse_str(&bad, "t", Path::new("."), &|_| None).unwrap();
    let errs = RouteTable::build(&cfg).err().unwrap();
    assert_eq!(errs[0].path, "models[2].routes[0].rewrite");
}

#[test]
fn seldon_model_header_never_forwards_a_public_server_path() {
    let t = table();
    for name in ["iris", "sklearn-iris", "nope"] {
        let mut h = HeaderMap::new();
        h.insert("seldon-model", HeaderValue::from_str(name).unwrap());
        for path in ["/v2/health/ready", "/v2/health/live"] {
            let r = t.resolve(&Method::GET, path, None, &h, false).unwrap();
            // Public, and answered by modelgate itself (no model to forward to).
            assert_eq!(
                (r.public, &r.model),
                (true, &ModelRef::None),
                "{path} {name}"
            );
        }
    }
}
