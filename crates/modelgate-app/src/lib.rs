//! Wiring: builds the request pipeline in flow order (see `docs/pipeline.md`),
//! serves it on the configured listeners with the admin endpoints beside it,
//! and applies configuration and key-store changes while running.

mod adapter;
mod admin;
mod backend;
mod body;
mod builtin;
mod check;
mod decide;
mod facts;
mod finish;
mod forward;
mod forward_auth;
mod gateway;
mod grpc_reply;
mod local;
mod openai_body;
mod pipeline;
mod ratelimit;
mod reload;
mod run;
mod signin;
mod stream_log;
mod wristband;

/// Pure parsers of request bytes, public for the fuzz targets in `fuzz/`.
#[doc(hidden)]
pub mod parsers {
    pub use crate::body::{grpc_first_model, openai_model};
}

pub use adapter::{Adapter, Answer, Checked};
pub use check::check_startable;
pub use decide::{
    Ask, BodyModel, Claimed, Decider, Decision, Explainer, GivenModel, Identity, Listeners, NoBody,
};
pub use pipeline::{BuildError, Pipeline};
pub use run::{Addon, OnReady, StartError, Started, run, run_with, run_with_addons};
