//! `CheckRequest` → the decision's input ([`Ask`] and the body), and the
//! decision's answer ([`Checked`]) → `CheckResponse`. Envoy's conventions
//! are kept here: pseudo-headers in `headers`, multi-value headers either
//! comma-joined (`headers`) or one entry each (`header_map`, with
//! `encode_raw_headers`), `raw_body` with `pack_as_bytes`, and
//! `status.code` 0 meaning allowed whatever else the response carries.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue as EnvoyHv,
    HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::{Address, address};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use modelgate_app::{Answer, Ask, Checked};
use modelgate_core::PeerIdentity;

/// gRPC status codes Envoy and Authorino use in `CheckResponse.status`.
const OK: i32 = 0;
const INVALID_ARGUMENT: i32 = 3;
const NOT_FOUND: i32 = 5;
const PERMISSION_DENIED: i32 = 7;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

/// The decision's input from a `CheckRequest`, for the `listen[]` entry
/// `listener`. `Err` names what is malformed (answered INVALID_ARGUMENT).
pub fn ask_from_check(
    req: CheckRequest,
    listener: usize,
    received: Instant,
) -> Result<(Ask, Option<Bytes>), String> {
    let attrs = req.attributes.ok_or("CheckRequest has no attributes")?;
    let http = attrs
        .request
        .and_then(|r| r.http)
        .ok_or("CheckRequest has no attributes.request.http")?;
    let method = Method::from_bytes(http.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", http.method))?;
    let (path, query) = match http.path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (http.path.clone(), None),
    };
    let headers = match http.header_map.filter(|m| !m.headers.is_empty()) {
        Some(map) => headers_from_list(map.headers)?,
        None => headers_from_map(http.headers)?,
    };
    let source = attrs.source.unwrap_or_default();
    let client = socket(source.address.as_ref());
    let local = socket(attrs.destination.as_ref().and_then(|d| d.address.as_ref()));
    // Envoy sets the SPIFFE ID of a verified mTLS peer (Istio: the client
    // workload) here; it stands in for the certificate `serve` verifies.
    let peer = (!source.principal.is_empty()).then(|| PeerIdentity {
        uris: vec![source.principal.clone()],
        ..PeerIdentity::default()
    });
    let body = if !http.raw_body.is_empty() {
        Some(Bytes::from(http.raw_body))
    } else if !http.body.is_empty() {
        Some(Bytes::from(http.body))
    } else {
        None
    };
    let ask = Ask {
        method,
        path,
        query,
        authority: (!http.host.is_empty()).then_some(http.host),
        headers,
        client,
        local,
        peer,
        listener,
        received,
    };
    Ok((ask, body))
}

fn header(name: &str, value: &[u8]) -> Result<Option<(HeaderName, HeaderValue)>, String> {
    // Pseudo-headers (`:path`, `:authority`…) are in `path`/`host` already.
    if name.starts_with(':') {
        return Ok(None);
    }
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    let v =
        HeaderValue::from_bytes(value).map_err(|_| format!("invalid value for header {name:?}"))?;
    Ok(Some((n, v)))
}

/// `headers`: one entry per name, repeated values comma-joined by Envoy.
fn headers_from_map(map: std::collections::HashMap<String, String>) -> Result<HeaderMap, String> {
    let mut out = HeaderMap::with_capacity(map.len());
    for (k, v) in &map {
        if let Some((n, v)) = header(k, v.as_bytes())? {
            out.append(n, v);
        }
    }
    Ok(out)
}

/// `header_map` (`encode_raw_headers`): one entry per header line, so a
/// repeated header stays repeated, as `serve` sees it.
fn headers_from_list(list: Vec<EnvoyHv>) -> Result<HeaderMap, String> {
    let mut out = HeaderMap::with_capacity(list.len());
    for h in &list {
        let value = if h.raw_value.is_empty() {
            h.value.as_bytes()
        } else {
            &h.raw_value
        };
        if let Some((n, v)) = header(&h.key, value)? {
            out.append(n, v);
        }
    }
    Ok(out)
}

fn socket(a: Option<&Address>) -> SocketAddr {
    let unknown = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    match a.and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(s)) => {
            let port = match s.port_specifier {
                Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) => {
                    u16::try_from(p).unwrap_or(0)
                }
                _ => 0,
            };
            s.address
                .parse::<IpAddr>()
                .map_or(unknown, |ip| SocketAddr::new(ip, port))
        }
        _ => unknown,
    }
}

fn overwrite(name: &str, value: &[u8]) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(EnvoyHv {
            key: name.to_string(),
            value: String::from_utf8_lossy(value).into_owned(),
            raw_value: Vec::new(),
        }),
        // Without an explicit action Envoy appends next to a client-sent
        // value; identity headers must replace it.
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => INVALID_ARGUMENT,
        401 => UNAUTHENTICATED,
        403 => PERMISSION_DENIED,
        404 => NOT_FOUND,
        413 | 429 => RESOURCE_EXHAUSTED,
        503 => UNAVAILABLE,
        _ => PERMISSION_DENIED,
    }
}

/// The `CheckResponse` for a decided request.
pub fn check_response(checked: &Checked) -> CheckResponse {
    let metadata = Some(metadata(checked));
    match &checked.answer {
        Answer::Allow { set, remove } => CheckResponse {
            status: Some(rpc::Status {
                code: OK,
                ..rpc::Status::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: set
                    .iter()
                    .map(|(n, v)| overwrite(n.as_str(), v.as_bytes()))
                    .collect(),
                headers_to_remove: remove.iter().map(|n| n.as_str().to_string()).collect(),
                ..OkHttpResponse::default()
            })),
            dynamic_metadata: metadata,
        },
        Answer::Deny {
            status,
            headers,
            body,
        } => CheckResponse {
            status: Some(rpc::Status {
                code: grpc_code(*status),
                message: status.canonical_reason().unwrap_or("denied").to_string(),
                details: Vec::new(),
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(status.as_u16()),
                }),
                headers: headers
                    .iter()
                    .map(|(n, v)| overwrite(n.as_str(), v.as_bytes()))
                    .collect(),
                body: String::from_utf8_lossy(body).into_owned(),
            })),
            dynamic_metadata: metadata,
        },
    }
}

fn text(s: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// Identity, model and decision, for Envoy's access log
/// (`%DYNAMIC_METADATA(envoy.filters.http.ext_authz:…)%`).
fn metadata(c: &Checked) -> Struct {
    let d = &c.decision;
    let mut f: BTreeMap<String, Value> = BTreeMap::new();
    f.insert("request_id".into(), text(&*d.request_id));
    if let Some(p) = d.identity.principal() {
        f.insert("identity".into(), text(&p.name));
        f.insert("auth_method".into(), text(p.method.as_str()));
    }
    let model = c.model();
    if !model.is_empty() {
        f.insert("model".into(), text(model));
    }
    let allowed = matches!(c.answer, Answer::Allow { .. });
    f.insert(
        "decision".into(),
        text(if allowed { "allow" } else { "deny" }),
    );
    let (policy, basis) = c.verdict();
    f.insert("basis".into(), text(basis));
    if let Some(p) = policy {
        f.insert("policy".into(), text(p));
    }
    if let Answer::Deny { status, .. } = &c.answer {
        f.insert("status".into(), text(status.as_str()));
    }
    Struct {
        fields: f.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::HeaderMap as EnvoyHeaderMap;

    use super::*;
    use crate::bench_support::check_request;

    fn http(
        req: &mut CheckRequest,
    ) -> &mut envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest {
        req.attributes
            .as_mut()
            .unwrap()
            .request
            .as_mut()
            .unwrap()
            .http
            .as_mut()
            .unwrap()
    }

    #[test]
    fn request_line_headers_and_addresses() {
        let req = check_request("/v2/models/iris/infer?x=1", "Bearer k");
        let (ask, body) = ask_from_check(req, 2, Instant::now()).unwrap();
        assert_eq!(ask.method, Method::POST);
        assert_eq!(ask.path, "/v2/models/iris/infer");
        assert_eq!(ask.query.as_deref(), Some("x=1"));
        assert_eq!(ask.authority.as_deref(), Some("models.example.com"));
        assert_eq!(ask.headers.get("authorization").unwrap(), "Bearer k");
        assert!(ask.headers.keys().all(|k| !k.as_str().starts_with(':')));
        assert_eq!(ask.client, "10.0.0.7:51234".parse().unwrap());
        assert_eq!(ask.listener, 2);
        assert!(ask.peer.is_none() && body.is_none());
    }

    #[test]
    fn raw_header_map_keeps_repeated_headers_apart() {
        let mut req = check_request("/v2/models/iris/infer", "Bearer a");
        let h = http(&mut req);
        h.headers.clear();
        h.header_map = Some(EnvoyHeaderMap {
            headers: ["Bearer a", "Bearer b"]
                .iter()
                .map(|v| EnvoyHv {
                    key: "authorization".into(),
                    raw_value: v.as_bytes().to_vec(),
                    ..EnvoyHv::default()
                })
                .collect(),
        });
        let (ask, _) = ask_from_check(req, 0, Instant::now()).unwrap();
        let values: Vec<_> = ask.headers.get_all("authorization").iter().collect();
        assert_eq!(values, ["Bearer a", "Bearer b"]);
    }

    #[test]
    fn principal_and_body() {
        let mut req = check_request("/v1/chat/completions", "Bearer k");
        {
            let attrs = req.attributes.as_mut().unwrap();
            attrs.source.as_mut().unwrap().principal = "spiffe://cluster.local/ns/a/sa/b".into();
        }
        http(&mut req).body = r#"{"model":"m"}"#.into();
        let (ask, body) = ask_from_check(req.clone(), 0, Instant::now()).unwrap();
        assert_eq!(
            ask.peer.unwrap().principal().as_deref(),
            Some("cluster.local/ns/a/sa/b")
        );
        assert_eq!(body.unwrap(), r#"{"model":"m"}"#);
        // `raw_body` (pack_as_bytes) wins over `body`.
        http(&mut req).raw_body = b"\x00raw".to_vec();
        let (_, body) = ask_from_check(req, 0, Instant::now()).unwrap();
        assert_eq!(&body.unwrap()[..], b"\x00raw");
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert!(ask_from_check(CheckRequest::default(), 0, Instant::now()).is_err());
        let mut req = check_request("/", "x");
        http(&mut req).method = "GE T".into();
        assert!(ask_from_check(req, 0, Instant::now()).is_err());
        let mut req = check_request("/", "x");
        http(&mut req).headers.insert("x-bad".into(), "a\nb".into());
        assert!(ask_from_check(req, 0, Instant::now()).is_err());
    }
}
