//! The built-in runtime's view of the configuration: which models it serves
//! from which folders, and its thread and queue settings.

use modelgate_config::{Backend, Config};
use modelgate_runtime::{BuiltinModelSpec, RuntimeSettings};

/// The models of kind `builtin`.
pub fn specs(config: &Config) -> Vec<BuiltinModelSpec> {
    config
        .models
        .iter()
        .filter_map(|m| match &m.backend {
            Backend::Builtin(b) => Some(BuiltinModelSpec {
                name: m.name.clone(),
                dir: b.dir.clone(),
            }),
            Backend::Upstream(_) => None,
        })
        .collect()
}

pub fn settings(config: &Config) -> RuntimeSettings {
    let max_body = config
        .listeners
        .iter()
        .map(|l| l.max_body_bytes)
        .max()
        .unwrap_or(4 << 20);
    RuntimeSettings {
        threads: config.runtime.inference_threads,
        queue_depth: config.runtime.queue_depth,
        max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
    }
}
