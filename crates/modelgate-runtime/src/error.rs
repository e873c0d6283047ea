//! Why the runtime could not start, load a model or apply new settings. Request
//! errors are [`modelgate_core::Reject`]s, not these.

use std::path::PathBuf;

use modelgate_core::ModelName;

/// A failure to build or change the set of served models.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A model file could not be read, parsed or prepared for inference.
    #[error("model '{model}': {}: {cause}", file.display())]
    Load {
        model: ModelName,
        file: PathBuf,
        cause: String,
    },
    /// Two specs use the same model name.
    #[error("model '{0}' is configured twice")]
    Duplicate(ModelName),
    /// The runtime settings are unusable.
    #[error("runtime settings: {0}")]
    Settings(String),
    /// The inference threads could not be started.
    #[error("starting inference threads: {0}")]
    Threads(#[source] std::io::Error),
}

impl RuntimeError {
    pub(crate) fn load(model: &ModelName, file: impl Into<PathBuf>, cause: impl ToString) -> Self {
        RuntimeError::Load {
            model: model.clone(),
            file: file.into(),
            cause: cause.to_string(),
        }
    }
}
