//! What the rate-limit step reads from an OpenAI request body (its token
//! estimate, whether it streams) and from an answer (`usage`), and the one
//! change it makes to a streamed request: `stream_options.include_usage`.

use modelgate_limit::plan::{Estimate, Usage};
use serde_json::Value;

use crate::openai_body::Object;

/// Tokens added per chat message for its role and framing.
const PER_MESSAGE: u64 = 4;

/// The request as the step sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub estimate: Estimate,
    /// `stream: true`.
    pub stream: bool,
    /// The client asked for the final usage chunk itself.
    pub wants_usage: bool,
}

impl Default for Asked {
    /// Nothing to count (a body that could not be read).
    fn default() -> Self {
        Self {
            estimate: Estimate {
                input: 0,
                output: 0,
            },
            stream: false,
            wants_usage: false,
        }
    }
}

fn text_chars(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(a) => a.iter().map(text_chars).sum(),
        Value::Object(o) => o.get("text").map_or(0, text_chars),
        _ => 0,
    }
}

/// Reads the estimate from an OpenAI body: input ≈ characters / 4 (+ a few
/// per message), output = `max_completion_tokens` / `max_tokens`, else the
/// configured default (0 for embeddings).
pub fn asked(o: &Object, default_max_tokens: u64) -> Asked {
    let (chars, framing) = if let Some(Value::Array(msgs)) = o.get("messages") {
        let chars = msgs
            .iter()
            .map(|m| m.get("content").map_or(0, text_chars))
            .sum();
        (chars, PER_MESSAGE * msgs.len() as u64)
    } else {
        let chars = o
            .get("prompt")
            .or_else(|| o.get("input"))
            .map_or(0, text_chars);
        (chars, 0)
    };
    let generates = o.contains_key("messages") || o.contains_key("prompt");
    let max = o
        .get("max_completion_tokens")
        .or_else(|| o.get("max_tokens"))
        .and_then(Value::as_u64);
    let output = match (generates, max) {
        (_, Some(n)) => n,
        (true, None) => default_max_tokens,
        (false, None) => 0,
    };
    let stream = o.get("stream").and_then(Value::as_bool) == Some(true);
    let wants_usage = o
        .get("stream_options")
        .and_then(|s| s.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    Asked {
        estimate: Estimate {
            input: chars.div_ceil(4) + framing,
            output,
        },
        stream,
        wants_usage,
    }
}

/// Sets `stream_options.include_usage: true` (other options kept); `false`
/// when `stream_options` is there but not an object (left alone).
pub fn ask_usage(o: &mut Object) -> bool {
    let opts = o
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Object::new()));
    match opts.as_object_mut() {
        Some(opts) => {
            opts.insert("include_usage".into(), Value::Bool(true));
            true
        }
        None => false,
    }
}

/// `usage` of an answer (or of one stream chunk), if it has one.
pub fn usage(v: &Value) -> Option<Usage> {
    let u = v.get("usage")?.as_object()?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let prompt = n("prompt_tokens").or_else(|| n("input_tokens"))?;
    let completion = n("completion_tokens")
        .or_else(|| n("output_tokens"))
        .unwrap_or(0);
    let cached = u
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some(Usage {
        prompt,
        completion,
        cached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai_body::OpenAiBody;

    #[test]
    fn chat_estimate_counts_text_and_max_tokens() {
        let obj = |b: &'static str| {
            OpenAiBody::new(bytes::Bytes::from_static(b.as_bytes()))
                .json()
                .unwrap()
                .clone()
        };
        let a = asked(
            &obj(
                r#"{"model":"m","messages":[{"role":"user","content":"Say something about Kubernetes."}],"max_tokens":1000}"#,
            ),
            4096,
        );
        assert_eq!(
            a.estimate,
            Estimate {
                input: 8 + 4,
                output: 1000
            }
        );
        assert!(!a.stream);
        let a = asked(&obj(r#"{"model":"m","messages":[],"stream":true}"#), 50);
        assert_eq!(a.estimate.output, 50);
        assert!(a.stream && !a.wants_usage);
        let a = asked(&obj(r#"{"model":"m","input":"abcdefgh"}"#), 50);
        assert_eq!(
            a.estimate,
            Estimate {
                input: 2,
                output: 0
            }
        );
    }

    #[test]
    fn include_usage_is_added_and_usage_read() {
        let parse = |b: &'static str| {
            OpenAiBody::new(bytes::Bytes::from_static(b.as_bytes()))
                .json()
                .unwrap()
                .clone()
        };
        let mut v = parse(r#"{"model":"m","stream":true,"stream_options":{"x":1}}"#);
        assert!(ask_usage(&mut v));
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
        let mut odd = parse(r#"{"stream_options":3}"#);
        assert!(!ask_usage(&mut odd));
        let u = usage(
            &serde_json::json!({"usage":{"prompt_tokens":9,"completion_tokens":3,
            "prompt_tokens_details":{"cached_tokens":4}}}),
        )
        .unwrap();
        assert_eq!(
            u,
            Usage {
                prompt: 9,
                completion: 3,
                cached: 4
            }
        );
        assert!(usage(&serde_json::json!({"usage":null})).is_none());
    }
}
