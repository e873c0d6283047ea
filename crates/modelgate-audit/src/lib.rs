//! Audit: every request ends in exactly one [`Decision`] record — allowed,
//! denied or failed — written as a JSON line, and counted in [`Metrics`].

mod decision;
mod jsonl;
mod log;
mod metrics;
pub mod rate;
pub mod tap;

pub use decision::{
    Decision, ExternalNote, MicroUsd, Outcome, PolicyNote, Rule, TokenNote, WristbandNote,
    authorino_response,
};
pub use log::DecisionLog;
pub use metrics::Metrics;
