//! `from.source`: who sent the request (principals, namespaces, IPs, …).

use super::*;

pub(super) fn source(raw: RawSource, key: &str, c: &mut Collector) -> Source {
    let mut f = Vec::new();
    macro_rules! strs {
        ($raw:expr, $name:literal, $neg:expr, $variant:ident) => {{
            let k = format!("{key}.{}", $name);
            let v = nonempty($raw, &k, c).map(|l| SourceField::$variant(str_patterns(l, &k, c)));
            field(&mut f, key, $name, $neg, v);
        }};
    }
    macro_rules! typed_field {
        ($raw:expr, $name:literal, $neg:expr, $variant:ident, $parse:expr, $hint:expr) => {{
            let k = format!("{key}.{}", $name);
            let v = nonempty($raw, &k, c)
                .map(|l| SourceField::$variant(typed(l, &k, c, $parse, $hint)));
            field(&mut f, key, $name, $neg, v);
        }};
    }
    strs!(raw.principals, "principals", false, Principals);
    strs!(raw.not_principals, "notPrincipals", true, Principals);
    let rp_hint =
        "write `*` or `<issuer>/<subject>`, e.g. https://issuer.example.com/alice or api_key/alice";
    typed_field!(
        raw.request_principals,
        "requestPrincipals",
        false,
        RequestPrincipals,
        PrincipalPattern::parse,
        rp_hint
    );
    typed_field!(
        raw.not_request_principals,
        "notRequestPrincipals",
        true,
        RequestPrincipals,
        PrincipalPattern::parse,
        rp_hint
    );
    strs!(raw.namespaces, "namespaces", false, Namespaces);
    strs!(raw.not_namespaces, "notNamespaces", true, Namespaces);
    let sa_hint = "write <namespace>/<serviceaccount> with no wildcards";
    typed_field!(
        raw.service_accounts,
        "serviceAccounts",
        false,
        ServiceAccounts,
        service_account,
        sa_hint
    );
    typed_field!(
        raw.not_service_accounts,
        "notServiceAccounts",
        true,
        ServiceAccounts,
        service_account,
        sa_hint
    );
    strs!(raw.trust_domains, "trustDomains", false, TrustDomains);
    strs!(raw.not_trust_domains, "notTrustDomains", true, TrustDomains);
    let ip_hint = "write an IP address or CIDR such as 10.0.0.0/8";
    typed_field!(
        raw.ip_blocks,
        "ipBlocks",
        false,
        IpBlocks,
        IpNet::parse,
        ip_hint
    );
    typed_field!(
        raw.not_ip_blocks,
        "notIpBlocks",
        true,
        IpBlocks,
        IpNet::parse,
        ip_hint
    );
    typed_field!(
        raw.remote_ip_blocks,
        "remoteIpBlocks",
        false,
        RemoteIpBlocks,
        IpNet::parse,
        ip_hint
    );
    typed_field!(
        raw.not_remote_ip_blocks,
        "notRemoteIpBlocks",
        true,
        RemoteIpBlocks,
        IpNet::parse,
        ip_hint
    );
    Source { fields: f }
}

pub(super) fn service_account(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, sa))
            if !ns.is_empty() && !sa.is_empty() && !sa.contains('/') && !s.contains('*') =>
        {
            Ok((ns.to_string(), sa.to_string()))
        }
        _ => Err(format!("{s:?} is not <namespace>/<serviceaccount>")),
    }
}
