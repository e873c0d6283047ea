//! Step 6 of the pipeline, `rate-limit` (between authorization and the
//! backend; `docs/llm-limits.md`): for an OpenAI request, the counters its
//! verified identity and model touch are planned from `limits:`
//! ([`modelgate_limit::plan`]), the estimate is reserved all-or-nothing in
//! the counter store (in process, or Redis), and the answer settles it with
//! the upstream's `usage` — read from the JSON body, or from the stream's
//! usage chunk (asked for with `stream_options.include_usage`, and dropped
//! when the client did not ask). Concurrency leases are released however the
//! request ends. Refusals are 429 with `Retry-After` through the one error
//! mapper; answers carry OpenAI's `x-ratelimit-*` headers.

mod claims;
mod request;
mod spend;
mod sse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use http_body_util::BodyExt;
use modelgate_audit::{Metrics, MicroUsd, TokenNote};
use modelgate_config::rate_limits::{LimitSet, RateLimits};
use modelgate_core::{BoxBody, Principal, Reject, full};
use modelgate_limit::plan::{Measure, Outcome, Planned, Usage, Who, plan, settle};
use modelgate_limit::redis::{ERRORS_HELP, RedisStore, StoreMetrics, UP_HELP};
use modelgate_limit::report::UsageRow;
use modelgate_limit::store::{Charge, CounterStore, Reservation, StoreError};
use modelgate_limit::{LocalStore, redis::Guarded};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::finish::Trace;

/// A stream's tokens, filled when its usage chunk passes (for the log).
pub type TokenSlot = Arc<OnceLock<TokenNote>>;

/// Largest non-streamed answer read whole to find its `usage`.
const MAX_ANSWER: usize = 16 << 20;
/// Deadline for reading a non-streamed answer's body.
const ANSWER_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// A configured model name.
    pub gen_ai_request_model: String,
    /// `input` or `output`.
    pub gen_ai_token_type: &'static str,
}

/// Token usage counted by the step, labelled by configured names only.
#[derive(Clone, Default)]
pub struct LimitMetrics {
    pub tokens: Family<TokenLabels, Counter>,
    /// Micro-USD at the configured model prices.
    pub cost: Family<spend::CostLabels, Counter>,
}

/// The step as configured: limits, counter store, metrics. Kept across
/// reloads while `limits.store` is unchanged, so counts carry over.
pub struct Limiter {
    cfg: RateLimits,
    store: Arc<dyn CounterStore>,
    redis: Option<Arc<Guarded<RedisStore>>>,
    metrics: LimitMetrics,
    /// The counter store's metrics: made once, carried across reloads (a
    /// new store updates the series registered at start).
    store_metrics: StoreMetrics,
    /// Limits stored with keys (`keys create --rpm …`), by key name; read
    /// from `auth.api_keys.file` at build and when the key file changes.
    keys_file: Option<PathBuf>,
    key_limits: ArcSwap<HashMap<String, LimitSet>>,
}

impl Limiter {
    /// Builds the step (inside the runtime: Redis batching starts a task).
    pub fn build(
        cfg: &RateLimits,
        keys_file: Option<&Path>,
        previous: Option<&Limiter>,
    ) -> Result<Self, String> {
        let keys_file = keys_file.map(Path::to_path_buf);
        let key_limits = ArcSwap::from_pointee(key_limits(keys_file.as_deref()));
        if let Some(p) = previous
            && p.cfg.store == cfg.store
        {
            return Ok(Self {
                cfg: cfg.clone(),
                store: p.store.clone(),
                redis: p.redis.clone(),
                metrics: p.metrics.clone(),
                store_metrics: p.store_metrics.clone(),
                keys_file,
                key_limits,
            });
        }
        let metrics = previous.map(|p| p.metrics.clone()).unwrap_or_default();
        let store_metrics = previous
            .map(|p| p.store_metrics.clone())
            .unwrap_or_default();
        let (store, redis): (Arc<dyn CounterStore>, _) = match &cfg.store {
            Some(r) => {
                let shared = modelgate_limit::redis::shared(r, store_metrics.clone())
                    .map_err(|e| e.to_string())?;
                let guarded = shared.guarded.clone();
                let store = shared.store.clone();
                tokio::spawn(async move { shared.check().await });
                (store, Some(guarded))
            }
            None => (Arc::new(LocalStore::new()), None),
        };
        Ok(Self {
            cfg: cfg.clone(),
            store,
            redis,
            metrics,
            store_metrics,
            keys_file,
            key_limits,
        })
    }

    /// Each active key's counters in the current windows (the admin usage
    /// endpoint), from this step's store.
    pub async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError> {
        let keys = match &self.keys_file {
            Some(path) => modelgate_authn::keys::KeyFile::read(path)
                .map_err(|e| StoreError(format!("key file: {e}")))?
                .keys
                .into_iter()
                .filter(|k| k.revoked_at.is_none())
                .map(|k| (k.name, k.limits.as_ref().map(key_set)))
                .collect(),
            None => Vec::new(),
        };
        modelgate_limit::report::usage(&self.cfg, &keys, self.store.as_ref(), unix_now()).await
    }

    /// Re-reads the limits stored with keys (the key file changed).
    pub fn reload_key_limits(&self) {
        self.key_limits
            .store(Arc::new(key_limits(self.keys_file.as_deref())));
    }

    /// Registers the step's metrics (once per process).
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "gen_ai_client_token_usage",
            "Tokens used by OpenAI requests (as charged to the limits), by model and token type",
            self.metrics.tokens.clone(),
        );
        metrics.register(
            "llm_cost_micro_usd",
            spend::COST_HELP,
            self.metrics.cost.clone(),
        );
        // Always: a store configured at a later reload updates these series.
        let m = &self.store_metrics;
        metrics.register("limit_store_errors", ERRORS_HELP, m.errors.clone());
        metrics.register("limit_store_up", UP_HELP, m.up.clone());
    }

    pub fn store(&self) -> &Arc<dyn CounterStore> {
        &self.store
    }

    pub fn config(&self) -> &RateLimits {
        &self.cfg
    }

    /// Reserves a request's estimate. `body` is the OpenAI request body; it
    /// is changed to ask a stream for its usage. `Ok(None)`: nothing to
    /// count (no limit applies, or not a JSON body).
    pub async fn reserve(
        self: &Arc<Self>,
        model: &str,
        principal: Option<&Principal>,
        body: &mut Bytes,
        trace: &mut Trace,
    ) -> Result<Option<Held>, Reject> {
        let Some(asked) = request::asked(body, self.cfg.default_max_tokens) else {
            return Ok(None);
        };
        let class = self.cfg.class_claim.as_deref().and_then(|c| {
            principal
                .and_then(|p| p.claims.as_ref())
                .and_then(|claims| claims.get(c))
                .and_then(|v| v.as_str())
        });
        let own = self.key_limits.load();
        let from_claims = claims::from_claims(&self.cfg, principal)?;
        let who = match principal {
            Some(p) => Who {
                key_limits: (p.method == modelgate_core::AuthMethod::ApiKey)
                    .then(|| own.get(&p.name))
                    .flatten(),
                key: (p.method == modelgate_core::AuthMethod::ApiKey).then_some(p.name.as_str()),
                subject: Some(p.subject.as_str()),
                groups: &p.groups,
                namespace: p.namespace.as_deref(),
                class,
                subject_limits: from_claims.as_ref(),
            },
            None => Who::default(),
        };
        let now = unix_now();
        let planned = plan(&self.cfg, &who, model, asked.estimate, now);
        if planned.is_empty() {
            return Ok(None);
        }
        let charges: Vec<Charge> = planned.iter().map(|p| p.charge.clone()).collect();
        let reservation = self
            .store
            .reserve(&charges)
            .await
            .map_err(|_| Reject::Unavailable {
                message: "rate limits cannot be checked right now; retry shortly".into(),
                retry_after_secs: Some(1),
            })?;
        let resets: Vec<u64> = planned
            .iter()
            .enumerate()
            .map(|(i, p)| p.reset_secs_from(now, reservation.reset_ms().get(i).copied()))
            .collect();
        match reservation {
            Reservation::Granted { remaining, .. } => {
                let headers = headers(&planned, &remaining, &resets);
                let strip = asked.stream && !asked.wants_usage;
                if strip && let Some(b) = request::with_usage(body) {
                    *body = b;
                }
                Ok(Some(Held {
                    limiter: self.clone(),
                    planned,
                    model: model.to_string(),
                    strip,
                    headers,
                    settled: false,
                    slot: None,
                }))
            }
            Reservation::Refused {
                first, remaining, ..
            } => {
                trace.limit_headers = Some(headers(&planned, &remaining, &resets));
                let spent = planned.get(first).and_then(|p| {
                    let left = remaining.get(first).copied().unwrap_or(0);
                    spend::refusal(&self.cfg, p, left, now)
                });
                Err(spent.unwrap_or_else(|| refusal(&planned, first, &resets)))
            }
        }
    }
}

/// One key's or model's counter, as `GET /admin/api/usage` reports it.
pub type KeyUsage = UsageRow;

/// A granted reservation, settled exactly once: by the answer, or (dropped
/// before one) by giving the estimate back.
pub struct Held {
    limiter: Arc<Limiter>,
    planned: Vec<Planned>,
    model: String,
    strip: bool,
    headers: HeaderMap,
    settled: bool,
    /// A stream's tokens, for its decision record.
    slot: Option<TokenSlot>,
}

impl Held {
    /// Finishes the step on the backend's answer: adds the `x-ratelimit-*`
    /// headers and settles with the answer's usage (a stream, when it ends).
    pub async fn answer(
        self,
        resp: Response<BoxBody>,
        trace: &mut Trace,
    ) -> Result<Response<BoxBody>, Reject> {
        let (mut parts, body) = resp.into_parts();
        parts.headers.extend(self.headers.clone());
        let sse = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !parts.status.is_success() {
            self.settle(Outcome::Refund);
            return Ok(Response::from_parts(parts, body));
        }
        if sse {
            let slot = TokenSlot::default();
            trace.tokens_later = Some(slot.clone());
            let strip = self.strip;
            let held = self.with_slot(slot);
            let body = sse::UsageStream::new(body, held, strip);
            return Ok(Response::from_parts(parts, body.boxed_unsync()));
        }
        let bytes = match tokio::time::timeout(ANSWER_DEADLINE, read_capped(body)).await {
            Ok(Some(b)) => b,
            _ => {
                self.settle(Outcome::Keep);
                return Err(Reject::UpstreamUnavailable {
                    detail: "the upstream's answer could not be read".into(),
                });
            }
        };
        let used = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| request::usage(&v));
        match used {
            Some(u) => {
                trace.tokens = Some(self.observed(u));
                self.settle(Outcome::Used(u));
            }
            None => self.settle(Outcome::Keep),
        }
        Ok(Response::from_parts(parts, full(bytes)))
    }

    fn with_slot(mut self, slot: TokenSlot) -> Held {
        self.slot = Some(slot);
        self
    }

    /// Records a usage seen (metrics, and a stream's slot), once.
    fn observed(&self, u: Usage) -> TokenNote {
        let w = self.limiter.cfg.cached_input_permille;
        let cost = spend::cost(&self.limiter.cfg, &self.model, &u);
        let note = TokenNote {
            input: u.input(w),
            output: u.completion,
            total: u.total(w),
            cost_usd: cost.map(MicroUsd),
        };
        let label = |t| TokenLabels {
            gen_ai_request_model: self.model.clone(),
            gen_ai_token_type: t,
        };
        let fresh = match &self.slot {
            Some(s) => s.set(note).is_ok(),
            None => true,
        };
        if fresh {
            self.limiter
                .metrics
                .tokens
                .get_or_create(&label("input"))
                .inc_by(note.input);
            self.limiter
                .metrics
                .tokens
                .get_or_create(&label("output"))
                .inc_by(note.output);
            if let Some(c) = cost {
                let model = spend::CostLabels {
                    gen_ai_request_model: self.model.clone(),
                };
                self.limiter.metrics.cost.get_or_create(&model).inc_by(c);
            }
        }
        note
    }

    /// Applies the settlement in the background (never blocks the answer).
    fn settle(mut self, outcome: Outcome) {
        self.settle_once(outcome);
    }

    fn settle_once(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let adjustments = settle(
            &self.planned,
            outcome,
            self.limiter.cfg.cached_input_permille,
        );
        if adjustments.is_empty() {
            return;
        }
        let store = self.limiter.store.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.adjust(&adjustments).await {
                    tracing::warn!(error = %e, "rate-limit settlement failed");
                }
            });
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.settle_once(Outcome::Refund);
    }
}

/// A non-streamed answer's body, whole; `None` if it fails or passes
/// [`MAX_ANSWER`].
async fn read_capped(mut body: BoxBody) -> Option<Bytes> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if buf.len() + data.len() > MAX_ANSWER {
                return None;
            }
            buf.extend_from_slice(&data);
        }
    }
    Some(buf.freeze())
}

/// The `x-ratelimit-*` headers: the tightest request and token counters
/// (`resets[i]`: seconds until counter i resets, from the store for GCRA).
fn headers(planned: &[Planned], remaining: &[u64], resets: &[u64]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (measure, suffix) in [(Measure::Requests, "requests"), (Measure::Tokens, "tokens")] {
        let tightest = planned
            .iter()
            .zip(remaining.iter().copied().chain(std::iter::repeat(u64::MAX)))
            .zip(resets.iter().copied().chain(std::iter::repeat(1)))
            .filter(|((p, _), _)| p.measure == measure)
            .min_by_key(|((p, r), _)| (*r).min(p.charge.limit));
        let Some(((p, r), reset)) = tightest else {
            continue;
        };
        let mut set = |name: String, v: String| {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(v)) {
                h.insert(n, v);
            }
        };
        set(
            format!("x-ratelimit-limit-{suffix}"),
            p.charge.limit.to_string(),
        );
        set(
            format!("x-ratelimit-remaining-{suffix}"),
            r.min(p.charge.limit).to_string(),
        );
        set(format!("x-ratelimit-reset-{suffix}"), format!("{reset}s"));
    }
    spend::headers(planned, remaining, &mut h);
    h
}

/// The 429 for a refused reservation, saying which limit and when to retry.
fn refusal(planned: &[Planned], first: usize, resets: &[u64]) -> Reject {
    let Some(p) = planned.get(first) else {
        return Reject::RateLimited {
            retry_after_secs: 1,
            message: "Rate limit reached.".into(),
        };
    };
    let retry = resets.get(first).copied().unwrap_or(1);
    let message = if p.charge.amount > p.charge.limit {
        format!(
            "This request needs an estimated {} against the limit of {} {} ({}); lower max_tokens or shorten the prompt.",
            p.charge.amount, p.charge.limit, p.what, p.charge.limit
        )
    } else {
        format!(
            "Rate limit reached: {} (limit {}). Retry in {retry}s.",
            p.what, p.charge.limit
        )
    };
    Reject::RateLimited {
        retry_after_secs: retry,
        message,
    }
}

/// Limits stored with the keys of `path`, by key name (revoked keys left
/// out). An unreadable file gives none (the key store reports it).
fn key_limits(path: Option<&Path>) -> HashMap<String, LimitSet> {
    let Some(path) = path else {
        return HashMap::new();
    };
    let Ok(file) = modelgate_authn::keys::KeyFile::read(path) else {
        return HashMap::new();
    };
    file.keys
        .into_iter()
        .filter(|k| k.revoked_at.is_none())
        .filter_map(|k| Some((k.name, key_set(&k.limits?))))
        .collect()
}

/// A key's stored limits as a limit set.
pub fn key_set(l: &modelgate_authn::keys::KeyLimits) -> LimitSet {
    LimitSet {
        rpm: l.rpm,
        tpm: l.tpm,
        tpd: l.tpd,
        max_concurrent: l.max_concurrent,
        budget_daily: l.budget_daily_micro_usd,
        budget_monthly: l.budget_monthly_micro_usd,
        budget_total: l.budget_total_micro_usd,
        ..LimitSet::default()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
