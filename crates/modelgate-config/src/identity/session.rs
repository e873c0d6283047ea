//! `auth.sign_in`: browser sign-in with the OIDC authorization-code flow
//! (PKCE) and an encrypted session cookie. The ID token comes from an issuer
//! that is also an `auth.jwt` rule, so it is verified — and its claims mapped —
//! exactly as a Bearer JWT from that issuer. See `docs/signin.md`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use modelgate_core::Secret;
use serde::Deserialize;

use super::JwtRule;
use crate::error::Collector;
use crate::fields::{Zero, duration, path_of};

/// Longest session lifetime accepted (`cookie.lifetime`).
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignIn {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub redirect_path: Option<String>,
    #[serde(default)]
    pub login_path: Option<String>,
    #[serde(default)]
    pub logout_path: Option<String>,
    #[serde(default)]
    pub landing_path: Option<String>,
    #[serde(default)]
    pub cookie: Option<RawSessionCookie>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_redirects: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub flow_lifetime: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionCookie {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub lifetime: Option<String>,
    #[serde(default)]
    pub secure: Option<String>,
}

/// The 32-byte AEAD key of session and flow cookies (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(pub [u8; 32]);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// When the listener serves TLS.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    pub name: String,
    pub key: SessionKey,
    pub lifetime: Duration,
    pub secure: CookieSecure,
}

/// Where `rd` may send the browser after sign-in or sign-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectTarget {
    /// A path prefix on this gateway's own origin (`/`, `/admin/`).
    Path(String),
    /// An absolute origin, `https://host[:port]`, any path under it.
    Origin(String),
}

/// `auth.sign_in`.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_path: String,
    pub login_path: String,
    pub logout_path: String,
    /// The signed-in landing page (seed 003 GETs `/` first).
    pub landing_path: String,
    pub cookie: SessionCookie,
    pub scopes: Vec<String>,
    pub allowed_redirects: Vec<RedirectTarget>,
    /// Deadline of each call to the IdP (discovery, token endpoint).
    pub timeout: Duration,
    /// How long a started sign-in may take (the flow cookie's lifetime).
    pub flow_lifetime: Duration,
}

fn endpoint_path(v: Option<String>, default: &str, key: &str, c: &mut Collector) -> String {
    let p = v.unwrap_or_else(|| default.to_string());
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
        && !p.split('/').any(|s| s == "." || s == "..");
    if !ok {
        c.push(
            key,
            format!("{p:?} is not a plain absolute path"),
            format!("write a path such as {default}"),
        );
    }
    p
}

/// One `allowed_redirects` entry.
fn redirect_target(s: &str, key: &str, c: &mut Collector) -> Option<RedirectTarget> {
    if s.starts_with('/') && !s.starts_with("//") && !s.contains(['\\', '%', '?', '#']) {
        return Some(RedirectTarget::Path(s.to_string()));
    }
    let origin = s.trim_end_matches('/');
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match rest {
        Some(h)
            if !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) =>
        {
            Some(RedirectTarget::Origin(origin.to_ascii_lowercase()))
        }
        _ => {
            c.push(
                key,
                format!("{s:?} is neither a path prefix nor an origin"),
                "write a path prefix such as /admin/ or an origin such as https://ui.example.com",
            );
            None
        }
    }
}

fn session_key(raw: &RawSessionCookie, base: &Path, c: &mut Collector) -> SessionKey {
    let key = "auth.sign_in.cookie";
    let hint = "give key_file (or key: ${ENV}) holding 32 random bytes in base64, e.g. `openssl rand -base64 32`";
    let text = match (&raw.key, &raw.key_file) {
        (Some(k), None) => k.clone(),
        (None, Some(f)) => {
            let p = path_of(base, f);
            match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) => {
                    c.push(
                        format!("{key}.key_file"),
                        format!("cannot read {}: {e}", p.display()),
                        hint,
                    );
                    return SessionKey([0; 32]);
                }
            }
        }
        _ => {
            c.push(key, "give exactly one of key and key_file", hint);
            return SessionKey([0; 32]);
        }
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()));
    match decoded.ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) {
        Some(k) if k != [0; 32] => SessionKey(k),
        _ => {
            c.push(key, "the cookie key is not 32 bytes of base64", hint);
            SessionKey([0; 32])
        }
    }
}

fn cookie(raw: RawSessionCookie, base: &Path, c: &mut Collector) -> SessionCookie {
    let key = "auth.sign_in.cookie";
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| "modelgate_session".into());
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        c.push(
            format!("{key}.name"),
            format!("{name:?} is not a cookie name"),
            "use letters, digits, '-', '_' or '.', e.g. authservice_session",
        );
    }
    let lifetime = duration(
        raw.lifetime.as_deref(),
        Duration::from_secs(12 * 3600),
        Zero::Refused,
        &format!("{key}.lifetime"),
        c,
    );
    if lifetime > MAX_LIFETIME {
        c.push(
            format!("{key}.lifetime"),
            "longer than 7 days",
            "sign in again at least weekly: write 7d or less",
        );
    }
    let secure = match raw.secure.as_deref() {
        None | Some("auto") => CookieSecure::Auto,
        Some("always") => CookieSecure::Always,
        Some("never") => CookieSecure::Never,
        Some(o) => {
            c.push(
                format!("{key}.secure"),
                format!("unknown value {o:?}"),
                "use auto (Secure under TLS), always or never",
            );
            CookieSecure::Auto
        }
    };
    SessionCookie {
        key: session_key(&raw, base, c),
        name,
        lifetime,
        secure,
    }
}

/// Validates `auth.sign_in` against the configured JWT rules.
pub(crate) fn sign_in(
    raw: RawSignIn,
    jwt: &[JwtRule],
    base: &Path,
    c: &mut Collector,
) -> Option<SignIn> {
    let key = "auth.sign_in";
    check_client(&raw, jwt, key, c);
    let scopes = scopes(raw.scopes);
    let allowed_redirects = match raw.allowed_redirects {
        None => vec![RedirectTarget::Path("/".into())],
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| redirect_target(s, &format!("{key}.allowed_redirects[{i}]"), c))
            .collect(),
    };
    let path = |raw: Option<String>, default: &str, name: &str, c: &mut Collector| {
        endpoint_path(raw, default, &format!("{key}.{name}"), c)
    };
    let limit = |raw: Option<String>, default: u64, name: &str, c: &mut Collector| {
        duration(
            raw.as_deref(),
            Duration::from_secs(default),
            Zero::Refused,
            &format!("{key}.{name}"),
            c,
        )
    };
    let sign_in = SignIn {
        redirect_path: path(raw.redirect_path, "/oauth2/callback", "redirect_path", c),
        login_path: path(raw.login_path, "/oauth2/start", "login_path", c),
        logout_path: path(raw.logout_path, "/oauth2/sign_out", "logout_path", c),
        landing_path: path(raw.landing_path, "/", "landing_path", c),
        cookie: cookie(raw.cookie.unwrap_or_default(), base, c),
        issuer: raw.issuer,
        client_id: raw.client_id,
        client_secret: Secret::new(raw.client_secret),
        scopes,
        allowed_redirects,
        timeout: limit(raw.timeout, 5, "timeout", c),
        flow_lifetime: limit(raw.flow_lifetime, 600, "flow_lifetime", c),
    };
    distinct_paths(&sign_in, key, c);
    Some(sign_in)
}

/// The issuer must have a JWT rule; the client id and secret must be set.
fn check_client(raw: &RawSignIn, jwt: &[JwtRule], key: &str, c: &mut Collector) {
    if !jwt.iter().any(|r| r.issuer == raw.issuer) {
        c.push(
            format!("{key}.issuer"),
            format!("{} is not the issuer of an auth.jwt rule", raw.issuer),
            "add an auth.jwt rule for this issuer: the ID token is verified as its Bearer JWTs are",
        );
    }
    if raw.client_id.is_empty() {
        c.push(
            format!("{key}.client_id"),
            "empty client_id",
            "write the client registered at the IdP",
        );
    }
    if raw.client_secret.is_empty() {
        c.push(
            format!("{key}.client_secret"),
            "empty client_secret",
            "write it as ${ENV_VAR} so it stays out of the file",
        );
    }
}

/// The scopes asked for at login (default `openid email profile groups`);
/// `openid` is always among them.
fn scopes(raw: Option<Vec<String>>) -> Vec<String> {
    let mut scopes = raw.unwrap_or_else(|| {
        ["openid", "email", "profile", "groups"]
            .map(String::from)
            .to_vec()
    });
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    scopes
}

/// Each sign-in endpoint needs its own path.
fn distinct_paths(sign_in: &SignIn, key: &str, c: &mut Collector) {
    let paths = [
        &sign_in.redirect_path,
        &sign_in.login_path,
        &sign_in.logout_path,
        &sign_in.landing_path,
    ];
    for (i, p) in paths.iter().enumerate() {
        if paths[..i].contains(p) {
            c.push(
                key,
                format!("{p} is used for two sign-in endpoints"),
                "give each endpoint its own path",
            );
        }
    }
}
