//! One issuer's key set over time: fetched (directly or by OIDC discovery)
//! from an allowed host only, refreshed on an interval, refetched — at a
//! bounded rate — when a token names an unknown `kid`, kept when the IdP is
//! unreachable, and **never** replaced by a placeholder: with no usable keys
//! every token fails closed (`Jwks remote fetch is failed`, CVE-2026-31837).

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::Uri;
use modelgate_config::identity::{JwksSource, host_allowed};
use modelgate_core::AuthFailure;
use serde_json::Value;
use tokio::time::Instant;

use crate::fetch::{Fetch, HttpRequest};
use crate::jwt::keys::KeySet;
use crate::jwt::status as st;
use crate::metrics::{FetchLabels, IdentityMetrics, ProviderLabels};

/// After a failed fetch with no keys cached, requests fail at once for this
/// long instead of each waiting on the IdP (Envoy refetches after 1 s too).
const COLD_RETRY: Duration = Duration::from_secs(1);

/// A key set as fetched (compared by pointer to tell a newer one).
#[derive(Debug)]
pub struct Loaded {
    pub keys: KeySet,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_ok: bool,
    last_unknown_kid: Option<Instant>,
    failures: u32,
}

/// How a cache fetches; equal settings let a reload keep a warm cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    pub issuer: String,
    pub source: JwksSource,
    pub allowed_hosts: Vec<String>,
    pub timeout: Duration,
    pub refresh_interval: Duration,
    pub unknown_kid_refetch_interval: Duration,
}

pub struct JwksCache {
    settings: JwksSettings,
    fetch: Arc<dyn Fetch>,
    loaded: ArcSwapOption<Loaded>,
    state: tokio::sync::Mutex<FetchState>,
    metrics: IdentityMetrics,
}

fn unavailable() -> AuthFailure {
    AuthFailure::Unavailable(st::JWKS_FETCH_FAILED.into())
}

impl JwksCache {
    /// A cache; an inline JWKS is parsed now (an error names the reason).
    pub fn new(
        settings: JwksSettings,
        fetch: Arc<dyn Fetch>,
        metrics: IdentityMetrics,
    ) -> Result<Arc<Self>, String> {
        let loaded = match &settings.source {
            JwksSource::Inline(text) => {
                let keys = KeySet::parse(text.as_bytes()).map_err(str::to_string)?;
                Some(Arc::new(Loaded { keys }))
            }
            _ => None,
        };
        let me = Arc::new(Self {
            fetch,
            loaded: ArcSwapOption::new(loaded),
            state: tokio::sync::Mutex::new(FetchState::default()),
            metrics,
            settings,
        });
        me.publish_gauges();
        Ok(me)
    }

    pub fn settings(&self) -> &JwksSettings {
        &self.settings
    }

    fn remote(&self) -> bool {
        !matches!(self.settings.source, JwksSource::Inline(_))
    }

    /// The cached keys, fetching them first if there are none yet.
    /// The key set in use now, without fetching.
    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        self.loaded.load_full()
    }

    pub async fn current(&self) -> Result<Arc<Loaded>, AuthFailure> {
        if let Some(l) = self.loaded.load_full() {
            return Ok(l);
        }
        let mut st = self.state.lock().await;
        if let Some(l) = self.loaded.load_full() {
            return Ok(l);
        }
        if !st.last_ok && st.last_attempt.is_some_and(|t| t.elapsed() < COLD_RETRY) {
            return Err(unavailable());
        }
        self.fetch_locked(&mut st, "cold").await;
        self.loaded.load_full().ok_or_else(unavailable)
    }

    /// After a token named a key `seen` lacks: fetch again, at most once per
    /// `unknown_kid_refetch_interval`. Returns a newer set if there is one.
    pub async fn refetch_for_unknown_kid(&self, seen: &Arc<Loaded>) -> Option<Arc<Loaded>> {
        if !self.remote() {
            return None;
        }
        let mut st = self.state.lock().await;
        if let Some(l) = self.loaded.load_full()
            && !Arc::ptr_eq(&l, seen)
        {
            return Some(l);
        }
        if st
            .last_unknown_kid
            .is_some_and(|t| t.elapsed() < self.settings.unknown_kid_refetch_interval)
        {
            return None;
        }
        st.last_unknown_kid = Some(Instant::now());
        self.fetch_locked(&mut st, "unknown_kid").await;
        self.loaded.load_full().filter(|l| l.keys != seen.keys)
    }

    /// A scheduled refresh. On failure the cached keys stay in use.
    pub async fn refresh(&self) -> bool {
        if !self.remote() {
            return true;
        }
        let mut st = self.state.lock().await;
        self.fetch_locked(&mut st, "refresh").await
    }

    async fn fetch_locked(&self, st: &mut FetchState, reason: &'static str) -> bool {
        st.last_attempt = Some(Instant::now());
        let provider = self.settings.issuer.clone();
        let result = self.download().await;
        let ok = result.is_ok();
        self.metrics
            .jwks_fetches
            .get_or_create(&FetchLabels {
                provider: provider.clone(),
                result: if ok { "ok" } else { "error" },
                reason,
            })
            .inc();
        match result {
            Ok(keys) => {
                tracing::debug!(provider, keys = keys.len(), reason, "JWKS fetched");
                self.loaded.store(Some(Arc::new(Loaded { keys })));
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.metrics
                    .jwks_last_success
                    .get_or_create(&ProviderLabels { provider })
                    .set(i64::try_from(now).unwrap_or(i64::MAX));
                st.failures = 0;
                st.last_ok = true;
            }
            Err(e) => {
                let cached = self.loaded.load().as_ref().map_or(0, |l| l.keys.len());
                tracing::warn!(provider, error = %e, reason, cached_keys = cached, "JWKS fetch failed; {}", if cached > 0 { "keeping the cached keys" } else { "no keys: tokens from this issuer are refused" });
                st.failures = st.failures.saturating_add(1);
                st.last_ok = false;
            }
        }
        self.publish_gauges();
        ok
    }

    fn publish_gauges(&self) {
        let n = self.loaded.load().as_ref().map_or(0, |l| l.keys.len());
        self.metrics
            .jwks_keys
            .get_or_create(&ProviderLabels {
                provider: self.settings.issuer.clone(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn check_host(&self, uri: &Uri) -> Result<(), String> {
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(format!("{uri}: only http and https are fetched"));
        }
        if !host_allowed(&self.settings.allowed_hosts, uri) {
            return Err(format!("{uri}: host is not in auth.jwks.allowed_hosts"));
        }
        Ok(())
    }

    async fn get(&self, uri: Uri) -> Result<bytes::Bytes, String> {
        self.check_host(&uri)?;
        let resp = self
            .fetch
            .send(HttpRequest::get(uri.clone(), self.settings.timeout))
            .await?;
        if resp.status != 200 {
            return Err(format!("{uri}: HTTP status {}", resp.status));
        }
        Ok(resp.body)
    }

    async fn download(&self) -> Result<KeySet, String> {
        let uri = match &self.settings.source {
            JwksSource::Inline(_) => return Err("inline key sets are not fetched".into()),
            JwksSource::Uri(u) => u.clone(),
            JwksSource::Discovery(d) => {
                let doc = self.get(d.clone()).await?;
                parse_discovery(&doc, &self.settings.issuer).map_err(|e| format!("{d}: {e}"))?
            }
        };
        let body = self.get(uri.clone()).await?;
        KeySet::parse(&body).map_err(|e| format!("{uri}: {e}"))
    }

    /// Starts the refresh loop: a first fetch now, then every
    /// `refresh_interval`; after failures, retries at 1 s doubling up to the
    /// interval. The loop ends once the cache is dropped (a reload replaced it).
    pub fn spawn_refresh(self: &Arc<Self>) {
        if !self.remote() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        handle.spawn(async move {
            let mut delay = Duration::ZERO;
            loop {
                tokio::time::sleep(delay).await;
                let Some(me) = weak.upgrade() else { return };
                let ok = me.refresh().await;
                let interval = me.settings.refresh_interval;
                delay = if ok {
                    interval
                } else {
                    let failures = me.state.lock().await.failures;
                    Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)).min(interval)
                };
            }
        });
    }
}

/// The `jwks_uri` of an OIDC discovery document, which must name `issuer`
/// (a trailing `/` aside). The error says what is wrong, never echoing more
/// than the document's issuer (debug-quoted).
pub fn parse_discovery(doc: &[u8], issuer: &str) -> Result<Uri, String> {
    let doc: Value = serde_json::from_slice(doc).map_err(|e| format!("not JSON: {e}"))?;
    let named = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if named.trim_end_matches('/') != issuer.trim_end_matches('/') {
        let shown: String = named.chars().take(200).collect();
        return Err(format!("discovery names issuer {shown:?}, not {issuer:?}"));
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| "no jwks_uri".to_string())?;
    let uri = jwks_uri
        .parse::<Uri>()
        .map_err(|e| format!("jwks_uri is not a URI: {e}"))?;
    if uri.host().is_none() {
        return Err("jwks_uri has no host".into());
    }
    Ok(uri)
}

#[cfg(test)]
mod tests;
