//! A loaded model: its optimized tract plan and the metadata the protocols
//! report and validate against. Immutable once built; shared by `Arc`.

use std::sync::Arc;

use modelgate_core::ModelName;
use tract_onnx::prelude::{TValue, TVec, TractResult, TypedRunnableModel, TypedSimpleState};

use crate::linear::LinearKernel;
use crate::reload::Fingerprint;
use crate::{Datatype, OutputTensor, TensorData};

/// One dimension of a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// A variable dimension; inputs sharing a symbol index must agree on it.
    Var(usize),
}

/// A model input as the protocols describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub name: String,
    pub datatype: Datatype,
    pub dims: Vec<Dim>,
}

impl InputSpec {
    /// The OIP shape: variable dimensions are -1.
    pub fn shape(&self) -> Vec<i64> {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => i64::try_from(*n).unwrap_or(i64::MAX),
                Dim::Var(_) => -1,
            })
            .collect()
    }
}

/// Class labels of a classifier's probability output, from the ONNX ZipMap
/// node (`classlabels_int64s` / `classlabels_strings`) or `model.yaml` `labels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassLabels {
    Int(Vec<i64>),
    Text(Vec<String>),
}

impl ClassLabels {
    pub fn len(&self) -> usize {
        match self {
            ClassLabels::Int(v) => v.len(),
            ClassLabels::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model output as the protocols describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub name: String,
    pub datatype: Datatype,
    /// OIP shape: variable dimensions are -1.
    pub shape: Vec<i64>,
    /// Set on a ZipMap-fed probability output (served as FP32 `[N, C]`).
    pub class_labels: Option<ClassLabels>,
}

/// A model ready to run.
pub struct LoadedModel {
    pub name: ModelName,
    pub version: String,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    /// Number of distinct variable-dimension symbols in `inputs`.
    pub symbols: usize,
    /// The symbol of the first input's first dimension, if variable: the batch.
    pub batch_symbol: Option<usize>,
    pub max_batch_size: Option<usize>,
    pub(crate) plan: Arc<TypedRunnableModel>,
    /// A native evaluation of a linear graph, checked against `plan` at load.
    pub(crate) native: Option<LinearKernel>,
    pub(crate) fingerprint: Fingerprint,
    /// The fixed parts of its V2 answer, escaped once.
    pub(crate) v2_text: V2Text,
}

/// The parts of a V2 `/infer` answer that depend only on the model,
/// written as JSON once at load rather than escaped for every answer.
#[derive(Debug, Default)]
pub(crate) struct V2Text {
    /// `{"model_name":"…","model_version":"…"`
    pub head: Vec<u8>,
    /// Each output's name as a JSON string, in the model's output order.
    pub output_names: Vec<Vec<u8>>,
}

impl V2Text {
    pub fn new(name: &str, version: &str, outputs: &[OutputSpec]) -> Self {
        let mut head = b"{\"model_name\":".to_vec();
        crate::json_out::string(&mut head, name);
        head.extend_from_slice(b",\"model_version\":");
        crate::json_out::string(&mut head, version);
        let output_names = outputs
            .iter()
            .map(|o| {
                let mut v = Vec::new();
                crate::json_out::string(&mut v, &o.name);
                v
            })
            .collect();
        V2Text { head, output_names }
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("native", &self.native.is_some())
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// Runs the model on inputs already validated and ordered like
    /// `self.inputs`: the native kernel when it takes them, else the tract
    /// plan. Blocking and CPU-bound: call it on the inference pool.
    pub fn run(
        &self,
        ctx: &mut WorkerContext,
        inputs: TVec<TValue>,
    ) -> Result<Vec<OutputTensor>, String> {
        if let Some(outputs) = self.native.as_ref().and_then(|k| k.run(&inputs)) {
            return Ok(outputs);
        }
        self.run_plan(ctx, inputs)
    }

    /// Runs the tract plan (never the native kernel).
    pub(crate) fn run_plan(
        &self,
        ctx: &mut WorkerContext,
        inputs: TVec<TValue>,
    ) -> Result<Vec<OutputTensor>, String> {
        let outs = ctx.run(&self.plan, inputs).map_err(|e| format!("{e:#}"))?;
        outs.iter()
            .enumerate()
            .map(|(index, v)| {
                Ok(OutputTensor {
                    index,
                    shape: v.shape().into(),
                    data: TensorData::from_tract(v)?,
                })
            })
            .collect()
    }

    /// Index of the output called `name`.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|o| o.name == name)
    }
}

/// Execution states kept per inference thread, at most this many.
const CACHED_STATES: usize = 8;

/// What one inference thread keeps between jobs: reusable tract states of
/// the plans it ran lately (creating one per request costs allocations on the
/// hot path). Owned by the thread's loop, so it is dropped before the thread's
/// locals are torn down.
#[derive(Default)]
pub struct WorkerContext {
    states: Vec<TypedSimpleState>,
}

impl WorkerContext {
    /// Runs `plan` on the cached state for it (made on first use). States of
    /// plans no model references any more are dropped here, so a reloaded
    /// model's old plan does not linger.
    fn run(
        &mut self,
        plan: &Arc<TypedRunnableModel>,
        inputs: TVec<TValue>,
    ) -> TractResult<TVec<TValue>> {
        self.states.retain(|s| Arc::strong_count(s.plan()) > 1);
        let mut state = match self.states.iter().position(|s| Arc::ptr_eq(s.plan(), plan)) {
            Some(i) => self.states.swap_remove(i),
            None => plan.spawn()?,
        };
        let result = state.run(inputs);
        // A state whose run failed is not trusted again.
        if result.is_ok() {
            if self.states.len() >= CACHED_STATES {
                self.states.remove(0);
            }
            self.states.push(state);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load, tests::fixture};
    use tract_onnx::prelude::{IntoTValue, Tensor, tvec};

    fn rows(n: usize) -> TVec<TValue> {
        tvec![
            Tensor::from_shape(&[n, 4], &vec![5.0f32; n * 4])
                .unwrap()
                .into_tvalue()
        ]
    }

    #[test]
    fn one_cached_state_serves_every_batch_size() {
        // (The tract plan; the native linear kernel keeps no state.)
        let m = load(&fixture("iris-logreg")).unwrap();
        let mut ctx = WorkerContext::default();
        for n in [1, 2, 7, 2, 1] {
            let out = m.run_plan(&mut ctx, rows(n)).unwrap();
            assert_eq!(out[0].shape.as_slice(), [n]);
            assert_eq!(out[1].shape.as_slice(), [n, 3]);
            assert_eq!(out[0].data.len(), n);
        }
        assert_eq!(ctx.states.len(), 1);
        // A model that is gone (reloaded or removed) loses its cached state.
        drop(m);
        let other = load(&fixture("iris-rf")).unwrap();
        other.run(&mut ctx, rows(2)).unwrap();
        assert_eq!(ctx.states.len(), 1);
        assert!(Arc::ptr_eq(ctx.states[0].plan(), &other.plan));
    }
}
