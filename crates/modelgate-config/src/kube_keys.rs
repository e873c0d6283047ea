//! `auth.api_keys.kubernetes`: API keys read from labelled Kubernetes Secrets
//! (Authorino's `apiKey.selector` model), as raw serde types and their
//! validated form. The watch itself lives in the `modelgate-kube` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Collector;
use crate::units::parse_duration;

/// Annotation naming the identity a Secret's key verifies as (default: the Secret's name).
pub const NAME_ANNOTATION: &str = "modelgate.io/name";
/// Annotation listing the models a Secret's key may call (`"llama3,iris"`, `"*"`).
pub const MODELS_ANNOTATION: &str = "modelgate.io/models";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubeKeys {
    /// Namespaces to watch; default: the namespace of the kubeconfig context
    /// (in a pod: its own). `["*"]` watches every namespace.
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    pub selector: RawSelector,
    /// The Secret data key holding the API key (Authorino: `api_key`).
    #[serde(default)]
    pub key_field: Option<String>,
    /// Models granted to a key whose Secret has no `modelgate.io/models` annotation.
    #[serde(default)]
    pub default_models: Option<Vec<String>>,
    /// How long a key replaced by patching its Secret keeps working.
    #[serde(default)]
    pub rotation_grace: Option<String>,
    /// A kubeconfig file; default: `$KUBECONFIG`, `~/.kube/config`, then in-cluster.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// How long `serve` waits for the first list before it opens (default 10s).
    #[serde(default)]
    pub initial_sync_timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelector {
    #[serde(rename = "matchLabels")]
    pub match_labels: BTreeMap<String, String>,
}

/// Validated `auth.api_keys.kubernetes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeKeys {
    /// Empty: the client's default namespace. `None` inside: every namespace.
    pub namespaces: Vec<Option<String>>,
    pub match_labels: BTreeMap<String, String>,
    pub key_field: String,
    pub default_models: Vec<String>,
    pub rotation_grace: Duration,
    pub kubeconfig: Option<PathBuf>,
    pub initial_sync_timeout: Duration,
}

impl KubeKeys {
    /// The label selector in the API's query syntax (`k=v,k2=v2`).
    pub fn label_selector(&self) -> String {
        let parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.join(",")
    }
}

const PATH: &str = "auth.api_keys.kubernetes";

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn label_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(dns_label));
    name_ok && prefix_ok
}

fn label_value(s: &str) -> bool {
    s.is_empty() || label_name(s) && !s.contains('/')
}

fn secret_key_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn duration(raw: Option<&str>, key: &str, default: Duration, c: &mut Collector) -> Duration {
    match raw {
        None => default,
        Some(s) => parse_duration(s).unwrap_or_else(|e| {
            c.push(
                format!("{PATH}.{key}"),
                e,
                "use a duration such as 30s or 5m",
            );
            default
        }),
    }
}

/// Checks `auth.api_keys.kubernetes`; paths are resolved against `base`.
pub fn validate(raw: Option<RawKubeKeys>, base: &Path, c: &mut Collector) -> Option<KubeKeys> {
    let raw = raw?;
    let mut namespaces = Vec::new();
    for (i, ns) in raw.namespaces.unwrap_or_default().into_iter().enumerate() {
        if ns == "*" {
            namespaces.push(None);
        } else if dns_label(&ns) {
            namespaces.push(Some(ns));
        } else {
            c.push(
                format!("{PATH}.namespaces[{i}]"),
                format!("{ns:?} is not a namespace name"),
                "use a DNS label (lower-case letters, digits, '-'), or \"*\" for all namespaces",
            );
        }
    }
    if namespaces.len() > 1 && namespaces.contains(&None) {
        c.push(
            format!("{PATH}.namespaces"),
            "\"*\" (all namespaces) is listed with other namespaces",
            "use either [\"*\"] or a list of namespaces",
        );
    }
    let match_labels = raw.selector.match_labels;
    if match_labels.is_empty() {
        c.push(
            format!("{PATH}.selector.matchLabels"),
            "is empty: every Secret would become an API key",
            "select the key Secrets by label, e.g. {authorino.kuadrant.io/managed-by: authorino}",
        );
    }
    for (k, v) in &match_labels {
        if !label_name(k) || !label_value(v) {
            c.push(
                format!("{PATH}.selector.matchLabels.{k}"),
                format!("{k:?}: {v:?} is not a valid label"),
                "use Kubernetes label syntax: [prefix/]name, value of letters, digits, '-', '_', '.'",
            );
        }
    }
    let key_field = raw.key_field.unwrap_or_else(|| "api_key".into());
    if !secret_key_name(&key_field) {
        c.push(
            format!("{PATH}.key_field"),
            format!("{key_field:?} is not a Secret data key"),
            "use letters, digits, '-', '_' or '.' (Authorino's is api_key)",
        );
    }
    let default_models = raw.default_models.unwrap_or_default();
    for (i, m) in default_models.iter().enumerate() {
        if m.is_empty() || m.contains(',') {
            c.push(
                format!("{PATH}.default_models[{i}]"),
                format!("{m:?} is not a model name"),
                "list model names as separate items, or \"*\" for all models",
            );
        }
    }
    Some(KubeKeys {
        namespaces,
        match_labels,
        key_field,
        default_models,
        rotation_grace: duration(
            raw.rotation_grace.as_deref(),
            "rotation_grace",
            Duration::ZERO,
            c,
        ),
        kubeconfig: raw.kubeconfig.map(|p| base.join(p)),
        initial_sync_timeout: duration(
            raw.initial_sync_timeout.as_deref(),
            "initial_sync_timeout",
            Duration::from_secs(10),
            c,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> RawKubeKeys {
        yaml_serde::from_str(yaml).unwrap()
    }

    fn check(yaml: &str) -> (Option<KubeKeys>, Vec<String>) {
        let mut c = Collector::default();
        let k = validate(Some(raw(yaml)), Path::new("/etc/mg"), &mut c);
        (k, c.into_errors().into_iter().map(|e| e.path).collect())
    }

    #[test]
    fn authorino_selector_with_defaults() {
        let (k, errs) = check(
            "selector: {matchLabels: {authorino.kuadrant.io/managed-by: authorino, group: friends}}\nkubeconfig: kc.yaml",
        );
        assert!(errs.is_empty(), "{errs:?}");
        let k = k.unwrap();
        assert_eq!(k.key_field, "api_key");
        assert_eq!(
            k.label_selector(),
            "authorino.kuadrant.io/managed-by=authorino,group=friends"
        );
        assert!(k.namespaces.is_empty());
        assert_eq!(k.rotation_grace, Duration::ZERO);
        assert_eq!(k.kubeconfig, Some(PathBuf::from("/etc/mg/kc.yaml")));
    }

    #[test]
    fn bad_values_name_their_key() {
        let (_, errs) = check(
            "namespaces: [Bad_NS, '*']\nselector: {matchLabels: {'-x': 'a b'}}\nkey_field: 'a/b'\nrotation_grace: soon\ndefault_models: ['a,b']",
        );
        assert_eq!(
            errs,
            [
                "auth.api_keys.kubernetes.namespaces[0]",
                "auth.api_keys.kubernetes.selector.matchLabels.-x",
                "auth.api_keys.kubernetes.key_field",
                "auth.api_keys.kubernetes.default_models[0]",
                "auth.api_keys.kubernetes.rotation_grace",
            ]
        );
    }

    #[test]
    fn empty_selector_and_mixed_star_are_refused() {
        let (_, errs) = check("namespaces: ['*', a]\nselector: {matchLabels: {}}");
        assert_eq!(
            errs,
            [
                "auth.api_keys.kubernetes.namespaces",
                "auth.api_keys.kubernetes.selector.matchLabels"
            ]
        );
        let (k, errs) = check("namespaces: ['*']\nselector: {matchLabels: {a: b}}");
        assert!(errs.is_empty());
        assert_eq!(k.unwrap().namespaces, [None]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<RawKubeKeys, _> =
            yaml_serde::from_str("selector: {matchLabels: {a: b}}\nnamespace: x");
        assert!(r.is_err());
    }
}
