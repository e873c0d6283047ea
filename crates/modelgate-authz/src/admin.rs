//! The admin role: whether a verified identity may use the admin API and UI
//! (`admin.roles` — a claim value — or `admin.keys` — an API-key name).

use modelgate_config::admin::AdminRole;
use modelgate_core::{AuthMethod, Principal};
use serde_json::Value;

/// Whether `p` holds the admin role described by `role`.
pub fn holds_admin_role(role: &AdminRole, p: &Principal) -> bool {
    if p.method == AuthMethod::ApiKey && role.keys.iter().any(|k| k == &p.name) {
        return true;
    }
    let Some((claim, values)) = &role.claim else {
        return false;
    };
    let wanted = |s: &str| values.iter().any(|v| v == s);
    if claim == "groups" && p.groups.iter().any(|g| wanted(g)) {
        return true;
    }
    match p.claims.as_ref().and_then(|c| c.get(claim.as_str())) {
        Some(Value::String(s)) => s.split(' ').any(wanted),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(wanted),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use modelgate_core::Grants;

    use super::*;

    fn role() -> AdminRole {
        AdminRole {
            claim: Some(("groups".into(), vec!["modelgate-admins".into()])),
            keys: vec!["ops".into()],
        }
    }

    fn token(claims: serde_json::Value) -> Principal {
        let mut p = Principal::api_key("alice", Grants::Nothing);
        p.method = AuthMethod::Jwt;
        p.claims = claims.as_object().cloned().map(Arc::new);
        p
    }

    #[test]
    fn a_named_api_key_holds_the_role_and_another_does_not() {
        assert!(holds_admin_role(
            &role(),
            &Principal::api_key("ops", Grants::AllModels)
        ));
        assert!(!holds_admin_role(
            &role(),
            &Principal::api_key("alice", Grants::AllModels)
        ));
    }

    #[test]
    fn a_token_holds_the_role_by_claim_value_only() {
        let r = role();
        assert!(holds_admin_role(
            &r,
            &token(serde_json::json!({"groups": ["x", "modelgate-admins"]}))
        ));
        assert!(!holds_admin_role(
            &r,
            &token(serde_json::json!({"groups": ["x"]}))
        ));
        assert!(!holds_admin_role(
            &r,
            &token(serde_json::json!({"groups": "modelgate-admins-not"}))
        ));
        // A token whose subject happens to equal an admin key name is not that key.
        let mut p = token(serde_json::json!({}));
        p.name = "ops".into();
        assert!(!holds_admin_role(&r, &p));
    }

    #[test]
    fn an_empty_role_admits_nobody() {
        let r = AdminRole::default();
        assert!(!holds_admin_role(
            &r,
            &Principal::api_key("ops", Grants::AllModels)
        ));
        assert!(!holds_admin_role(
            &r,
            &token(serde_json::json!({"groups": ["modelgate-admins"]}))
        ));
    }
}
