//! The models view: each configured model with its backend, whether it
//! requires a token, its health, and its traffic over the last minute (rate,
//! p50/p99 latency and sparkline series, from the decision tap).

use std::time::{Duration, Instant};

use modelgate_audit::tap::ModelStats;
use modelgate_config::Backend;
use serde::Serialize;

use super::console::Console;

/// How long a health probe (a TCP connect to the upstream) may take.
const PROBE: Duration = Duration::from_millis(500);

#[derive(Serialize)]
pub(super) struct ModelView {
    pub name: String,
    /// `upstream` or `builtin`.
    pub kind: &'static str,
    /// Upstream scheme and authority (no path, no user info); empty for built-in.
    pub backend: String,
    pub protocols: Vec<&'static str>,
    pub require_token: bool,
    /// `ready` (built-in model loaded, or upstream accepts connections),
    /// `unreachable`, or `unknown`.
    pub health: &'static str,
    pub stats: ModelStats,
}

/// Every configured model, probed concurrently (each probe bounded).
pub(super) async fn models(c: &Console) -> Vec<ModelView> {
    let p = c.shared.pipeline.load_full();
    let now = Instant::now();
    let mut probes = Vec::new();
    for m in &p.config.models {
        let target = match &m.backend {
            Backend::Upstream(u) => u.endpoints.first().cloned(),
            Backend::Builtin(_) => None,
        };
        probes.push(tokio::spawn(async move {
            match target {
                Some(uri) => probe(&uri).await,
                None => "ready",
            }
        }));
    }
    let mut out = Vec::new();
    for (m, probe) in p.config.models.iter().zip(probes) {
        let (kind, backend) = match &m.backend {
            Backend::Upstream(u) => (
                "upstream",
                u.endpoints.first().map(shown).unwrap_or_default(),
            ),
            Backend::Builtin(_) => ("builtin", String::new()),
        };
        out.push(ModelView {
            name: m.name.as_str().to_string(),
            kind,
            backend,
            protocols: m.protocols.iter().map(|p| p.as_str()).collect(),
            require_token: super::require_token::required(m),
            health: probe.await.unwrap_or("unknown"),
            stats: c.shared.metrics.tap.stats(m.name.as_str(), now),
        });
    }
    out
}

/// Scheme and host:port of an endpoint, never user info or path.
fn shown(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

async fn probe(uri: &http::Uri) -> &'static str {
    let Some(host) = uri.host() else {
        return "unknown";
    };
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(PROBE, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => "ready",
        _ => "unreachable",
    }
}
