//! Wiring: builds the request pipeline in flow order (see `docs/pipeline.md`),
//! serves it on the configured listeners with the admin endpoints beside it,
//! and applies configuration and key-store changes while running.

mod admin;
mod body;
mod check;
mod facts;
mod finish;
mod forward;
mod gateway;
mod local;
mod pipeline;
mod reload;
mod run;

pub use check::check_startable;
pub use pipeline::{BuildError, Pipeline};
pub use run::{StartError, run};
