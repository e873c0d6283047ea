//! `CheckRequest`s shaped as Envoy's ext_authz filter sends them, for the
//! benchmark (`benches/decide.rs`, `examples/check_request.rs`).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};

fn socket(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..SocketAddress::default()
        })),
    }
}

/// `POST path` with `authorization: auth`, as a V2 REST client sends it
/// through an Istio ingress gateway.
pub fn check_request(path: &str, auth: &str) -> CheckRequest {
    let headers: HashMap<String, String> = [
        (":authority", "models.example.com"),
        (":method", "POST"),
        (":path", path),
        (":scheme", "http"),
        ("authorization", auth),
        ("content-type", "application/json"),
        ("user-agent", "bench"),
        ("x-request-id", "00000000-0000-4000-8000-000000000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(socket("10.0.0.7", 51234)),
                ..attribute_context::Peer::default()
            }),
            destination: Some(attribute_context::Peer {
                address: Some(socket("10.0.0.1", 8080)),
                ..attribute_context::Peer::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    id: "1".into(),
                    method: "POST".into(),
                    path: path.into(),
                    host: "models.example.com".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers,
                    ..attribute_context::HttpRequest::default()
                }),
                ..attribute_context::Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}
