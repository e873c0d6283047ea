//! The proxy backend: forwards an authorized request to a model server over a
//! pooled connection, streaming bodies both ways, under a deadline, with the
//! headers cleaned on the way.

pub mod headers;
pub mod limit;
mod target;

pub use target::{Forwarded, UpstreamTarget};
