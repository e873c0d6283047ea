//! `admin.roles`, `admin.keys` and `admin.ui`: who holds the admin role (a
//! claim value, or a named API key) and where the admin UI is served.

use serde::Deserialize;

use crate::error::Collector;

/// `admin.roles: {claim: groups, values: [modelgate-admins]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminRoles {
    pub claim: String,
    pub values: Vec<String>,
}

/// `admin.ui: {on_public: true}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminUi {
    #[serde(default)]
    pub on_public: bool,
}

/// Who holds the admin role. Empty (the default): nobody — the admin API
/// answers 403 to every identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminRole {
    /// A claim (top-level name; `groups` also matches the identity's groups)
    /// and the values any one of which grants the role.
    pub claim: Option<(String, Vec<String>)>,
    /// API-key names that hold the role.
    pub keys: Vec<String>,
}

impl AdminRole {
    /// Whether anyone can hold the role.
    pub fn is_empty(&self) -> bool {
        self.claim.is_none() && self.keys.is_empty()
    }
}

pub(crate) fn role(
    roles: Option<RawAdminRoles>,
    keys: Vec<String>,
    c: &mut Collector,
) -> Option<AdminRole> {
    let mut ok = true;
    let claim = match roles {
        Some(r) if r.claim.trim().is_empty() => {
            c.push(
                "admin.roles.claim",
                "empty claim name",
                "name the claim that carries roles, e.g. groups",
            );
            ok = false;
            None
        }
        Some(r) if r.values.iter().all(|v| v.trim().is_empty()) => {
            c.push(
                "admin.roles.values",
                "no role values",
                "list the values that grant the admin role, e.g. [modelgate-admins]",
            );
            ok = false;
            None
        }
        Some(r) => Some((r.claim, r.values)),
        None => None,
    };
    for (i, k) in keys.iter().enumerate() {
        if k.trim().is_empty() {
            c.push(
                format!("admin.keys[{i}]"),
                "empty key name",
                "list API-key names as `modelgate keys list` shows them",
            );
            ok = false;
        }
    }
    ok.then_some(AdminRole { claim, keys })
}
