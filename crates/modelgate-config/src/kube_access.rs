//! `models[].kubernetes_access`: the Kubernetes SubjectAccessReview a
//! caller must pass for a model (what Open Data Hub's
//! `security.opendatahub.io/enable-auth` generates: `get` on the model's
//! `inferenceservices.serving.kserve.io` in its namespace). The API server,
//! CA and gateway token are those of `auth.kubernetes.token_review`.

use serde::Deserialize;

use crate::error::Collector;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesAccess {
    pub namespace: String,
    /// The resource's name; default: the model's name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub verb: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub subresource: Option<String>,
}

/// The `resourceAttributes` of a SubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesAccess {
    pub namespace: String,
    pub name: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
}

/// A Kubernetes name segment: DNS-1123 labels and subdomains, and verbs.
fn kube_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Validates `models[i].kubernetes_access`; `model` is the model's name.
pub(crate) fn kubernetes_access(
    raw: RawKubernetesAccess,
    model: &str,
    key: &str,
    c: &mut Collector,
) -> Option<KubernetesAccess> {
    let mut ok = true;
    let mut field = |v: Option<String>, default: &str, name: &str, empty_ok: bool| {
        let v = v.unwrap_or_else(|| default.to_string());
        if !(kube_word(&v) || (empty_ok && v.is_empty())) {
            c.push(
                format!("{key}.{name}"),
                format!("{v:?} is not a Kubernetes name"),
                "use lower-case letters, digits, '-' and '.' (e.g. namespace: models, verb: get)",
            );
            ok = false;
        }
        v
    };
    let access = KubernetesAccess {
        namespace: field(Some(raw.namespace), "", "namespace", false),
        name: field(raw.name, &model.to_ascii_lowercase(), "name", false),
        verb: field(raw.verb, "get", "verb", false),
        group: field(raw.group, "serving.kserve.io", "group", true),
        resource: field(raw.resource, "inferenceservices", "resource", false),
        subresource: raw
            .subresource
            .map(|s| field(Some(s), "", "subresource", false)),
    };
    ok.then_some(access)
}

/// A model with `kubernetes_access` needs the API server settings of
/// `auth.kubernetes.token_review`.
pub(crate) fn needs_api_server(models: &[crate::Model], auth: &crate::Auth, c: &mut Collector) {
    if auth.identity.kubernetes.token_review.is_some() {
        return;
    }
    for (i, m) in models.iter().enumerate() {
        if m.kubernetes_access.is_some() {
            c.push(
                format!("models[{i}].kubernetes_access"),
                "a SubjectAccessReview needs the Kubernetes API server",
                "configure auth.kubernetes.token_review (its api_server, ca_file and token_file are used)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(ns: &str) -> RawKubernetesAccess {
        RawKubernetesAccess {
            namespace: ns.into(),
            name: None,
            verb: None,
            group: None,
            resource: None,
            subresource: None,
        }
    }

    #[test]
    fn defaults_are_what_enable_auth_generates() {
        let mut c = Collector::default();
        let a = kubernetes_access(raw("models"), "Iris", "models[0].kubernetes_access", &mut c);
        assert_eq!(
            a,
            Some(KubernetesAccess {
                namespace: "models".into(),
                name: "iris".into(),
                verb: "get".into(),
                group: "serving.kserve.io".into(),
                resource: "inferenceservices".into(),
                subresource: None,
            })
        );
        assert!(c.is_empty());
    }

    #[test]
    fn a_bad_namespace_names_its_key() {
        let mut c = Collector::default();
        let a = kubernetes_access(raw("Bad NS"), "iris", "models[0].kubernetes_access", &mut c);
        assert!(a.is_none());
        let errs = c.into_errors();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .contains("models[0].kubernetes_access.namespace")
        );
    }
}
