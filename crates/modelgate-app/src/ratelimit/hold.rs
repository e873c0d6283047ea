//! The lease of a V1/V2 answer (REST or gRPC): its request's concurrency
//! lease is held while the answer's body (trailers included) is sent, and
//! released when it ends, fails or is dropped (client gone).

use modelgate_core::BoxBody;
use modelgate_core::body_tap::{Observer, Tap};
use modelgate_limit::plan::Outcome;

use super::Held;

struct Lease(Held);

impl Observer for Lease {
    fn end(self) {
        self.0.settle(Outcome::Refund);
    }
}

/// `body`, holding `held` until it ends.
pub(super) fn until_end(body: BoxBody, held: Held) -> Tap<impl Observer> {
    Tap::new(body, Lease(held))
}
