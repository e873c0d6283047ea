//! Browser sign-in inputs an attacker controls: the `rd` redirect target,
//! the callback query, and session/flow cookie values.

use modelgate_authn::session::flow::query_params;
use modelgate_authn::session::redirect::{MAX_RD, safe_redirect};
use modelgate_authn::session::seal::Sealer;
use modelgate_config::identity::RedirectTarget;

/// `rd` is either refused or an allowed same-origin path / allowed origin,
/// never scheme-relative or backslashed; query parsing and cookie opening
/// never panic, and a forged cookie never opens.
pub fn signin(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let allowed = [
        RedirectTarget::Path("/".into()),
        RedirectTarget::Origin("https://ui.example.com".into()),
    ];
    if let Some(rd) = safe_redirect(s, &allowed) {
        assert_eq!(rd, s);
        assert!(rd.len() <= MAX_RD && !rd.contains('\\'), "{rd:?}");
        let lower = rd.to_ascii_lowercase();
        assert!(
            (rd.starts_with('/') && !rd.starts_with("//") && !lower.contains("%2f") && !lower.contains("%5c"))
                || lower == "https://ui.example.com"
                || lower.starts_with("https://ui.example.com/")
                || lower.starts_with("https://ui.example.com?")
                || lower.starts_with("https://ui.example.com#"),
            "{rd:?}"
        );
    }
    let params = query_params(s);
    assert!(params.len() <= 32);
    if let Some(sealer) = Sealer::new(&[7; 32]) {
        assert!(sealer.open("modelgate-session:x", s).is_none(), "{s:?} opened");
        if let Some(sealed) = sealer.seal("p", data) {
            assert_eq!(sealer.open("p", &sealed).as_deref(), Some(data));
            assert!(sealer.open("q", &sealed).is_none());
        }
    }
}
