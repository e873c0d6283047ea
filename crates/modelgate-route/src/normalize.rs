//! Request normalisation, applied before any matching; the normalised path is
//! also what is forwarded, so the gateway and the upstream read one URL alike.
//!
//! - percent-escapes of unreserved characters are decoded once;
//! - other escapes are kept, upper-cased; `%2F`, `%5C` and `%00` are refused;
//! - `//` is merged, `.` and `..` segments are resolved (RFC 3986);
//! - control characters, `\`, `#` and `;` path parameters are refused;
//! - case is kept: `/V2/…` is a different (unknown) path.

use std::fmt;

/// Why a path was refused (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NormalizeError {
    NotAbsolute,
    BadEscape,
    EncodedSlash,
    Nul,
    ControlChar,
    Backslash,
    Fragment,
    PathParameter,
    TooLong,
}

impl fmt::Display for NormalizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NormalizeError::NotAbsolute => "path must start with '/'",
            NormalizeError::BadEscape => "path has an invalid percent-escape",
            NormalizeError::EncodedSlash => "path has an encoded '/' or '\\'",
            NormalizeError::Nul => "path has an encoded NUL",
            NormalizeError::ControlChar => "path has a control character",
            NormalizeError::Backslash => "path has a '\\'",
            NormalizeError::Fragment => "path has a '#' fragment",
            NormalizeError::PathParameter => "path has a ';' parameter",
            NormalizeError::TooLong => "path is too long",
        })
    }
}

/// Longest path accepted (bytes, before normalisation).
pub const MAX_PATH: usize = 8192;

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises a request path (without its query).
pub fn normalize_path(raw: &str) -> Result<String, NormalizeError> {
    Ok(normalized_path(raw)?.unwrap_or_else(|| raw.to_string()))
}

/// [`normalize_path`] without a copy in the common case: `None` when `raw`
/// is already normal (nothing to decode, merge or resolve).
pub fn normalized_path(raw: &str) -> Result<Option<String>, NormalizeError> {
    if raw.len() > MAX_PATH {
        return Err(NormalizeError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(NormalizeError::NotAbsolute);
    }
    if is_canonical(raw) {
        return Ok(None);
    }
    // Pass 1: check characters and decode escapes of unreserved characters.
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(NormalizeError::BadEscape);
                };
                let v = h * 16 + l;
                match v {
                    0 => return Err(NormalizeError::Nul),
                    b'/' | b'\\' => return Err(NormalizeError::EncodedSlash),
                    v if unreserved(v) => decoded.push(char::from(v)),
                    v => {
                        decoded.push('%');
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(v >> 4)]));
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(v & 15)]));
                    }
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(NormalizeError::Backslash),
            b'#' => return Err(NormalizeError::Fragment),
            b';' => return Err(NormalizeError::PathParameter),
            b if b < 0x20 || b == 0x7f => return Err(NormalizeError::ControlChar),
            _ => {}
        }
        // Multi-byte UTF-8 sequences are copied whole.
        let ch_len = raw[i..].chars().next().map_or(1, char::len_utf8);
        decoded.push_str(&raw[i..i + ch_len]);
        i += ch_len;
    }
    // Pass 2: merge slashes and resolve dot segments.
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || (trailing && !path.ends_with('/')) {
        path.push('/');
    }
    Ok(Some(path))
}

/// The common case: nothing to decode, merge or resolve. One pass over the
/// bytes: no byte to refuse or decode, no empty segment (`//`) and no `.` or
/// `..` segment. Bytes are classed through a table (most are plain and only
/// lengthen the segment); a segment is checked when its slash is reached.
fn is_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    // Where the current segment starts (after its slash); the first slash
    // ends no segment.
    let mut seg_start = usize::MAX;
    for (i, &c) in b.iter().enumerate() {
        match CLASS[usize::from(c)] {
            PLAIN => {}
            SLASH => {
                if seg_start != usize::MAX && !segment_ok(&b[seg_start..i]) {
                    return false;
                }
                seg_start = i + 1;
            }
            _ => return false,
        }
    }
    // The last segment: `.` or `..` (an empty one is a trailing `/`).
    let last = b.get(seg_start..).unwrap_or(b);
    last.is_empty() || segment_ok(last)
}

/// A segment between two slashes: not empty, not `.` nor `..`.
#[inline(always)]
fn segment_ok(seg: &[u8]) -> bool {
    !matches!(seg, [] | [b'.'] | [b'.', b'.'])
}

const PLAIN: u8 = 0;
const SLASH: u8 = 1;
const REFUSED: u8 = 2;

/// Each byte's class for [`is_canonical`]: control characters and
/// `% \ # ;` are [`REFUSED`] (to decode or refuse), `/` is [`SLASH`].
static CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = REFUSED;
        c += 1;
    }
    t[0x7f] = REFUSED;
    t[b'%' as usize] = REFUSED;
    t[b'\\' as usize] = REFUSED;
    t[b'#' as usize] = REFUSED;
    t[b';' as usize] = REFUSED;
    t[b'/' as usize] = SLASH;
    t
};

/// The bytes of a host name or IPv4 address already in normal form:
/// lower-case letters, digits, `-` and `.`.
static HOST_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
        c += 1;
    }
    t
};

/// [`normalize_host`] of an owned host, without a copy in the common case
/// (a lower-case name or IPv4 address, perhaps with a port: the port is cut).
pub fn normalize_host_owned(mut raw: String) -> String {
    let b = raw.as_bytes();
    // One pass to the port: each byte classed through a table.
    let mut name_end = b.len();
    let mut plain = true;
    for (i, &c) in b.iter().enumerate() {
        if c == b':' {
            name_end = i;
            break;
        }
        plain &= HOST_BYTE[usize::from(c)];
    }
    let (name, port) = b.split_at(name_end);
    let simple = plain
        && !name.is_empty()
        && name.last() != Some(&b'.')
        && port.iter().skip(1).all(u8::is_ascii_digit);
    if !simple {
        return normalize_host(&raw);
    }
    raw.truncate(name_end);
    raw
}

/// Lower-cases a host and strips any userinfo, its port and trailing dots
/// (`u@Model.Example.com.:443` → `model.example.com`), so `hosts:` and policy
/// host rules match every spelling of one name.
pub fn normalize_host(raw: &str) -> String {
    let lower = raw.trim().to_ascii_lowercase();
    // Userinfo is not part of a Host (RFC 9110 §7.2); `@` cannot occur in a
    // host name, so everything up to the last one goes.
    let host = lower.rsplit_once('@').map_or(lower.as_str(), |(_, h)| h);
    if host.starts_with('[') {
        // IPv6 literal: keep the bracketed address, drop the port.
        return match host.find(']') {
            Some(end) => host[..=end].to_string(),
            None => host.to_string(),
        };
    }
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    // `example.com.` is the same (fully qualified) name as `example.com`.
    host.trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("/v2/models/iris/infer", "/v2/models/iris/infer"),
            ("//v2//models/iris/infer", "/v2/models/iris/infer"),
            ("/v2/models/./iris/infer", "/v2/models/iris/infer"),
            ("/v2/x/../models/iris/infer", "/v2/models/iris/infer"),
            ("/../../v2", "/v2"),
            ("/v2/models/ir%69s/infer", "/v2/models/iris/infer"),
            ("/v2/models/%2e%2e/x", "/v2/x"),
            ("/a%3ab", "/a%3Ab"),
            ("/", "/"),
            ("/a/", "/a/"),
            ("/a/.", "/a/"),
            ("/a/b/..", "/a/"),
            ("/V2/models", "/V2/models"),
            ("/é", "/é"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refusals() {
        let cases = [
            ("/v2/models/iris%2Finfer", NormalizeError::EncodedSlash),
            ("/v2/models/iris%2finfer", NormalizeError::EncodedSlash),
            ("/v2/models/iris%5Cinfer", NormalizeError::EncodedSlash),
            ("/v2/models/iris%00", NormalizeError::Nul),
            ("/v2/models/iris\\infer", NormalizeError::Backslash),
            ("/v2/models/iris/infer#x", NormalizeError::Fragment),
            ("/admin;jsessionid=1", NormalizeError::PathParameter),
            ("/a%zz", NormalizeError::BadEscape),
            ("/a%4", NormalizeError::BadEscape),
            ("/a\u{1}", NormalizeError::ControlChar),
            ("v2/models", NormalizeError::NotAbsolute),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(normalize_host("Secret.COM:8080"), "secret.com");
        assert_eq!(normalize_host("a.b"), "a.b");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
    }

    #[test]
    fn hosts_lose_trailing_dots_and_userinfo() {
        for raw in [
            "secret.com.",
            "Secret.COM.:8080",
            "secret.com..",
            "user@secret.com",
            "user:pw@Secret.com.:443",
            "a@b@secret.com",
            " secret.com. ",
        ] {
            assert_eq!(normalize_host(raw), "secret.com", "{raw}");
        }
        assert_eq!(normalize_host("u@[::1]:80"), "[::1]");
        assert_eq!(normalize_host("secret.com@evil.com"), "evil.com");
    }

    proptest! {
        #[test]
        fn idempotent(raw in "/[a-zA-Z0-9%./;#\\\\_~:-]{0,40}") {
            if let Ok(once) = normalize_path(&raw) {
                prop_assert_eq!(normalize_path(&once), Ok(once.clone()));
                prop_assert!(!once.contains("//"));
                prop_assert!(!once.split('/').any(|s| s == "." || s == ".."));
            }
        }

        #[test]
        fn fast_path_agrees_with_full_normalisation(raw in "/[a-z0-9./_-]{0,30}") {
            if is_canonical(&raw) {
                prop_assert_eq!(normalize_path(&raw), Ok(raw.clone()));
            }
        }

        #[test]
        fn one_pass_canonical_check_matches_its_definition(raw in "/[a/.%;#\\\\\\x01é]{0,24}") {
            let b = raw.as_bytes();
            let reference = b
                .iter()
                .all(|&c| c >= 0x20 && c != 0x7f && !matches!(c, b'%' | b'\\' | b'#' | b';'))
                && !raw.contains("//")
                && !raw.split('/').any(|seg| seg == "." || seg == "..");
            prop_assert_eq!(is_canonical(&raw), reference);
        }

        #[test]
        fn owned_host_fast_path_agrees(raw in "[a-zA-Z0-9.:@\\[\\] -]{0,24}") {
            prop_assert_eq!(normalize_host_owned(raw.clone()), normalize_host(&raw));
        }

        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = normalize_path(&raw);
            let _ = normalize_host(&raw);
        }
    }
}
