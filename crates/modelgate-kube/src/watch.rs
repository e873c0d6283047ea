//! The Secret watches: one `kube::runtime::watcher` per namespace feeding one
//! [`KeySet`], republished whole on every change. A (re)list replaces its
//! namespace only when complete (`InitDone`); a 410 Gone relists; any other
//! error marks the watch down, keeps the last good keys in force, logs, and
//! restarts the watch (a fresh list) after a capped backoff.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config};
use modelgate_audit::Metrics;
use modelgate_authn::keys::{SecretKeys, SharedSecretKeys};
use modelgate_config::kube_keys::KubeKeys;
use tokio::task::JoinHandle;

use crate::metrics::WatchMetrics;
use crate::secret::{self, Record, SecretId};
use crate::state::KeySet;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why the Secret watch could not be set up (bad or missing credentials).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("auth.api_keys.kubernetes.kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: KubeconfigError,
    },
    #[error(
        "auth.api_keys.kubernetes: no Kubernetes credentials found ({0}); set kubeconfig, \
         $KUBECONFIG, or run in a pod with a ServiceAccount"
    )]
    Infer(InferConfigError),
    #[error("auth.api_keys.kubernetes: cannot build the Kubernetes client: {0}")]
    Client(kube::Error),
}

/// The running watches. Dropping it stops them; the keys they published stay.
pub struct SecretKeyWatch {
    keys: SharedSecretKeys,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SecretKeyWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct WatchStatus {
    up: bool,
    listed: bool,
}

struct Shared {
    cfg: KubeKeys,
    set: Mutex<KeySet>,
    out: SharedSecretKeys,
    metrics: WatchMetrics,
    status: Mutex<Vec<WatchStatus>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl SecretKeyWatch {
    /// Connects, starts a watch per namespace and waits (up to
    /// `initial_sync_timeout`) for the first complete list, so keys work as
    /// soon as the server is ready. A slow API server is logged, not fatal.
    pub async fn start(cfg: &KubeKeys, metrics: &Metrics) -> Result<Self, StartError> {
        let (client, default_ns) = client(cfg).await?;
        let namespaces: Vec<Option<String>> = if cfg.namespaces.is_empty() {
            vec![Some(default_ns)]
        } else {
            cfg.namespaces.clone()
        };
        let (synced, mut synced_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            set: Mutex::new(KeySet::new(cfg.rotation_grace)),
            out: SharedSecretKeys::default(),
            metrics: WatchMetrics::registered(metrics),
            status: Mutex::new(
                namespaces
                    .iter()
                    .map(|_| WatchStatus {
                        up: false,
                        listed: false,
                    })
                    .collect(),
            ),
            synced,
        });
        let tasks = namespaces
            .into_iter()
            .enumerate()
            .map(|(i, ns)| {
                let api: Api<Secret> = match &ns {
                    Some(n) => Api::namespaced(client.clone(), n),
                    None => Api::all(client.clone()),
                };
                tokio::spawn(run(shared.clone(), i, api, ns))
            })
            .collect();
        let wait = synced_rx.wait_for(|s| *s);
        if tokio::time::timeout(cfg.initial_sync_timeout, wait)
            .await
            .is_err()
        {
            tracing::error!(
                timeout = ?cfg.initial_sync_timeout,
                "Secret API keys: the first list did not complete in time; serving without them until it does"
            );
        }
        Ok(Self {
            keys: shared.out.clone(),
            tasks,
        })
    }

    /// The live key set to give the key store.
    pub fn keys(&self) -> SharedSecretKeys {
        self.keys.clone()
    }
}

async fn client(cfg: &KubeKeys) -> Result<(Client, String), StartError> {
    let config = match &cfg.kubeconfig {
        Some(path) => {
            let bad = |source| StartError::Kubeconfig {
                path: path.clone(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(bad)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(bad)?
        }
        None => Config::infer().await.map_err(StartError::Infer)?,
    };
    let ns = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(StartError::Client)?;
    Ok((client, ns))
}

/// One namespace's watch, restarted (with a fresh list) after every failure.
async fn run(shared: Arc<Shared>, index: usize, api: Api<Secret>, ns: Option<String>) {
    let selector = shared.cfg.label_selector();
    let ns_label = ns.clone().unwrap_or_else(|| "*".into());
    let mut delay = MIN_BACKOFF;
    loop {
        let stream = watcher::watcher(api.clone(), watcher::Config::default().labels(&selector));
        let mut stream = std::pin::pin!(stream);
        let mut listed: Vec<(SecretId, Option<Record>)> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(Event::Init) => listed.clear(),
                Ok(Event::InitApply(s)) => listed.push(shared.read(&s, &ns_label)),
                Ok(Event::InitDone) => {
                    shared.relisted(index, ns.as_deref(), std::mem::take(&mut listed));
                    delay = MIN_BACKOFF;
                }
                Ok(Event::Apply(s)) => {
                    let (id, record) = shared.read(&s, &ns_label);
                    shared.change(|set, now| set.apply(id, record, now));
                }
                Ok(Event::Delete(s)) => {
                    let id = secret::id_of(&s, &ns_label);
                    tracing::info!(namespace = %id.0, secret = %id.1, "API key Secret deleted; its key is refused from now on");
                    shared.change(|set, _| set.delete(&id));
                }
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    tracing::info!(namespace = %ns_label, "Secret watch resourceVersion expired (410 Gone); relisting");
                    shared.metrics.relists.inc();
                }
                Err(e) => {
                    shared.broken(index, &ns_label, &e);
                    break;
                }
            }
        }
        tokio::time::sleep(jitter(delay)).await;
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

/// `d` plus up to a quarter more, so replicas do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d + d / 4 * (nanos % 1000) / 1000
}

impl Shared {
    /// Reads a Secret into a record (hashing its key) and logs an unusable one.
    fn read(&self, s: &Secret, default_ns: &str) -> (SecretId, Option<Record>) {
        let id = secret::id_of(s, default_ns);
        match secret::record(s, &self.cfg) {
            Ok(r) => {
                tracing::info!(namespace = %id.0, secret = %id.1, identity = %r.identity, "API key Secret applied");
                (id, Some(r))
            }
            Err(reason) => {
                tracing::warn!(namespace = %id.0, secret = %id.1, %reason, "Secret selected for API keys gives no key; ignored");
                self.metrics.skipped.inc();
                (id, None)
            }
        }
    }

    fn relisted(&self, index: usize, ns: Option<&str>, listed: Vec<(SecretId, Option<Record>)>) {
        let n = listed.len();
        self.change(|set, now| set.replace(ns, listed, now));
        let (all_up, all_listed) = self.set_status(index, true);
        tracing::info!(
            namespace = ns.unwrap_or("*"),
            secrets = n,
            all_up,
            "Secret API keys listed; watching for changes"
        );
        if all_listed {
            self.synced.send_replace(true);
        }
    }

    fn broken(&self, index: usize, ns: &str, e: &watcher::Error) {
        self.metrics.errors.inc();
        self.set_status(index, false);
        tracing::error!(namespace = %ns, error = %e, "Secret watch broken; the last good API keys stay in force; retrying");
    }

    /// Marks one watch up or down; returns (all up, all listed once).
    fn set_status(&self, index: usize, up: bool) -> (bool, bool) {
        let Ok(mut st) = self.status.lock() else {
            return (false, false);
        };
        if let Some(s) = st.get_mut(index) {
            s.up = up;
            s.listed |= up;
        }
        let all_up = st.iter().all(|s| s.up);
        self.metrics.up.set(i64::from(all_up));
        (all_up, st.iter().all(|s| s.listed))
    }

    /// Changes the key set and publishes the result whole.
    fn change(&self, f: impl FnOnce(&mut KeySet, SystemTime)) {
        let Ok(mut set) = self.set.lock() else {
            return;
        };
        let now = SystemTime::now();
        f(&mut set, now);
        let (keys, skipped) = SecretKeys::build(set.entries(now));
        drop(set);
        for s in skipped {
            tracing::warn!(identity = %s.name, reason = %s.message, "API key from a Secret not used");
        }
        self.metrics
            .keys
            .set(i64::try_from(keys.len()).unwrap_or(i64::MAX));
        self.out.store(Arc::new(keys));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        for d in [MIN_BACKOFF, MAX_BACKOFF] {
            let j = jitter(d);
            assert!(j >= d && j <= d + d / 4, "{j:?}");
        }
    }
}
