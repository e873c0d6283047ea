//! Running a small inference inline on the calling (I/O) thread: for a model
//! as small as a linear classifier, handing the job to the inference pool and
//! waking the caller back costs more than the run itself. Whether a request
//! qualifies is [`crate::model::RunCost::inline_ok`]'s call; large inputs and
//! slow models always go to the pool.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tract_onnx::prelude::{TValue, TVec};

use crate::OutputTensor;
use crate::model::{LoadedModel, WorkerContext};

/// This thread's cached tract states. Never dropped: a thread-local's
/// destructor runs while the thread's other locals (tract's among them) are
/// being torn down, so the few cached states of an exiting thread are left
/// to the process (the I/O threads live as long as it does).
struct Local(RefCell<ManuallyDrop<WorkerContext>>);

thread_local! {
    static CONTEXT: Local = const { Local(RefCell::new(ManuallyDrop::new(WorkerContext::new()))) };
}

/// Runs `model` on this thread. `Err(None)` if the job panicked (the cached
/// states are discarded then).
pub fn run(
    model: &LoadedModel,
    inputs: TVec<TValue>,
) -> Result<Result<Vec<OutputTensor>, String>, ()> {
    CONTEXT.with(|local| match local.0.try_borrow_mut() {
        Ok(mut ctx) => {
            let ctx: &mut WorkerContext = &mut ctx;
            match catch_unwind(AssertUnwindSafe(|| model.run(ctx, inputs))) {
                Ok(r) => Ok(r),
                Err(_) => {
                    *ctx = WorkerContext::new();
                    Err(())
                }
            }
        }
        // Not reachable (a run does not re-enter), but never a panic: a
        // throwaway context.
        Err(_) => catch_unwind(AssertUnwindSafe(|| {
            model.run(&mut WorkerContext::new(), inputs)
        }))
        .map_err(|_| ()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TensorData;
    use crate::load::{load, tests::fixture};
    use tract_onnx::prelude::{IntoTValue, Tensor, tvec};

    #[test]
    fn runs_on_this_thread_and_reuses_its_state() {
        let m = load(&fixture("iris-logreg")).unwrap();
        let rows = [6.8f32, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6];
        for _ in 0..3 {
            let input = tvec![Tensor::from_shape(&[2, 4], &rows).unwrap().into_tvalue()];
            let out = run(&m, input).unwrap().unwrap();
            assert_eq!(out[0].data, TensorData::Int64(vec![1, 1]));
        }
        CONTEXT.with(|l| assert_eq!(l.0.borrow().cached(), 1));
    }
}
