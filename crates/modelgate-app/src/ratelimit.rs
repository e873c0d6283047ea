//! Step 6 of the pipeline, `rate-limit` (between authorization and the
//! backend; `docs/llm-limits.md`): for an OpenAI request, the counters its
//! verified identity and model touch are planned from `limits:`
//! ([`modelgate_limit::plan`]), the estimate is reserved all-or-nothing in
//! the counter store (in process, or Redis), and the answer settles it with
//! the upstream's `usage` — read from the JSON body, or from the stream's
//! usage chunk (asked for with `stream_options.include_usage`, and dropped
//! when the client did not ask). Concurrency leases are released however the
//! request ends. With `limits.on_overrun: cut` a stream is ended once it
//! would pass its reservation's headroom ([`overrun`]). KServe V1 / Open
//! Inference V2 requests (REST and gRPC) count requests and concurrency only.
//! Refusals are 429 with `Retry-After` through the one error mapper (in each
//! protocol's shape); answers carry OpenAI's `x-ratelimit-*` headers.

mod claims;
mod held;
mod hold;
mod overrun;
mod reply;
pub(crate) mod request;
mod spend;
mod sse;

pub use held::Held;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use modelgate_audit::{Metrics, TokenNote};
use modelgate_config::rate_limits::{LimitSet, OnOverrun, RateLimits};
use modelgate_core::{Principal, Reject};
use modelgate_limit::plan::{Estimate, Measure, Planned, Who, plan};
use modelgate_limit::redis::{ERRORS_HELP, RedisStore, StoreMetrics, UP_HELP};
use modelgate_limit::report::UsageRow;
use modelgate_limit::store::{Charge, CounterStore, Reservation, StoreError};
use modelgate_limit::{LocalStore, redis::Guarded};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::finish::Trace;
use crate::openai_body::OpenAiBody;
use overrun::Watch;

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

    /// Reserves an OpenAI request's estimate. `body` is parsed once (shared
    /// with the alias step) and changed to ask a stream for its usage.
    /// `Ok(None)`: no limit applies. A body that cannot be counted (not one
    /// JSON object) is refused with 400 when token limits or budgets apply
    /// (fail closed: it never counts as 0 tokens).
    pub async fn reserve(
        self: &Arc<Self>,
        model: &str,
        principal: Option<&Principal>,
        body: &mut OpenAiBody,
        trace: &mut Trace,
    ) -> Result<Option<Held>, Reject> {
        let (asked, unreadable) = match body.json() {
            Ok(o) => (request::asked(o, self.cfg.default_max_tokens), None),
            Err(problem) => (request::Asked::default(), Some(problem)),
        };
        let now = unix_now();
        let planned = self.planned(model, principal, asked.estimate, now)?;
        if planned.is_empty() {
            return Ok(None);
        }
        if let Some(problem) = unreadable
            && planned.iter().any(counts_usage)
        {
            return Err(Reject::BadRequest(format!(
                "{problem}; token limits or budgets apply to this request, and they are counted from its JSON object"
            )));
        }
        let (remaining, resets) = self.take(&planned, now, trace).await?;
        let mut strip = asked.stream && !asked.wants_usage;
        if strip {
            strip = body.edit().is_ok_and(request::ask_usage);
        }
        let watch = (self.cfg.on_overrun == OnOverrun::Cut && asked.stream)
            .then(|| {
                Watch::new(
                    &planned,
                    &remaining,
                    asked.estimate.input,
                    self.cfg.cached_input_permille,
                )
            })
            .flatten();
        let mut held = Held::new(self.clone(), planned, model, &remaining, &resets);
        held.strip = strip;
        held.watch = watch;
        Ok(Some(held))
    }

    /// Reserves a KServe V1 / Open Inference V2 (REST or gRPC) request:
    /// only its request counters (`rps`, `rpm`) and concurrency lease; token
    /// limits and budgets are OpenAI's. The lease is held until the answer's
    /// body ends.
    pub async fn reserve_requests(
        self: &Arc<Self>,
        model: &str,
        principal: Option<&Principal>,
        trace: &mut Trace,
    ) -> Result<Option<Held>, Reject> {
        let now = unix_now();
        let none = Estimate {
            input: 0,
            output: 0,
        };
        let mut planned = self.planned(model, principal, none, now)?;
        planned.retain(|p| !counts_usage(p));
        if planned.is_empty() {
            return Ok(None);
        }
        let (remaining, resets) = self.take(&planned, now, trace).await?;
        let mut held = Held::new(self.clone(), planned, model, &remaining, &resets);
        held.requests_only = true;
        Ok(Some(held))
    }

    /// The counters the identity and model touch (no I/O).
    fn planned(
        &self,
        model: &str,
        principal: Option<&Principal>,
        estimate: Estimate,
        now: u64,
    ) -> Result<Vec<Planned>, Reject> {
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
        Ok(plan(&self.cfg, &who, model, estimate, now))
    }

    /// Reserves `planned` all-or-nothing: each counter's headroom after it,
    /// or the refusal (429, or the budget's status) naming the limit.
    async fn take(
        &self,
        planned: &[Planned],
        now: u64,
        trace: &mut Trace,
    ) -> Result<(Vec<u64>, Vec<u64>), Reject> {
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
            Reservation::Granted { remaining, .. } => Ok((remaining, resets)),
            Reservation::Refused {
                first, remaining, ..
            } => {
                trace.limit_headers = Some(reply::headers(planned, &remaining, &resets));
                let spent = planned.get(first).and_then(|p| {
                    let left = remaining.get(first).copied().unwrap_or(0);
                    spend::refusal(&self.cfg, p, left, now)
                });
                Err(spent.unwrap_or_else(|| reply::refusal(planned, first, &resets)))
            }
        }
    }
}

/// Whether a counter is charged by usage (tokens, money), not per request.
fn counts_usage(p: &Planned) -> bool {
    !matches!(p.measure, Measure::Requests | Measure::Concurrent)
}

/// One key's or model's counter, as `GET /admin/api/usage` reports it.
pub type KeyUsage = UsageRow;

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
