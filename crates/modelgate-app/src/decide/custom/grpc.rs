//! Envoy's gRPC ext_authz client, as Istio's `envoyExtAuthzGrpc` configures
//! it: one `envoy.service.auth.v3.Authorization/Check` unary call over
//! HTTP/2 (prior knowledge), the `CheckRequest` built as Envoy builds it —
//! `attributes.request.http` {id, method, path, host, scheme, protocol,
//! headers with the pseudo-headers}, source and destination addresses, and
//! the mTLS client's SPIFFE ID as `source.principal`; with
//! `includeRequestBodyInCheck`, the body in `body` (UTF-8) or `raw_body`
//! (`packAsBytes`) and `x-envoy-auth-partial-body` among the headers. `status.code` 0
//! allows (the `ok_response` headers go upstream); otherwise the
//! `denied_response` goes to the client (403 when it names no status).

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderValueOption, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, attribute_context, check_response::HttpResponse,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use modelgate_config::providers::ExtensionProvider;
use modelgate_core::{ExternalDenial, RequestFacts};
use prost::Message;

use super::http::PARTIAL_BODY;
use super::{Answer, CheckBody, HttpClient, MAX_RESPONSE_BYTES};

const PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

pub(super) async fn check(
    client: &HttpClient,
    p: &ExtensionProvider,
    facts: &RequestFacts,
    tls: bool,
    body: Option<&CheckBody>,
) -> Result<Answer, String> {
    let pack = p.body.is_some_and(|b| b.pack_as_bytes);
    let msg = check_request(facts, tls, body, pack).encode_to_vec();
    let mut framed = BytesMut::with_capacity(msg.len() + 5);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(msg.len()).map_err(|_| "CheckRequest too large")?);
    framed.put_slice(&msg);
    let req = Request::post(format!("http://{}{PATH}", p.authority))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", format!("{}m", p.timeout.as_millis()))
        .body(Full::new(framed.freeze()))
        .map_err(|e| format!("cannot build the Check call: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("Check call failed: {e}"))?;
    let (parts, body) = resp.into_parts();
    if parts.status != StatusCode::OK {
        return Err(format!("Check answered HTTP {}", parts.status));
    }
    let collected = Limited::new(body, MAX_RESPONSE_BYTES + 5)
        .collect()
        .await
        .map_err(|e| format!("reading the CheckResponse: {e}"))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = trailers
        .get("grpc-status")
        .or_else(|| parts.headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status != "0" {
        return Err(format!("Check failed with grpc-status {status:?}"));
    }
    let bytes = collected.to_bytes();
    let Some(payload) = bytes.get(5..) else {
        return Err("empty CheckResponse".into());
    };
    let r = CheckResponse::decode(payload).map_err(|e| format!("bad CheckResponse: {e}"))?;
    Ok(answer(r))
}

fn answer(r: CheckResponse) -> Answer {
    let ok = r.status.as_ref().map_or(0, |s| s.code) == 0;
    match (ok, r.http_response) {
        (true, Some(HttpResponse::OkResponse(o))) => Answer::Allow(pairs(&o.headers)),
        (true, _) => Answer::Allow(Vec::new()),
        (false, Some(HttpResponse::DeniedResponse(d))) => {
            let status = d
                .status
                .and_then(|s| u16::try_from(s.code).ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|s| s.as_u16() >= 200)
                .unwrap_or(StatusCode::FORBIDDEN);
            let mut headers = HeaderMap::new();
            for (n, v) in pairs(&d.headers) {
                headers.append(n, v);
            }
            Answer::Deny(ExternalDenial {
                status,
                headers,
                body: Bytes::from(d.body),
            })
        }
        (false, _) => Answer::Deny(ExternalDenial {
            status: StatusCode::FORBIDDEN,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }),
    }
}

fn pairs(list: &[HeaderValueOption]) -> Vec<(HeaderName, HeaderValue)> {
    list.iter()
        .filter_map(|o| o.header.as_ref())
        .filter_map(|h| {
            let value = if h.raw_value.is_empty() {
                HeaderValue::from_str(&h.value).ok()
            } else {
                HeaderValue::from_bytes(&h.raw_value).ok()
            };
            Some((HeaderName::from_bytes(h.key.as_bytes()).ok()?, value?))
        })
        .filter(|(n, _)| !n.as_str().starts_with(':'))
        .collect()
}

fn socket(a: SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: a.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                a.port(),
            ))),
            ..SocketAddress::default()
        })),
    }
}

/// The `CheckRequest` Envoy would send for `facts`.
pub(super) fn check_request(
    facts: &RequestFacts,
    tls: bool,
    body: Option<&CheckBody>,
    pack_as_bytes: bool,
) -> CheckRequest {
    let mut headers: HashMap<String, String> = HashMap::new();
    for (n, v) in &facts.headers {
        if n.as_str() == PARTIAL_BODY {
            continue;
        }
        let v = String::from_utf8_lossy(v.as_bytes());
        headers
            .entry(n.as_str().to_string())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    let host = facts.host.clone().unwrap_or_default();
    let path = facts.path_and_query();
    let scheme = if tls { "https" } else { "http" };
    headers.insert(":authority".into(), host.clone());
    headers.insert(":method".into(), facts.method.as_str().into());
    headers.insert(":path".into(), path.clone());
    headers.insert(":scheme".into(), scheme.into());
    let (mut text, mut raw) = (String::new(), Vec::new());
    if let Some(b) = body {
        let partial = if b.partial { "true" } else { "false" };
        headers.insert(PARTIAL_BODY.into(), partial.into());
        if pack_as_bytes {
            raw = b.bytes.to_vec();
        } else {
            // proto3 `string`: a body that is not UTF-8 needs packAsBytes.
            text = String::from_utf8_lossy(&b.bytes).into_owned();
        }
    }
    let principal = facts
        .peer
        .as_ref()
        .and_then(|p| p.uris.first())
        .filter(|u| modelgate_core::spiffe_id(u).is_some())
        .cloned()
        .unwrap_or_default();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(socket(facts.client)),
                principal,
                ..attribute_context::Peer::default()
            }),
            destination: Some(attribute_context::Peer {
                address: Some(socket(facts.local)),
                ..attribute_context::Peer::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    id: facts.request_id.to_string(),
                    method: facts.method.as_str().into(),
                    path,
                    host,
                    scheme: scheme.into(),
                    protocol: if facts.grpc { "HTTP/2" } else { "HTTP/1.1" }.into(),
                    headers,
                    body: text,
                    raw_body: raw,
                    ..attribute_context::HttpRequest::default()
                }),
                ..attribute_context::Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use envoy_types::pb::envoy::service::auth::v3::{DeniedHttpResponse, OkHttpResponse};
    use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    use envoy_types::pb::google::rpc;

    use super::*;

    fn facts() -> RequestFacts {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        RequestFacts {
            request_id: "rid".into(),
            method: http::Method::POST,
            path: "/v2/models/iris/infer".into(),
            query: Some("q=1".into()),
            host: Some("models.example.com".into()),
            headers,
            client: "10.0.0.7:5000".parse().unwrap(),
            local: "10.0.0.1:8080".parse().unwrap(),
            peer: Some(modelgate_core::PeerIdentity {
                uris: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
                dns: vec![],
                common_name: None,
            }),
            received: Instant::now(),
            grpc: false,
        }
    }

    #[test]
    fn check_request_is_shaped_as_envoy_builds_it() {
        let r = check_request(&facts(), true, None, false);
        let a = r.attributes.unwrap();
        let http = a.request.unwrap().http.unwrap();
        assert_eq!(http.method, "POST");
        assert_eq!(http.path, "/v2/models/iris/infer?q=1");
        assert_eq!(http.host, "models.example.com");
        assert_eq!(http.id, "rid");
        assert_eq!(http.scheme, "https");
        assert_eq!(http.headers["x-a"], "1,2");
        assert_eq!(http.headers[":authority"], "models.example.com");
        assert_eq!(http.headers[":path"], "/v2/models/iris/infer?q=1");
        let source = a.source.unwrap();
        assert_eq!(source.principal, "spiffe://cluster.local/ns/a/sa/b");
        assert!(source.address.is_some() && a.destination.is_some());
        assert!(http.body.is_empty() && !http.headers.contains_key(PARTIAL_BODY));
    }

    #[test]
    fn the_body_goes_in_body_or_raw_body_with_the_partial_marker() {
        let mut f = facts();
        // A client cannot forge Envoy's marker.
        f.headers
            .insert(PARTIAL_BODY, HeaderValue::from_static("false"));
        let cut = CheckBody {
            bytes: Bytes::from_static(b"{\"model\":"),
            partial: true,
        };
        let http = check_request(&f, false, Some(&cut), false)
            .attributes
            .unwrap()
            .request
            .unwrap()
            .http
            .unwrap();
        assert_eq!(http.body, "{\"model\":");
        assert!(http.raw_body.is_empty());
        assert_eq!(http.headers[PARTIAL_BODY], "true");
        let packed = check_request(&f, false, Some(&cut), true)
            .attributes
            .unwrap()
            .request
            .unwrap()
            .http
            .unwrap();
        assert_eq!(packed.raw_body, b"{\"model\":");
        assert!(packed.body.is_empty());
        let without = check_request(&f, false, None, false)
            .attributes
            .unwrap()
            .request
            .unwrap()
            .http
            .unwrap();
        assert!(!without.headers.contains_key(PARTIAL_BODY));
    }

    fn hv(k: &str, v: &str) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(envoy_types::pb::envoy::config::core::v3::HeaderValue {
                key: k.into(),
                value: v.into(),
                raw_value: Vec::new(),
            }),
            ..HeaderValueOption::default()
        }
    }

    #[test]
    fn answers_map_to_allow_and_deny() {
        let ok = CheckResponse {
            status: Some(rpc::Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![hv("x-user", "alice"), hv(":path", "/evil")],
                ..OkHttpResponse::default()
            })),
            ..CheckResponse::default()
        };
        let Answer::Allow(h) = answer(ok) else {
            panic!("allow expected")
        };
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "x-user");
        let denied = CheckResponse {
            status: Some(rpc::Status {
                code: 16,
                ..rpc::Status::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: 401 }),
                headers: vec![hv("www-authenticate", "Bearer")],
                body: "who are you".into(),
            })),
            ..CheckResponse::default()
        };
        let Answer::Deny(d) = answer(denied) else {
            panic!("deny expected")
        };
        assert_eq!(d.status, 401);
        assert_eq!(d.headers["www-authenticate"], "Bearer");
        assert_eq!(d.body, "who are you");
        // A refusal without a denied_response is a plain 403.
        let bare = CheckResponse {
            status: Some(rpc::Status {
                code: 7,
                ..rpc::Status::default()
            }),
            ..CheckResponse::default()
        };
        let Answer::Deny(d) = answer(bare) else {
            panic!("deny expected")
        };
        assert_eq!(d.status, 403);
    }
}
