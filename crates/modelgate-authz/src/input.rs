//! What a policy looks at: a borrowed view of one request — normalised facts,
//! the route, the verified identity (if any) and the client address as read
//! through the listener's trusted proxies. Built once per decision.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use modelgate_config::IpNet;
use modelgate_core::{AuthMethod, Principal, RequestFacts};
use modelgate_route::RouteMatch;

/// The attributes of one request, borrowed from the pipeline's values.
#[derive(Debug)]
pub struct Input<'a> {
    pub method: &'a str,
    /// Normalised path, before prefix-route rewrites.
    pub path: &'a str,
    /// Lower-case host without port.
    pub host: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The connecting peer.
    pub client: IpAddr,
    /// The original client, read right to left through `X-Forwarded-For`
    /// while the hops are trusted proxies; `None` if a trusted hop wrote
    /// something that is not an address.
    pub remote: Option<IpAddr>,
    pub local: SocketAddr,
    /// The mTLS peer identity (`cluster.local/ns/<ns>/sa/<sa>`).
    pub peer_principal: Option<String>,
    pub principal: Option<&'a Principal>,
    pub route: &'a RouteMatch,
}

impl<'a> Input<'a> {
    pub fn new(
        facts: &'a RequestFacts,
        route: &'a RouteMatch,
        principal: Option<&'a Principal>,
        trusted_proxies: &[IpNet],
    ) -> Self {
        Self {
            method: facts.method.as_str(),
            path: &facts.path,
            host: facts.host.as_deref(),
            headers: &facts.headers,
            client: facts.client.ip(),
            remote: remote_ip(facts.client.ip(), &facts.headers, trusted_proxies),
            local: facts.local,
            peer_principal: facts.peer.as_ref().and_then(|p| p.principal()),
            principal,
            route,
        }
    }

    /// Istio's request principal as (issuer, subject). Identities without an
    /// issuer (API keys, …) use their method name: `api_key/<name>`.
    /// A certificate is a peer identity, not a request principal.
    pub fn request_principal(&self) -> Option<(&str, &str)> {
        let p = self.principal?;
        if p.method == AuthMethod::Mtls {
            return None;
        }
        Some((
            p.issuer.as_deref().unwrap_or(p.method.as_str()),
            p.subject.as_str(),
        ))
    }

    /// `<ns>` from a SPIFFE-style peer principal `<td>/ns/<ns>/sa/<sa>`, else
    /// the namespace of a Kubernetes ServiceAccount identity.
    pub fn namespace(&self) -> Option<&str> {
        match self.peer_principal.as_deref().and_then(spiffe_parts) {
            Some((_, ns, _)) => Some(ns),
            None => self.principal.and_then(|p| p.namespace.as_deref()),
        }
    }

    /// (trust domain, namespace, service account) of the mTLS peer.
    pub fn peer_parts(&self) -> Option<(&str, &str, &str)> {
        self.peer_principal.as_deref().and_then(spiffe_parts)
    }
}

fn spiffe_parts(p: &str) -> Option<(&str, &str, &str)> {
    let mut it = p.split('/');
    let (td, ns_kw, ns, sa_kw, sa) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    (ns_kw == "ns" && sa_kw == "sa" && it.next().is_none()).then_some((td, ns, sa))
}

/// The client address for `remoteIpBlocks` and `remote.ip`: the peer itself
/// unless it is a trusted proxy; then `X-Forwarded-For` (all lines, in order)
/// is read right to left, skipping trusted proxies, and the first untrusted
/// hop is the client. If every hop is trusted, the leftmost one is. An entry
/// that is not an address gives `None` (unknown: remote matches fail closed).
pub fn remote_ip(client: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(client) {
        return Some(client);
    }
    let mut last = client;
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = std::str::from_utf8(line.as_bytes()) else {
            return None;
        };
        for entry in line.rsplit(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let ip = parse_hop(entry)?;
            if !is_trusted(ip) {
                return Some(ip);
            }
            last = ip;
        }
    }
    Some(last)
}

/// An XFF hop: an IP, optionally `[v6]:port` or `v4:port`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').and_then(|(a, _)| a.parse().ok());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(lines: &[&'static str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for l in lines {
            m.append("x-forwarded-for", HeaderValue::from_static(l));
        }
        m
    }

    #[test]
    fn xff_only_through_trusted_proxies() {
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Untrusted peer: its own address, whatever XFF says (spoofing).
        assert_eq!(
            remote_ip(ip("203.0.113.9"), &h(&["10.1.1.1"]), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Trusted peer: rightmost untrusted hop; client-written entries to its left are ignored.
        assert_eq!(
            remote_ip(
                ip("10.0.0.2"),
                &h(&["1.2.3.4, 198.51.100.7, 10.0.0.3"]),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        // Several lines are one list, in order.
        assert_eq!(
            remote_ip(ip("10.0.0.2"), &h(&["1.2.3.4", "198.51.100.7"]), &trusted),
            Some(ip("198.51.100.7"))
        );
        // Garbage from a trusted hop: unknown.
        assert_eq!(
            remote_ip(ip("10.0.0.2"), &h(&["1.2.3.4, bogus"]), &trusted),
            None
        );
        // No XFF from a trusted proxy: the proxy itself.
        assert_eq!(
            remote_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            remote_ip(ip("10.0.0.2"), &h(&["[2001:db8::1]:443"]), &trusted),
            Some(ip("2001:db8::1"))
        );
        // No trusted proxies configured: XFF is never read.
        assert_eq!(
            remote_ip(ip("10.0.0.2"), &h(&["1.2.3.4"]), &[]),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn spiffe() {
        assert_eq!(
            spiffe_parts("cluster.local/ns/kubeflow/sa/gw"),
            Some(("cluster.local", "kubeflow", "gw"))
        );
        assert_eq!(spiffe_parts("cluster.local/ns/kubeflow"), None);
        assert_eq!(spiffe_parts("a/ns/b/sa/c/d"), None);
    }
}
