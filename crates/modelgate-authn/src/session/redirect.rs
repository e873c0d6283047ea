//! Where `rd` may send the browser: an allow-listed path prefix on our own
//! origin, or an allow-listed absolute origin. Everything ambiguous is
//! refused rather than normalised: `//evil`, `/\evil`, `\\evil`, encoded
//! slashes and backslashes (`%2F`, `%5C`, `%25…`), userinfo (`https://ok@evil`),
//! dot segments, control characters and other schemes.

use modelgate_config::identity::RedirectTarget;

/// Longest `rd` accepted.
pub const MAX_RD: usize = 2048;

/// `rd` if it may be redirected to, else `None` (the caller uses `/`).
pub fn safe_redirect(rd: &str, allowed: &[RedirectTarget]) -> Option<String> {
    if rd.is_empty()
        || rd.len() > MAX_RD
        || rd.contains('\\')
        || rd
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b >= 0x80)
    {
        return None;
    }
    let lower = rd.to_ascii_lowercase();
    if ["%2f", "%5c", "%25", "%00", "%09", "%0a", "%0d"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return None;
    }
    if rd.starts_with('/') {
        if rd.starts_with("//") {
            return None;
        }
        let path = rd.split(['?', '#']).next().unwrap_or_default();
        if path
            .split('/')
            .any(|s| s == "." || s == ".." || s == "%2e" || s == "%2e%2e")
        {
            return None;
        }
        let ok = allowed.iter().any(|a| match a {
            RedirectTarget::Path(p) => path_under(path, p),
            RedirectTarget::Origin(_) => false,
        });
        return ok.then(|| rd.to_string());
    }
    let (scheme, rest) = lower.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let after = &rest[authority_end..];
    if after
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .split('/')
        .any(|s| s == "." || s == "..")
    {
        return None;
    }
    let origin = format!("{scheme}://{authority}");
    allowed
        .iter()
        .any(|a| matches!(a, RedirectTarget::Origin(o) if *o == origin))
        .then(|| rd.to_string())
}

/// `path` is `prefix` or below it (`/admin` allows `/admin` and `/admin/x`,
/// not `/administrator`).
fn path_under(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix) || path == prefix.trim_end_matches('/')
    } else {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<RedirectTarget> {
        vec![
            RedirectTarget::Path("/".into()),
            RedirectTarget::Origin("https://ui.example.com".into()),
        ]
    }

    #[test]
    fn same_origin_paths_pass() {
        for ok in [
            "/",
            "/v1/models/x",
            "/admin/?tab=keys",
            "/a#frag",
            "https://ui.example.com/x",
            "https://UI.example.com",
        ] {
            assert_eq!(safe_redirect(ok, &allowed()).as_deref(), Some(ok), "{ok}");
        }
    }

    #[test]
    fn open_redirects_are_refused() {
        for bad in [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "https://evil.example/",
            "http://ui.example.com/",
            "https://ui.example.com@evil.example/",
            "https://ui.example.com.evil.example/",
            "//ui.example.com",
            "/%2F%2Fevil.example",
            "/%2f%2fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/x/../..//evil",
            "javascript:alert(1)",
            "data:text/html,x",
            "evil.example",
            "/\tevil",
            "/\r\nLocation: https://evil",
            "/é",
            "",
        ] {
            assert_eq!(safe_redirect(bad, &allowed()), None, "{bad:?}");
        }
    }

    #[test]
    fn path_prefixes_hold() {
        let a = vec![RedirectTarget::Path("/admin".into())];
        assert!(safe_redirect("/admin", &a).is_some());
        assert!(safe_redirect("/admin/keys", &a).is_some());
        assert!(safe_redirect("/administrator", &a).is_none());
        assert!(safe_redirect("/", &a).is_none());
    }
}
