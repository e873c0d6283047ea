//! What is known about a request once it has been read and normalised: the
//! input to routing, authentication, authorization and the decision log.

use std::net::SocketAddr;
use std::time::Instant;

use http::{HeaderMap, Method};

/// Identity of a TLS client certificate, when the listener verified one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// SAN URIs (e.g. SPIFFE `spiffe://cluster.local/ns/<ns>/sa/<sa>`).
    pub uris: Vec<String>,
    /// SAN DNS names.
    pub dns: Vec<String>,
    /// Subject common name.
    pub common_name: Option<String>,
}

impl PeerIdentity {
    /// The Istio-style peer principal: the SPIFFE URI without its scheme,
    /// else the first URI, DNS name or CN.
    pub fn principal(&self) -> Option<String> {
        if let Some(u) = self.uris.first() {
            return Some(u.strip_prefix("spiffe://").unwrap_or(u).to_string());
        }
        self.dns
            .first()
            .cloned()
            .or_else(|| self.common_name.clone())
    }
}

/// Facts about one request, with its path already normalised.
#[derive(Debug)]
pub struct RequestFacts {
    /// Request id: the client's `x-request-id` if valid, else a fresh one.
    pub request_id: String,
    pub method: Method,
    /// Normalised path (no query). This is what is authorized and forwarded.
    pub path: String,
    /// Raw query string, passed through to the upstream unchanged.
    pub query: Option<String>,
    /// Host without port, lower-cased (from `:authority` or `Host`).
    pub host: Option<String>,
    /// Request headers as received (hop-by-hop headers not yet removed).
    pub headers: HeaderMap,
    /// The connecting peer.
    pub client: SocketAddr,
    /// The local address the request arrived on.
    pub local: SocketAddr,
    /// Verified client certificate, on mTLS listeners.
    pub peer: Option<PeerIdentity>,
    /// When the request head was received.
    pub received: Instant,
    /// Whether the request arrived over HTTP/2 as gRPC.
    pub grpc: bool,
}

impl RequestFacts {
    /// The path with the query appended, as sent upstream.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }
}
