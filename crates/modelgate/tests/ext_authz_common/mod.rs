//! Shared machinery for the ext_authz tests: the real binary on free ports,
//! an echo upstream that records the headers `serve` forwards, API keys,
//! ES256 tokens, and `CheckRequest`s shaped as Envoy sends them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use modelgate_extauthz::pb::CheckRequest;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

pub const BIN: &str = env!("CARGO_BIN_EXE_modelgate");
pub const ISS: &str = "https://idp.test";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The headers of every request the upstream received, in order.
pub type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// An upstream that answers 200 `{}` and records the request headers.
pub async fn echo_upstream() -> (SocketAddr, Seen) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        s.lock().unwrap().push(req.headers().clone());
                        async move {
                            let _ = req.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(io, svc)
                .await;
            });
        }
    });
    (addr, seen)
}

pub fn create_key(keys: &Path, name: &str) -> String {
    let out = Command::new(BIN)
        .args(["keys", "--file"])
        .arg(keys)
        .args(["create", "--name", name, "--models", "*"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An ES256 issuer: its inline JWKS and a token minter.
pub struct Issuer {
    key: EcdsaKeyPair,
}

impl Issuer {
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self { key }
    }

    pub fn jwks(&self) -> String {
        let p = self.key.public_key().as_ref();
        serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])}]})
        .to_string()
    }

    /// A token for `sub`, expiring `ttl_secs` from now (negative: expired).
    pub fn token(&self, sub: &str, ttl_secs: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let head = B64.encode(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#);
        let claims = serde_json::json!({"iss": ISS, "sub": sub, "aud": "models",
            "iat": now - 60, "exp": now + ttl_secs});
        let input = format!("{head}.{}", B64.encode(claims.to_string()));
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

/// The real binary, stopped (SIGTERM, so the decision log is flushed) on drop.
pub struct Modelgate {
    pub child: Child,
}

impl Modelgate {
    pub fn start(config: &Path, ports: &[u16]) -> Self {
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mg = Self { child };
        for p in ports {
            wait_port(*p);
        }
        mg
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Modelgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {port} never opened");
}

/// One request as a client sent it to Envoy.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// The `CheckRequest` Envoy's ext_authz filter builds for `r` (as in
/// `source/extensions/filters/common/ext_authz/check_request_utils.cc`):
/// pseudo-headers in `headers`, repeated headers comma-joined (or one entry
/// each in `header_map` with `encode_raw_headers`), the body as bytes with
/// `pack_as_bytes`, and the mTLS peer's SPIFFE ID in `source.principal`.
pub fn check_request(
    r: &Req,
    host: &str,
    with_body: bool,
    raw_headers: bool,
    principal: &str,
) -> CheckRequest {
    use envoy_types::pb::envoy::config::core::v3::{
        Address, HeaderMap, HeaderValue, SocketAddress, address, socket_address,
    };
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
    let sock = |ip: &str, port: u32| Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    };
    let mut lines: Vec<(String, String)> = vec![
        (":authority".into(), host.into()),
        (":method".into(), r.method.into()),
        (":path".into(), r.path.clone()),
        (":scheme".into(), "http".into()),
        ("x-request-id".into(), format!("req-{}", r.path.len())),
    ];
    lines.extend(
        r.headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
    );
    let mut joined: HashMap<String, String> = HashMap::new();
    for (k, v) in &lines {
        joined
            .entry(k.clone())
            .and_modify(|e| {
                e.push(',');
                e.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    let http = attribute_context::HttpRequest {
        id: "1".into(),
        method: r.method.into(),
        path: r.path.clone(),
        host: host.into(),
        scheme: "http".into(),
        protocol: "HTTP/1.1".into(),
        size: r.body.as_ref().map_or(0, |b| b.len() as i64),
        headers: if raw_headers { HashMap::new() } else { joined },
        header_map: raw_headers.then(|| HeaderMap {
            headers: lines
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: k.clone(),
                    raw_value: v.as_bytes().to_vec(),
                    ..Default::default()
                })
                .collect(),
        }),
        raw_body: if with_body {
            r.body.clone().unwrap_or_default()
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(sock("10.0.0.7", 51234)),
                principal: principal.into(),
                ..Default::default()
            }),
            destination: Some(attribute_context::Peer {
                address: Some(sock("10.0.0.1", 8080)),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// `serve`'s answer to `r`: status, headers, body.
pub async fn via_serve(addr: &str, r: &Req) -> (u16, http::HeaderMap, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut b = http::Request::builder()
        .method(r.method)
        .uri(format!("http://{addr}{}", r.path));
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b
        .body(Full::new(Bytes::from(r.body.clone().unwrap_or_default())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}
