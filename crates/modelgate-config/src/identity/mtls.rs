//! `auth.mtls`: a verified client certificate as an identity method.

use serde::Deserialize;

use crate::error::Collector;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMtls {
    #[serde(default)]
    pub identity_from: Option<Vec<String>>,
}

/// Which certificate field gives the mTLS identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdentityField {
    Uri,
    Dns,
    CommonName,
}

/// `auth.mtls`: a verified client certificate as an identity method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsIdentity {
    pub identity_from: Vec<CertIdentityField>,
}

pub(super) fn mtls(raw: RawMtls, c: &mut Collector) -> MtlsIdentity {
    let names = raw
        .identity_from
        .unwrap_or_else(|| vec!["uri".into(), "dns".into(), "cn".into()]);
    if names.is_empty() {
        c.push(
            "auth.mtls.identity_from",
            "empty list",
            "list one or more of uri, dns, cn",
        );
    }
    let identity_from = names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n.as_str() {
            "uri" => Some(CertIdentityField::Uri),
            "dns" => Some(CertIdentityField::Dns),
            "cn" => Some(CertIdentityField::CommonName),
            _ => {
                c.push(
                    format!("auth.mtls.identity_from[{i}]"),
                    format!("unknown field {n:?}"),
                    "use uri, dns or cn",
                );
                None
            }
        })
        .collect();
    MtlsIdentity { identity_from }
}
