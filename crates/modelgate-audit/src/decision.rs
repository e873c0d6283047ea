//! One request's decision record: what was asked, by whom, what was decided
//! and why, and how long it took. Never a credential.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Whether the request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Authorized (the backend may still have failed: see `status`).
    Allow,
    /// Refused by authentication or authorization.
    Deny,
    /// Refused before any auth decision (bad request, unknown path, overload).
    Reject,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Reject => "reject",
        }
    }
}

/// The record of one request.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    #[serde(serialize_with = "ser_time")]
    pub ts: SystemTime,
    pub request_id: String,
    pub client: SocketAddr,
    pub method: String,
    /// Normalised path (what was authorized); the raw target if it did not normalise.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    /// Identity name (API-key name, token subject); never a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub decision: Outcome,
    /// Authorino-compatible fields.
    pub authorized: bool,
    pub response: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_ms_opt")]
    pub upstream_ms: Option<Duration>,
    #[serde(serialize_with = "ser_ms")]
    pub total_ms: Duration,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

fn ms(d: &Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(d))
}

fn ser_ms_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(ms(d)),
        None => s.serialize_none(),
    }
}

/// Authorino's `response` field: `OK`, `UNAUTHENTICATED`, `PERMISSION_DENIED`, …
pub fn authorino_response(status: u16, outcome: Outcome) -> &'static str {
    match (outcome, status) {
        (Outcome::Allow, _) => "OK",
        (_, 401) => "UNAUTHENTICATED",
        (_, 403) => "PERMISSION_DENIED",
        (_, 404) => "NOT_FOUND",
        (_, 429) => "RESOURCE_EXHAUSTED",
        (_, 400 | 405 | 413) => "INVALID_ARGUMENT",
        _ => "UNAVAILABLE",
    }
}
