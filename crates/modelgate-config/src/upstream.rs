//! The LLM side of a model's `upstream:` block: headers injected upstream
//! (the upstream's own credentials, held as secrets), the name the upstream
//! knows the model by, retries over several URLs, the passive-health cool-off
//! and the idle timeout of streamed responses.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use modelgate_core::Secret;

use crate::error::Collector;
use crate::fields::{Zero, duration};
use crate::raw::{OneOrMany, RawUpstream};

/// Validated LLM upstream settings. Defaults: no headers, no alias, one
/// retry, a 60 s stream idle timeout and a 5 s cool-off.
#[derive(Debug, Clone)]
pub struct UpstreamExtras {
    /// Set on every request sent upstream, replacing any client value.
    /// Values are secrets: never logged, never in errors.
    pub headers: Vec<UpstreamHeader>,
    /// The upstream's name for the model, when it differs from the client's.
    pub model: Option<String>,
    /// Further attempts on another endpoint (see `docs/config.md`).
    pub retries: u32,
    /// Longest gap between two chunks of a response body.
    pub stream_idle_timeout: Duration,
    /// How long an endpoint that failed is skipped.
    pub cooloff: Duration,
}

impl Default for UpstreamExtras {
    fn default() -> Self {
        Self {
            headers: Vec::new(),
            model: None,
            retries: 1,
            stream_idle_timeout: Duration::from_secs(60),
            cooloff: Duration::from_secs(5),
        }
    }
}

/// One injected header.
#[derive(Debug, Clone)]
pub struct UpstreamHeader {
    pub name: HeaderName,
    pub value: Secret,
}

/// Header names that describe the connection or the body, which modelgate
/// sets itself.
const REFUSED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

/// The REST URLs from `url` (one or a list) or `urls`.
pub(crate) fn urls(raw: &RawUpstream, key: &str, c: &mut Collector) -> Vec<String> {
    match (&raw.url, &raw.urls) {
        (Some(u), None) => u.clone().into_vec(),
        (None, Some(list)) => list.clone(),
        (Some(_), Some(_)) => {
            c.push(
                format!("{key}.urls"),
                "both `url` and `urls` are set",
                "keep one: url: http://host:port, or urls: [http://a:port, http://b:port]",
            );
            Vec::new()
        }
        (None, None) => Vec::new(),
    }
}

/// Whether the URLs were given as a list (for error key paths).
pub(crate) fn url_key(
    raw_url: Option<&OneOrMany<String>>,
    key: &str,
    i: usize,
    n: usize,
) -> String {
    match raw_url {
        Some(_) if n == 1 => format!("{key}.url"),
        Some(_) => format!("{key}.url[{i}]"),
        None => format!("{key}.urls[{i}]"),
    }
}

/// Validates the LLM keys of `upstream:`.
pub(crate) fn extras(raw: &RawUpstream, key: &str, c: &mut Collector) -> UpstreamExtras {
    let d = UpstreamExtras::default();
    let headers = raw
        .headers
        .as_ref()
        .map(|h| headers(h, &format!("{key}.headers"), c))
        .unwrap_or_default();
    let model = raw.model.as_ref().and_then(|m| {
        let ok = !m.is_empty()
            && m.len() <= 256
            && !m.chars().any(|ch| ch.is_control() || matches!(ch, '/' | '?' | '#' | ' '));
        if ok {
            Some(m.clone())
        } else {
            c.push(
                format!("{key}.model"),
                format!("invalid upstream model name {m:?}"),
                "write the name the upstream serves the model under, without '/', '?', '#' or spaces",
            );
            None
        }
    });
    let retries = raw.retries.unwrap_or(d.retries);
    if retries > 8 {
        c.push(
            format!("{key}.retries"),
            format!("{retries} retries is too many"),
            "use 0 to 8 (each retry goes to another endpoint)",
        );
    }
    UpstreamExtras {
        headers,
        model,
        retries: retries.min(8),
        stream_idle_timeout: duration(
            raw.stream_idle_timeout.as_deref(),
            d.stream_idle_timeout,
            Zero::Refused,
            &format!("{key}.stream_idle_timeout"),
            c,
        ),
        cooloff: duration(
            raw.cooloff.as_deref(),
            d.cooloff,
            Zero::Allowed,
            &format!("{key}.cooloff"),
            c,
        ),
    }
}

fn headers(raw: &BTreeMap<String, String>, key: &str, c: &mut Collector) -> Vec<UpstreamHeader> {
    let mut out = Vec::new();
    for (name, value) in raw {
        let k = format!("{key}.{name}");
        let Ok(h) = HeaderName::from_bytes(name.as_bytes()) else {
            c.push(
                k,
                format!("invalid header name {name:?}"),
                "use letters, digits and '-', e.g. authorization",
            );
            continue;
        };
        if REFUSED.contains(&h.as_str()) {
            c.push(
                k,
                format!("header {h} cannot be set upstream"),
                "modelgate sets connection, body and Host headers itself; use upstream.host for Host",
            );
            continue;
        }
        // The value is a secret: the error names the key, never the value.
        if value.is_empty() || HeaderValue::from_str(value).is_err() {
            c.push(
                k,
                "the value is empty or not a valid header value",
                "write printable ASCII, e.g. \"Bearer ${LITELLM_KEY}\" (check the variable is set)",
            );
            continue;
        }
        out.push(UpstreamHeader {
            name: h,
            value: Secret::new(value.clone()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::{Backend, Config, parse_str};

    fn parse(upstream: &str) -> Result<Config, String> {
        let text = format!(
            "listen: {{address: 127.0.0.1:8080}}\nmodels: [{{name: chat, protocols: [openai], upstream: {upstream}}}]\n"
        );
        let env = |k: &str| (k == "LLM_KEY").then(|| "sk-very-secret".to_string());
        parse_str(&text, "t.yaml", std::path::Path::new("."), &env).map_err(|e| e.to_string())
    }

    fn extras(upstream: &str) -> super::UpstreamExtras {
        match parse(upstream).unwrap().models.remove(0).backend {
            Backend::Upstream(u) => *u.llm,
            Backend::Builtin(_) => unreachable!(),
        }
    }

    #[test]
    fn defaults_and_full_block() {
        let d = extras("{url: \"http://127.0.0.1:9\"}");
        assert!(d.headers.is_empty() && d.model.is_none());
        assert_eq!((d.retries, d.stream_idle_timeout.as_secs()), (1, 60));
        let cfg = parse(
            "{urls: [\"http://127.0.0.1:9\", \"http://127.0.0.1:10\"], model: gpt-3.5-turbo, retries: 2, \
             stream_idle_timeout: 5s, cooloff: 1s, headers: {Authorization: \"Bearer ${LLM_KEY}\"}}",
        )
        .unwrap();
        let Backend::Upstream(u) = &cfg.models[0].backend else {
            unreachable!()
        };
        assert_eq!(u.endpoints.len(), 2);
        let e = &u.llm;
        assert_eq!(e.model.as_deref(), Some("gpt-3.5-turbo"));
        assert_eq!(
            (
                e.retries,
                e.stream_idle_timeout.as_secs(),
                e.cooloff.as_secs()
            ),
            (2, 5, 1)
        );
        assert_eq!(e.headers[0].name, "authorization");
        assert_eq!(e.headers[0].value.expose(), "Bearer sk-very-secret");
        // The secret never shows in the configuration's Debug (`check`).
        assert!(!format!("{cfg:?}").contains("sk-very-secret"));
    }

    #[test]
    fn bad_keys_are_named_and_secrets_never_shown() {
        for (block, key) in [
            (
                "{url: \"http://a:1\", headers: {Host: x}}",
                "upstream.headers.Host",
            ),
            (
                "{url: \"http://a:1\", headers: {content-length: \"1\"}}",
                "headers.content-length",
            ),
            (
                "{url: \"http://a:1\", headers: {\"bad name\": x}}",
                "headers.bad name",
            ),
            ("{url: \"http://a:1\", model: \"a/b\"}", "upstream.model"),
            ("{url: \"http://a:1\", retries: 100}", "upstream.retries"),
            (
                "{url: \"http://a:1\", stream_idle_timeout: 0s}",
                "stream_idle_timeout",
            ),
            (
                "{url: \"http://a:1\", urls: [\"http://b:1\"]}",
                "upstream.urls",
            ),
            ("{urls: [\"http://a:1\", \"ftp://b\"]}", "upstream.urls[1]"),
        ] {
            let e = parse(block).unwrap_err();
            assert!(e.contains(key), "{block}: {e}");
        }
        let e = parse("{url: \"http://a:1\", headers: {x-key: \"${LLM_KEY}\\n\"}}").unwrap_err();
        assert!(
            e.contains("headers.x-key") && !e.contains("sk-very-secret"),
            "{e}"
        );
    }
}
