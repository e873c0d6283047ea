//! A streamed answer (SSE) seen by the rate-limit step: event by event, it
//! catches the upstream's `usage` chunk, drops it when modelgate (not the
//! client) asked for it, with `limits.on_overrun: cut` ends the stream once
//! it would pass its reservation's headroom ([`super::overrun`]), and
//! settles the reservation when the stream ends, fails or is dropped (client
//! gone, upstream dead) — exactly once.

use bytes::{Bytes, BytesMut};
use modelgate_core::body_rewrite::{Rewrite, Rewritten};
use modelgate_core::{BoxBody, BoxError};
use modelgate_limit::plan::{Outcome, Usage};
use serde_json::Value;

use super::Held;
use super::overrun::Watch;

/// Longest event kept while waiting for its end (larger ones pass unread).
const MAX_EVENT: usize = 1 << 20;

pub(super) struct UsageStream {
    held: Option<Held>,
    /// Drop the usage-only chunk (the client did not ask for it).
    strip: bool,
    /// Bytes of an event not yet ended by a blank line.
    partial: BytesMut,
    usage: Option<Usage>,
    /// With `on_overrun: cut`: how far the stream may go.
    watch: Option<Watch>,
    /// The stream was cut (the upstream's body is dropped).
    cut: bool,
}

impl UsageStream {
    pub(super) fn new(inner: BoxBody, mut held: Held, strip: bool) -> Rewritten<Self> {
        let watch = held.watch.take();
        let stream = Self {
            held: Some(held),
            strip,
            partial: BytesMut::new(),
            usage: None,
            watch,
            cut: false,
        };
        Rewritten::new(inner, stream)
    }

    /// Settles once with the last usage seen (recorded for the log and the
    /// metrics with the same numbers, unless already), or keeps the estimate.
    fn finish(&mut self) {
        if let Some(h) = self.held.take() {
            let outcome = match self.usage {
                Some(u) => {
                    h.observed(u);
                    Outcome::Used(u)
                }
                None => Outcome::Keep,
            };
            h.settle(outcome);
        }
    }

    /// Whether an event may hold a usage object (cheap test before parsing).
    fn may_hold_usage(ev: &[u8]) -> bool {
        contains(ev, b"\"usage\"")
            && !contains(ev, b"\"usage\":null")
            && !contains(ev, b"\"usage\": null")
    }

    /// One whole event (with its blank line): what goes on to the client.
    fn event(&mut self, ev: Bytes) -> Option<Bytes> {
        if self.watch.is_none() && !Self::may_hold_usage(&ev) {
            return Some(ev);
        }
        let Ok(text) = std::str::from_utf8(&ev) else {
            return Some(ev);
        };
        let data: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        let Ok(mut v) = serde_json::from_str::<Value>(&data) else {
            return Some(ev);
        };
        let used = super::request::usage(&v);
        if let Some(w) = &mut self.watch {
            if let Err(over) = w.admit(&v, used) {
                // Settle what was really sent, end the stream cleanly.
                let sent = w.usage();
                tracing::info!(
                    limit = %over.what(),
                    prompt_tokens = sent.prompt,
                    completion_tokens = sent.completion,
                    "stream cut at its rate-limit headroom (limits.on_overrun: cut)"
                );
                self.usage = Some(sent);
                self.cut = true;
                return Some(over.event());
            }
            if used.is_none() {
                return Some(ev);
            }
        }
        let Some(u) = used else {
            return Some(ev);
        };
        self.usage = Some(u);
        let only_usage = v
            .get("choices")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        // Recorded at once (the stream log may see the end before this body
        // is polled to it). A watched stream records here only a usage
        // carried without text (the final usage chunk); a running usage on
        // text chunks is recorded by the cut, or at the end.
        if (self.watch.is_none() || super::overrun::output_chars(&v) == 0)
            && let Some(h) = &self.held
        {
            h.observed(u);
        }
        if !self.strip {
            return Some(ev);
        }
        if only_usage {
            return None;
        }
        // Usage riding on a content chunk: send the chunk without it.
        if let Some(o) = v.as_object_mut() {
            o.insert("usage".into(), Value::Null);
        }
        Some(Bytes::from(format!("data: {v}\n\n")))
    }

    /// A frame's data: what goes on to the client now.
    fn feed(&mut self, data: Bytes) -> Option<Bytes> {
        // Fast path: whole events, none with usage, nothing to count.
        if self.watch.is_none()
            && self.partial.is_empty()
            && data.ends_with(b"\n\n")
            && !Self::may_hold_usage(&data)
        {
            return Some(data);
        }
        self.partial.extend_from_slice(&data);
        let mut out = BytesMut::new();
        while !self.cut
            && let Some(end) = find(&self.partial, b"\n\n")
        {
            let ev = self.partial.split_to(end + 2).freeze();
            if let Some(b) = self.event(ev) {
                out.extend_from_slice(&b);
            }
        }
        if self.cut {
            self.partial.clear();
        } else if self.partial.len() > MAX_EVENT {
            out.extend_from_slice(&self.partial.split());
        }
        (!out.is_empty()).then(|| out.freeze())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

impl Drop for UsageStream {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Rewrite for UsageStream {
    fn data(&mut self, data: Bytes) -> Result<Option<Bytes>, BoxError> {
        let out = self.feed(data);
        if self.cut {
            // The upstream's body is dropped next: its request ends.
            self.finish();
        }
        Ok(out)
    }

    /// The last event (if unfinished), then the settlement.
    fn flush(&mut self) -> Result<Option<Bytes>, BoxError> {
        let mut rest = None;
        if !self.partial.is_empty() {
            let tail = self.partial.split().freeze();
            rest = self.event(tail);
        }
        self.finish();
        Ok(rest)
    }

    /// Only once settled: the end must be polled, so that the usage is
    /// recorded before the stream log (outside this body) sees the end.
    fn holds(&self) -> bool {
        self.held.is_some()
    }

    fn cut(&self) -> bool {
        self.cut
    }

    fn failed(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests;
