//! Istio's mesh configuration — the `istio` ConfigMap's `data.mesh` (YAML
//! text) or an IstioOperator's `spec.meshConfig` — read for its
//! `extensionProviders`: the ext_authz ones (`envoyExtAuthzHttp`,
//! `envoyExtAuthzGrpc`) become `extension_providers:` entries, which the
//! CUSTOM AuthorizationPolicies name. Everything else in the mesh config
//! (tracing and logging providers, mesh-wide settings) is reported.

use yaml_serde::{Mapping, Value};

use crate::State;
use crate::object::Object;
use crate::report::Level;

const HTTP_KEYS: &[&str] = &[
    "service",
    "port",
    "timeout",
    "pathPrefix",
    "failOpen",
    "statusOnError",
    "includeRequestHeadersInCheck",
    "includeAdditionalHeadersInCheck",
    "headersToUpstreamOnAllow",
    "headersToDownstreamOnDeny",
    "includeRequestBodyInCheck",
];
const GRPC_KEYS: &[&str] = &[
    "service",
    "port",
    "timeout",
    "failOpen",
    "statusOnError",
    "includeRequestBodyInCheck",
];

/// A `v1 ConfigMap`: read when it carries `data.mesh` (Istio's `istio`
/// ConfigMap); any other ConfigMap is not a kind modelgate reads.
pub(crate) fn config_map(mut obj: Object, st: &mut State<'_>) {
    let Some(text) = obj
        .at("data.mesh")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        obj.drop(
            &mut st.report,
            "",
            "a ConfigMap without `data.mesh` (Istio's mesh config) is not read",
        );
        obj.used("data");
        obj.used("metadata");
        obj.finish(&mut st.report, "");
        return;
    };
    obj.used("data.mesh");
    match yaml_serde::from_str::<Value>(&text) {
        Ok(mesh) => mesh_config(&mesh, "data.mesh", &obj.id, st),
        Err(e) => obj.drop(&mut st.report, "data.mesh", format!("not YAML ({e})")),
    }
    obj.finish(
        &mut st.report,
        "no modelgate equivalent for this ConfigMap field",
    );
}

/// An `install.istio.io IstioOperator`: its `spec.meshConfig`.
pub(crate) fn istio_operator(mut obj: Object, st: &mut State<'_>) {
    if let Some(mesh) = obj.at("spec.meshConfig").cloned() {
        obj.used("spec.meshConfig");
        mesh_config(&mesh, "spec.meshConfig", &obj.id, st);
    }
    obj.used("spec");
    obj.note(&mut st.report, "spec", "only meshConfig.extensionProviders is read from an IstioOperator (installation settings do not apply to modelgate)");
    obj.finish(&mut st.report, "");
}

fn mesh_config(mesh: &Value, path: &str, id: &str, st: &mut State<'_>) {
    let Value::Mapping(m) = mesh else {
        st.report
            .push(Level::Untranslated, id, path, "not a mapping");
        return;
    };
    for (k, v) in m {
        let key = k.as_str().unwrap_or_default();
        let p = format!("{path}.{key}");
        if key != "extensionProviders" {
            st.report.push(
                Level::Untranslated,
                id,
                &p,
                "a mesh-wide Istio setting with no modelgate equivalent",
            );
            continue;
        }
        let Value::Sequence(list) = v else {
            st.report.push(Level::Untranslated, id, &p, "not a list");
            continue;
        };
        for (i, entry) in list.iter().enumerate() {
            provider(entry, &format!("{p}[{i}]"), id, st);
        }
    }
}

fn provider(entry: &Value, path: &str, id: &str, st: &mut State<'_>) {
    let Some(name) = entry.get("name").and_then(Value::as_str) else {
        st.report
            .push(Level::Untranslated, id, path, "a provider without a name");
        return;
    };
    let mut out = Mapping::new();
    out.insert("name".into(), name.into());
    let mut kinds = 0;
    for (k, v) in entry.as_mapping().into_iter().flatten() {
        let key = k.as_str().unwrap_or_default();
        let p = format!("{path}.{key}");
        let known = match key {
            "name" => continue,
            "envoyExtAuthzHttp" => HTTP_KEYS,
            "envoyExtAuthzGrpc" => GRPC_KEYS,
            _ => {
                st.report.push(Level::Untranslated, id, &p, format!("provider {name}: only ext_authz providers (envoyExtAuthzHttp, envoyExtAuthzGrpc) are authorizers modelgate calls"));
                continue;
            }
        };
        kinds += 1;
        let mut body = Mapping::new();
        for (fk, fv) in v.as_mapping().into_iter().flatten() {
            let field = fk.as_str().unwrap_or_default();
            // Istio's deprecated name for includeRequestHeadersInCheck.
            let field = if field == "includeHeadersInCheck" {
                "includeRequestHeadersInCheck"
            } else {
                field
            };
            if known.contains(&field) {
                body.insert(field.into(), fv.clone());
            } else {
                st.report.push(
                    Level::Untranslated,
                    id,
                    &format!("{p}.{field}"),
                    "not supported by modelgate's ext_authz client",
                );
            }
        }
        out.insert(key.into(), Value::Mapping(body));
    }
    if kinds == 0 {
        return;
    }
    st.report.push(Level::Note, id, path, format!("provider {name}: its service is the in-cluster address; edit service/port where modelgate runs elsewhere. Fails closed (403) unless failOpen"));
    st.providers.push(name.to_string());
    st.config.extension_providers.push(Value::Mapping(out));
}

/// After every object: each CUSTOM policy either names an imported
/// provider (an external check) or is served in-process.
pub(crate) fn custom_policies(st: &mut State<'_>) {
    for (id, name) in std::mem::take(&mut st.custom_policies) {
        let msg = if st.providers.contains(&name) {
            format!(
                "CUSTOM provider {name} is the imported external authorizer (extension_providers): modelgate calls it for every matching request"
            )
        } else if st.providers.is_empty() {
            format!(
                "no mesh config names provider {name}: the CUSTOM policy is served in-process by modelgate's identity sources (auth.*); import the `istio` ConfigMap to call it as an external authorizer"
            )
        } else {
            st.report.push(Level::Untranslated, &id, "spec.provider", format!("provider {name} is not among the imported extensionProviders: the configuration will not load until it names one"));
            continue;
        };
        st.report.push(Level::Note, &id, "spec.provider", msg);
    }
}
