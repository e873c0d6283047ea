//! A small world: one configuration (three models, a trusted proxy range, a
//! public probe path) plus the policies under test, and a `decide` that runs
//! a raw request through normalisation, routing and the engine exactly as the
//! gateway's steps 1, 2, 3 and 5 do.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use modelgate_authz::{Authorizer, CallerKind, Input, Verdict};
use modelgate_config::Config;
use modelgate_core::{AuthMethod, Grants, ModelName, PeerIdentity, Principal, RequestFacts};
use modelgate_route::{RouteTable, normalize_host, normalize_path};

pub const BASE: &str = r#"
listen: {address: "127.0.0.1:8080", trusted_proxies: [10.0.0.0/8], istio_compat: __ISTIO__}
auth: {public_paths: [/v2/health/live]}
models:
  - {name: iris, protocols: [v1, v2], upstream: {url: "http://127.0.0.1:9000"}}
  - {name: secret, protocols: [v2], upstream: {url: "http://127.0.0.1:9001"}}
  - {name: llama3, protocols: [openai], upstream: {url: "http://127.0.0.1:9002"}}
"#;

pub struct World {
    pub config: Config,
    pub routes: RouteTable,
    pub authz: Authorizer,
}

/// What the gateway would answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    /// 400 from normalisation or header checks.
    BadRequest,
    /// 401.
    Unauthenticated,
    /// 403.
    Forbidden,
    /// 404 (no route or unknown model).
    NotFound,
    /// 405.
    MethodNotAllowed,
}

pub use Outcome::*;

impl World {
    pub fn new(policies: &str) -> Self {
        Self::with(policies, false)
    }

    pub fn istio(policies: &str) -> Self {
        Self::with(policies, true)
    }

    pub fn with(policies: &str, istio: bool) -> Self {
        let text = format!(
            "{}policies:\n{policies}\n",
            BASE.replace("__ISTIO__", if istio { "true" } else { "false" })
        );
        let config =
            match modelgate_config::parse_str(&text, "test.yaml", Path::new("."), &|_| None) {
                Ok(c) => c,
                Err(e) => panic!("{e}\n{text}"),
            };
        let routes = RouteTable::build(&config).unwrap_or_else(|e| panic!("{e:?}"));
        let authz = Authorizer::new(&config).unwrap_or_else(|e| panic!("{e:?}"));
        Self {
            config,
            routes,
            authz,
        }
    }

    pub fn decide(&self, r: &Req) -> Outcome {
        self.decide_explained(r).0
    }

    /// The outcome and the engine's explanation.
    pub fn decide_explained(&self, r: &Req) -> (Outcome, Vec<String>) {
        let mut why = Vec::new();
        // 1. Read.
        if !r.method.bytes().all(|b| b.is_ascii_uppercase()) {
            return (BadRequest, why);
        }
        let Ok(method) = Method::from_bytes(r.method.as_bytes()) else {
            return (BadRequest, why);
        };
        let (raw_path, query) = match r.target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (r.target.as_str(), None),
        };
        let path = match normalize_path(raw_path) {
            Ok(p) => p,
            Err(_) => return (BadRequest, why),
        };
        if r.grpc && path != raw_path {
            return (BadRequest, why);
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
                return (BadRequest, why);
            };
            let Ok(value) = HeaderValue::from_bytes(v) else {
                return (BadRequest, why);
            };
            headers.append(name, value);
        }
        if headers.get_all("host").iter().count() > 1 {
            return (BadRequest, why);
        }
        let host = r.host.as_deref().map(normalize_host);
        let facts = RequestFacts {
            request_id: "t".into(),
            method: method.clone(),
            path,
            query,
            host,
            headers,
            client: r.client,
            local: "127.0.0.1:8080".parse().unwrap(),
            peer: r.peer.clone().map(|u| PeerIdentity {
                uris: vec![u],
                dns: vec![],
                common_name: None,
            }),
            received: Instant::now(),
            grpc: r.grpc,
        };
        // 2. Route.
        let mut route = match self.routes.resolve(
            &facts.method,
            &facts.path,
            facts.host.as_deref(),
            &facts.headers,
            facts.grpc,
        ) {
            Ok(m) => m,
            Err(e) => return (reject_outcome(e.status().as_u16()), why),
        };
        // 3. Authenticate.
        let listener = &self.config.listeners[0];
        let kind = if route.public {
            CallerKind::Public
        } else if r.principal.is_some() {
            CallerKind::Identified
        } else if listener.istio_compat {
            CallerKind::Anonymous
        } else {
            return (Unauthenticated, why);
        };
        // 4. Body model.
        if route.model_in_body {
            let name = r.body_model.clone().unwrap_or_default();
            if let Err(e) = self.routes.bind_body_model(
                &mut route,
                &name,
                facts.host.as_deref(),
                &facts.headers,
            ) {
                return (reject_outcome(e.status().as_u16()), why);
            }
        }
        // 5. Authorize.
        let principal = if kind == CallerKind::Identified {
            r.principal.as_ref()
        } else {
            None
        };
        let input = Input::new(&facts, &route, principal, &listener.trusted_proxies);
        let verdict = self.authz.engine().evaluate(&input, kind, Some(&mut why));
        let plain = self.authz.engine().evaluate(&input, kind, None);
        assert_eq!(verdict, plain, "explaining must not change the decision");
        let out = match verdict {
            Verdict::Allow { .. } => Allow,
            Verdict::NeedCredential { .. } => Unauthenticated,
            Verdict::Forbidden { .. } => Forbidden,
            Verdict::NotFound(_) => NotFound,
        };
        (out, why)
    }

    #[track_caller]
    pub fn check(&self, r: &Req, want: Outcome) {
        let (got, why) = self.decide_explained(r);
        assert_eq!(
            got,
            want,
            "{} {} → {got:?}, want {want:?}\nwhy:\n  {}",
            r.method,
            r.target,
            why.join("\n  ")
        );
    }
}

fn reject_outcome(status: u16) -> Outcome {
    match status {
        400 => BadRequest,
        401 => Unauthenticated,
        403 => Forbidden,
        404 => NotFound,
        405 => MethodNotAllowed,
        s => panic!("unexpected status {s}"),
    }
}

/// A request as a client would send it (raw path, raw headers).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub client: SocketAddr,
    pub peer: Option<String>,
    pub principal: Option<Principal>,
    pub grpc: bool,
    pub body_model: Option<String>,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.into(),
            target: target.into(),
            host: Some("models.example.com".into()),
            headers: Vec::new(),
            client: "192.0.2.10:40000".parse().unwrap(),
            peer: None,
            principal: None,
            grpc: false,
            body_model: None,
        }
    }
    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }
    pub fn post(target: &str) -> Self {
        Self::new("POST", target)
    }
    pub fn infer(model: &str) -> Self {
        Self::post(&format!("/v2/models/{model}/infer"))
    }
    pub fn host(mut self, h: &str) -> Self {
        self.host = Some(h.into());
        self
    }
    pub fn header(mut self, k: &str, v: impl AsRef<[u8]>) -> Self {
        self.headers.push((k.into(), v.as_ref().to_vec()));
        self
    }
    pub fn client_ip(mut self, ip: &str) -> Self {
        self.client = format!("{ip}:40000").parse().unwrap();
        self
    }
    pub fn peer(mut self, spiffe: &str) -> Self {
        self.peer = Some(spiffe.into());
        self
    }
    pub fn body_model(mut self, m: &str) -> Self {
        self.body_model = Some(m.into());
        self
    }
    /// An API key with grants for `models` (`*` = all).
    pub fn key(mut self, name: &str, models: &[&str]) -> Self {
        let grants = if models == ["*"] {
            Grants::AllModels
        } else {
            Grants::Models(
                models
                    .iter()
                    .map(|m| ModelName::parse(m).unwrap())
                    .collect::<BTreeSet<_>>(),
            )
        };
        self.principal = Some(Principal::api_key(name, grants));
        self
    }
    /// A verified JWT with these claims (`iss`, `sub`, `aud`, `azp` taken from them).
    pub fn jwt(mut self, claims: serde_json::Value) -> Self {
        let map = claims.as_object().cloned().unwrap_or_default();
        let s = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let audiences = match map.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        };
        let sub = s("sub").unwrap_or_default();
        self.principal = Some(Principal {
            method: AuthMethod::Jwt,
            name: sub.clone(),
            issuer: s("iss"),
            subject: sub,
            audiences,
            presenter: s("azp"),
            namespace: None,
            groups: vec![],
            claims: Some(Arc::new(map)),
            grants: Grants::Nothing,
        });
        self
    }
}

/// A JWT for `iss`/`sub` with no other claims.
pub fn jwt(iss: &str, sub: &str) -> serde_json::Value {
    serde_json::json!({"iss": iss, "sub": sub})
}
