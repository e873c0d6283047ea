//! One Kubernetes object being translated: its identity (`Kind/ns/name`) and
//! a ledger of which key paths were used or reported, so that every leaf left
//! over is reported at the end — nothing is dropped silently.

use serde::de::DeserializeOwned;
use yaml_serde::Value;

use crate::report::{Level, Report};

/// Metadata set by the cluster, not by the user.
const CLUSTER_STATE: &[&str] = &[
    "status",
    "metadata.uid",
    "metadata.resourceVersion",
    "metadata.generation",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "metadata.managedFields",
    "metadata.ownerReferences",
    "metadata.selfLink",
    "metadata.finalizers",
    "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration",
];

pub(crate) struct Object {
    pub id: String,
    pub kind: String,
    pub api_version: String,
    pub name: String,
    pub namespace: Option<String>,
    pub value: Value,
    consumed: Vec<String>,
}

impl Object {
    /// Reads the envelope; `None` if the document is not a Kubernetes object.
    pub(crate) fn new(value: Value, default_namespace: Option<&str>) -> Option<Self> {
        let kind = value.get("kind")?.as_str()?.to_string();
        let api_version = value.get("apiVersion")?.as_str()?.to_string();
        let meta = value.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| default_namespace.map(str::to_string));
        let id = format!("{kind}/{}/{name}", namespace.as_deref().unwrap_or("-"));
        Some(Self {
            id,
            kind,
            api_version,
            name,
            namespace,
            value,
            consumed: vec![
                "apiVersion".into(),
                "kind".into(),
                "metadata.name".into(),
                "metadata.namespace".into(),
            ],
        })
    }

    /// The value at a dotted path (`spec.predictor`), if present.
    pub(crate) fn at(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(&self.value, |v, k| v.get(k))
    }

    /// Deserializes the value at `path` into a type mirroring the CRD's field
    /// names; a shape that does not fit is reported and gives `None`.
    pub(crate) fn read<T: DeserializeOwned>(
        &mut self,
        path: &str,
        report: &mut Report,
    ) -> Option<T> {
        let v = self.at(path)?.clone();
        match yaml_serde::from_value(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.drop(report, path, format!("unexpected shape ({e})"));
                None
            }
        }
    }

    /// Marks `path` (and everything below it) as translated.
    pub(crate) fn used(&mut self, path: impl Into<String>) {
        self.consumed.push(path.into());
    }

    /// Reports `path` as untranslated, with why; it is not reported again.
    pub(crate) fn drop(&mut self, report: &mut Report, path: &str, why: impl Into<String>) {
        report.push(Level::Untranslated, &self.id, path, why);
        self.used(path);
    }

    /// Reports a caveat about a translated `path`.
    pub(crate) fn note(&mut self, report: &mut Report, path: &str, why: impl Into<String>) {
        report.push(Level::Note, &self.id, path, why);
        self.used(path);
    }

    fn is_consumed(&self, leaf: &str) -> bool {
        self.consumed.iter().any(|p| {
            leaf == p
                || leaf
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// Reports every leaf that was neither used nor reported.
    pub(crate) fn finish(self, report: &mut Report, why: &str) {
        let mut leaves = Vec::new();
        leaf_paths(&self.value, "", &mut leaves);
        let mut state = Vec::new();
        for leaf in leaves {
            if self.is_consumed(&leaf) {
                continue;
            }
            if CLUSTER_STATE.iter().any(|p| {
                leaf == *p
                    || leaf.starts_with(&format!("{p}."))
                    || leaf.starts_with(&format!("{p}["))
            }) {
                let top = CLUSTER_STATE
                    .iter()
                    .find(|p| leaf.starts_with(*p))
                    .map(|p| p.to_string())
                    .unwrap_or(leaf);
                if !state.contains(&top) {
                    state.push(top);
                }
                continue;
            }
            report.push(Level::Untranslated, &self.id, &leaf, why);
        }
        if !state.is_empty() {
            report.push(
                Level::Note,
                &self.id,
                &state.join(", "),
                "cluster state, not configuration: ignored",
            );
        }
    }
}

/// Dotted paths of every scalar, empty mapping and empty list.
fn leaf_paths(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => yaml_serde::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                let p = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                leaf_paths(child, &p, out);
            }
        }
        Value::Sequence(s) if !s.is_empty() => {
            for (i, child) in s.iter().enumerate() {
                leaf_paths(child, &format!("{path}[{i}]"), out);
            }
        }
        Value::Tagged(t) => leaf_paths(&t.value, path, out),
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(text: &str) -> Object {
        Object::new(yaml_serde::from_str(text).unwrap(), None).unwrap()
    }

    #[test]
    fn leftover_leaves_are_reported_once_each() {
        let mut o = obj(
            "apiVersion: v1\nkind: K\nmetadata: {name: n, uid: x}\nspec: {a: 1, b: {c: 2, d: [3]}, e: {}}\nstatus: {x: 1}",
        );
        let mut r = Report::default();
        o.used("spec.a");
        o.drop(&mut r, "spec.b.c", "no equivalent");
        o.finish(&mut r, "why");
        let paths: Vec<_> = r.findings.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["spec.b.c", "spec.b.d[0]", "spec.e", "metadata.uid, status"]
        );
        assert_eq!(r.findings[1].level, Level::Untranslated);
        assert_eq!(r.findings[3].level, Level::Note);
    }

    #[test]
    fn prefix_consumption_respects_key_boundaries() {
        let mut o = obj("apiVersion: v1\nkind: K\nmetadata: {name: n}\nspec: {ab: 1, a: 2}");
        o.used("spec.a");
        let mut r = Report::default();
        o.finish(&mut r, "why");
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.findings[0].path, "spec.ab");
        assert_eq!(o_id(), "K/-/n");
    }

    fn o_id() -> String {
        obj("apiVersion: v1\nkind: K\nmetadata: {name: n}").id
    }
}
