//! Policy engine tests through the same steps as the gateway: normalise the
//! request head, route it, then decide (see `support`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bypass;
mod conformance;
mod principals;
mod props;
mod reach;
mod support;
mod templates;
