//! The built-in model runtime: loads small ONNX models (tract, pure Rust) and
//! serves them over KServe V1, OIP V2 REST and OIP V2 gRPC, after the gateway
//! has authenticated and authorized the request.
//!
//! Inference runs on a bounded pool of dedicated threads ([`RuntimeSettings`]);
//! models are swapped atomically on config update or file change
//! ([`Runtime::update`], [`Runtime::reload_changed`]).

mod binary;
mod datatype;
mod error;
mod grpc;
mod grpc_out;
mod http_io;
mod infer;
mod json_data;
mod json_out;
mod linear;
mod load;
mod model;
mod pool;
mod reload;
mod runtime;
mod settings;
mod tensor;
mod v1;
mod v2;
mod v2_request;

pub use datatype::Datatype;
pub use error::RuntimeError;
pub use grpc::SERVER_NAME;
pub use load::DEFAULT_VERSION;
pub use model::ClassLabels;
pub use reload::{ModelStatus, ReloadEvent};
pub use runtime::{BuiltinCall, Runtime};
pub use settings::{BuiltinModelSpec, MODEL_FILE, ModelSettings, RuntimeSettings, SETTINGS_FILE};
pub use tensor::{InputTensor, OutputTensor, TensorData};
pub use v2::PLATFORM;
#[doc(hidden)]
pub use v2_request::fast::readers_agree as v2_readers_agree;
