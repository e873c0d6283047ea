//! Keys that are read once, when the server starts: listeners (sockets, TLS,
//! limits, credentials, trusted proxies, `istio_compat`), the admin address,
//! logging and runtime threads. A reload keeps their running values; this
//! module names the ones a new file changes, so a reload and
//! `modelgate validate --running` can say that a restart is needed.

use crate::types::{Config, Listener};

/// The keys a reload cannot apply (documented in `docs/config.md`).
pub const RESTART_KEYS: &[&str] = &[
    "listen (every key of every listener)",
    "admin.address",
    "log.level",
    "log.format",
    "runtime.io_threads",
    "runtime.inference_threads",
    "runtime.queue_depth",
];

/// The key paths whose value in `new` differs from the `running` one and that
/// only a restart applies, e.g. `listen[0].trusted_proxies`. Empty: a reload
/// applies everything.
pub fn restart_required(running: &Config, new: &Config) -> Vec<String> {
    let mut out = listener_changes(&running.listeners, &new.listeners);
    let mut diff = |key: &str, changed: bool| {
        if changed {
            out.push(key.to_string());
        }
    };
    diff("admin.address", running.admin.address != new.admin.address);
    diff("log.level", running.log.level != new.log.level);
    diff("log.format", running.log.format != new.log.format);
    let (r, n) = (&running.runtime, &new.runtime);
    diff("runtime.io_threads", r.io_threads != n.io_threads);
    diff(
        "runtime.inference_threads",
        r.inference_threads != n.inference_threads,
    );
    diff("runtime.queue_depth", r.queue_depth != n.queue_depth);
    out
}

/// Listener keys that differ, by index; a listener added or removed is `listen`.
pub fn listener_changes(running: &[Listener], new: &[Listener]) -> Vec<String> {
    if running.len() != new.len() {
        return vec!["listen".to_string()];
    }
    let mut out = Vec::new();
    for (i, (a, b)) in running.iter().zip(new).enumerate() {
        let before = out.len();
        let mut diff = |name: &str, changed: bool| {
            if changed {
                out.push(format!("listen[{i}].{name}"));
            }
        };
        diff("address", a.address != b.address);
        diff("tls", a.tls != b.tls);
        diff("http2", a.http2 != b.http2);
        diff("max_body_bytes", a.max_body_bytes != b.max_body_bytes);
        diff(
            "header_read_timeout",
            a.header_read_timeout != b.header_read_timeout,
        );
        diff("drain_timeout", a.drain_timeout != b.drain_timeout);
        diff("credentials", a.credentials != b.credentials);
        diff("trusted_proxies", a.trusted_proxies != b.trusted_proxies);
        diff("istio_compat", a.istio_compat != b.istio_compat);
        diff("forward_auth", a.forward_auth != b.forward_auth);
        // A listener key not named above (a newer setting) still counts.
        if out.len() == before && a != b {
            out.push(format!("listen[{i}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(listen: &str, extra: &str) -> Config {
        let text = format!(
            "listen: {listen}\nmodels:\n  - {{name: iris, upstream: {{url: \"http://127.0.0.1:9\"}}}}\n{extra}"
        );
        crate::parse_str(&text, "t.yaml", Path::new("."), &|_| None).unwrap()
    }

    #[test]
    fn names_each_pinned_key_that_changed() {
        let running = parse("{address: \"127.0.0.1:8080\"}", "");
        assert!(restart_required(&running, &running).is_empty());
        let new = parse(
            "{address: \"127.0.0.1:8080\", trusted_proxies: [10.0.0.0/8], istio_compat: true, max_body_bytes: 1MiB}",
            "log: {level: debug}\nruntime: {queue_depth: 7}\n",
        );
        assert_eq!(
            restart_required(&running, &new),
            [
                "listen[0].max_body_bytes",
                "listen[0].trusted_proxies",
                "listen[0].istio_compat",
                "log.level",
                "runtime.queue_depth",
            ]
        );
        let two = parse(
            "[{address: \"127.0.0.1:8080\"}, {address: \"127.0.0.1:8081\"}]",
            "",
        );
        assert_eq!(restart_required(&running, &two), ["listen"]);
    }

    #[test]
    fn credentials_change_is_named() {
        let running = parse("{address: \"127.0.0.1:8080\"}", "");
        let new = parse(
            "{address: \"127.0.0.1:8080\", credentials: [!custom_header x-api-key]}",
            "",
        );
        assert_eq!(restart_required(&running, &new), ["listen[0].credentials"]);
    }
}
