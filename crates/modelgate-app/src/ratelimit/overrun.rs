//! `limits.on_overrun: cut`: how far a stream may go. Each token or budget
//! counter of the reservation may reach what the reservation charged plus the
//! headroom the counter had left after it (never past its limit). As the
//! stream's events pass, its usage so far — the upstream's usage chunk when
//! one came, else output ≈ characters of `choices[].delta.content` /
//! `reasoning_content` / `text` ÷ 4 — is charged to each counter on paper;
//! the first event that would take one past its allowance is not sent, and
//! the stream ends with an OpenAI-shaped error event and `data: [DONE]`.

use bytes::Bytes;
use modelgate_config::cost::show_usd;
use modelgate_limit::plan::{Measure, Planned, Usage};
use serde_json::Value;

/// The reservation's allowances, and the stream's usage so far.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Token and budget counters with what each may reach for this request.
    allow: Vec<(Planned, u64)>,
    /// Prompt tokens as estimated (the usage chunk's replace them).
    input: u64,
    /// Characters of output text sent.
    chars: u64,
    /// The last usage the upstream reported, and the characters sent by
    /// then (it counts them).
    reported: Option<(Usage, u64)>,
    cached_permille: u64,
}

/// Which counter a stream would have passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Over {
    planned: Box<Planned>,
}

impl Watch {
    /// The allowances of a granted reservation (`remaining[i]` is counter
    /// `i`'s headroom after it); `None` when no token or budget counter
    /// applies.
    pub fn new(
        planned: &[Planned],
        remaining: &[u64],
        input: u64,
        cached_permille: u64,
    ) -> Option<Self> {
        let allow: Vec<(Planned, u64)> = planned
            .iter()
            .zip(remaining)
            .filter(|(p, _)| !matches!(p.measure, Measure::Requests | Measure::Concurrent))
            .map(|(p, left)| {
                let most = p.charge.amount.saturating_add(*left).min(p.charge.limit);
                (p.clone(), most)
            })
            .collect();
        (!allow.is_empty()).then_some(Self {
            allow,
            input,
            chars: 0,
            reported: None,
            cached_permille,
        })
    }

    /// The usage sent so far, as counted.
    pub fn usage(&self) -> Usage {
        self.projected(self.chars, self.reported)
    }

    fn projected(&self, chars: u64, reported: Option<(Usage, u64)>) -> Usage {
        match reported {
            Some((u, by_then)) => Usage {
                completion: u.completion + chars.saturating_sub(by_then).div_ceil(4),
                ..u
            },
            None => Usage {
                prompt: self.input,
                completion: chars.div_ceil(4),
                cached: 0,
            },
        }
    }

    /// Counts one event (its JSON, and the usage it reports) if it may be
    /// sent; `Err` names the counter it would pass. Events without output
    /// text always pass.
    pub fn admit(&mut self, v: &Value, reported: Option<Usage>) -> Result<(), Over> {
        let chars = self.chars + output_chars(v);
        let reported = reported.map(|u| (u, chars)).or(self.reported);
        if chars > self.chars {
            let next = self.projected(chars, reported);
            if let Some((p, _)) = self.allow.iter().find(|(p, most)| {
                p.charged(&next, self.cached_permille)
                    .is_some_and(|c| c > *most)
            }) {
                return Err(Over {
                    planned: Box::new(p.clone()),
                });
            }
        }
        self.chars = chars;
        self.reported = reported;
        Ok(())
    }
}

impl Over {
    /// The limit's words, e.g. `tokens per minute for this key`.
    pub fn what(&self) -> &str {
        &self.planned.what
    }

    /// The SSE error event that ends a cut stream, in OpenAI's error shape,
    /// followed by `data: [DONE]`.
    pub fn event(&self) -> Bytes {
        let p = &self.planned;
        let (kind, message) = match p.measure {
            Measure::Spend(_) => (
                "insufficient_quota",
                format!(
                    "budget exceeded: {} of {} reached; the answer was cut (limits.on_overrun: cut)",
                    p.what,
                    show_usd(p.charge.limit)
                ),
            ),
            _ => (
                "rate_limit_exceeded",
                format!(
                    "Rate limit reached: {} (limit {}); the answer was cut (limits.on_overrun: cut)",
                    p.what, p.charge.limit
                ),
            ),
        };
        let body = serde_json::json!({
            "error": {"message": message, "type": kind, "param": null, "code": kind}
        });
        Bytes::from(format!("data: {body}\n\ndata: [DONE]\n\n"))
    }
}

/// Characters of output text in one stream chunk.
pub(super) fn output_chars(v: &Value) -> u64 {
    let Some(choices) = v.get("choices").and_then(Value::as_array) else {
        return 0;
    };
    let len = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, |s| s.chars().count());
    choices
        .iter()
        .map(|c| {
            let d = c.get("delta");
            len(d.and_then(|d| d.get("content")))
                + len(d.and_then(|d| d.get("reasoning_content")))
                + len(c.get("text"))
        })
        .sum::<usize>() as u64
}

#[cfg(test)]
mod tests;
