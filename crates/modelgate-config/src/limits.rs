//! `listen[].limits`: connection and body deadlines and caps — defaults and
//! checks. Meanings and defaults are documented in `docs/config.md`.

use std::time::Duration;

use crate::error::Collector;
use crate::raw::RawLimits;
use crate::types::Limits;
use crate::units::parse_duration;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            max_concurrent_streams: 100,
            h2_keepalive_interval: Duration::from_secs(20),
            h2_keepalive_timeout: Duration::from_secs(10),
        }
    }
}

const MAX_CONNECTIONS: u64 = 1_000_000;
const MAX_STREAMS: u64 = 10_000;
/// Longest accepted deadline: a deadline is only useful if it passes.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Validates one listener's `limits:` (`key` is the listener's key path).
pub(crate) fn limits(raw: RawLimits, key: &str, c: &mut Collector) -> Limits {
    let d = Limits::default();
    let k = |name: &str| format!("{key}.limits.{name}");
    Limits {
        max_connections: count(
            raw.max_connections,
            d.max_connections,
            MAX_CONNECTIONS,
            &k("max_connections"),
            c,
        ),
        idle_timeout: timeout(raw.idle_timeout, d.idle_timeout, &k("idle_timeout"), c),
        body_read_timeout: timeout(
            raw.body_read_timeout,
            d.body_read_timeout,
            &k("body_read_timeout"),
            c,
        ),
        body_idle_timeout: timeout(
            raw.body_idle_timeout,
            d.body_idle_timeout,
            &k("body_idle_timeout"),
            c,
        ),
        max_concurrent_streams: count(
            raw.max_concurrent_streams,
            d.max_concurrent_streams,
            MAX_STREAMS,
            &k("max_concurrent_streams"),
            c,
        ),
        h2_keepalive_interval: timeout(
            raw.h2_keepalive_interval,
            d.h2_keepalive_interval,
            &k("h2_keepalive_interval"),
            c,
        ),
        h2_keepalive_timeout: timeout(
            raw.h2_keepalive_timeout,
            d.h2_keepalive_timeout,
            &k("h2_keepalive_timeout"),
            c,
        ),
    }
}

fn count(v: Option<u64>, default: u32, max: u64, key: &str, c: &mut Collector) -> u32 {
    match v {
        None => default,
        Some(n) if (1..=max).contains(&n) => u32::try_from(n).unwrap_or(default),
        Some(n) => {
            c.push(
                key,
                format!("{n} is out of range"),
                format!("write a number from 1 to {max} (default {default})"),
            );
            default
        }
    }
}

fn timeout(v: Option<String>, default: Duration, key: &str, c: &mut Collector) -> Duration {
    let Some(s) = v else { return default };
    match parse_duration(&s) {
        Ok(t) if !t.is_zero() && t <= MAX_TIMEOUT => t,
        Ok(_) => {
            c.push(
                key,
                format!("{s:?} is out of range"),
                format!(
                    "write a duration above 0 and at most 24h (default {}s); a deadline must be able to pass",
                    default.as_secs()
                ),
            );
            default
        }
        Err(e) => {
            c.push(key, e, "write a duration such as 10s, 30s or 5m");
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> (Limits, Vec<String>) {
        let raw: RawLimits = yaml_serde::from_str(yaml).unwrap();
        let mut c = Collector::default();
        let l = limits(raw, "listen", &mut c);
        (l, c.into_errors().into_iter().map(|e| e.path).collect())
    }

    #[test]
    fn defaults_apply_to_missing_keys() {
        let (l, errs) = check("{}");
        assert!(errs.is_empty());
        assert_eq!(l, Limits::default());
        assert_eq!(l.max_connections, 10_000);
        assert_eq!(l.body_idle_timeout, Duration::from_secs(30));
    }

    #[test]
    fn values_are_read() {
        let (l, errs) = check(
            "{max_connections: 2, idle_timeout: 1s, body_read_timeout: 2s, body_idle_timeout: 500ms, \
             max_concurrent_streams: 8, h2_keepalive_interval: 3s, h2_keepalive_timeout: 4s}",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(l.max_connections, 2);
        assert_eq!(l.idle_timeout, Duration::from_secs(1));
        assert_eq!(l.body_read_timeout, Duration::from_secs(2));
        assert_eq!(l.body_idle_timeout, Duration::from_millis(500));
        assert_eq!(l.max_concurrent_streams, 8);
        assert_eq!(l.h2_keepalive_interval, Duration::from_secs(3));
        assert_eq!(l.h2_keepalive_timeout, Duration::from_secs(4));
    }

    #[test]
    fn bad_values_name_their_key() {
        let (_, errs) = check(
            "{max_connections: 0, idle_timeout: 0s, body_read_timeout: soon, max_concurrent_streams: 100000}",
        );
        assert_eq!(
            errs,
            [
                "listen.limits.max_connections",
                "listen.limits.idle_timeout",
                "listen.limits.body_read_timeout",
                "listen.limits.max_concurrent_streams",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(yaml_serde::from_str::<RawLimits>("{max_conns: 3}").is_err());
    }
}
