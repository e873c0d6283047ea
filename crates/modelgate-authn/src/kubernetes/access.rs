//! Kubernetes SubjectAccessReview (`authorization.k8s.io/v1`), as Authorino's
//! `kubernetesSubjectAccessReview` does: the API server says whether the
//! caller's Kubernetes user (and groups) may perform a verb on a resource —
//! for Open Data Hub's `enable-auth`, `get` on the model's
//! `inferenceservices.serving.kserve.io`. The client settings (API server,
//! CA, gateway token, timeout, cache TTL) are `auth.kubernetes.token_review`'s.
//! Verdicts are cached (bounded, keyed by a digest of user, groups and
//! attributes), identical concurrent reviews make one call, and an API
//! server that cannot answer is [`AccessRefusal::Unavailable`] (fail closed).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Uri};
use modelgate_config::identity::TokenReview;
use modelgate_config::kube_access::KubernetesAccess;
use modelgate_core::{AuthMethod, Principal};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::cache::{BAD_ENTRIES, BAD_TTL, GOOD_ENTRIES, TtlCache};
use crate::fetch::{Fetch, HttpRequest};
use crate::metrics::IdentityMetrics;
use crate::single_flight::SingleFlight;

/// Why a SubjectAccessReview did not allow the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessRefusal {
    /// The API server answered `allowed: false` (or `denied: true`); the
    /// text is the client-facing reason.
    Denied(String),
    /// The identity is not a Kubernetes user (an API key, a certificate).
    NotKubernetes,
    /// The API server could not be asked or gave no usable answer.
    Unavailable,
}

pub const UNAVAILABLE: &str = "Kubernetes SubjectAccessReview is unavailable";
pub const NOT_KUBERNETES: &str =
    "this model needs a Kubernetes identity (a ServiceAccount or TokenReview token)";

impl AccessRefusal {
    /// The short reason the client gets.
    pub fn reason(&self) -> String {
        match self {
            AccessRefusal::Denied(r) => r.clone(),
            AccessRefusal::NotKubernetes => NOT_KUBERNETES.into(),
            AccessRefusal::Unavailable => UNAVAILABLE.into(),
        }
    }
}

type Answer = Result<(), AccessRefusal>;

pub struct AccessReviewer {
    cfg: TokenReview,
    url: Uri,
    fetch: Arc<dyn Fetch>,
    allowed: TtlCache<()>,
    denied: TtlCache<AccessRefusal>,
    flight: SingleFlight<Answer>,
    metrics: IdentityMetrics,
}

impl AccessReviewer {
    pub fn new(
        cfg: TokenReview,
        fetch: Arc<dyn Fetch>,
        metrics: IdentityMetrics,
    ) -> Result<Self, String> {
        let url = format!(
            "{}/apis/authorization.k8s.io/v1/subjectaccessreviews",
            cfg.api_server.to_string().trim_end_matches('/')
        )
        .parse::<Uri>()
        .map_err(|e| e.to_string())?;
        Ok(Self {
            cfg,
            url,
            fetch,
            allowed: TtlCache::new(GOOD_ENTRIES),
            denied: TtlCache::new(BAD_ENTRIES),
            flight: SingleFlight::default(),
            metrics,
        })
    }

    fn count(&self, result: &'static str) {
        self.metrics
            .remote_checks
            .get_or_create(&crate::metrics::CheckLabels {
                source: "subjectaccessreview",
                result,
            })
            .inc();
    }

    /// Whether `who` may access `what`.
    pub async fn review(&self, who: &Principal, what: &KubernetesAccess) -> Answer {
        let Some((user, groups)) = kube_user(who) else {
            return Err(AccessRefusal::NotKubernetes);
        };
        let spec = spec(&user, &groups, what);
        let key: [u8; 32] = Sha256::digest(spec.to_string().as_bytes()).into();
        if self.allowed.get(&key).is_some() {
            self.count("hit");
            return Ok(());
        }
        if let Some(r) = self.denied.get(&key) {
            self.count("hit");
            return Err(r);
        }
        self.flight.run(key, || self.fresh(key, spec)).await
    }

    async fn fresh(&self, key: [u8; 32], spec: Value) -> Answer {
        let status = match self.ask(spec).await {
            Ok(s) => s,
            Err(e) => {
                self.count("error");
                tracing::warn!(api_server = %self.cfg.api_server, error = %e, "SubjectAccessReview failed; refusing the request");
                return Err(AccessRefusal::Unavailable);
            }
        };
        let answer = judge(&status);
        let ttl = self.cfg.cache_ttl;
        match &answer {
            Ok(()) => {
                self.count("allowed");
                self.allowed.insert(key, Instant::now() + ttl, ());
            }
            Err(r) => {
                self.count("denied");
                let ttl = ttl.min(BAD_TTL.max(Duration::from_secs(1)));
                self.denied.insert(key, Instant::now() + ttl, r.clone());
            }
        }
        answer
    }

    async fn ask(&self, spec: Value) -> Result<Value, String> {
        let headers = super::api_server_headers(&self.cfg).await?;
        let body = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        });
        let req = HttpRequest {
            method: Method::POST,
            uri: self.url.clone(),
            headers,
            body: Bytes::from(body.to_string()),
            timeout: self.cfg.timeout,
        };
        let resp = self.fetch.send(req).await?;
        if !matches!(resp.status, 200 | 201) {
            return Err(format!("HTTP status {}", resp.status));
        }
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| format!("not JSON: {e}"))?;
        v.get("status")
            .cloned()
            .ok_or_else(|| "no status in the SubjectAccessReview answer".into())
    }
}

/// The Kubernetes user and groups of a verified identity: a TokenReview
/// username, or the `sub` of a JWT (a ServiceAccount token's
/// `system:serviceaccount:NS:SA`, to which the groups the API server gives
/// ServiceAccounts are added).
pub fn kube_user(p: &Principal) -> Option<(String, Vec<String>)> {
    if !matches!(
        p.method,
        AuthMethod::KubernetesTokenReview | AuthMethod::Jwt
    ) || p.subject.is_empty()
    {
        return None;
    }
    let mut groups = p.groups.clone();
    if let Some(ns) = p
        .subject
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
        .map(|(ns, _)| ns)
    {
        for g in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".to_string(),
        ] {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    Some((p.subject.clone(), groups))
}

/// The `spec` of a SubjectAccessReview.
pub fn spec(user: &str, groups: &[String], what: &KubernetesAccess) -> Value {
    let mut attrs = json!({
        "namespace": what.namespace,
        "verb": what.verb,
        "group": what.group,
        "resource": what.resource,
        "name": what.name,
    });
    if let Some(s) = &what.subresource {
        attrs["subresource"] = json!(s);
    }
    json!({ "user": user, "groups": groups, "resourceAttributes": attrs })
}

/// The answer in a SubjectAccessReview `status`: allowed only with
/// `"allowed": true` (the boolean) and no `"denied": true`.
pub fn judge(status: &Value) -> Answer {
    let allowed = status.get("allowed").and_then(Value::as_bool) == Some(true);
    let denied = status.get("denied").and_then(Value::as_bool) == Some(true);
    if allowed && !denied {
        return Ok(());
    }
    Err(AccessRefusal::Denied(
        "Kubernetes SubjectAccessReview denied access to this model".into(),
    ))
}

#[cfg(test)]
mod tests;
