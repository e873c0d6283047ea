//! An OpenAI request body, read once and parsed at most once: the steps that
//! read or change it (the rate-limit step's estimate and
//! `stream_options.include_usage`, the alias's `model`) share one JSON
//! object, and the body is serialised again once, only when one changed it.

use bytes::Bytes;
use modelgate_core::Reject;
use serde_json::Value;

/// A JSON object (an OpenAI request body).
pub type Object = serde_json::Map<String, Value>;

/// The body as received, and its parse once a step asked for it.
pub struct OpenAiBody {
    bytes: Bytes,
    parsed: Option<Result<Object, String>>,
    changed: bool,
}

impl OpenAiBody {
    pub fn new(bytes: Bytes) -> Self {
        Self {
            bytes,
            parsed: None,
            changed: false,
        }
    }

    /// The body as one JSON object (parsed on the first call); the error
    /// names the problem (not JSON, or not an object).
    pub fn json(&mut self) -> Result<&Object, String> {
        match self.parsed.get_or_insert_with(|| parse(&self.bytes)) {
            Ok(o) => Ok(o),
            Err(e) => Err(e.clone()),
        }
    }

    /// The object to change: the body will be serialised again.
    pub fn edit(&mut self) -> Result<&mut Object, String> {
        match self.parsed.get_or_insert_with(|| parse(&self.bytes)) {
            Ok(o) => {
                self.changed = true;
                Ok(o)
            }
            Err(e) => Err(e.clone()),
        }
    }

    /// Sets the top-level `model` (an alias: the upstream's name).
    pub fn rename_model(&mut self, upstream: &str) -> Result<(), Reject> {
        let o = self.edit().map_err(Reject::BadRequest)?;
        o.insert("model".into(), Value::String(upstream.into()));
        Ok(())
    }

    /// The bytes to send: as received, or serialised once if changed.
    pub fn into_bytes(self) -> Result<Bytes, Reject> {
        match (self.changed, self.parsed) {
            (true, Some(Ok(o))) => {
                serde_json::to_vec(&o)
                    .map(Bytes::from)
                    .map_err(|e| Reject::Internal {
                        detail: format!("the request body could not be serialised: {e}"),
                    })
            }
            _ => Ok(self.bytes),
        }
    }
}

fn parse(body: &[u8]) -> Result<Object, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err("the request body is not a JSON object".into()),
        Err(e) => Err(format!("the request body is not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod bench;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_body_is_sent_as_received_and_changes_are_serialised_once() {
        let raw = Bytes::from_static(br#"{"model":"a",  "messages":[]}"#);
        let mut b = OpenAiBody::new(raw.clone());
        assert_eq!(b.json().unwrap()["model"], "a");
        // Read only: the exact bytes go on (no reformatting).
        assert_eq!(b.into_bytes().unwrap(), raw);
        let mut b = OpenAiBody::new(raw);
        b.rename_model("upstream-a").unwrap();
        let out: Value = serde_json::from_slice(&b.into_bytes().unwrap()).unwrap();
        assert_eq!(out["model"], "upstream-a");
        assert_eq!(out["messages"], serde_json::json!([]));
    }

    #[test]
    fn non_object_bodies_are_named() {
        let mut b = OpenAiBody::new(Bytes::from_static(br#"["llama3"]"#));
        assert_eq!(
            b.json().unwrap_err(),
            "the request body is not a JSON object"
        );
        assert!(matches!(b.rename_model("x"), Err(Reject::BadRequest(_))));
        let mut b = OpenAiBody::new(Bytes::from_static(b"{\"model\":"));
        assert!(
            b.json()
                .unwrap_err()
                .starts_with("the request body is not valid JSON")
        );
    }
}
