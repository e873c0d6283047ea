//! What an authorization decision says: the verdict, the rule that made it
//! (`basis` and `policy`), and the policies that only watched (dry-run,
//! AUDIT). The decision log and `modelgate check` print these.

use modelgate_config::policy::Action;
use modelgate_core::{AuthFailure, Reject};

/// Which kind of rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// A public path or operation: no credential needed.
    Public,
    /// The credential's grants (cover the model, or do not).
    Grant,
    /// A policy (an ALLOW that matched, a DENY or CUSTOM that matched, or
    /// ALLOW policies that applied and none matched).
    Policy,
    /// Any authenticated identity may perform a server-level operation.
    ServerOperation,
    /// modelgate's fail-closed default (anonymous request, no ALLOW policy).
    Default,
    /// The model's Kubernetes SubjectAccessReview refused (after the
    /// policies allowed): `models[].kubernetes_access`.
    AccessReview,
    /// The admin API and UI: the identity holds (or lacks) the admin role.
    AdminRole,
}

impl Basis {
    pub const fn as_str(self) -> &'static str {
        match self {
            Basis::Public => "public",
            Basis::Grant => "grant",
            Basis::Policy => "policy",
            Basis::ServerOperation => "server_operation",
            Basis::Default => "default",
            Basis::AccessReview => "access_review",
            Basis::AdminRole => "admin_role",
        }
    }
}

/// A policy, named for the decision log. The name is shared with the
/// compiled policy (a reference count, not a copy, per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRef {
    pub name: std::sync::Arc<str>,
    pub action: Action,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow {
        basis: Basis,
        policy: Option<PolicyRef>,
    },
    /// 401: a credential is needed (anonymous request not allowed).
    NeedCredential {
        basis: Basis,
        policy: Option<PolicyRef>,
    },
    /// 403 with this client message.
    Forbidden {
        basis: Basis,
        policy: Option<PolicyRef>,
        message: String,
    },
    /// 404 with this client message (a model not configured here).
    NotFound(String),
}

impl Verdict {
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }

    /// The kind of rule that decided (`None` for an unknown model).
    pub fn basis(&self) -> Option<Basis> {
        match self {
            Verdict::Allow { basis, .. }
            | Verdict::NeedCredential { basis, .. }
            | Verdict::Forbidden { basis, .. } => Some(*basis),
            Verdict::NotFound(_) => None,
        }
    }

    /// The policy that decided, if one did.
    pub fn policy(&self) -> Option<&PolicyRef> {
        match self {
            Verdict::Allow { policy, .. }
            | Verdict::NeedCredential { policy, .. }
            | Verdict::Forbidden { policy, .. } => policy.as_ref(),
            Verdict::NotFound(_) => None,
        }
    }

    /// The refusal the client gets; `None` for an allow.
    pub fn reject(&self) -> Option<Reject> {
        match self {
            Verdict::Allow { .. } => None,
            Verdict::NeedCredential { .. } => {
                Some(Reject::Unauthenticated(AuthFailure::CredentialNotFound))
            }
            Verdict::Forbidden { message, .. } => Some(Reject::Forbidden(message.clone())),
            Verdict::NotFound(m) => Some(Reject::NotFound(m.clone())),
        }
    }
}

/// What a dry-run policy would have done had it been enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    pub policy: PolicyRef,
    /// `deny`, `allow`, `not_allow` (an ALLOW that applies but does not
    /// match) or `need_credential` (a CUSTOM on an anonymous request).
    pub would: &'static str,
}

/// A verdict with the policies that watched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    pub verdict: Verdict,
    /// Dry-run policies that applied, and what each would have done.
    pub dry_run: Vec<DryRun>,
    /// AUDIT policies that matched (recorded only).
    pub audit: Vec<PolicyRef>,
    /// A CUSTOM policy with an external provider matched: the verdict holds
    /// only if that authorizer allows (the decision function asks it).
    pub external: Option<ExternalCheck>,
}

/// The external check a CUSTOM policy asks for, and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalCheck {
    pub policy: PolicyRef,
    /// The `extension_providers[].name` to ask.
    pub provider: String,
    pub outcome: ExternalOutcome,
}

/// What the external authorizer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalOutcome {
    /// Not asked yet (authorization itself does no I/O).
    Pending,
    Allowed,
    /// Refused, with this HTTP status.
    Denied(u16),
    /// Unreachable, timed out or unintelligible; `fail_open` says whether the
    /// request went on.
    Failed {
        fail_open: bool,
    },
}

impl ExternalOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Allowed => "allowed",
            Self::Denied(_) => "denied",
            Self::Failed { fail_open: true } => "error_fail_open",
            Self::Failed { fail_open: false } => "error",
        }
    }
}
