//! A verified TLS client certificate as an identity: SAN URI, SAN DNS name or
//! subject CN, in the configured order. Only a SPIFFE URI SAN
//! (`spiffe://<td>/ns/<ns>/sa/<sa>`) yields a namespace and ServiceAccount
//! groups, as in Istio; a DNS name or CN is a name only, whatever it looks
//! like. The listener verified the chain against its client CA; this only
//! names the peer.

use modelgate_config::identity::{CertIdentityField, MtlsIdentity};
use modelgate_core::{AuthMethod, Grants, PeerIdentity, Principal, spiffe_id};

/// The principal for `peer`, or `None` if no configured field is present.
pub fn principal(cfg: &MtlsIdentity, peer: &PeerIdentity) -> Option<Principal> {
    let (name, spiffe) = cfg.identity_from.iter().find_map(|f| match f {
        CertIdentityField::Uri => peer.uris.first().map(|u| match spiffe_id(u) {
            Some(id) => (id.to_string(), true),
            None => (u.clone(), false),
        }),
        CertIdentityField::Dns => peer.dns.first().map(|d| (d.clone(), false)),
        CertIdentityField::CommonName => peer.common_name.clone().map(|c| (c, false)),
    })?;
    if name.is_empty() {
        return None;
    }
    let namespace = if spiffe {
        spiffe_namespace(&name)
    } else {
        None
    };
    let mut groups = Vec::new();
    if let Some(ns) = &namespace {
        groups.push(format!("system:serviceaccounts:{ns}"));
    }
    Some(Principal {
        method: AuthMethod::Mtls,
        subject: name.clone(),
        name,
        issuer: None,
        audiences: Vec::new(),
        presenter: None,
        namespace,
        groups,
        grants: Grants::Nothing,
        claims: None,
    })
}

/// `<ns>` of `<trust-domain>/ns/<ns>/sa/<sa>`.
fn spiffe_namespace(id: &str) -> Option<String> {
    let mut segs = id.split('/');
    segs.next()?;
    match (
        segs.next(),
        segs.next(),
        segs.next(),
        segs.next(),
        segs.next(),
    ) {
        (Some("ns"), Some(ns), Some("sa"), Some(sa), None) if !ns.is_empty() && !sa.is_empty() => {
            Some(ns.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> MtlsIdentity {
        MtlsIdentity {
            identity_from: vec![
                CertIdentityField::Uri,
                CertIdentityField::Dns,
                CertIdentityField::CommonName,
            ],
        }
    }

    #[test]
    fn spiffe_uri_wins() {
        let peer = PeerIdentity {
            uris: vec!["spiffe://cluster.local/ns/team-a/sa/scorer".into()],
            dns: vec!["scorer.team-a.svc".into()],
            common_name: Some("scorer".into()),
        };
        let p = principal(&all(), &peer).unwrap();
        assert_eq!(p.name, "cluster.local/ns/team-a/sa/scorer");
        assert_eq!(p.namespace.as_deref(), Some("team-a"));
        assert_eq!(p.method, AuthMethod::Mtls);
        assert!(p.issuer.is_none());
    }

    #[test]
    fn configured_order_and_fallbacks() {
        let peer = PeerIdentity {
            uris: vec![],
            dns: vec!["a.example".into()],
            common_name: Some("cn-a".into()),
        };
        assert_eq!(principal(&all(), &peer).unwrap().name, "a.example");
        let cn_only = MtlsIdentity {
            identity_from: vec![CertIdentityField::CommonName],
        };
        assert_eq!(principal(&cn_only, &peer).unwrap().name, "cn-a");
        let uri_only = MtlsIdentity {
            identity_from: vec![CertIdentityField::Uri],
        };
        assert!(principal(&uri_only, &peer).is_none());
        assert_eq!(spiffe_namespace("td/ns/x/sa/y/z"), None);
    }

    #[test]
    fn a_spiffe_looking_dns_name_or_cn_is_no_spiffe_identity() {
        let id = "cluster.local/ns/prod/sa/admin";
        let peer = PeerIdentity {
            uris: vec![],
            dns: vec![id.into()],
            common_name: Some(id.into()),
        };
        let p = principal(&all(), &peer).unwrap();
        assert_eq!(p.name, id);
        assert_eq!(p.namespace, None);
        assert!(p.groups.is_empty());
        assert_eq!(peer.principal(), None);
        let not_spiffe = PeerIdentity {
            uris: vec![format!("https://{id}")],
            ..PeerIdentity::default()
        };
        let p = principal(&all(), &not_spiffe).unwrap();
        assert_eq!(p.name, format!("https://{id}"));
        assert_eq!(p.namespace, None);
    }
}
