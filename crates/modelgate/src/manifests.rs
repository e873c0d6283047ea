//! `serve --manifests DIR…`: run the `modelgate import` conversion at start,
//! write the configuration it makes to one generated file and serve that; a
//! changed manifest is re-imported into the same file, so the server's
//! ordinary configuration reload applies it — or refuses it and keeps the
//! previous configuration, as it does for a bad `--config` edit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use modelgate_import::{Imported, Options};

use crate::import::{ImportOptions, manifest_files, read_inputs};

/// How often the manifest folders are checked for changes.
const POLL: Duration = Duration::from_secs(1);

/// What identifies the manifest set's version: each file's path, size,
/// modification time and inode (a `kubectl`-style symlink swap changes it).
type Snapshot = Vec<(PathBuf, Option<(Option<SystemTime>, u64, u64)>)>;

fn snapshot(paths: &[PathBuf]) -> anyhow::Result<Snapshot> {
    Ok(manifest_files(paths)?
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok().map(|m| {
                #[cfg(unix)]
                let inode = std::os::unix::fs::MetadataExt::ino(&m);
                #[cfg(not(unix))]
                let inode = 0;
                (m.modified().ok(), m.len(), inode)
            });
            (f, meta)
        })
        .collect())
}

fn import_all(paths: &[PathBuf], opts: &Options) -> anyhow::Result<Imported> {
    let inputs = read_inputs(&manifest_files(paths)?)?;
    modelgate_import::import(&inputs, opts).map_err(anyhow::Error::from)
}

/// Writes `text` to `path` by rename, so the reloader never reads half a file.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

fn log_report(imported: &Imported) {
    for line in imported.report.to_string().lines() {
        tracing::info!(target: "modelgate::import", "{line}");
    }
}

/// Where the generated configuration goes: `--imported-config`, or a
/// private folder under the temporary directory.
fn output_path(chosen: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = chosen {
        return Ok(p);
    }
    let dir = std::env::temp_dir().join(format!("modelgate-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.join("imported.yaml"))
}

/// `serve --manifests`: import, serve, and re-import on change.
pub fn serve(
    paths: Vec<PathBuf>,
    mut options: ImportOptions,
    imported_config: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    // The generated file lives elsewhere: name the key file from here.
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let keys = options
        .keys_file
        .take()
        .unwrap_or_else(|| "keys.json".into());
    options.keys_file = Some(cwd.join(keys).display().to_string());
    let opts = options.to_options()?;
    let out = output_path(imported_config)?;
    let first = snapshot(&paths)?;
    let imported = match import_all(&paths, &opts) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("modelgate serve --manifests: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    write_atomic(&out, &imported.config)?;
    let config = match modelgate_config::load_file(&out) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}{e}", imported.report);
            return Ok(ExitCode::from(2));
        }
    };
    let watch_out = out.clone();
    let on_ready: modelgate_app::OnReady = Box::new(move |_, _| {
        tracing::info!(config = %watch_out.display(), "serving the configuration imported from the manifests; the report follows");
        log_report(&imported);
        let last = imported.config;
        let spawned = std::thread::Builder::new()
            .name("manifest-watch".into())
            .spawn(move || watch(&paths, &opts, &watch_out, first, last));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot watch the manifests; changes need a restart");
        }
    });
    crate::cli::serve_config(config, out, Some(on_ready))
}

/// Polls the manifests; a change is re-imported into `out`. A manifest that
/// does not import is logged and `out` is left alone (the old config serves).
fn watch(paths: &[PathBuf], opts: &Options, out: &Path, mut seen: Snapshot, mut last: String) {
    loop {
        std::thread::sleep(POLL);
        let now = match snapshot(paths) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot list the manifests; the previous configuration stays in force");
                continue;
            }
        };
        if now == seen {
            continue;
        }
        seen = now;
        match import_all(paths, opts) {
            Ok(imported) if imported.config == last => {
                tracing::info!("manifests changed; the imported configuration is the same");
            }
            Ok(imported) => {
                if let Err(e) = write_atomic(out, &imported.config) {
                    tracing::error!(error = %format!("{e:#}"), "cannot write the imported configuration; the previous configuration stays in force");
                    continue;
                }
                tracing::info!(
                    "manifests changed and re-imported; the configuration reload applies it"
                );
                log_report(&imported);
                last = imported.config;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "manifest change rejected (import failed); the previous configuration stays in force");
            }
        }
    }
}
