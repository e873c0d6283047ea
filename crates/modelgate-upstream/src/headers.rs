//! Header hygiene between client and upstream: hop-by-hop headers are removed,
//! identity headers a client could spoof are stripped unconditionally, and
//! forwarding headers are trusted only from configured proxies.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{
    CONNECTION, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRANSFER_ENCODING, UPGRADE,
};

/// Headers that describe one connection and are never forwarded.
static HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Identity headers set by auth proxies (Istio, oauth2-proxy, Kubeflow).
/// Backends trust them blindly, so no client may send them (§5.5).
const IDENTITY_EXACT: &[&str] = &[
    "kubeflow-userid",
    "kubeflow-groups",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-remote-user",
    "x-remote-group",
    "x-user",
    "x-userid",
    "x-email",
];
const IDENTITY_PREFIXES: &[&str] = &["x-auth-request-", "x-jwt-", "x-modelgate-", "x-ext-auth-"];

/// Forwarding headers, kept only when the peer is a trusted proxy.
const FORWARDING: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
];

/// Header names compared the way oauth2-proxy ≥ 7.13 does: case- and
/// `_`/`-`-insensitively (CVE-2025-64484). No allocation: this runs for
/// every header of every request.
fn same_byte(a: u8, b: u8) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    fold(a) == fold(b)
}

fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| same_byte(x, y))
}

fn has_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len() && same_name(&name[..prefix.len()], prefix)
}

fn is_identity(name: &str, extra: &[HeaderName]) -> bool {
    IDENTITY_EXACT.iter().any(|e| same_name(name, e))
        || IDENTITY_PREFIXES
            .iter()
            .any(|p| name.is_char_boundary(p.len()) && has_prefix(name, p))
        || extra.iter().any(|h| same_name(name, h.as_str()))
}

/// Where a name is in [`HOP_BY_HOP`] ([`TE_INDEX`] for `te`): one string
/// match (by length first), cheaper than comparing with each of them.
fn hop_index(name: &str) -> Option<usize> {
    match name {
        "connection" => Some(0),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "proxy-authenticate" => Some(3),
        "proxy-authorization" => Some(4),
        "transfer-encoding" => Some(5),
        "upgrade" => Some(6),
        "te" => Some(TE_INDEX),
        _ => None,
    }
}

const TE_INDEX: usize = HOP_BY_HOP.len();

/// Removes hop-by-hop headers, including any named in `Connection`.
/// `te: trailers` survives (gRPC needs it).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (no hashing) notes which are present: most
    // messages carry none, most others only `Connection: keep-alive`.
    let mut found = [false; HOP_BY_HOP.len()];
    let mut te = false;
    for k in headers.keys() {
        match hop_index(k.as_str()) {
            Some(TE_INDEX) => te = true,
            Some(i) => {
                if let Some(f) = found.get_mut(i) {
                    *f = true;
                }
            }
            None => {}
        }
    }
    if !te && !found.contains(&true) {
        return;
    }
    if found.first() == Some(&true) {
        // Names listed in Connection, beyond the usual `keep-alive`/`close`
        // (which are handled below or are no header at all).
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|n| !n.eq_ignore_ascii_case("keep-alive") && !n.eq_ignore_ascii_case("close"))
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in listed {
            if n == TE {
                te = false;
            }
            headers.remove(n);
        }
    }
    for (n, _) in HOP_BY_HOP.iter().zip(found).filter(|(_, f)| *f) {
        headers.remove(n);
    }
    if te {
        let te_trailers = headers.get_all(TE).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
        headers.remove(TE);
        if te_trailers {
            headers.insert(TE, HeaderValue::from_static("trailers"));
        }
    }
}

/// Prepares client request headers for the upstream.
pub struct RequestHeaderPolicy<'a> {
    /// Headers that carried credentials (removed unless forwarding is wanted).
    pub credential_headers: &'a [HeaderName],
    /// Extra identity headers to strip (config `identity_header`, `strip_headers`).
    pub strip: &'a [HeaderName],
    /// Whether the peer is a trusted proxy whose forwarding headers we keep.
    pub trusted_peer: bool,
    pub client_ip: IpAddr,
}

impl RequestHeaderPolicy<'_> {
    /// A credential, spoofable identity or (from an untrusted peer)
    /// forwarding header.
    fn unwanted(&self, k: &HeaderName) -> bool {
        let name = k.as_str();
        self.credential_headers.contains(k)
            || ((!self.strip.is_empty()
                || matches!(name.as_bytes().first(), Some(b'k' | b'x' | b'f')))
                && (is_identity(name, self.strip)
                    || (!self.trusted_peer && FORWARDING.contains(&name))))
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        remove_hop_by_hop(headers);
        // A pass over the names finds credentials, spoofable identity and
        // (from untrusted peers) forwarding headers; only those are looked up
        // again to be removed (no list allocated: a request carries one or
        // two; past four, another pass). Every
        // built-in identity and forwarding name starts with `k`, `x` or `f`
        // (names are lower-case), so most names are passed over after one byte.
        loop {
            let mut found: [Option<HeaderName>; 4] = Default::default();
            let mut n = 0;
            for k in headers.keys().filter(|k| self.unwanted(k)) {
                let Some(slot) = found.get_mut(n) else {
                    break;
                };
                *slot = Some(k.clone());
                n += 1;
            }
            for h in found.into_iter().flatten() {
                headers.remove(h);
            }
            // The array was full: look again for more.
            if n < 4 {
                break;
            }
        }
        let prev = if self.trusted_peer {
            headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok())
        } else {
            // Removed above: a forwarding header from an untrusted peer.
            None
        };
        let xff = match prev {
            Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", self.client_ip)).ok(),
            None => Some(ip_header(self.client_ip)),
        };
        if let Some(v) = xff {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
}

/// Cleans request trailer fields (gRPC): hop-by-hop names, the listener's
/// credential headers, identity headers and every forwarding header go —
/// trailers never carry a trusted proxy's forwarding information.
pub fn clean_trailer_fields(
    trailers: &mut HeaderMap,
    credential_headers: &[HeaderName],
    strip: &[HeaderName],
) {
    remove_hop_by_hop(trailers);
    trailers.remove(TE);
    trailers.remove(http::header::TRAILER);
    let unwanted: Vec<HeaderName> = trailers
        .keys()
        .filter(|k| {
            let name = k.as_str();
            is_identity(name, strip)
                || FORWARDING.iter().any(|f| same_name(name, f))
                || credential_headers
                    .iter()
                    .any(|c| same_name(name, c.as_str()))
        })
        .cloned()
        .collect();
    for h in unwanted {
        trailers.remove(h);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

thread_local! {
    /// The last client address formatted on this thread: most requests come
    /// from a few peers (proxies, load balancers), so formatting is rare.
    static LAST_IP: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> = const { std::cell::RefCell::new(None) };
}

/// `ip` as a header value.
fn ip_header(ip: IpAddr) -> HeaderValue {
    LAST_IP.with(|cell| {
        let mut last = cell.borrow_mut();
        if let Some((cached, v)) = last.as_ref()
            && *cached == ip
        {
            return v.clone();
        }
        let v = HeaderValue::from_str(&ip.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        *last = Some((ip, v.clone()));
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_match_agrees_with_the_hop_by_hop_list() {
        for (i, h) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(h.as_str()), Some(i), "{h}");
        }
        assert_eq!(hop_index(TE.as_str()), Some(TE_INDEX));
        for other in [
            "host",
            "user-agent",
            "content-type",
            "authorization",
            "trailer",
        ] {
            assert_eq!(hop_index(other), None, "{other}");
        }
    }

    #[test]
    fn each_hop_by_hop_name_alone_is_removed_and_others_kept() {
        for h in HOP_BY_HOP.iter() {
            let mut m = map(&[(h.as_str(), "x"), ("x-kept", "1")]);
            remove_hop_by_hop(&mut m);
            assert!(!m.contains_key(h), "{h} kept");
            assert_eq!(m["x-kept"], "1");
        }
        // `te` other than `trailers` goes; `te: trailers` stays.
        let mut m = map(&[("te", "gzip")]);
        remove_hop_by_hop(&mut m);
        assert!(m.is_empty());
        let mut m = map(&[("te", "gzip, trailers")]);
        remove_hop_by_hop(&mut m);
        assert_eq!(m["te"], "trailers");
        // A `te` named in Connection goes entirely.
        let mut m = map(&[("connection", "te"), ("te", "trailers")]);
        remove_hop_by_hop(&mut m);
        assert!(m.is_empty());
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_spoofed_identity_in_every_spelling() {
        let mut h = map(&[
            ("kubeflow-userid", "admin@example.com"),
            ("Kubeflow_Userid", "admin@example.com"),
            ("x-auth-request-email", "a@b"),
            ("X-Forwarded-User", "root"),
            ("x-jwt-payload", "e30"),
            ("x-modelgate-principal", "x"),
            ("my-identity", "x"),
            ("content-type", "application/json"),
            ("traceparent", "00-abc-def-01"),
        ]);
        RequestHeaderPolicy {
            credential_headers: &[],
            strip: &[HeaderName::from_static("my-identity")],
            trusted_peer: false,
            client_ip: "10.0.0.9".parse().unwrap(),
        }
        .apply(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "traceparent", "x-forwarded-for"]);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
    }

    #[test]
    fn more_unwanted_headers_than_one_pass_holds_all_go() {
        let mut h = map(&[
            ("x-user", "a"),
            ("accept", "*/*"),
            ("x-userid", "b"),
            ("x-email", "c"),
            ("x-remote-user", "d"),
            ("x-remote-group", "e"),
            ("x-jwt-claim", "f"),
            ("x-api-key", "k"),
            ("forwarded", "for=6.6.6.6"),
            ("x-kept", "1"),
        ]);
        RequestHeaderPolicy {
            credential_headers: &[HeaderName::from_static("x-api-key")],
            strip: &[],
            trusted_peer: false,
            client_ip: "10.0.0.9".parse().unwrap(),
        }
        .apply(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "x-forwarded-for", "x-kept"]);
    }

    #[test]
    fn forwarding_headers_only_from_trusted_peers() {
        let base = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
        ];
        let mut h = map(&base);
        RequestHeaderPolicy {
            credential_headers: &[],
            strip: &[],
            trusted_peer: false,
            client_ip: "10.0.0.9".parse().unwrap(),
        }
        .apply(&mut h);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert!(h.get("x-real-ip").is_none() && h.get("forwarded").is_none());
        let mut h = map(&base);
        RequestHeaderPolicy {
            credential_headers: &[],
            strip: &[],
            trusted_peer: true,
            client_ip: "10.0.0.9".parse().unwrap(),
        }
        .apply(&mut h);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.0.0.9");
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers, deflate"),
            ("authorization", "Bearer k"),
        ]);
        RequestHeaderPolicy {
            credential_headers: &[http::header::AUTHORIZATION],
            strip: &[],
            trusted_peer: false,
            client_ip: "127.0.0.1".parse().unwrap(),
        }
        .apply(&mut h);
        assert!(
            h.get("x-secret").is_none()
                && h.get("keep-alive").is_none()
                && h.get("authorization").is_none()
        );
        assert_eq!(h["te"], "trailers");
    }
}
