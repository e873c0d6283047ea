//! The external CUSTOM step: when a CUSTOM policy naming an
//! `extension_providers` entry matched, authorization (which does no I/O)
//! says so in the ruling and the decision function asks that authorizer
//! here — Envoy's ext_authz client, HTTP ([`http`]) or gRPC ([`grpc`]),
//! under the provider's `timeout`, with a cap on checks in flight and
//! pooled connections. Allow: the verdict stands and the
//! `headersToUpstreamOnAllow` go upstream. Deny: the authorizer's status,
//! body and allowed headers go to the client. Error or timeout: fail closed
//! with `statusOnError` (403) unless `failOpen`. Every caller of the
//! decision function (serve, check, ext_authz, forward-auth) runs it.

mod grpc;
mod http;

use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use modelgate_authz::{Basis, ExternalOutcome, Ruling, Verdict};
use modelgate_config::providers::{ExtensionProvider, ProviderKind};
use modelgate_core::{ExternalDenial, Reject, RequestFacts};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Semaphore;

use super::{BodyModel, CheckBody, Decider};

/// Checks one provider may have in flight; more wait (within the check's
/// deadline) for a slot.
const MAX_IN_FLIGHT: usize = 256;

/// Largest authorizer response body read (a deny's body, a CheckResponse).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The configured external authorizers, with their connection pools.
#[derive(Default)]
pub struct Providers {
    list: Vec<Arc<Provider>>,
    /// `external_authz_checks`, shared by every pipeline of the process.
    checks: Family<CheckLabels, Counter>,
}

/// Labels of `external_authz_checks`: a configured provider name and one of
/// five outcomes (never request data).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    provider: String,
    outcome: &'static str,
}

struct Provider {
    config: ExtensionProvider,
    slots: Semaphore,
    client: HttpClient,
}

impl Providers {
    /// Clients for `extension_providers` (no connection is made yet).
    pub fn build(configs: &[ExtensionProvider]) -> Arc<Self> {
        Self::build_after(configs, None)
    }

    /// As [`Providers::build`], keeping `previous`'s client (its pooled
    /// connections and its in-flight cap) for every provider whose settings
    /// did not change, so a reload neither drops connections nor doubles
    /// the cap.
    pub fn build_after(configs: &[ExtensionProvider], previous: Option<&Self>) -> Arc<Self> {
        let list = configs
            .iter()
            .map(|c| {
                if let Some(p) = previous.and_then(|p| p.list.iter().find(|p| &p.config == c)) {
                    return p.clone();
                }
                let mut conn = HttpConnector::new();
                conn.set_connect_timeout(Some(c.timeout.min(Duration::from_secs(5))));
                conn.set_nodelay(true);
                let mut b = Client::builder(TokioExecutor::new());
                b.pool_idle_timeout(Duration::from_secs(60))
                    .pool_max_idle_per_host(32);
                if c.kind == ProviderKind::Grpc {
                    b.http2_only(true);
                }
                Arc::new(Provider {
                    config: c.clone(),
                    slots: Semaphore::new(MAX_IN_FLIGHT),
                    client: b.build(conn),
                })
            })
            .collect();
        let checks = previous.map(|p| p.checks.clone()).unwrap_or_default();
        Arc::new(Self { list, checks })
    }

    /// The `external_authz_checks` counter family, to register once.
    pub fn checks(&self) -> Family<CheckLabels, Counter> {
        self.checks.clone()
    }

    fn get(&self, name: &str) -> Option<&Provider> {
        self.list
            .iter()
            .find(|p| p.config.name == name)
            .map(|p| &**p)
    }
}

/// What an authorizer answered.
enum Answer {
    /// Allowed, with the headers to add upstream.
    Allow(Vec<(HeaderName, HeaderValue)>),
    Deny(ExternalDenial),
}

impl Provider {
    /// One check under the provider's deadline; `Err` is for logs only.
    /// `tls`: the request arrived over TLS (the gRPC check's `scheme`).
    async fn check(
        &self,
        facts: &RequestFacts,
        tls: bool,
        body: Option<&CheckBody>,
    ) -> Result<Answer, String> {
        let run = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| "provider closed".to_string())?;
            match &self.config.kind {
                ProviderKind::Http(h) => {
                    http::check(&self.client, &self.config, h, facts, body).await
                }
                ProviderKind::Grpc => {
                    grpc::check(&self.client, &self.config, facts, tls, body).await
                }
            }
        };
        match tokio::time::timeout(self.config.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
        }
    }
}

impl Decider<'_> {
    /// Asks the external authorizer the ruling names, if any, and folds its
    /// answer into the ruling. `Ok`: the headers to add upstream.
    pub(super) async fn external_check<B: BodyModel>(
        &self,
        facts: &RequestFacts,
        tls: bool,
        body: &mut B,
        ruling: &mut Ruling,
        why: Option<&mut Vec<String>>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, Reject> {
        let Some(ext) = ruling.external.as_mut() else {
            return Ok(Vec::new());
        };
        let Some(p) = self.providers.get(&ext.provider) else {
            // Validation makes this impossible; refuse rather than skip.
            ext.outcome = ExternalOutcome::Failed { fail_open: false };
            return Err(Reject::Internal {
                detail: format!("extension provider {} is not configured", ext.provider),
            });
        };
        // includeRequestBodyInCheck: the body is buffered first (bounded by
        // the listener's body deadline); over the limit is a 413 even with
        // failOpen, as Envoy does.
        let sent = match p.config.body {
            Some(b) => {
                match Box::pin(body.for_check(u64::from(b.max_bytes), b.allow_partial)).await {
                    Ok(sent) => sent,
                    Err(r) => {
                        ruling.verdict = Verdict::Forbidden {
                            basis: Basis::Policy,
                            policy: Some(ext.policy.clone()),
                            message: format!(
                                "request body not sent to external authorizer {}: {}",
                                ext.provider,
                                r.client_message()
                            ),
                        };
                        return Err(r);
                    }
                }
            }
            None => None,
        };
        // Boxed, as every remote step: only requests that reach an external
        // authorizer carry its client's future.
        let answer = Box::pin(p.check(facts, tls, sent.as_ref())).await;
        let (outcome, result, line) = match answer {
            Ok(Answer::Allow(h)) => {
                let line = format!("allowed ({} header(s) to upstream)", h.len());
                (ExternalOutcome::Allowed, Ok(h), line)
            }
            Ok(Answer::Deny(d)) => {
                let line = format!("denied with {}", d.status);
                (ExternalOutcome::Denied(d.status.as_u16()), Err(d), line)
            }
            Err(e) if p.config.fail_open => (
                ExternalOutcome::Failed { fail_open: true },
                Ok(Vec::new()),
                format!("error ({e}): failOpen → continue"),
            ),
            Err(e) => (
                ExternalOutcome::Failed { fail_open: false },
                Err(ExternalDenial {
                    status: p.config.status_on_error,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                }),
                format!("error ({e}) → {} (fail closed)", p.config.status_on_error),
            ),
        };
        ext.outcome = outcome;
        self.providers
            .checks
            .get_or_create(&CheckLabels {
                provider: ext.provider.clone(),
                outcome: outcome.as_str(),
            })
            .inc();
        if let Some(why) = why {
            why.push(format!(
                "CUSTOM {} external provider {}: {line}",
                ext.policy.name, ext.provider
            ));
        }
        tracing::debug!(target: "modelgate_authz", provider = %ext.provider, outcome = outcome.as_str(), "external authorizer");
        result.map_err(|denial| {
            ruling.verdict = Verdict::Forbidden {
                basis: Basis::Policy,
                policy: Some(ext.policy.clone()),
                message: format!("denied by external authorizer {}", ext.provider),
            };
            Reject::External(Box::new(denial))
        })
    }
}
