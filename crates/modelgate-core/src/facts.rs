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
    /// The Istio peer principal (`principals`, `namespaces`,
    /// `serviceAccounts`, `source.principal`): the certificate's first SAN
    /// URI when it is a SPIFFE ID, without its scheme. A DNS name or CN never
    /// becomes one, whatever it looks like (`cluster.local/ns/x/sa/y`).
    pub fn principal(&self) -> Option<String> {
        self.uris
            .first()
            .and_then(|u| spiffe_id(u))
            .map(str::to_string)
    }
}

/// `<td>/<path>` of a SPIFFE ID `spiffe://<td>/<path>` (scheme matched
/// case-insensitively; a non-empty trust domain without userinfo or port, a
/// path without empty, `.` or `..` segments, no query or fragment), else `None`.
pub fn spiffe_id(uri: &str) -> Option<&str> {
    let scheme = uri.get(..9)?;
    if !scheme.eq_ignore_ascii_case("spiffe://") {
        return None;
    }
    let id = &uri[9..];
    let (td, path) = id.split_once('/')?;
    let td_ok = !td.is_empty() && !td.contains([':', '@']);
    let path_ok = path
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    (td_ok && path_ok && !id.contains(['?', '#', ' '])).then_some(id)
}

#[cfg(test)]
mod spiffe_tests {
    use super::*;

    fn peer(uris: &[&str], dns: &[&str], cn: Option<&str>) -> PeerIdentity {
        PeerIdentity {
            uris: uris.iter().map(|s| s.to_string()).collect(),
            dns: dns.iter().map(|s| s.to_string()).collect(),
            common_name: cn.map(str::to_string),
        }
    }

    #[test]
    fn only_a_spiffe_uri_san_is_a_peer_principal() {
        let id = "cluster.local/ns/prod/sa/admin";
        let spiffe = format!("spiffe://{id}");
        assert_eq!(peer(&[&spiffe], &[], None).principal().as_deref(), Some(id));
        assert_eq!(peer(&[], &[id], Some(id)).principal(), None);
        assert_eq!(peer(&[], &[], Some(id)).principal(), None);
        assert_eq!(
            peer(&[&format!("https://{id}")], &[id], None).principal(),
            None
        );
        for bad in [
            "spiffe://",
            "spiffe:///ns/a/sa/b",
            "spiffe://td",
            "spiffe://td/",
            "spiffe://td//a",
            "spiffe://td/a/../b",
            "spiffe://u@td/a",
            "spiffe://td:8443/a",
            "spiffe://td/a?x",
            "spiffe://td/a#x",
        ] {
            assert_eq!(spiffe_id(bad), None, "{bad}");
        }
        assert_eq!(spiffe_id("SPIFFE://td/a"), Some("td/a"));
    }
}

/// Facts about one request, with its path already normalised.
#[derive(Debug)]
pub struct RequestFacts {
    /// Request id: the client's `x-request-id` if valid, else a fresh one
    /// (shared with the decision and its record, not copied).
    pub request_id: std::sync::Arc<str>,
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
