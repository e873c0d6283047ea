//! The `policies:` entries as written: serde shapes that reject unknown keys.

use std::collections::BTreeMap;

use serde::Deserialize;
use yaml_serde::Value;

/// modelgate's short form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) name: String,
    #[serde(default)]
    pub(super) action: Option<String>,
    #[serde(default)]
    pub(super) provider: Option<RawProvider>,
    #[serde(default)]
    pub(super) rules: Option<Vec<Value>>,
    #[serde(default)]
    pub(super) models: Option<Vec<String>>,
    #[serde(default)]
    pub(super) dry_run: Option<bool>,
}

/// A pasted Istio object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawIstio {
    pub(super) api_version: String,
    pub(super) kind: String,
    pub(super) metadata: RawMetadata,
    #[serde(default)]
    pub(super) spec: Option<RawSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawMetadata {
    pub(super) name: String,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    #[serde(default)]
    pub(super) labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(super) annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSpec {
    #[serde(default)]
    pub(super) action: Option<String>,
    #[serde(default)]
    pub(super) provider: Option<RawProvider>,
    #[serde(default)]
    pub(super) rules: Option<Vec<Value>>,
    #[serde(default)]
    pub(super) selector: Option<Value>,
    #[serde(default)]
    pub(super) target_ref: Option<Value>,
    #[serde(default)]
    pub(super) target_refs: Option<Value>,
    /// modelgate extension, the analogue of `selector`.
    #[serde(default)]
    pub(super) models: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    #[serde(default)]
    pub(super) from: Option<Vec<RawFrom>>,
    #[serde(default)]
    pub(super) to: Option<Vec<RawTo>>,
    #[serde(default)]
    pub(super) when: Option<Vec<RawCondition>>,
    #[serde(default)]
    pub(super) cel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFrom {
    pub(super) source: RawSource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTo {
    pub(super) operation: RawOperation,
}

pub(super) type List = Option<Vec<Scalar>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSource {
    pub(super) principals: List,
    pub(super) not_principals: List,
    pub(super) request_principals: List,
    pub(super) not_request_principals: List,
    pub(super) namespaces: List,
    pub(super) not_namespaces: List,
    pub(super) service_accounts: List,
    pub(super) not_service_accounts: List,
    pub(super) trust_domains: List,
    pub(super) not_trust_domains: List,
    pub(super) ip_blocks: List,
    pub(super) not_ip_blocks: List,
    pub(super) remote_ip_blocks: List,
    pub(super) not_remote_ip_blocks: List,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawOperation {
    pub(super) hosts: List,
    pub(super) not_hosts: List,
    pub(super) ports: List,
    pub(super) not_ports: List,
    pub(super) methods: List,
    pub(super) not_methods: List,
    pub(super) paths: List,
    pub(super) not_paths: List,
    pub(super) models: List,
    pub(super) not_models: List,
    pub(super) protocols: List,
    pub(super) not_protocols: List,
    pub(super) operations: List,
    pub(super) not_operations: List,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawCondition {
    pub(super) key: String,
    #[serde(default)]
    pub(super) values: List,
    #[serde(default)]
    pub(super) not_values: List,
}

/// YAML scalars written where Istio wants strings (`ports: [8080]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    pub(super) fn into_string(self) -> String {
        match self {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}
