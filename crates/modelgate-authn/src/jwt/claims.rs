//! Validating a decoded token's claims and reading them: the times (`exp`,
//! `nbf`, `iat`) against the clock with skew, the audiences against a rule,
//! and the one mapping from claims to a [`Principal`] (also used by
//! `modelgate check` for assumed claims). Decoding lives in
//! [`super::parse`]; signatures in [`super::keys`].

use std::sync::Arc;

use modelgate_core::{AuthFailure, AuthMethod, Grants, Principal};
use serde_json::{Map, Value};

use super::status as st;

/// A token's time claims (Unix seconds), kept apart from the token so a
/// cached verification can re-check them without the token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
}

impl Times {
    /// Checks `nbf`, `iat` and `exp` against `now` with `skew`, failing with
    /// Envoy's status. A missing `exp` fails when `require_exp` (Envoy's
    /// `require_expiration` answers it with "Jwt is expired" too).
    pub fn check(&self, now: u64, skew: u64, require_exp: bool) -> Result<(), &'static str> {
        if self.nbf.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
            return Err(st::NOT_YET_VALID);
        }
        if self.iat.is_some_and(|iat| now.saturating_add(skew) < iat) {
            return Err(st::NOT_YET_VALID);
        }
        match self.exp {
            Some(exp) if now > exp.saturating_add(skew) => Err(st::EXPIRED),
            None if require_exp => Err(st::EXPIRED),
            _ => Ok(()),
        }
    }
}

/// A token's `aud` must name one of the rule's audiences (any, when the
/// rule lists none).
pub fn check_audience(aud: &[String], allowed: &[String]) -> Result<(), AuthFailure> {
    if allowed.is_empty() || aud.iter().any(|a| allowed.contains(a)) {
        Ok(())
    } else {
        Err(AuthFailure::AudienceNotAllowed)
    }
}

/// The one mapping from verified (or, for `modelgate check`, assumed) token
/// claims to a [`Principal`]: name from `sub` (else `client_id`, `azp`),
/// audiences, groups, and for ServiceAccount issuers the namespace and the
/// Kubernetes groups.
pub fn claims_principal(
    kind: super::ProviderKind,
    issuer: Option<&str>,
    claims: Map<String, Value>,
) -> Principal {
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let sub = str_claim("sub");
    let subject = sub.clone().unwrap_or_default();
    let name = sub
        .or_else(|| str_claim("client_id"))
        .or_else(|| str_claim("azp"))
        .unwrap_or_default();
    let audiences = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let mut groups: Vec<String> = match claims.get("groups") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let mut namespace = None;
    if kind == super::ProviderKind::ServiceAccount {
        namespace = claims
            .get("kubernetes.io")
            .and_then(|k| k.get("namespace"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| service_account_namespace(&subject));
        if let Some(ns) = &namespace {
            groups.extend([
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".to_string(),
            ]);
        }
    }
    Principal {
        method: AuthMethod::Jwt,
        name,
        issuer: issuer.map(str::to_string),
        subject,
        audiences,
        presenter: str_claim("azp"),
        namespace,
        groups,
        grants: Grants::Nothing,
        claims: Some(Arc::new(claims)),
    }
}

/// `<ns>` of `system:serviceaccount:<ns>:<name>`.
pub fn service_account_namespace(sub: &str) -> Option<String> {
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| ns.to_string())
}

/// A claim for `outputClaimToHeaders`: `a.b.c` walks nested objects; only
/// strings, numbers and booleans are copied (arrays and objects are not, as
/// in Envoy, and the header is then absent).
pub fn claim_value(claims: &Map<String, Value>, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('.').collect();
    match walk(claims, &segs)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Follows `segs` into nested objects; a key may itself contain dots
/// (`kubernetes.io.namespace`), so the longest matching key wins.
fn walk<'a>(obj: &'a Map<String, Value>, segs: &[&str]) -> Option<&'a Value> {
    for i in (1..=segs.len()).rev() {
        let Some(child) = obj.get(&segs[..i].join(".")) else {
            continue;
        };
        if i == segs.len() {
            return Some(child);
        }
        if let Some(found) = child.as_object().and_then(|o| walk(o, &segs[i..])) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_checks_with_skew() {
        let t = |exp, nbf, iat| Times { exp, nbf, iat };
        let j = t(Some(1000), Some(900), Some(900));
        assert_eq!(j.check(950, 60, true), Ok(()));
        assert_eq!(j.check(1060, 60, true), Ok(()));
        assert_eq!(j.check(1061, 60, true), Err(st::EXPIRED));
        assert_eq!(j.check(840, 60, true), Ok(()));
        assert_eq!(j.check(839, 60, true), Err(st::NOT_YET_VALID));
        let no_exp = t(None, None, Some(900));
        assert_eq!(no_exp.check(950, 60, true), Err(st::EXPIRED));
        assert_eq!(no_exp.check(950, 60, false), Ok(()));
        let future_iat = t(Some(3000), None, Some(2000));
        assert_eq!(future_iat.check(1000, 60, true), Err(st::NOT_YET_VALID));
        assert_eq!(Times::default().check(u64::MAX, u64::MAX, false), Ok(()));
    }

    #[test]
    fn audiences() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(check_audience(&s(&[]), &s(&[])).is_ok());
        assert!(check_audience(&s(&["x"]), &s(&[])).is_ok());
        assert!(check_audience(&s(&["x", "models"]), &s(&["models"])).is_ok());
        assert_eq!(
            check_audience(&s(&["x"]), &s(&["models"])),
            Err(AuthFailure::AudienceNotAllowed)
        );
        assert_eq!(
            check_audience(&s(&[]), &s(&["models"])),
            Err(AuthFailure::AudienceNotAllowed)
        );
    }
}
