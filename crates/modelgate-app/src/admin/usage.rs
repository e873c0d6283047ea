//! `GET /admin/api/usage`: each active key's counters in the current
//! windows (requests, tokens, leases), read from the rate-limit step's own
//! store — in process or Redis — so it shows what the step enforces.

use modelgate_core::Reject;

use super::console::Console;

pub(super) async fn usage(c: &Console) -> Result<Vec<crate::ratelimit::KeyUsage>, Reject> {
    let p = c.shared.pipeline.load_full();
    let Some(l) = &p.limiter else {
        return Err(Reject::NotFound(
            "no `limits:` section is configured, so nothing is counted".into(),
        ));
    };
    l.key_usage().await.map_err(|e| Reject::Unavailable {
        message: format!("the counters cannot be read: {e}"),
        retry_after_secs: Some(1),
    })
}
