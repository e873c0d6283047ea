//! The proxy backend: forwards an authorized request to a model server over a
//! pooled connection, streaming bodies both ways, under a deadline, with the
//! headers cleaned on the way.

pub mod headers;
pub mod limit;
pub mod openai;
mod target;
pub mod trailers;
mod worker;

pub use target::{Forwarded, UpstreamTarget};
pub use worker::{pin_current_thread, set_worker_count};
