//! Authorino `apiKey` identity (v1beta2 and v1beta3 alike): the label
//! selector and namespaces become `auth.api_keys.kubernetes`, so the same
//! Secrets (key in `data.api_key`) are the keys modelgate accepts.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::State;
use crate::object::Object;
use crate::out::{KubeKeys, Selector};
use crate::report::Level;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiKeySpec {
    #[serde(default)]
    selector: Option<SelectorSpec>,
    #[serde(default)]
    all_namespaces: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SelectorSpec {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
}

/// Translates `{p}.apiKey`; returns whether Secrets now supply the keys.
pub(crate) fn selector(obj: &mut Object, st: &mut State<'_>, p: &str) -> bool {
    let path = format!("{p}.apiKey");
    let Some(spec) = obj.read::<ApiKeySpec>(&path, &mut st.report) else {
        return false;
    };
    let labels = spec.selector.map(|s| s.match_labels).unwrap_or_default();
    if labels.is_empty() {
        let why = format!(
            "no matchLabels (matchExpressions are not read): every Secret would be a key; the key file {} is used instead",
            st.keys_file()
        );
        obj.drop(&mut st.report, &format!("{path}.selector"), why);
        return false;
    }
    obj.used(format!("{path}.selector.matchLabels"));
    obj.used(format!("{path}.allNamespaces"));
    let namespaces = match (spec.all_namespaces, &obj.namespace) {
        (true, _) => vec!["*".to_string()],
        (false, Some(ns)) => vec![ns.clone()],
        (false, None) => {
            obj.note(&mut st.report, &path, "the AuthConfig names no namespace: the Secrets are watched in the kubeconfig context's namespace (in a pod: its own); pass --namespace to name one");
            Vec::new()
        }
    };
    // Authorino lets any selected key through to this AuthConfig's hosts; the
    // nearest modelgate grant is the model the AuthConfig is named after.
    let default_models = if st.models.by_name.contains_key(&obj.name) {
        vec![obj.name.clone()]
    } else {
        vec!["*".to_string()]
    };
    let new = KubeKeys {
        namespaces,
        selector: Selector {
            match_labels: labels,
        },
        default_models,
    };
    merge(obj, st, &path, new)
}

fn merge(obj: &mut Object, st: &mut State<'_>, path: &str, new: KubeKeys) -> bool {
    match &mut st.kube_keys {
        None => {
            let what = format!(
                "API keys from Secrets labelled {} in {} (key in data.api_key; annotate a Secret with modelgate.io/models to change its models, default {}): auth.api_keys.kubernetes, watched live",
                labels_text(&new.selector.match_labels),
                if new.namespaces.is_empty() {
                    "the default namespace".to_string()
                } else {
                    new.namespaces.join(", ")
                },
                new.default_models.join(", "),
            );
            obj.note(&mut st.report, path, what);
            st.kube_keys = Some(new);
            true
        }
        Some(cur) if cur.selector == new.selector && cur.default_models == new.default_models => {
            let star = cur
                .namespaces
                .iter()
                .chain(&new.namespaces)
                .any(|n| n == "*");
            if star {
                cur.namespaces = vec!["*".into()];
            } else {
                for ns in new.namespaces {
                    if !cur.namespaces.contains(&ns) {
                        cur.namespaces.push(ns);
                    }
                }
            }
            obj.note(
                &mut st.report,
                path,
                "same selector as an earlier AuthConfig: its namespaces are added",
            );
            true
        }
        Some(cur) => {
            let why = format!(
                "modelgate watches one Secret selector ({} already imported); the Secrets labelled {} are not read: add their keys to the key file {}",
                labels_text(&cur.selector.match_labels),
                labels_text(&new.selector.match_labels),
                st.keys_file()
            );
            st.report.push(Level::Untranslated, &obj.id, path, why);
            obj.used(path);
            false
        }
    }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(","))
}
