//! The lease of a V1/V2 answer (REST or gRPC): its request's concurrency
//! lease is held while the answer's body (trailers included) is sent, and
//! released when it ends, fails or is dropped (client gone).

use modelgate_core::BoxBody;
use modelgate_limit::plan::Outcome;

use super::Held;
use crate::on_end::{Observed, Observer};

struct Lease(Held);

impl Observer for Lease {
    fn end(self) {
        self.0.settle(Outcome::Refund);
    }
}

/// `body`, holding `held` until it ends.
pub(super) fn until_end(body: BoxBody, held: Held) -> Observed<impl Observer> {
    Observed::new(body, Lease(held))
}
