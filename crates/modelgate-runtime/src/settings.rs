//! Runtime-wide settings, and the optional per-model `model.yaml`.

use std::path::{Path, PathBuf};

use modelgate_core::ModelName;
use serde::Deserialize;

use crate::RuntimeError;

/// One built-in model: its name and the directory holding `model.onnx` and,
/// optionally, `model.yaml` (see [`ModelSettings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinModelSpec {
    pub name: ModelName,
    pub dir: PathBuf,
}

impl BuiltinModelSpec {
    pub fn new(name: ModelName, dir: impl Into<PathBuf>) -> Self {
        Self {
            name,
            dir: dir.into(),
        }
    }

    /// `DIR/model.onnx`.
    pub fn model_file(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    /// `DIR/model.yaml`.
    pub fn settings_file(&self) -> PathBuf {
        self.dir.join(SETTINGS_FILE)
    }
}

/// File name of the ONNX graph inside a model directory.
pub const MODEL_FILE: &str = "model.onnx";
/// File name of the optional settings inside a model directory.
pub const SETTINGS_FILE: &str = "model.yaml";

/// How the runtime runs inference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Dedicated inference threads (default: the number of cores). At least 1.
    pub threads: usize,
    /// Requests that may wait for a free thread (default 256). When full, new
    /// requests get 503 with `Retry-After: 1`. At least 1.
    pub queue_depth: usize,
    /// Largest request body (REST) or message (gRPC) accepted, in bytes
    /// (default 4 MiB). At least 1.
    pub max_body_bytes: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            queue_depth: 256,
            max_body_bytes: 4 << 20,
        }
    }
}

impl RuntimeSettings {
    pub(crate) fn validate(&self) -> Result<(), RuntimeError> {
        if self.threads == 0 {
            return Err(RuntimeError::Settings("threads must be at least 1".into()));
        }
        if self.queue_depth == 0 {
            return Err(RuntimeError::Settings(
                "queue_depth must be at least 1".into(),
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(RuntimeError::Settings(
                "max_body_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Optional `model.yaml` next to `model.onnx`. Unknown keys are an error.
///
/// ```yaml
/// version: "2"            # reported as the model version (default "1")
/// max_batch_size: 64      # larger batches are refused with 400 (default: no limit)
/// labels: [setosa, versicolor, virginica]   # class names, replacing the ZipMap ones
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    #[serde(default, deserialize_with = "string_or_number")]
    pub version: Option<String>,
    pub max_batch_size: Option<usize>,
    pub labels: Option<Vec<String>>,
}

impl ModelSettings {
    /// Reads `path` if it exists; no file means default settings.
    pub(crate) fn read(model: &ModelName, path: &Path) -> Result<Self, RuntimeError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(RuntimeError::load(model, path, e)),
        };
        Self::parse(&text).map_err(|cause| RuntimeError::load(model, path, cause))
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let s: Self = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        if let Some(v) = &s.version
            && (v.is_empty() || v.len() > 64 || v.chars().any(char::is_control))
        {
            return Err("version must be 1 to 64 printable characters".into());
        }
        if s.max_batch_size == Some(0) {
            return Err("max_batch_size must be at least 1".into());
        }
        Ok(s)
    }
}

/// `version: 2` and `version: "2"` both mean the version "2".
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Version {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Version>::deserialize(d)?.map(|v| match v {
        Version::Text(s) => s,
        Version::Number(n) => n.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys() {
        let s =
            ModelSettings::parse("version: \"3\"\nmax_batch_size: 8\nlabels: [a, b]\n").unwrap();
        assert_eq!(s.version.as_deref(), Some("3"));
        assert_eq!(s.max_batch_size, Some(8));
        assert_eq!(s.labels, Some(vec!["a".into(), "b".into()]));
        assert_eq!(ModelSettings::parse("").unwrap(), ModelSettings::default());
        let s = ModelSettings::parse("version: 2\n").unwrap();
        assert_eq!(s.version.as_deref(), Some("2"));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let e = ModelSettings::parse("verison: 1\n").unwrap_err();
        assert!(e.contains("verison"), "{e}");
        assert!(ModelSettings::parse("max_batch_size: 0\n").is_err());
        assert!(ModelSettings::parse("max_batch_size: -1\n").is_err());
        assert!(ModelSettings::parse("version: \"\"\n").is_err());
    }
}
