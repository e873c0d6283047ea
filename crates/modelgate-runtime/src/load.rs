//! Turns a model directory into a [`LoadedModel`]: parse the ONNX graph with a
//! `ZipMap` stand-in, give every variable dimension a symbol (so one optimized
//! plan serves any batch size), optimize, and read back the metadata.

use std::collections::HashMap;

use tract_onnx::pb::{self, tensor_shape_proto::dimension, type_proto};
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable, TDim,
    TypedModel,
};
use tract_onnx::tract_hir::ops::identity::Identity;

use crate::model::{ClassLabels, Dim, InputSpec, LoadedModel, OutputSpec};
use crate::reload::Fingerprint;
use crate::settings::ModelSettings;
use crate::{BuiltinModelSpec, Datatype, RuntimeError};

/// The version reported when `model.yaml` names none (as Triton's "1").
pub const DEFAULT_VERSION: &str = "1";

/// ONNX with `ZipMap` registered as identity: tract cannot represent its
/// seq(map) output, so the `[N, C]` probability tensor comes out instead and
/// the class labels are kept in the output's metadata.
fn framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register
        .insert("ZipMap", |_, _| Ok((Box::<Identity>::default(), vec![])));
    onnx
}

/// Loads `spec`; the error names the model, the file and the cause.
pub fn load(spec: &BuiltinModelSpec) -> Result<LoadedModel, RuntimeError> {
    let name = &spec.name;
    let fingerprint = Fingerprint::of(spec);
    let settings = ModelSettings::read(name, &spec.settings_file())?;
    let path = spec.model_file();
    let fail = |cause: String| RuntimeError::load(name, &path, cause);
    let bytes = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
    let onnx = framework();
    let proto = onnx
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| fail(format!("not an ONNX model: {e:#}")))?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| fail("the ONNX model has no graph".into()))?;
    let mut model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| fail(format!("{e:#}")))?;
    let (inputs, symbols) = fix_inputs(&mut model, &declared_inputs(graph)).map_err(fail)?;
    let typed = model.into_optimized().map_err(|e| fail(format!("{e:#}")))?;
    let mut outputs = read_outputs(&typed, &zipmap_labels(graph)).map_err(fail)?;
    if let Some(labels) = settings.labels {
        apply_labels(&mut outputs, labels)
            .map_err(|cause| RuntimeError::load(name, spec.settings_file(), cause))?;
    }
    let batch_symbol = match inputs.first().and_then(|i| i.dims.first()) {
        Some(Dim::Var(s)) => Some(*s),
        _ => None,
    };
    let plan = typed.into_runnable().map_err(|e| fail(format!("{e:#}")))?;
    let native = crate::linear::checked_kernel(graph, &inputs, &outputs, &plan);
    let version = settings.version.unwrap_or_else(|| DEFAULT_VERSION.into());
    let v2_text = crate::model::V2Text::new(name.as_str(), &version, &outputs);
    Ok(LoadedModel {
        name: name.clone(),
        version,
        inputs,
        outputs,
        symbols,
        batch_symbol,
        max_batch_size: settings.max_batch_size,
        plan,
        native,
        fingerprint,
        v2_text,
    })
}

/// Gives every model input its declared type and shape, variable dimensions
/// as symbols; returns the input specs and the number of symbols.
fn fix_inputs(
    model: &mut InferenceModel,
    declared: &HashMap<&str, DeclaredInput>,
) -> Result<(Vec<InputSpec>, usize), String> {
    let mut symbols: Vec<String> = Vec::new();
    let mut inputs = Vec::new();
    let outlets = model.input_outlets().map_err(|e| e.to_string())?.to_vec();
    for (i, outlet) in outlets.iter().enumerate() {
        let input_name = model.node(outlet.node).name.clone();
        let (elem, dims) = declared
            .get(input_name.as_str())
            .ok_or_else(|| format!("input '{input_name}' has no declared tensor type"))?;
        let datatype = datatype_of_onnx(*elem).ok_or_else(|| {
            format!(
                "input '{input_name}' has unsupported element type {}",
                onnx_type_name(*elem)
            )
        })?;
        let dims = dims
            .as_ref()
            .ok_or_else(|| format!("input '{input_name}' declares no shape"))?;
        let mut spec_dims = Vec::new();
        let mut fact_dims = Vec::new();
        for (axis, d) in dims.iter().enumerate() {
            if let Some(DeclaredDim::Value(v)) = d {
                let v = usize::try_from(*v)
                    .map_err(|_| format!("input '{input_name}' has a negative dimension"))?;
                spec_dims.push(Dim::Fixed(v));
                fact_dims.push(TDim::from(v));
                continue;
            }
            let sym_name = match d {
                Some(DeclaredDim::Param(p)) if is_symbol_name(p) => p.clone(),
                _ if i == 0 && axis == 0 => "N".to_string(),
                _ => format!("d{i}_{axis}"),
            };
            let idx = symbols
                .iter()
                .position(|s| *s == sym_name)
                .unwrap_or_else(|| {
                    symbols.push(sym_name.clone());
                    symbols.len() - 1
                });
            spec_dims.push(Dim::Var(idx));
            fact_dims.push(TDim::from(model.sym(&sym_name)));
        }
        model
            .set_input_fact(i, InferenceFact::dt_shape(datum_of(datatype), fact_dims))
            .map_err(|e| format!("{e:#}"))?;
        inputs.push(InputSpec {
            name: input_name,
            datatype,
            dims: spec_dims,
        });
    }
    Ok((inputs, symbols.len()))
}

/// The optimized model's outputs, in ONNX order, with ZipMap class labels.
fn read_outputs(
    typed: &TypedModel,
    zipmaps: &HashMap<String, ClassLabels>,
) -> Result<Vec<OutputSpec>, String> {
    let mut outputs = Vec::new();
    for outlet in typed.output_outlets().map_err(|e| e.to_string())? {
        let name = typed
            .outlet_label(*outlet)
            .map(str::to_string)
            .unwrap_or_else(|| typed.node(outlet.node).name.clone());
        let fact = typed.outlet_fact(*outlet).map_err(|e| e.to_string())?;
        let datatype = match fact.datum_type {
            DatumType::TDim => Datatype::Int64,
            dt => datatype_of_datum(dt)
                .ok_or_else(|| format!("output '{name}' has unsupported element type {dt:?}"))?,
        };
        let shape = fact
            .shape
            .dims()
            .iter()
            .map(|d| d.to_i64().unwrap_or(-1))
            .collect();
        let class_labels = zipmaps.get(name.as_str()).cloned();
        outputs.push(OutputSpec {
            name,
            datatype,
            shape,
            class_labels,
        });
    }
    Ok(outputs)
}

/// `model.yaml` `labels` name the classes of the probability output: the
/// ZipMap-fed one, else the only rank-2 float output.
fn apply_labels(outputs: &mut [OutputSpec], labels: Vec<String>) -> Result<(), String> {
    let target = outputs
        .iter()
        .position(|o| o.class_labels.is_some())
        .or_else(|| {
            let mut floats = outputs.iter().enumerate().filter(|(_, o)| {
                o.shape.len() == 2 && matches!(o.datatype, Datatype::Fp32 | Datatype::Fp64)
            });
            match (floats.next(), floats.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        })
        .ok_or("labels: the model has no single class-probability output")?;
    let out = &mut outputs[target];
    if let Some(classes) = out.shape.get(1).copied().filter(|c| *c >= 0)
        && usize::try_from(classes).ok() != Some(labels.len())
    {
        return Err(format!(
            "labels: {} given, output '{}' has {classes} classes",
            labels.len(),
            out.name
        ));
    }
    out.class_labels = Some(ClassLabels::Text(labels));
    Ok(())
}

/// A dimension as the ONNX file declares it.
#[derive(Debug, Clone)]
enum DeclaredDim {
    Value(i64),
    Param(String),
}

/// Graph inputs that are not initializers: name → (element type, dims).
/// An input's ONNX element type and dims (`None`: no shape declared).
type DeclaredInput = (i32, Option<Vec<Option<DeclaredDim>>>);

fn declared_inputs(graph: &pb::GraphProto) -> HashMap<&str, DeclaredInput> {
    let mut out = HashMap::new();
    for vi in &graph.input {
        if graph.initializer.iter().any(|t| t.name == vi.name) {
            continue;
        }
        let Some(type_proto::Value::TensorType(t)) =
            vi.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            continue;
        };
        // No shape at all (not even rank) is kept apart from a scalar.
        let dims = t.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(dimension::Value::DimValue(v)) => Some(DeclaredDim::Value(*v)),
                    Some(dimension::Value::DimParam(p)) => Some(DeclaredDim::Param(p.clone())),
                    None => None,
                })
                .collect()
        });
        out.insert(vi.name.as_str(), (t.elem_type, dims));
    }
    out
}

/// ZipMap nodes: output name → class labels from their attributes.
fn zipmap_labels(graph: &pb::GraphProto) -> HashMap<String, ClassLabels> {
    let mut out = HashMap::new();
    for node in graph.node.iter().filter(|n| n.op_type == "ZipMap") {
        let Some(output) = node.output.first() else {
            continue;
        };
        for attr in &node.attribute {
            let labels = match attr.name.as_str() {
                "classlabels_int64s" => ClassLabels::Int(attr.ints.clone()),
                "classlabels_strings" => ClassLabels::Text(
                    attr.strings
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                ),
                _ => continue,
            };
            out.insert(output.clone(), labels);
        }
    }
    out
}

/// Whether a `dim_param` can be used as a tract symbol name.
fn is_symbol_name(p: &str) -> bool {
    let mut chars = p.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn datatype_of_onnx(elem: i32) -> Option<Datatype> {
    use pb::tensor_proto::DataType as T;
    Some(match T::try_from(elem).ok()? {
        T::Bool => Datatype::Bool,
        T::Int32 => Datatype::Int32,
        T::Int64 => Datatype::Int64,
        T::Float => Datatype::Fp32,
        T::Double => Datatype::Fp64,
        _ => return None,
    })
}

fn onnx_type_name(elem: i32) -> String {
    pb::tensor_proto::DataType::try_from(elem)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| elem.to_string())
}

fn datatype_of_datum(dt: DatumType) -> Option<Datatype> {
    Some(match dt {
        DatumType::Bool => Datatype::Bool,
        DatumType::I32 => Datatype::Int32,
        DatumType::I64 => Datatype::Int64,
        DatumType::F32 => Datatype::Fp32,
        DatumType::F64 => Datatype::Fp64,
        _ => return None,
    })
}

fn datum_of(d: Datatype) -> DatumType {
    match d {
        Datatype::Bool => DatumType::Bool,
        Datatype::Int32 => DatumType::I32,
        Datatype::Int64 => DatumType::I64,
        Datatype::Fp32 => DatumType::F32,
        Datatype::Fp64 => DatumType::F64,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use modelgate_core::ModelName;
    use std::path::PathBuf;

    /// This crate's folder, read when the test runs (cargo sets it): the
    /// compile-time value names whichever clone built a shared target dir's
    /// artifact, and artifacts are shared across clones.
    fn crate_dir() -> PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
    }

    pub fn fixture(name: &str) -> BuiltinModelSpec {
        let dir = crate_dir().join("tests/fixtures").join(name);
        BuiltinModelSpec::new(ModelName::parse(name).unwrap(), dir)
    }

    #[test]
    fn zipmap_model_metadata() {
        let m = load(&fixture("iris-logreg")).unwrap();
        assert_eq!(m.version, "1");
        assert_eq!(m.inputs.len(), 1);
        assert_eq!(m.inputs[0].name, "input");
        assert_eq!(m.inputs[0].datatype, Datatype::Fp32);
        assert_eq!(m.inputs[0].shape(), vec![-1, 4]);
        assert_eq!(m.batch_symbol, Some(0));
        let names: Vec<_> = m.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["label", "probabilities"]);
        assert_eq!(m.outputs[0].datatype, Datatype::Int64);
        assert_eq!(m.outputs[0].shape, vec![-1]);
        assert_eq!(m.outputs[1].datatype, Datatype::Fp32);
        assert_eq!(m.outputs[1].shape, vec![-1, 3]);
        assert_eq!(
            m.outputs[1].class_labels,
            Some(ClassLabels::Int(vec![0, 1, 2]))
        );
        assert_eq!(m.outputs[0].class_labels, None);
    }

    #[test]
    fn every_fixture_loads() {
        for name in ["iris-logreg-nozipmap", "iris-rf", "iris-linreg", "typed"] {
            let m = load(&fixture(name)).unwrap();
            assert!(!m.outputs.is_empty(), "{name}");
        }
        let typed = load(&fixture("typed")).unwrap();
        let dts: Vec<_> = typed.inputs.iter().map(|i| i.datatype).collect();
        assert_eq!(
            dts,
            [
                Datatype::Fp64,
                Datatype::Int32,
                Datatype::Int64,
                Datatype::Bool
            ]
        );
        // All four inputs share the dim_param "N".
        assert_eq!(typed.symbols, 1);
    }

    #[test]
    fn errors_name_model_file_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        let spec = BuiltinModelSpec::new(ModelName::parse("broken").unwrap(), dir.path());
        let e = load(&spec).unwrap_err().to_string();
        assert!(e.contains("'broken'") && e.contains("model.onnx"), "{e}");
        std::fs::write(spec.model_file(), b"not a model").unwrap();
        let e = load(&spec).unwrap_err().to_string();
        assert!(
            e.contains("model.onnx") && e.contains("not an ONNX model"),
            "{e}"
        );
        std::fs::copy(fixture("iris-logreg").model_file(), spec.model_file()).unwrap();
        std::fs::write(spec.settings_file(), "max_batch: 3\n").unwrap();
        let e = load(&spec).unwrap_err().to_string();
        assert!(e.contains("model.yaml") && e.contains("max_batch"), "{e}");
    }

    #[test]
    fn yaml_settings_apply() {
        let dir = tempfile::tempdir().unwrap();
        let spec = BuiltinModelSpec::new(ModelName::parse("iris").unwrap(), dir.path());
        std::fs::copy(fixture("iris-logreg").model_file(), spec.model_file()).unwrap();
        std::fs::write(
            spec.settings_file(),
            "version: 7\nmax_batch_size: 2\nlabels: [setosa, versicolor, virginica]\n",
        )
        .unwrap();
        let m = load(&spec).unwrap();
        assert_eq!(m.version, "7");
        assert_eq!(m.max_batch_size, Some(2));
        assert_eq!(
            m.outputs[1].class_labels,
            Some(ClassLabels::Text(vec![
                "setosa".into(),
                "versicolor".into(),
                "virginica".into()
            ]))
        );
        std::fs::write(spec.settings_file(), "labels: [a, b]\n").unwrap();
        let e = load(&spec).unwrap_err().to_string();
        assert!(e.contains("2 given") && e.contains("3 classes"), "{e}");
    }
}
