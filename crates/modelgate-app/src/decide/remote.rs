//! Remote authorization steps, run by the decision function after the pure
//! verdict allowed the request: the verdict is "allowed, subject to these
//! checks" and their answers are folded into the final [`Decision`]. Today:
//! the model's Kubernetes SubjectAccessReview (`models[].kubernetes_access`).
//! Every caller of the decision function (serve, check, ext_authz,
//! forward-auth) performs them. They fail closed: an API server that cannot
//! answer is a 403 with the reason `Kubernetes SubjectAccessReview is
//! unavailable`, as Authorino answers.

use std::collections::HashMap;

use modelgate_config::Model;
use modelgate_config::kube_access::KubernetesAccess;
use modelgate_core::{ModelName, Reject};
use modelgate_route::RouteMatch;

use super::{Decider, Identity};

/// The models with remote checks (`kubernetes_access`), by name, to their
/// place in the configured models: one hash lookup per request, none when
/// no model has them (not a scan of every configured model).
#[derive(Default)]
pub struct RemoteModels(HashMap<ModelName, usize>);

impl RemoteModels {
    pub fn build(models: &[Model]) -> Self {
        Self(
            models
                .iter()
                .enumerate()
                .filter(|(_, m)| m.kubernetes_access.is_some())
                .map(|(i, m)| (m.name.clone(), i))
                .collect(),
        )
    }
}

impl Decider<'_> {
    /// The remote checks the route's model asks for, if any.
    pub(super) fn remote_access(&self, route: &RouteMatch) -> Option<&KubernetesAccess> {
        if self.remote.0.is_empty() {
            return None;
        }
        let name = route.model.known()?;
        let i = *self.remote.0.get(name)?;
        self.models.get(i)?.kubernetes_access.as_ref()
    }

    /// Runs the remote checks the route's model asks for
    /// ([`Decider::remote_access`]).
    pub(super) async fn remote_checks(
        &self,
        access: &KubernetesAccess,
        identity: &Identity,
        why: Option<&mut Vec<String>>,
    ) -> Result<(), Reject> {
        let answer = match identity {
            Identity::NotNeeded => return Ok(()),
            Identity::Verified(_) | Identity::Assumed(_) => match identity.principal() {
                Some(p) => self.authn.access_review(p, access).await,
                None => Err(modelgate_authn::AccessRefusal::NotKubernetes),
            },
            _ => Err(modelgate_authn::AccessRefusal::NotKubernetes),
        };
        if let Some(why) = why {
            why.push(format!(
                "SubjectAccessReview {} {}.{} {}/{}: {}",
                access.verb,
                access.resource,
                access.group,
                access.namespace,
                access.name,
                match &answer {
                    Ok(()) => "allowed".to_string(),
                    Err(r) => format!("refused ({})", r.reason()),
                }
            ));
        }
        answer.map_err(|r| Reject::Forbidden(r.reason()))
    }
}
