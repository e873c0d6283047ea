//! A loaded model: its optimized tract plan and the metadata the protocols
//! report and validate against. Immutable once built; shared by `Arc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use modelgate_core::ModelName;
use tract_onnx::prelude::{TValue, TVec, TractResult, TypedRunnableModel, TypedSimpleState};

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
    pub(crate) fingerprint: Fingerprint,
    /// What a small run of this model costs, learnt from its runs.
    pub(crate) cost: RunCost,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// Runs the plan on inputs already validated and ordered like
    /// `self.inputs`. Blocking and CPU-bound: call it on the inference pool.
    pub fn run(
        &self,
        ctx: &mut WorkerContext,
        inputs: TVec<TValue>,
    ) -> Result<Vec<OutputTensor>, String> {
        let elements = inputs.iter().map(|v| v.len()).sum();
        let start = Instant::now();
        let outs = ctx.run(&self.plan, inputs).map_err(|e| format!("{e:#}"))?;
        self.cost.record(elements, start.elapsed());
        outs.iter()
            .enumerate()
            .map(|(index, v)| {
                Ok(OutputTensor {
                    index,
                    shape: v.shape().to_vec(),
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

/// Requests of at most this many input elements may run inline.
pub const INLINE_MAX_ELEMENTS: usize = 1024;
/// ... if a small run of the model takes at most this long on average.
pub const INLINE_MAX_NANOS: u64 = 50_000;
const UNKNOWN: u64 = u64::MAX;

/// The average time (an exponential moving average, in ns) a run of a
/// small request takes. A request may run inline on the I/O thread, skipping
/// the hand-off to the inference pool, when it is small and the model is
/// known to be fast; anything else, and the first runs, go to the pool.
/// A model that turns slow is sent back to the pool by its next runs.
#[derive(Debug)]
pub(crate) struct RunCost {
    small_nanos: AtomicU64,
}

impl Default for RunCost {
    fn default() -> Self {
        RunCost {
            small_nanos: AtomicU64::new(UNKNOWN),
        }
    }
}

impl RunCost {
    /// Whether a request of `elements` input elements may run inline.
    pub fn inline_ok(&self, elements: usize) -> bool {
        elements <= INLINE_MAX_ELEMENTS
            && self.small_nanos.load(Ordering::Relaxed) <= INLINE_MAX_NANOS
    }

    /// Records one run (a racy read-modify-write: an average, not a count).
    pub fn record(&self, elements: usize, took: std::time::Duration) {
        if elements > INLINE_MAX_ELEMENTS {
            return;
        }
        // A sample counts for at most twice the limit: one run stretched by
        // a preemption (wall time) must not send a fast model to the pool
        // for the next hundred requests; a slow model's average still ends
        // above the limit.
        let ns = u64::try_from(took.as_nanos())
            .unwrap_or(u64::MAX)
            .min(2 * INLINE_MAX_NANOS);
        let old = self.small_nanos.load(Ordering::Relaxed);
        let new = if old == UNKNOWN {
            ns
        } else {
            (old.saturating_mul(7).saturating_add(ns)) / 8
        };
        self.small_nanos.store(new, Ordering::Relaxed);
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
    pub const fn new() -> WorkerContext {
        WorkerContext { states: Vec::new() }
    }

    /// How many states are cached.
    #[cfg(test)]
    pub fn cached(&self) -> usize {
        self.states.len()
    }

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
    fn run_cost_learns_which_requests_may_run_inline() {
        use std::time::Duration;
        let c = RunCost::default();
        assert!(!c.inline_ok(8), "unknown cost: the pool");
        c.record(8, Duration::from_micros(10));
        assert!(c.inline_ok(8));
        assert!(
            !c.inline_ok(INLINE_MAX_ELEMENTS + 1),
            "large input: the pool"
        );
        // A large run does not count; slow small runs send the model back.
        c.record(INLINE_MAX_ELEMENTS + 1, Duration::from_secs(1));
        assert!(c.inline_ok(8));
        // One preempted run does not; a model that stays slow does.
        c.record(8, Duration::from_millis(20));
        assert!(c.inline_ok(8));
        for _ in 0..8 {
            c.record(8, Duration::from_micros(200));
        }
        assert!(!c.inline_ok(8));
        c.record(8, Duration::from_secs(u64::MAX));
        assert!(!c.inline_ok(8));
        // A model runs record their cost.
        let m = load(&fixture("iris-logreg")).unwrap();
        assert!(!m.cost.inline_ok(8));
        m.run(&mut WorkerContext::new(), rows(2)).unwrap();
        assert_ne!(m.cost.small_nanos.load(Ordering::Relaxed), UNKNOWN);
    }

    #[test]
    fn one_cached_state_serves_every_batch_size() {
        let m = load(&fixture("iris-logreg")).unwrap();
        let mut ctx = WorkerContext::default();
        for n in [1, 2, 7, 2, 1] {
            let out = m.run(&mut ctx, rows(n)).unwrap();
            assert_eq!(out[0].shape, vec![n]);
            assert_eq!(out[1].shape, vec![n, 3]);
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
