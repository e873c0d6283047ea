//! The rate-limit step (pipeline step between authorization and the backend):
//! counters for requests, tokens, concurrency and spend, reserved before the
//! backend call and settled when the upstream's usage is known.
//!
//! [`store`] is the contract every counter store meets (in-process, Redis);
//! [`plan`] picks the counters a request touches and settles them;
//! [`budget`] holds the spend windows; [`report`] the usage rows;
//! [`local`] counts in process; [`redis`] keeps the counters in Redis, shared by every replica.

pub mod budget;
pub mod local;
pub mod plan;
pub mod redis;
pub mod report;
pub mod store;

pub use local::LocalStore;
