//! Model names: the unit of routing and of authorization.

use std::fmt;
use std::sync::Arc;

/// A validated model name: 1–128 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
///
/// The character set is what KServe, MLServer and vLLM accept in paths without
/// escaping; anything else in a path segment is a parsing ambiguity we refuse.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName(Arc<str>);

/// Why a string is not a model name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelNameError {
    #[error("model name is empty")]
    Empty,
    #[error("model name is longer than 128 characters")]
    TooLong,
    #[error("model name may only contain letters, digits, '.', '_' and '-'")]
    BadChar,
    #[error("model name may not be '.' or '..'")]
    Dots,
}

impl ModelName {
    /// Parses and validates a model name.
    pub fn parse(s: &str) -> Result<Self, ModelNameError> {
        if s.is_empty() {
            return Err(ModelNameError::Empty);
        }
        if s.len() > 128 {
            return Err(ModelNameError::TooLong);
        }
        if s == "." || s == ".." {
            return Err(ModelNameError::Dots);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(ModelNameError::BadChar);
        }
        Ok(Self(Arc::from(s)))
    }

    /// The name, shared (a clone is a reference count, not a copy).
    pub fn shared(&self) -> &Arc<str> {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// Lets a map keyed by `ModelName` be searched with a client-sent `&str`
/// (no validation or allocation for the lookup). Hash, equality and order are
/// those of the name's text, as the derives on the `Arc<str>` already are.
impl std::borrow::Borrow<str> for ModelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ModelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for n in [
            "iris",
            "sklearn-iris",
            "llama3",
            "inf-sklearn-iris-model",
            "m_1.v2",
        ] {
            assert_eq!(ModelName::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn rejects_ambiguous_names() {
        assert_eq!(ModelName::parse(""), Err(ModelNameError::Empty));
        assert_eq!(ModelName::parse(".."), Err(ModelNameError::Dots));
        for n in ["a/b", "a%2Fb", "a b", "a:predict", "a;x", "a\0", "é"] {
            assert_eq!(ModelName::parse(n), Err(ModelNameError::BadChar), "{n}");
        }
        assert_eq!(
            ModelName::parse(&"x".repeat(129)),
            Err(ModelNameError::TooLong)
        );
    }
}
