//! The load-time gate of the native kernel: it serves a model only after
//! giving tract's answers on probe inputs (labels equal, scores within
//! float rounding); any difference leaves the model on tract.

use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::{IntoTValue, Tensor, TypedRunnableModel, tvec};

use super::LinearKernel;
use crate::model::{Dim, InputSpec, OutputSpec};
use crate::{Datatype, TensorData};

/// Probe rows when the batch dimension is variable.
const PROBE_ROWS: usize = 7;

/// The kernel for `graph`, if it is linear and agrees with `plan`.
pub(crate) fn checked_kernel(
    graph: &pb::GraphProto,
    inputs: &[InputSpec],
    outputs: &[OutputSpec],
    plan: &Arc<TypedRunnableModel>,
) -> Option<LinearKernel> {
    let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
    let kernel = LinearKernel::from_graph(graph, &names)?;
    let [input] = inputs else { return None };
    let rows = match input.dims.as_slice() {
        [Dim::Var(_), Dim::Fixed(f)] if *f == kernel.features => PROBE_ROWS,
        [Dim::Fixed(n), Dim::Fixed(f)] if *f == kernel.features && (1..=64).contains(n) => *n,
        _ => return None,
    };
    if input.datatype != Datatype::Fp32 {
        return None;
    }
    // Several probes: one landing on a near-tie is declined, not failed.
    let mut served = 0;
    for seed in 0..4 {
        let len = rows * kernel.features;
        let x = probe(len * (seed + 1));
        match agrees(&kernel, outputs, plan, &x[len * seed..], rows) {
            Ok(true) => served += 1,
            Ok(false) => {}
            Err(why) => {
                tracing::warn!(why, "native linear kernel differs from tract; using tract");
                return None;
            }
        }
    }
    (served > 0).then_some(kernel)
}

/// Deterministic values spread over [-4, 8), a typical feature range.
pub(crate) fn probe(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (h % 1200) as f32 / 100.0 - 4.0
        })
        .collect()
}

/// Whether the kernel gives tract's outputs on `x`: `Ok(false)` when it
/// declines them (tract would run), an error saying where it differs.
pub(crate) fn agrees(
    kernel: &LinearKernel,
    outputs: &[OutputSpec],
    plan: &Arc<TypedRunnableModel>,
    x: &[f32],
    rows: usize,
) -> Result<bool, String> {
    let tensor = Tensor::from_shape(&[rows, kernel.features], x).map_err(|e| e.to_string())?;
    let values = tvec![tensor.into_tvalue()];
    let Some(mine) = kernel.run(&values) else {
        return Ok(false);
    };
    let theirs = plan
        .spawn()
        .and_then(|mut state| state.run(values))
        .map_err(|e| format!("{e:#}"))?;
    if mine.len() != theirs.len() || mine.len() != outputs.len() {
        return Err("output count".into());
    }
    for ((m, t), spec) in mine.iter().zip(&theirs).zip(outputs) {
        let name = &spec.name;
        if m.shape.as_slice() != t.shape() {
            return Err(format!(
                "output '{name}': shape {:?} vs {:?}",
                m.shape,
                t.shape()
            ));
        }
        let t = TensorData::from_tract(t)?;
        if m.data.datatype() != spec.datatype || t.datatype() != spec.datatype {
            return Err(format!("output '{name}': datatype"));
        }
        let same = match (&m.data, &t) {
            (TensorData::Fp32(a), TensorData::Fp32(b)) => a
                .iter()
                .zip(b)
                .all(|(a, b)| (a - b).abs() <= 1e-5 + 1e-4 * b.abs()),
            (a, b) => a == b,
        };
        if !same {
            return Err(format!("output '{name}': values"));
        }
    }
    Ok(true)
}
