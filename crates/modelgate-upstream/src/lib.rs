//! The proxy backend: forwards an authorized request to a model server over a
//! pooled connection, streaming bodies both ways, under a deadline, with the
//! headers cleaned on the way; model aliases, injected upstream credentials,
//! health-aware round robin with retries, and stream idle timeouts.

pub mod alias;
mod answer;
pub mod bare;
mod grpc_alias;
mod h1pool;
/// The upstream HTTP/1 wire format (response head and chunked body parsing), public for `fuzz/`.
pub use h1pool::codec as h1wire;
pub mod headers;
mod health;
pub mod limit;
pub mod metrics;
pub mod openai;
mod replay;
mod sse_alias;
pub mod stream;
mod target;
pub mod trailers;
mod worker;

pub use grpc_alias::RenameFirstMessage;
pub use replay::RequestBody;
pub use target::{ForwardOpts, Forwarded, Outgoing, UpstreamTarget};
pub use worker::{pin_current_thread, set_worker_count};
