//! [`Runtime`]: the handle the gateway holds. Routes model-scoped requests of
//! each protocol to its module and owns the models and the inference pool.

use std::sync::Arc;

use http::{HeaderMap, Response};
use modelgate_core::{BoxBody, ModelName, Operation, Protocol, Reject};

use crate::infer::Checked;
use crate::model::LoadedModel;
use crate::pool::{Pool, Refused};
use crate::reload::{ModelStatus, Registry};
use crate::{BuiltinModelSpec, OutputTensor, ReloadEvent, RuntimeError, RuntimeSettings};

/// Multiply-adds up to which a native-kernel run happens on the calling
/// (I/O) thread: a few microseconds, less than the pool hand-off.
const INLINE_WORK: usize = 16 * 1024;

/// A model-scoped request the gateway has already authenticated and authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinCall {
    /// [`Protocol::V1`] or [`Protocol::V2`] (gRPC goes to [`Runtime::handle_grpc`]).
    pub protocol: Protocol,
    pub operation: Operation,
    pub model: ModelName,
    /// The version in the path (`/v2/models/{m}/versions/{v}/…`), if any.
    pub version: Option<String>,
}

/// The built-in model runtime. Cheap to clone; all clones share the models
/// and the inference threads, which stop when the last clone is dropped.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    pool: Pool,
    settings: RuntimeSettings,
}

impl Runtime {
    /// Loads every model and starts the inference threads. The error names
    /// the model, the file and the cause. Blocking (reads and optimizes the
    /// models): call it before serving or via `spawn_blocking`, as
    /// [`Runtime::update`] and [`Runtime::reload_changed`].
    pub fn start(
        specs: Vec<BuiltinModelSpec>,
        settings: RuntimeSettings,
    ) -> Result<Runtime, RuntimeError> {
        settings.validate()?;
        let registry = Registry::start(specs)?;
        let pool =
            Pool::start(settings.threads, settings.queue_depth).map_err(RuntimeError::Threads)?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                registry,
                pool,
                settings,
            }),
        })
    }

    /// Applies a new model list (config reload): unchanged specs keep their
    /// loaded model, new ones are loaded, missing ones dropped. All or
    /// nothing: on error the previous set keeps serving.
    pub fn update(&self, specs: Vec<BuiltinModelSpec>) -> Result<(), RuntimeError> {
        self.inner.registry.update(specs)
    }

    /// Reloads models whose `model.onnx` or `model.yaml` changed on disk. Call
    /// it from a timer or a file watcher. A file that fails to load keeps
    /// the previous model serving; the failure is returned (once per broken
    /// file state) and shown by [`Runtime::status`] and V2 model metadata.
    pub fn reload_changed(&self) -> Vec<ReloadEvent> {
        self.inner.registry.reload_changed()
    }

    /// Whether `model` is configured and can serve (a configured model always
    /// has a loaded version).
    pub fn is_ready(&self, model: &ModelName) -> bool {
        self.inner.registry.get(model).is_some()
    }

    /// The configured models, sorted.
    pub fn models(&self) -> Vec<ModelName> {
        self.inner.registry.names()
    }

    /// Readiness, serving version and last reload error of `model`.
    pub fn status(&self, model: &ModelName) -> Option<ModelStatus> {
        let entry = self.inner.registry.get(model)?;
        Some(ModelStatus {
            ready: true,
            version: entry.model().version.clone(),
            reload_error: entry.reload_error(),
        })
    }

    /// The settings the runtime was started with.
    pub fn settings(&self) -> &RuntimeSettings {
        &self.inner.settings
    }

    /// Serves one model-scoped REST request (KServe V1 or OIP V2).
    /// Server-level operations (live, ready, server metadata, model lists)
    /// are the gateway's.
    pub async fn handle(
        &self,
        call: BuiltinCall,
        headers: &HeaderMap,
        body: BoxBody,
    ) -> Result<Response<BoxBody>, Reject> {
        match call.protocol {
            Protocol::V1 => crate::v1::handle(self, &call, headers, body).await,
            Protocol::V2 => crate::v2::handle(self, &call, headers, body).await,
            other => Err(Reject::NotFound(format!(
                "model '{}' does not serve the {other} protocol",
                call.model
            ))),
        }
    }

    /// Serves one complete gRPC exchange of `inference.GRPCInferenceService`
    /// (all six RPCs). Errors travel as gRPC statuses in the response.
    pub async fn handle_grpc(&self, req: http::Request<BoxBody>) -> Response<BoxBody> {
        crate::grpc::serve(self, req).await
    }

    /// The model new requests for `name` (and `version`, if given) run on.
    pub(crate) fn lookup(
        &self,
        name: &ModelName,
        version: Option<&str>,
    ) -> Result<Arc<LoadedModel>, Reject> {
        let entry =
            self.inner.registry.get(name).ok_or_else(|| {
                Reject::NotFound(format!("Model with name {name} does not exist."))
            })?;
        let model = entry.model();
        match version {
            Some(v) if !v.is_empty() && v != model.version => Err(Reject::NotFound(format!(
                "Model with name {name} and version {} does not exist.",
                crate::infer::shown(v)
            ))),
            _ => Ok(model),
        }
    }

    /// Runs `model`: a small native-kernel run right here, anything else on
    /// the inference pool (503 with `Retry-After` when full).
    pub(crate) async fn execute(
        &self,
        model: Arc<LoadedModel>,
        inputs: Checked,
    ) -> Result<(Arc<LoadedModel>, Vec<OutputTensor>), Reject> {
        if let Some(outputs) = run_inline(&model, &inputs) {
            drop(inputs);
            // Counts against tokio's cooperative budget, so a connection
            // sending request after request still lets other tasks run.
            tokio::task::coop::consume_budget().await;
            return Ok((model, outputs));
        }
        // Boxed: the pool's hand-off state stays out of every caller's future.
        Box::pin(self.execute_on_pool(model, inputs)).await
    }

    async fn execute_on_pool(
        &self,
        model: Arc<LoadedModel>,
        inputs: Checked,
    ) -> Result<(Arc<LoadedModel>, Vec<OutputTensor>), Reject> {
        let inputs = inputs.into_tract()?;
        let job = Arc::clone(&model);
        let pending = self
            .inner
            .pool
            .submit(move |ctx| job.run(ctx, inputs))
            .map_err(|r| Reject::Unavailable {
                message: match r {
                    Refused::Full => "the model server is busy; retry later".into(),
                    Refused::Closed => "the model server is shutting down".into(),
                },
                retry_after_secs: Some(1),
            })?;
        match pending.await {
            Ok(Ok(outputs)) => Ok((model, outputs)),
            Ok(Err(detail)) => Err(Reject::Internal {
                detail: format!("model '{}' failed: {detail}", model.name),
            }),
            Err(_) => Err(Reject::Internal {
                detail: format!("model '{}': inference job panicked", model.name),
            }),
        }
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.inner.settings.max_body_bytes
    }

    pub(crate) fn reload_error(&self, name: &ModelName) -> Option<String> {
        self.inner.registry.get(name)?.reload_error()
    }
}

/// A small run of the native kernel costs less than the pool hand-off: it
/// runs on the calling (I/O) thread and reads the request's elements in
/// place (no tract tensor is built). `None` when the pool must run it.
fn run_inline(model: &LoadedModel, inputs: &Checked) -> Option<Vec<OutputTensor>> {
    let kernel = model.native.as_ref()?;
    let (shape, x) = inputs.single_f32()?;
    let rows = kernel.rows_of(shape)?;
    if kernel.work(rows) > INLINE_WORK {
        return None;
    }
    kernel.eval(x, rows)
}
