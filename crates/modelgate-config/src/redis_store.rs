//! `limits.store.redis`: where the shared counters live (Redis URL, which may
//! hold a password), what the rate-limit step does when Redis does not answer
//! (`failure_mode`), the deadline of each call and the key prefix. The
//! `limits:` section embeds [`RawRedisStore`] and calls [`redis_store`].

use std::time::Duration;

use modelgate_core::secret::{Secret, redact_url};
use serde::Deserialize;

use crate::error::{Collector, ConfigError};
use crate::units::parse_duration;

/// `limits.store.redis` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisStore {
    /// `redis://[user:password@]host[:port][/db]`; `${ENV}` references are
    /// expanded, so the password can stay out of the file.
    pub url: String,
    /// `open` (grant when Redis is unreachable) or `closed` (refuse, 503).
    pub failure_mode: Option<String>,
    /// Deadline of each call to Redis, e.g. `50ms`.
    pub timeout: Option<String>,
    /// Separates deployments sharing one Redis: keys are
    /// `modelgate:{<prefix>}:…`.
    pub prefix: Option<String>,
}

/// What the rate-limit step does when the counter store does not answer in
/// time. (Deserializes from `open` / `closed`, so `limits:` may embed it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Grant the request and count nothing (availability over exactness).
    Open,
    /// Refuse with 503 and `Retry-After` (exactness over availability).
    #[default]
    Closed,
}

impl FailureMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureMode::Open => "open",
            FailureMode::Closed => "closed",
        }
    }
}

/// A validated `limits.store.redis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStoreConfig {
    /// The connection URL; may hold a password, so never logged.
    pub url: Secret,
    /// The URL without its `user:password@` part, for logs and errors.
    pub display_url: String,
    pub failure_mode: FailureMode,
    /// Deadline of every call (reserve, adjust, read).
    pub timeout: Duration,
    pub prefix: String,
}

/// Default deadline of a call: well under a request's budget, well over a
/// LAN round trip.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
const MAX_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_PREFIX: &str = "default";
const MAX_PREFIX: usize = 64;

/// Validates `limits.store.redis` (`key` is its path, e.g.
/// `limits.store.redis`). Every problem is pushed to `c`; `None` if any.
pub(crate) fn redis_store(
    raw: RawRedisStore,
    key: &str,
    c: &mut Collector,
) -> Option<RedisStoreConfig> {
    let display_url = redact_url(&raw.url);
    let mut ok = check_url(&raw.url, &display_url, &format!("{key}.url"), c);
    let failure_mode = match raw.failure_mode.as_deref() {
        None => FailureMode::default(),
        Some("open") => FailureMode::Open,
        Some("closed") => FailureMode::Closed,
        Some(other) => {
            ok = false;
            c.push(
                format!("{key}.failure_mode"),
                format!("unknown failure mode {other:?}"),
                "write `closed` (refuse with 503 while Redis is unreachable; the default) or `open` (grant and count nothing)",
            );
            FailureMode::default()
        }
    };
    let timeout = match raw.timeout.as_deref().map(parse_duration) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(d)) if !d.is_zero() && d <= MAX_TIMEOUT => d,
        Some(Ok(_)) => {
            ok = false;
            c.push(
                format!("{key}.timeout"),
                "the deadline must be above 0 and at most 10s",
                "write a short duration such as `50ms` (the default)",
            );
            DEFAULT_TIMEOUT
        }
        Some(Err(e)) => {
            ok = false;
            c.push(
                format!("{key}.timeout"),
                e,
                "write a duration such as `50ms`",
            );
            DEFAULT_TIMEOUT
        }
    };
    let prefix = raw.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    ok &= check_prefix(&prefix, &format!("{key}.prefix"), c);
    ok.then(|| RedisStoreConfig {
        url: Secret::new(raw.url),
        display_url,
        failure_mode,
        timeout,
        prefix,
    })
}

/// Validates a `limits.store.redis` on its own (tests, tools).
pub fn parse(raw: RawRedisStore, key: &str) -> Result<RedisStoreConfig, Vec<ConfigError>> {
    let mut c = Collector::default();
    match redis_store(raw, key, &mut c) {
        Some(cfg) => Ok(cfg),
        None => Err(c.into_errors()),
    }
}

/// The URL must be `redis://host…`; errors show it without its password.
fn check_url(url: &str, shown: &str, key: &str, c: &mut Collector) -> bool {
    let Some(rest) = url.strip_prefix("redis://") else {
        let hint = if url.starts_with("rediss://") {
            "TLS to Redis is not built in: use `redis://` over a trusted network or a local TLS tunnel"
        } else {
            "write `redis://[:password@]host[:port][/db]`"
        };
        c.push(key, format!("{shown:?} is not a redis:// URL"), hint);
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        c.push(
            key,
            format!("{shown:?} names no host"),
            "write `redis://host:6379`",
        );
        return false;
    }
    true
}

fn check_prefix(prefix: &str, key: &str, c: &mut Collector) -> bool {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        c.push(
            key,
            format!("invalid prefix {prefix:?}"),
            "use 1 to 64 letters, digits, `-`, `_` or `.` (it names this deployment's keys in Redis)",
        );
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawRedisStore {
        RawRedisStore {
            url: url.to_string(),
            failure_mode: None,
            timeout: None,
            prefix: None,
        }
    }

    #[test]
    fn defaults_are_closed_50ms() {
        let cfg = parse(raw("redis://127.0.0.1:6379"), "limits.store.redis").unwrap();
        assert_eq!(cfg.failure_mode, FailureMode::Closed);
        assert_eq!(cfg.timeout, Duration::from_millis(50));
        assert_eq!(cfg.prefix, "default");
        assert_eq!(cfg.display_url, "redis://127.0.0.1:6379");
    }

    #[test]
    fn parses_every_field_from_yaml() {
        let raw: RawRedisStore = yaml_serde::from_str(
            "url: redis://:pw@h:1/2\nfailure_mode: open\ntimeout: 20ms\nprefix: prod-1",
        )
        .unwrap();
        let cfg = parse(raw, "k").unwrap();
        assert_eq!(cfg.failure_mode, FailureMode::Open);
        assert_eq!(cfg.timeout, Duration::from_millis(20));
        assert_eq!(cfg.prefix, "prod-1");
        assert_eq!(cfg.url.expose(), "redis://:pw@h:1/2");
        assert_eq!(cfg.display_url, "redis://[redacted]@h:1/2");
        assert!(!format!("{cfg:?}").contains("pw"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<RawRedisStore, _> = yaml_serde::from_str("url: redis://h\ntls: true");
        assert!(r.is_err());
    }

    #[test]
    fn errors_name_the_key_and_never_the_password() {
        let mut r = raw("http://user:hunter2@h:1");
        r.failure_mode = Some("maybe".into());
        r.timeout = Some("0s".into());
        r.prefix = Some("a{b}".into());
        let errs = parse(r, "limits.store.redis").unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "limits.store.redis.url",
                "limits.store.redis.failure_mode",
                "limits.store.redis.timeout",
                "limits.store.redis.prefix"
            ]
        );
        assert!(errs.iter().all(|e| !e.to_string().contains("hunter2")));
    }

    #[test]
    fn tls_and_hostless_urls_are_refused() {
        let e = parse(raw("rediss://h:6380"), "k").unwrap_err();
        assert!(e[0].hint.contains("TLS"));
        let e = parse(raw("redis://:pw@:6379"), "k").unwrap_err();
        assert!(e[0].message.contains("no host"));
        assert!(!e[0].message.contains("pw"));
    }
}
