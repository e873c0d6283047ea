//! Envoy ext_authz against `serve`, on the real binary. Envoy cannot be
//! installed here, so the client is generated from Envoy's own protos (the
//! `envoy-types` crate) and sends `CheckRequest`s shaped as Envoy's
//! ext_authz filter builds them, for every seed scenario: 000 (API key,
//! OpenAI, body in the check), 001 (API key, V2 infer), 002/003 (JWT),
//! 004 (RBAC denial); with and without a body, with an mTLS
//! `source.principal`, with spoofed identity headers, with comma-joined and
//! raw (`header_map`) headers. The same table goes through `serve`: the
//! decisions, statuses, bodies and identity headers must agree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ext_authz_common;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::google::protobuf::value::Kind;
use ext_authz_common::*;
use modelgate_extauthz::pb::{CheckResponse, HeaderAppendAction, HttpResponse};

const SPOOFED: &[(&str, &str)] = &[
    ("kubeflow-userid", "admin@example.com"),
    ("x-forwarded-user", "root"),
    ("x-auth-request-email", "root@example.com"),
];

struct Case {
    name: &'static str,
    req: Req,
    /// Expected HTTP status from serve (200 = allowed, echo upstream).
    status: u16,
    principal: &'static str,
    /// Whether serve can be asked the same (it cannot present an Envoy
    /// source principal without a client certificate).
    compare: bool,
}

fn req(method: &'static str, path: &str, headers: &[(&str, String)], body: Option<&str>) -> Req {
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    if body.is_some() {
        h.push(("content-type".into(), "application/json".into()));
    }
    Req {
        method,
        path: path.into(),
        headers: h,
        body: body.map(|b| b.as_bytes().to_vec()),
    }
}

fn cases(key: &str, alice: &str, bob: &str, expired: &str) -> Vec<Case> {
    let bearer = |t: &str| ("authorization", format!("Bearer {t}"));
    let chat = r#"{"model":"llama","messages":[{"role":"user","content":"hi"}]}"#;
    let v2 = r#"{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[[5.1,3.5,1.4,0.2]]}]}"#;
    let mut spoofed = vec![bearer(key)];
    spoofed.extend(SPOOFED.iter().map(|(k, v)| (*k, v.to_string())));
    let c = |name, req, status| Case {
        name,
        req,
        status,
        principal: "",
        compare: true,
    };
    vec![
        c(
            "000 API key, OpenAI chat, body in the check",
            req("POST", "/v1/chat/completions", &[bearer(key)], Some(chat)),
            200,
        ),
        c(
            "000 no credential",
            req("POST", "/v1/chat/completions", &[], Some(chat)),
            401,
        ),
        c(
            "000 unknown key",
            req(
                "POST",
                "/v1/chat/completions",
                &[bearer("mgk_nope")],
                Some(chat),
            ),
            401,
        ),
        c(
            "000 body names an unknown model",
            req(
                "POST",
                "/v1/chat/completions",
                &[bearer(key)],
                Some(r#"{"model":"gpt-x","messages":[]}"#),
            ),
            404,
        ),
        c(
            "001 API key, V2 infer",
            req("POST", "/v2/models/iris/infer", &[bearer(key)], Some(v2)),
            200,
        ),
        c(
            "001 API key as x-api-key, with a query",
            req(
                "GET",
                "/v2/models/iris?x=1",
                &[("x-api-key", key.to_string())],
                None,
            ),
            200,
        ),
        c(
            "001 spoofed identity headers",
            req("POST", "/v2/models/iris/infer", &spoofed, Some(v2)),
            200,
        ),
        c(
            "001 unknown model",
            req("POST", "/v2/models/nope/infer", &[bearer(key)], Some(v2)),
            404,
        ),
        c(
            "001 not a protocol path",
            req("GET", "/admin/secrets", &[bearer(key)], None),
            404,
        ),
        c(
            "002 JWT",
            req("POST", "/v2/models/iris/infer", &[bearer(alice)], Some(v2)),
            200,
        ),
        c(
            "003 expired JWT",
            req(
                "POST",
                "/v2/models/iris/infer",
                &[bearer(expired)],
                Some(v2),
            ),
            401,
        ),
        c(
            "004 RBAC: DENY policy matches the JWT subject",
            req("POST", "/v2/models/iris/infer", &[bearer(bob)], Some(v2)),
            403,
        ),
        c(
            "mTLS: ALLOW by peer principal, no peer",
            req("POST", "/v2/models/secure/infer", &[bearer(key)], Some(v2)),
            403,
        ),
        Case {
            name: "mTLS: ALLOW by peer principal, Envoy's source.principal",
            req: req("POST", "/v2/models/secure/infer", &[bearer(key)], Some(v2)),
            status: 200,
            principal: "spiffe://cluster.local/ns/kserve/sa/caller",
            compare: false,
        },
    ]
}

fn config(
    dir: &std::path::Path,
    ports: (u16, u16, u16),
    upstream: std::net::SocketAddr,
    jwks: &str,
) -> String {
    format!(
        r#"
listen: [{{address: "127.0.0.1:{l}"}}]
admin: {{address: "127.0.0.1:{a}"}}
ext_authz: {{address: "127.0.0.1:{e}", http_path_prefix: /authz}}
log: {{decisions: "{dir}/decisions.jsonl"}}
models:
  - {{name: iris, upstream: {{url: "http://{upstream}"}}}}
  - {{name: secure, upstream: {{url: "http://{upstream}"}}}}
  - {{name: llama, protocols: [openai], upstream: {{url: "http://{upstream}"}}}}
auth:
  api_keys: {{file: "{dir}/keys.json"}}
  identity_header: kubeflow-userid
  jwt:
    - issuer: {ISS}
      audiences: [models]
      jwks: '{jwks}'
policies:
  - {{name: verified, action: ALLOW, models: [iris], rules: [{{from: [{{source: {{requestPrincipals: ["*"]}}}}]}}]}}
  - {{name: no-bob, action: DENY, models: [iris], rules: [{{from: [{{source: {{requestPrincipals: ["{ISS}/bob"]}}}}]}}]}}
  - {{name: mesh-only, action: ALLOW, models: [secure], rules: [{{from: [{{source: {{principals: ["cluster.local/ns/kserve/sa/caller"]}}}}]}}]}}
"#,
        l = ports.0,
        a = ports.1,
        e = ports.2,
        dir = dir.display(),
    )
}

fn header<'a>(hs: &'a [modelgate_extauthz::pb::HeaderValueOption], name: &str) -> Option<&'a str> {
    hs.iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}

fn meta(r: &CheckResponse, key: &str) -> Option<String> {
    match r
        .dynamic_metadata
        .as_ref()?
        .fields
        .get(key)?
        .kind
        .as_ref()?
    {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_and_serve_decide_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, seen) = echo_upstream().await;
    let key = create_key(&dir.path().join("keys.json"), "alice-key");
    let idp = Issuer::generate();
    let ports = (free_port(), free_port(), free_port());
    let cfg = dir.path().join("mg.yaml");
    std::fs::write(&cfg, config(dir.path(), ports, upstream, &idp.jwks())).unwrap();
    let mut mg = Modelgate::start(&cfg, &[ports.0, ports.2]);
    let serve_addr = format!("127.0.0.1:{}", ports.0);
    let mut client = AuthorizationClient::connect(format!("http://127.0.0.1:{}", ports.2))
        .await
        .unwrap();
    let table = cases(
        &key,
        &idp.token("alice", 600),
        &idp.token("bob", 600),
        &idp.token("alice", -600),
    );
    let mut records = 0;
    for case in &table {
        let host = "models.example.com";
        for raw_headers in [false, true] {
            let check = check_request(&case.req, host, true, raw_headers, case.principal);
            let resp = client.check(check).await.unwrap().into_inner();
            records += 1;
            let code = resp.status.as_ref().unwrap().code;
            assert_eq!(
                code == 0,
                case.status == 200,
                "{}: status {resp:?}",
                case.name
            );
            match resp.http_response.as_ref().unwrap() {
                HttpResponse::OkResponse(ok) => {
                    assert_eq!(
                        meta(&resp, "decision").as_deref(),
                        Some("allow"),
                        "{}",
                        case.name
                    );
                    for h in &ok.headers {
                        assert_eq!(
                            h.append_action,
                            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
                        );
                        let name = &h.header.as_ref().unwrap().key;
                        assert!(
                            !ok.headers_to_remove.contains(name),
                            "{}: {name} set and removed",
                            case.name
                        );
                    }
                    assert!(
                        ok.headers_to_remove
                            .iter()
                            .any(|h| h == "authorization" || h == "x-api-key"),
                        "{}: credential kept: {ok:?}",
                        case.name
                    );
                    for (spoof, _) in SPOOFED
                        .iter()
                        .filter(|(n, _)| case.req.headers.iter().any(|(k, _)| k == n))
                    {
                        let gone = ok.headers_to_remove.iter().any(|h| h == spoof);
                        let replaced = header(&ok.headers, spoof).is_some();
                        assert!(
                            gone || replaced,
                            "{}: spoofed {spoof} survives: {ok:?}",
                            case.name
                        );
                    }
                    let who = header(&ok.headers, "kubeflow-userid").unwrap();
                    assert!(
                        who == "alice-key" || who == "alice",
                        "{}: identity {who}",
                        case.name
                    );
                    assert_eq!(meta(&resp, "identity").as_deref(), Some(who));
                }
                HttpResponse::DeniedResponse(d) => {
                    assert_eq!(
                        d.status.as_ref().unwrap().code,
                        i32::from(case.status),
                        "{}: {d:?}",
                        case.name
                    );
                    assert_eq!(meta(&resp, "decision").as_deref(), Some("deny"));
                    if case.status == 401 {
                        assert!(
                            header(&d.headers, "www-authenticate").is_some(),
                            "{}: {d:?}",
                            case.name
                        );
                    }
                }
                HttpResponse::ErrorResponse(e) => panic!("{}: error response {e:?}", case.name),
            }
            if !case.compare {
                continue;
            }
            let before = seen.lock().unwrap().len();
            let (status, headers, body) = via_serve(&serve_addr, &case.req).await;
            records += 1;
            assert_eq!(
                status, case.status,
                "{}: serve answered {status} {body:?}",
                case.name
            );
            match resp.http_response.unwrap() {
                HttpResponse::OkResponse(ok) => {
                    let got = seen.lock().unwrap()[before].clone();
                    for h in ok.headers.iter().filter_map(|h| h.header.as_ref()) {
                        assert_eq!(
                            got.get(&h.key).unwrap().to_str().unwrap(),
                            h.value,
                            "{}: {}",
                            case.name,
                            h.key
                        );
                    }
                    for name in &ok.headers_to_remove {
                        assert!(
                            got.get(name).is_none(),
                            "{}: serve forwarded {name}",
                            case.name
                        );
                    }
                }
                HttpResponse::DeniedResponse(d) => {
                    assert_eq!(d.body.as_bytes(), &body[..], "{}: bodies differ", case.name);
                    for name in ["www-authenticate", "x-ext-auth-reason", "content-type"] {
                        assert_eq!(
                            header(&d.headers, name),
                            headers.get(name).map(|v| v.to_str().unwrap()),
                            "{}: {name}",
                            case.name
                        );
                    }
                }
                HttpResponse::ErrorResponse(_) => unreachable!(),
            }
        }
    }

    // Without the body, a route that names its model in the body is refused.
    let openai = &table[0].req;
    let resp = client
        .check(check_request(
            openai,
            "models.example.com",
            false,
            false,
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    records += 1;
    assert_ne!(resp.status.unwrap().code, 0);
    let Some(HttpResponse::DeniedResponse(d)) = resp.http_response else {
        panic!("allowed without a body")
    };
    assert_eq!(d.status.unwrap().code, 400);
    assert!(d.body.contains("body"), "{}", d.body);

    // A V2 route names its model in the path: no body needed.
    let v2 = &table[4].req;
    let resp = client
        .check(check_request(v2, "models.example.com", false, false, ""))
        .await
        .unwrap()
        .into_inner();
    records += 1;
    assert_eq!(resp.status.as_ref().unwrap().code, 0);
    assert_eq!(meta_model(&resp), "iris");

    records += http_flavour(ports.2, &key).await;

    mg.stop();
    let log = std::fs::read_to_string(dir.path().join("decisions.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        records,
        "one decision record per check and per request"
    );
}

fn meta_model(r: &CheckResponse) -> String {
    meta(r, "model").unwrap_or_default()
}

/// The HTTP flavour (Istio `envoyExtAuthzHttp` with `pathPrefix: /authz`).
async fn http_flavour(port: u16, key: &str) -> usize {
    let addr = format!("127.0.0.1:{port}");
    let base = |headers: Vec<(String, String)>| Req {
        method: "GET",
        path: "/authz/v2/models/iris".into(),
        headers,
        body: None,
    };
    let (status, headers, _) = via_serve(&addr, &base(vec![])).await;
    assert_eq!(status, 401);
    assert!(headers.get("www-authenticate").is_some());
    let spoof = vec![
        ("authorization".to_string(), format!("Bearer {key}")),
        ("x-forwarded-user".to_string(), "root".to_string()),
    ];
    let (status, headers, _) = via_serve(&addr, &base(spoof)).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("kubeflow-userid").unwrap(), "alice-key");
    let remove = headers
        .get("x-envoy-auth-headers-to-remove")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        remove.split(',').any(|h| h == "x-forwarded-user"),
        "{remove}"
    );
    assert!(
        !remove.split(',').any(|h| h == "kubeflow-userid"),
        "{remove}"
    );
    2
}
