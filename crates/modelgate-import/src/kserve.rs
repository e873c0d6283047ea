//! KServe `InferenceService` (serving.kserve.io/v1beta1) → a model: its name,
//! its in-cluster predictor Service as the default upstream, and Open Data
//! Hub's `security.opendatahub.io/enable-auth` annotation.

use serde::Deserialize;

use crate::State;
use crate::object::Object;
use crate::out::UrlSource;

const ENABLE_AUTH: &str = "security.opendatahub.io/enable-auth";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelSpec {
    #[serde(default)]
    model_format: Option<ModelFormat>,
    #[serde(default)]
    runtime: Option<String>,
    #[serde(default)]
    protocol_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ModelFormat {
    #[serde(default)]
    name: Option<String>,
}

pub(crate) fn inference_service(mut obj: Object, st: &mut State<'_>) {
    let ns = obj
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    if obj.namespace.is_none() {
        st.report.push(
            crate::Level::Note,
            &obj.id,
            "metadata.namespace",
            "no namespace: the predictor URL assumes `default` (pass --namespace)",
        );
    }
    let url = format!("http://{}-predictor.{ns}.svc.cluster.local", obj.name);
    let name = obj.name.clone();
    let model = st.models.upsert(&name, url, UrlSource::Predictor);

    let spec: ModelSpec = obj
        .read("spec.predictor.model", &mut st.report)
        .unwrap_or_default();
    let format = spec.model_format.and_then(|f| f.name).unwrap_or_default();
    let runtime = spec.runtime.unwrap_or_default();
    if format.to_ascii_lowercase().contains("vllm") || runtime.to_ascii_lowercase().contains("vllm")
    {
        set_protocols(model, &["openai"]);
        obj.used("spec.predictor.model.modelFormat.name");
        obj.used("spec.predictor.model.runtime");
    }
    match spec.protocol_version.as_deref() {
        Some("v1") => set_protocols(model, &["v1"]),
        Some("v2") => set_protocols(model, &["v2"]),
        Some("grpc-v2") => set_protocols(model, &["grpc"]),
        _ => {}
    }
    if spec.protocol_version.is_some() {
        obj.used("spec.predictor.model.protocolVersion");
    }
    if let Some(domain) = st.opts.domain.as_deref() {
        let host = format!("{}.{ns}.{domain}", obj.name);
        if !model.hosts.contains(&host) {
            model.hosts.push(host);
        }
    }

    let path = format!("metadata.annotations.{ENABLE_AUTH}");
    let annotation = obj
        .at("metadata.annotations")
        .and_then(|a| a.get(ENABLE_AUTH))
        .and_then(|v| v.as_str());
    match annotation {
        Some("true") => obj.used(path),
        Some("false") => {
            model.public_operations = vec![
                "infer".into(),
                "model_ready".into(),
                "model_metadata".into(),
            ];
            obj.note(
                &mut st.report,
                &path,
                "enable-auth is \"false\": the model is public (public_operations)",
            );
        }
        Some(other) => obj.drop(
            &mut st.report,
            &path,
            format!("unknown value {other:?}: the model requires a credential"),
        ),
        None => st.report.push(
            crate::Level::Note,
            &obj.id,
            "",
            "no enable-auth annotation: modelgate still requires a credential (deny by default)",
        ),
    }
    obj.finish(
        &mut st.report,
        "deployment detail (how KServe runs the model), not gateway configuration",
    );
}

fn set_protocols(model: &mut crate::out::Model, protocols: &[&str]) {
    model.protocols = protocols.iter().map(|p| p.to_string()).collect();
}
