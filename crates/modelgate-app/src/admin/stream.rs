//! Recent decisions, filtered by model, identity and decision: as a list, or
//! as a server-sent-event stream (the recent ones first, then live). Filters
//! are exact strings of bounded length; streams are capped in number and in
//! lifetime, a slow reader skips decisions instead of growing a queue.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use modelgate_audit::tap::TapEvent;
use modelgate_core::{BoxBody, BoxError, Reject};
use tokio::sync::{broadcast, mpsc};

use super::console::Console;

/// Longest filter value.
const MAX_FILTER: usize = 256;
/// A stream ends after this long (the browser's EventSource reconnects).
const LIFETIME: Duration = Duration::from_secs(600);
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Which decisions to show. Empty fields match everything.
#[derive(Default, Clone)]
pub(super) struct Filter {
    pub model: Option<String>,
    pub identity: Option<String>,
    pub decision: Option<&'static str>,
}

impl Filter {
    /// From a query string (`model=…&identity=…&decision=allow|deny|reject`).
    pub fn parse(query: Option<&str>) -> Result<Self, Reject> {
        let mut f = Filter::default();
        for (k, v) in super::html::form(query.unwrap_or_default().as_bytes()) {
            if v.is_empty() {
                continue;
            }
            if v.len() > MAX_FILTER {
                return Err(Reject::BadRequest(format!(
                    "{k}: at most {MAX_FILTER} bytes"
                )));
            }
            match k.as_str() {
                "model" => f.model = Some(v),
                "identity" => f.identity = Some(v),
                "decision" => {
                    f.decision = Some(match v.as_str() {
                        "allow" => "allow",
                        "deny" => "deny",
                        "reject" => "reject",
                        _ => {
                            return Err(Reject::BadRequest(
                                "decision: allow, deny or reject".into(),
                            ));
                        }
                    });
                }
                _ => {}
            }
        }
        Ok(f)
    }

    pub fn matches(&self, e: &TapEvent) -> bool {
        self.model
            .as_ref()
            .is_none_or(|m| e.model.as_ref() == Some(m))
            && self
                .identity
                .as_ref()
                .is_none_or(|i| e.identity.as_ref() == Some(i))
            && self.decision.is_none_or(|d| e.decision == d)
    }
}

/// The recent decisions that match, newest last.
pub(super) fn recent(c: &Console, f: &Filter) -> Vec<Arc<TapEvent>> {
    let (recent, _) = c.shared.metrics.tap.subscribe();
    recent.into_iter().filter(|e| f.matches(e)).collect()
}

fn sse(e: &TapEvent) -> Option<Bytes> {
    let json = serde_json::to_string(e).ok()?;
    Some(Bytes::from(format!("event: decision\ndata: {json}\n\n")))
}

/// The event stream.
pub(super) fn stream(c: &Console, f: Filter) -> Result<Response<BoxBody>, Reject> {
    let permit = c
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| Reject::Unavailable {
            message: "too many live decision streams are open".into(),
            retry_after_secs: Some(5),
        })?;
    let (recent, mut rx) = c.shared.metrics.tap.subscribe();
    let (tx, out) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tx.try_send(Bytes::from_static(b"retry: 2000\n\n"));
        for e in recent.iter().filter(|e| f.matches(e)) {
            if let Some(b) = sse(e) {
                let _ = tx.try_send(b);
            }
        }
        let end = tokio::time::sleep(LIFETIME);
        tokio::pin!(end);
        let mut tick = tokio::time::interval(KEEPALIVE);
        loop {
            let next = tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(e) if f.matches(&e) => sse(&e),
                    Ok(_) => None,
                    Err(broadcast::error::RecvError::Lagged(n)) => Some(Bytes::from(format!(": skipped {n}\n\n"))),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => Some(Bytes::from_static(b": keepalive\n\n")),
                () = &mut end => break,
                () = tx.closed() => break,
            };
            if let Some(b) = next
                && let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(b)
            {
                break;
            }
        }
    });
    let mut resp = Response::new(ChannelBody(out).boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// A response body fed by a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(model: Option<&str>, identity: Option<&str>, decision: &'static str) -> TapEvent {
        TapEvent {
            ts_ms: 0,
            request_id: "r".into(),
            method: "POST".into(),
            path: "/v2/models/iris/infer".into(),
            model: model.map(str::to_string),
            identity: identity.map(str::to_string),
            auth_method: None,
            decision,
            status: 401,
            reason: None,
            basis: None,
            policy: None,
            total_ms: 1.0,
        }
    }

    #[test]
    fn filters_match_exactly_and_empty_filters_match_all() {
        let f = Filter::parse(Some("model=iris&identity=alice&decision=deny")).unwrap();
        assert!(f.matches(&event(Some("iris"), Some("alice"), "deny")));
        assert!(!f.matches(&event(Some("iris"), Some("alice2"), "deny")));
        assert!(!f.matches(&event(Some("iris"), Some("alice"), "allow")));
        assert!(!f.matches(&event(None, Some("alice"), "deny")));
        let all = Filter::parse(Some("model=&identity=")).unwrap();
        assert!(all.matches(&event(None, None, "reject")));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(Filter::parse(Some("decision=maybe")).is_err());
        let long = format!("identity={}", "a".repeat(MAX_FILTER + 1));
        assert!(Filter::parse(Some(&long)).is_err());
    }
}
