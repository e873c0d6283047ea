//! Every way a request can be refused, typed where it happens. The response a
//! client gets is decided in one place, [`crate::respond`].

/// Why authentication failed. The client-facing text is deliberately coarse:
/// a wrong, revoked or expired API key all read the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential in any configured location.
    CredentialNotFound,
    /// An API key that is not valid (unknown, revoked or expired — not told which).
    InvalidApiKey,
    /// A genuine API key (its secret matched) that is revoked or expired:
    /// the client reads the same as [`AuthFailure::InvalidApiKey`]; the
    /// decision record names the key (never its secret), so a denial of a
    /// revoked key can be found by identity.
    InactiveApiKey(String),
    /// A token that failed verification; the text is Envoy's status string
    /// (`Jwt is expired`, `Jwt verification fails`, …) so runbooks keep working.
    InvalidToken(String),
    /// The token's audience is not accepted (Envoy answers this with 403).
    AudienceNotAllowed,
    /// The identity source could not decide (IdP unreachable, no usable keys):
    /// we fail closed with a 401 and this Envoy-style text.
    Unavailable(String),
}

impl AuthFailure {
    /// Short reason for the client and the `x-ext-auth-reason` header.
    pub fn reason(&self) -> &str {
        match self {
            AuthFailure::CredentialNotFound => "credential not found",
            AuthFailure::InvalidApiKey | AuthFailure::InactiveApiKey(_) => {
                "the API Key provided is invalid"
            }
            AuthFailure::InvalidToken(msg) | AuthFailure::Unavailable(msg) => msg,
            AuthFailure::AudienceNotAllowed => "Audiences in Jwt are not allowed",
        }
    }

    /// Stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AuthFailure::CredentialNotFound => "credential_not_found",
            AuthFailure::InvalidApiKey | AuthFailure::InactiveApiKey(_) => "invalid_api_key",
            AuthFailure::InvalidToken(_) => "invalid_token",
            AuthFailure::AudienceNotAllowed => "audience_not_allowed",
            AuthFailure::Unavailable(_) => "identity_unavailable",
        }
    }
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// Malformed request (bad path encoding, bad JSON, mismatched model names).
    BadRequest(String),
    /// No route for this path (never forwarded), or an unknown model.
    NotFound(String),
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// 401: no credential, or one that does not verify.
    Unauthenticated(AuthFailure),
    /// 403: authenticated but not permitted. The message is client-facing.
    Forbidden(String),
    /// 501: the operation exists in the protocol but this backend does not
    /// implement it (KServe answers `:explain` without an explainer so).
    NotImplemented(String),
    /// 408: the request body did not arrive within its deadline.
    RequestTimeout,
    /// 413: request body over the configured limit.
    PayloadTooLarge { limit: u64 },
    /// 429: over a rate limit or quota. The message says which limit (from
    /// configured words only) and when to retry.
    RateLimited {
        retry_after_secs: u64,
        message: String,
    },
    /// 429 (or 402, `limits.budget_exceeded_status`): a spend budget is
    /// used up. The message names the budget; a total budget has no retry.
    BudgetExceeded {
        message: String,
        retry_after_secs: Option<u64>,
        payment_required: bool,
    },
    /// 503: the built-in runtime is saturated or the model is not ready.
    Unavailable {
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// 502: the upstream could not be reached or broke the exchange.
    /// The detail is for logs only.
    UpstreamUnavailable { detail: String },
    /// 504: the upstream did not answer in time.
    UpstreamTimeout,
    /// 500: a bug or an impossible state; the detail is for logs only.
    Internal { detail: String },
    /// An external authorizer (a CUSTOM policy's provider) refused: its
    /// status, body and allowed headers go to the client as it sent them.
    External(Box<ExternalDenial>),
}

/// The response an external authorizer refused with (Envoy passes it on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalDenial {
    pub status: http::StatusCode,
    /// Only the headers `headersToDownstreamOnDeny` lets through.
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reject {
    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Reject::BadRequest(_) => S::BAD_REQUEST,
            Reject::NotFound(_) => S::NOT_FOUND,
            Reject::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            Reject::Unauthenticated(AuthFailure::AudienceNotAllowed) => S::FORBIDDEN,
            Reject::Unauthenticated(_) => S::UNAUTHORIZED,
            Reject::Forbidden(_) => S::FORBIDDEN,
            Reject::NotImplemented(_) => S::NOT_IMPLEMENTED,
            Reject::RequestTimeout => S::REQUEST_TIMEOUT,
            Reject::PayloadTooLarge { .. } => S::PAYLOAD_TOO_LARGE,
            Reject::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            Reject::BudgetExceeded {
                payment_required: true,
                ..
            } => S::PAYMENT_REQUIRED,
            Reject::BudgetExceeded { .. } => S::TOO_MANY_REQUESTS,
            Reject::Unavailable { .. } => S::SERVICE_UNAVAILABLE,
            Reject::UpstreamUnavailable { .. } => S::BAD_GATEWAY,
            Reject::UpstreamTimeout => S::GATEWAY_TIMEOUT,
            Reject::Internal { .. } => S::INTERNAL_SERVER_ERROR,
            Reject::External(d) => d.status,
        }
    }

    /// The short message a client sees.
    pub fn client_message(&self) -> String {
        match self {
            Reject::BadRequest(m)
            | Reject::NotFound(m)
            | Reject::Forbidden(m)
            | Reject::NotImplemented(m) => m.clone(),
            Reject::MethodNotAllowed => "method not allowed".into(),
            Reject::Unauthenticated(f) => f.reason().to_string(),
            Reject::RequestTimeout => "the request body was not received in time".into(),
            Reject::PayloadTooLarge { limit } => {
                format!("request body is larger than the limit of {limit} bytes")
            }
            Reject::RateLimited { message, .. } | Reject::BudgetExceeded { message, .. } => {
                message.clone()
            }
            Reject::Unavailable { message, .. } => message.clone(),
            Reject::UpstreamUnavailable { .. } => "upstream unavailable".into(),
            Reject::UpstreamTimeout => "upstream request timeout".into(),
            Reject::Internal { .. } => "internal error".into(),
            Reject::External(_) => "denied by the external authorizer".into(),
        }
    }

    /// What goes in the decision log's `reason` field: more detail than the
    /// client gets, never a secret.
    pub fn log_reason(&self) -> String {
        match self {
            Reject::UpstreamUnavailable { detail } | Reject::Internal { detail } => detail.clone(),
            Reject::External(d) => format!("the external authorizer refused with {}", d.status),
            other => other.client_message(),
        }
    }

    /// Stable label for metrics and the decision log.
    pub fn label(&self) -> &'static str {
        match self {
            Reject::BadRequest(_) => "bad_request",
            Reject::NotFound(_) => "not_found",
            Reject::MethodNotAllowed => "method_not_allowed",
            Reject::Unauthenticated(f) => f.label(),
            Reject::Forbidden(_) => "forbidden",
            Reject::NotImplemented(_) => "not_implemented",
            Reject::RequestTimeout => "request_timeout",
            Reject::PayloadTooLarge { .. } => "payload_too_large",
            Reject::RateLimited { .. } => "rate_limited",
            Reject::BudgetExceeded { .. } => "budget_exceeded",
            Reject::Unavailable { .. } => "unavailable",
            Reject::UpstreamUnavailable { .. } => "upstream_unavailable",
            Reject::UpstreamTimeout => "upstream_timeout",
            Reject::Internal { .. } => "internal",
            Reject::External(_) => "external_denied",
        }
    }

    /// The gRPC status code for this rejection.
    pub fn grpc_code(&self) -> u8 {
        match self {
            Reject::BadRequest(_) => 3, // INVALID_ARGUMENT
            Reject::NotFound(_) => 5,   // NOT_FOUND
            Reject::MethodNotAllowed | Reject::NotImplemented(_) => 12, // UNIMPLEMENTED
            Reject::Unauthenticated(AuthFailure::AudienceNotAllowed) => 7,
            Reject::Unauthenticated(_) => 16, // UNAUTHENTICATED
            Reject::Forbidden(_) => 7,        // PERMISSION_DENIED
            Reject::PayloadTooLarge { .. }
            | Reject::RateLimited { .. }
            | Reject::BudgetExceeded { .. } => 8, // RESOURCE_EXHAUSTED
            Reject::Unavailable { .. } | Reject::UpstreamUnavailable { .. } => 14, // UNAVAILABLE
            Reject::UpstreamTimeout | Reject::RequestTimeout => 4, // DEADLINE_EXCEEDED
            Reject::Internal { .. } => 13,    // INTERNAL
            Reject::External(d) => match d.status.as_u16() {
                401 => 16,
                429 => 8,
                502..=504 => 14,
                _ => 7,
            },
        }
    }
}
