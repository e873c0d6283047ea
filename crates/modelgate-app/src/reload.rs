//! Applying changes while running. The configuration file and the key file
//! are watched (inotify via `notify`, plus a 1 s metadata poll that also
//! catches Kubernetes' symlink-swapped Secret mounts); SIGHUP reloads
//! everything. A new configuration that fails to load is logged and the old
//! one keeps serving. Keys read only at start (listeners, admin address,
//! logging, runtime threads: `modelgate_config::RESTART_KEYS`) keep their
//! running values; a reload that changes one warns, naming the key, and sets
//! `modelgate_config_restart_required`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use modelgate_authn::KeyStore;
use modelgate_config::{Config, Listener};
use modelgate_listen::TlsSetup;
use notify::Watcher;

use crate::gateway::Shared;
use crate::pipeline::Pipeline;

/// What identifies a file's version without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

struct Watched {
    config: Option<Fingerprint>,
    keys_path: Option<PathBuf>,
    keys: Option<Fingerprint>,
}

pub struct Reloader {
    shared: Arc<Shared>,
    config_path: PathBuf,
    listeners: Vec<Listener>,
    /// The configuration the process started with: what pinned keys run with.
    started: Config,
    restart_required: Box<dyn Fn(usize) + Send + Sync>,
    /// Listeners' and addons' TLS setups (addons add theirs once started).
    tls: Mutex<Vec<Arc<TlsSetup>>>,
    watched: Mutex<Watched>,
}

impl Reloader {
    pub fn new(
        shared: Arc<Shared>,
        config_path: PathBuf,
        listeners: Vec<Listener>,
        tls: Vec<Arc<TlsSetup>>,
    ) -> Self {
        let started = shared.pipeline.load().config.clone();
        let keys_path = started.auth.api_keys.as_ref().map(|k| k.file.clone());
        let restart_required = shared.metrics.config_restart_required();
        let watched = Watched {
            config: fingerprint(&config_path),
            keys: keys_path.as_deref().and_then(fingerprint),
            keys_path,
        };
        Self {
            shared,
            config_path,
            listeners,
            started,
            restart_required,
            tls: Mutex::new(tls),
            watched: Mutex::new(watched),
        }
    }

    /// Adds TLS setups started after the reloader (addon listeners).
    pub fn add_tls(&self, more: Vec<Arc<TlsSetup>>) {
        if let Ok(mut t) = self.tls.lock() {
            t.extend(more);
        }
    }

    /// Reloads configuration, keys and TLS certificates (SIGHUP).
    pub fn reload_all(&self) {
        let _ = self.reload_config();
        self.reload_keys();
        let tls = self.tls.lock().map(|t| t.clone()).unwrap_or_default();
        for t in &tls {
            match t.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; the old certificate stays in use")
                }
            }
        }
    }

    /// The configuration file this process serves.
    pub(crate) fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Reloads the configuration file now (what SIGHUP does for it); the
    /// error says why the previous configuration stays in force.
    pub(crate) fn reload_config(&self) -> Result<(), String> {
        let metrics = &self.shared.metrics;
        let config = match modelgate_config::load_file(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                metrics.config_reloaded(false);
                tracing::error!(errors = %e, "configuration reload rejected; the previous configuration stays in force");
                return Err(e.to_string());
            }
        };
        self.warn_restart_keys(&config);
        let old = self.shared.pipeline.load_full();
        let mut config = config;
        config.listeners = self.listeners.clone();
        let new_keys_path = config.auth.api_keys.as_ref().map(|k| k.file.clone());
        match Pipeline::build_after(
            config,
            self.shared.keys.clone(),
            Some(old.decisions.clone()),
            Some(&old),
        ) {
            Ok(p) => {
                if let Err(e) = self.update_runtime(&p.config) {
                    metrics.config_reloaded(false);
                    tracing::error!(error = %e, "configuration reload rejected; the previous configuration stays in force");
                    return Err(e);
                }
                metrics.set_models(p.config.models.iter().map(|m| m.name.as_str()));
                self.shared.pipeline.store(Arc::new(p));
                metrics.config_reloaded(true);
                tracing::info!("configuration reloaded");
                let changed = self.watched.lock().is_ok_and(|mut w| {
                    let changed = w.keys_path != new_keys_path;
                    w.keys_path = new_keys_path;
                    changed
                });
                if changed {
                    self.reload_keys();
                }
                Ok(())
            }
            Err(e) => {
                metrics.config_reloaded(false);
                tracing::error!(errors = %e, "configuration reload rejected; the previous configuration stays in force");
                Err(e.to_string())
            }
        }
    }

    /// Names every key the new file changes that only a restart applies.
    fn warn_restart_keys(&self, config: &Config) {
        let mut running = self.started.clone();
        running.listeners = self.listeners.clone();
        let keys = modelgate_config::restart_required(&running, config);
        for key in &keys {
            tracing::warn!(
                %key,
                "{key} changed, but it is read only at start: restart modelgate to apply it; the running value stays in force (other changes apply now)"
            );
        }
        (self.restart_required)(keys.len());
    }

    /// Reloads the API-key file now (after the admin API changed it).
    pub(crate) fn reload_keys(&self) {
        let path = self.watched.lock().ok().and_then(|w| w.keys_path.clone());
        let metrics = &self.shared.metrics;
        let Some(path) = path else {
            self.shared.keys.store(Arc::new(KeyStore::empty()));
            return;
        };
        match KeyStore::load(&path) {
            Ok(store) => {
                // kube: keep the live Secret keys (issue 12).
                let store = store.with_secrets(self.shared.keys.load().secrets());
                let n = store.len();
                self.shared.keys.store(Arc::new(store));
                metrics.keystore_reloaded(true, n);
                if let Some(l) = &self.shared.pipeline.load().limiter {
                    l.reload_key_limits(); // limits stored with keys
                }
                tracing::info!(keys = n, path = %path.display(), "API-key store reloaded");
            }
            Err(e) => {
                metrics.keystore_reloaded(false, 0);
                tracing::error!(error = %e, "API-key store reload rejected; the previous keys stay in force");
            }
        }
    }

    /// Brings the built-in runtime's model set in line with `config`: new
    /// models are loaded before the configuration is swapped in.
    fn update_runtime(&self, config: &modelgate_config::Config) -> Result<(), String> {
        let specs = crate::builtin::specs(config);
        match &self.shared.runtime {
            Some(rt) => rt.update(specs).map_err(|e| e.to_string()),
            None if specs.is_empty() => Ok(()),
            None => {
                Err("the first built-in model needs a restart (no model runtime is running)".into())
            }
        }
    }

    /// Reloads whatever changed since the last check.
    fn check(&self) {
        if let Some(rt) = &self.shared.runtime {
            for event in rt.reload_changed() {
                match event {
                    modelgate_runtime::ReloadEvent::Reloaded { model, version } => {
                        tracing::info!(%model, %version, "built-in model reloaded from its changed file");
                    }
                    modelgate_runtime::ReloadEvent::Failed { model, error } => {
                        tracing::error!(%model, %error, "built-in model file changed but does not load; the previous model keeps serving");
                    }
                }
            }
        }
        let (config_changed, keys_changed) = {
            let Ok(mut w) = self.watched.lock() else {
                return;
            };
            let c = fingerprint(&self.config_path);
            let config_changed = c.is_some() && c != w.config;
            if config_changed {
                w.config = c;
            }
            let k = w.keys_path.as_deref().and_then(fingerprint);
            let keys_changed = k != w.keys;
            if keys_changed {
                w.keys = k;
            }
            (config_changed, keys_changed)
        };
        if config_changed {
            let _ = self.reload_config();
        }
        if keys_changed {
            self.reload_keys();
            if let Ok(mut w) = self.watched.lock() {
                w.keys = w.keys_path.as_deref().and_then(fingerprint);
            }
        }
    }

    /// Starts the file watcher and the poll; returns the task to abort on exit.
    pub fn spawn_watchers(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
        let mut dirs: Vec<PathBuf> = Vec::new();
        let parent = |p: &Path| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        };
        dirs.push(parent(&self.config_path));
        if let Some(k) = self.watched.lock().ok().and_then(|w| w.keys_path.clone()) {
            dirs.push(parent(&k));
        }
        dirs.dedup();
        let mut names: Vec<OsString> = Vec::new();
        names.extend(self.config_path.file_name().map(OsStr::to_os_string));
        if let Some(k) = self.watched.lock().ok().and_then(|w| w.keys_path.clone()) {
            names.extend(k.file_name().map(OsStr::to_os_string));
        }
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok_and(|e| concerns(&e, &names)) {
                let _ = tx.try_send(());
            }
        });
        let watcher = match watcher {
            Ok(mut w) => {
                for d in &dirs {
                    if let Err(e) = w.watch(d, notify::RecursiveMode::NonRecursive) {
                        tracing::warn!(error = %e, dir = %d.display(), "cannot watch folder; relying on polling");
                    }
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "file watching unavailable; relying on polling");
                None
            }
        };
        tokio::spawn(async move {
            let _keep = watcher;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    Some(()) = rx.recv() => {
                        // Let a burst of events (temp file, rename) settle.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        while rx.try_recv().is_ok() {}
                    }
                    _ = tick.tick() => {}
                }
                let me = self.clone();
                let _ = tokio::task::spawn_blocking(move || me.check()).await;
            }
        })
    }
}

/// Whether a file event in a watched folder may concern the watched files:
/// it names one of them (`names`: the configuration's and the key file's
/// names), or a Kubernetes Secret mount's `..data` link or its `..`-named
/// versions, or no file at all (the watcher lost events). Anything else
/// written in those folders (a decision log, an editor's swap file) does not
/// wake the reloader; the 1 s poll still compares the files' metadata.
fn concerns(event: &notify::Event, names: &[OsString]) -> bool {
    event.paths.is_empty()
        || event.paths.iter().any(|p| {
            p.file_name().is_some_and(|n| {
                names.iter().any(|w| w == n) || n.as_encoded_bytes().starts_with(b"..")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, EventKind, ModifyKind, RenameMode};

    fn event(kind: EventKind, paths: &[&str]) -> notify::Event {
        paths.iter().fold(notify::Event::new(kind), |e, p| {
            e.add_path(PathBuf::from(p))
        })
    }

    #[test]
    fn only_events_about_the_watched_files_wake_the_reloader() {
        let names = [
            OsString::from("modelgate.yaml"),
            OsString::from("keys.json"),
        ];
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        // The decision log (or any other file) written beside the config.
        assert!(!concerns(
            &event(write, &["/etc/mg/decisions.jsonl"]),
            &names
        ));
        assert!(!concerns(
            &event(write, &["/etc/mg/.modelgate.yaml.swp"]),
            &names
        ));
        assert!(!concerns(&event(write, &["/etc/mg/keys.json.bak"]), &names));
        // The watched files themselves, by name, in any watched folder.
        assert!(concerns(&event(write, &["/etc/mg/modelgate.yaml"]), &names));
        assert!(concerns(&event(write, &["/var/keys/keys.json"]), &names));
        // An atomic replace: the rename's destination is a watched file.
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert!(concerns(
            &event(rename, &["/etc/mg/.tmpXYZ", "/etc/mg/keys.json"]),
            &names
        ));
        // A Kubernetes Secret update swaps the `..data` link.
        let create = EventKind::Create(CreateKind::Any);
        assert!(concerns(&event(create, &["/var/keys/..data_tmp"]), &names));
        assert!(concerns(
            &event(create, &["/var/keys/..2026_12_01_16_00_00.123"]),
            &names
        ));
        // An event naming no file (the watcher lost some) is not ignored.
        assert!(concerns(&event(EventKind::Any, &[]), &names));
    }
}
