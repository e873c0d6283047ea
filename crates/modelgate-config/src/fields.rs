//! The one copy of the field checks every section shares: durations, header
//! names, files, http(s) URLs and string lists. Each pushes an error that
//! names the key and the fix, and returns a value the caller can go on with.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Uri};

use crate::error::Collector;
use crate::units::parse_duration;

/// Whether a zero duration means something for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zero {
    /// `0s` is meaningful (a clock skew of zero, drain at once).
    Allowed,
    /// `0s` is nonsense (a timeout that always fires, a refresh loop).
    Refused,
}

/// A duration key: `default` when absent; on error the error is recorded and
/// `default` returned so validation goes on.
pub(crate) fn duration(
    v: Option<&str>,
    default: Duration,
    zero: Zero,
    key: &str,
    c: &mut Collector,
) -> Duration {
    const HINT: &str = "write a duration such as 5s, 30s, 5m or 1h";
    let Some(s) = v else {
        return default;
    };
    match parse_duration(s) {
        Ok(d) if d.is_zero() && zero == Zero::Refused => {
            c.push(key, "must be greater than zero", HINT);
            default
        }
        Ok(d) => d,
        Err(e) => {
            c.push(key, e, HINT);
            default
        }
    }
}

/// A path as written, resolved from the config file's folder when relative.
pub(crate) fn path_of(base: &Path, s: &str) -> PathBuf {
    let p = PathBuf::from(s);
    if p.is_absolute() { p } else { base.join(p) }
}

/// A file that must exist when the configuration is loaded.
pub(crate) fn existing_file(base: &Path, s: &str, key: &str, c: &mut Collector) -> PathBuf {
    let p = path_of(base, s);
    if !p.is_file() {
        c.push(
            key,
            format!("file {} does not exist or is not a file", p.display()),
            "check the path (relative paths are resolved from the config file's folder)",
        );
    }
    p
}

/// An HTTP header name.
pub(crate) fn header_name(s: &str, key: &str, c: &mut Collector) -> Option<HeaderName> {
    match HeaderName::from_str(s) {
        Ok(h) => Some(h),
        Err(_) => {
            c.push(
                key,
                format!("invalid header name {s:?}"),
                "use letters, digits and '-', e.g. x-api-key",
            );
            None
        }
    }
}

/// An http(s) URL with a host and no credentials.
pub(crate) fn http_url(s: &str, key: &str, c: &mut Collector) -> Option<Uri> {
    let bad = |c: &mut Collector, why: &str| {
        c.push(
            key,
            format!("invalid URL {:?}: {why}", modelgate_core::redact_url(s)),
            "write http(s)://host[:port]/path",
        );
        None
    };
    let Ok(uri) = Uri::from_str(s) else {
        return bad(c, "not a URL");
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return bad(c, "scheme must be http or https");
    }
    let Some(a) = uri.authority() else {
        return bad(c, "no host");
    };
    if a.as_str().contains('@') {
        return bad(c, "credentials in the URL are not supported");
    }
    Some(uri)
}

/// A list of non-empty strings (absent = empty).
pub(crate) fn strings(v: Option<Vec<String>>, key: &str, c: &mut Collector) -> Vec<String> {
    let v = v.unwrap_or_default();
    for (i, s) in v.iter().enumerate() {
        if s.is_empty() {
            c.push(
                format!("{key}[{i}]"),
                "empty value",
                "remove the entry or write a value",
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(f: impl FnOnce(&mut Collector)) -> Vec<String> {
        let mut c = Collector::default();
        f(&mut c);
        c.into_errors().into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn zero_is_refused_only_where_asked() {
        let d = Duration::from_secs(7);
        let refused = errors(|c| {
            assert_eq!(duration(Some("0s"), d, Zero::Refused, "k", c), d);
        });
        assert_eq!(refused, ["must be greater than zero"]);
        let allowed = errors(|c| {
            assert_eq!(
                duration(Some("0s"), d, Zero::Allowed, "k", c),
                Duration::ZERO
            );
        });
        assert!(allowed.is_empty());
        let bad = errors(|c| {
            assert_eq!(duration(Some("soon"), d, Zero::Allowed, "k", c), d);
        });
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn urls_refuse_credentials_and_other_schemes() {
        let mut c = Collector::default();
        assert!(http_url("https://idp.example.com/jwks", "k", &mut c).is_some());
        assert!(http_url("ftp://idp.example.com/", "k", &mut c).is_none());
        assert!(http_url("https://u:p@idp.example.com/", "k", &mut c).is_none());
        let errs = c.into_errors();
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().all(|e| !e.message.contains("u:p")));
    }
}
