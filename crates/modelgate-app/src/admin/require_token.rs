//! Seed 001's per-model "Require token authentication" switch. Off means the
//! model's `infer` (and `model_ready`, `model_metadata`) are public
//! operations; on means `infer` needs a credential (`model_ready` and
//! `model_metadata` keep their setting). The switch edits
//! `models[i].public_operations` in the configuration file, checks the
//! result as a whole configuration, replaces the file atomically and
//! reloads it as SIGHUP does; if anything fails the old file and the old
//! configuration stay. The file is rewritten from its parsed form, so YAML
//! comments and layout are not kept (see `docs/admin.md`).

use std::io::Write;
use std::path::Path;

use modelgate_core::{ModelName, Operation, Reject};
use yaml_serde::Value;

use super::console::Console;

/// Whether `model` needs a token for inference in `config`.
pub(super) fn required(model: &modelgate_config::Model) -> bool {
    !model.public_operations.contains(&Operation::Infer)
}

/// Sets the switch for `model`; returns the new state once reloaded.
pub(super) async fn set(c: &Console, model: &str, require: bool) -> Result<bool, Reject> {
    let name = ModelName::parse(model)
        .ok()
        .filter(|n| {
            c.shared
                .pipeline
                .load()
                .config
                .models
                .iter()
                .any(|m| &m.name == n)
        })
        .ok_or_else(|| Reject::NotFound(format!("no model named {model} is configured")))?;
    let _edit = c.config_edit.lock().await;
    let path = c.reloader.config_path().to_path_buf();
    let reloader = c.reloader.clone();
    let model = name.as_str().to_string();
    tokio::task::spawn_blocking(move || -> Result<(), Reject> {
        let old = std::fs::read_to_string(&path).map_err(|e| internal(&path, e))?;
        let new = edit(&old, &model, require)?;
        let base = path.parent().unwrap_or(Path::new("."));
        modelgate_config::parse_str(&new, &path.display().to_string(), base, &|k| {
            std::env::var(k).ok()
        })
        .map_err(|e| Reject::BadRequest(format!("the changed configuration is not valid: {e}")))?;
        write_atomically(&path, &new).map_err(|e| internal(&path, e))?;
        if let Err(e) = reloader.reload_config() {
            // Put the file back as it was, so the file and the running
            // configuration agree.
            let _ = write_atomically(&path, &old);
            return Err(Reject::BadRequest(format!(
                "the configuration did not reload; nothing changed: {e}"
            )));
        }
        Ok(())
    })
    .await
    .map_err(|e| Reject::Internal {
        detail: format!("configuration edit task: {e}"),
    })??;
    let now = c.shared.pipeline.load();
    let state = now
        .config
        .models
        .iter()
        .find(|m| m.name == name)
        .map_or(require, required);
    Ok(state)
}

fn internal(path: &Path, e: std::io::Error) -> Reject {
    Reject::Internal {
        detail: format!("{}: {e}", path.display()),
    }
}

/// The configuration text with the switch of `model` set.
fn edit(text: &str, model: &str, require: bool) -> Result<String, Reject> {
    let bad = |m: &str| Reject::BadRequest(format!("cannot edit the configuration file: {m}"));
    let mut doc: Value = yaml_serde::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let models = doc
        .get_mut("models")
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| bad("no models list"))?;
    let entry = models
        .iter_mut()
        .find(|m| m.get("name").and_then(Value::as_str) == Some(model))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| bad("the model is not in the file (generated from manifests?)"))?;
    let mut ops: Vec<String> = entry
        .get("public_operations")
        .and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if require {
        ops.retain(|o| o != "infer");
    } else {
        for o in ["model_ready", "model_metadata", "infer"] {
            if !ops.iter().any(|x| x == o) {
                ops.push(o.to_string());
            }
        }
    }
    let key = Value::String("public_operations".into());
    if ops.is_empty() {
        entry.remove(&key);
    } else {
        entry.insert(
            key,
            Value::Sequence(ops.into_iter().map(Value::String).collect()),
        );
    }
    yaml_serde::to_string(&doc).map_err(|e| bad(&e.to_string()))
}

/// Temp file in the same folder, fsync, rename over the original.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.admin-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "models:\n  - name: iris\n    upstream: {url: \"${U:-http://x}\"}\n    public_operations: [model_ready]\n  - name: other\n    upstream: {url: http://y}\n";

    #[test]
    fn off_makes_inference_public_and_on_takes_only_infer_back() {
        let off = edit(CFG, "iris", false).unwrap();
        let v: Value = yaml_serde::from_str(&off).unwrap();
        let ops = &v["models"][0]["public_operations"];
        assert_eq!(ops.as_sequence().unwrap().len(), 3);
        assert!(
            off.contains("${U:-http://x}"),
            "env references stay unexpanded"
        );
        assert!(v["models"][1].get("public_operations").is_none());
        let on = edit(&off, "iris", true).unwrap();
        let v: Value = yaml_serde::from_str(&on).unwrap();
        let ops: Vec<&str> = v["models"][0]["public_operations"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(ops, ["model_ready", "model_metadata"]);
        let on = edit(CFG, "other", true).unwrap();
        let v: Value = yaml_serde::from_str(&on).unwrap();
        assert!(v["models"][1].get("public_operations").is_none());
    }

    #[test]
    fn a_model_missing_from_the_file_is_refused() {
        assert!(edit(CFG, "nope", true).is_err());
        assert!(edit("listen: {}\n", "iris", true).is_err());
    }
}
