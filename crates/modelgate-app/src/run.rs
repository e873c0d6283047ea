//! `modelgate serve`: load, bind, serve, reload on change, drain on signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use modelgate_audit::Metrics;
use modelgate_authn::KeyStore;
use modelgate_config::Config;
use modelgate_listen::{Gate, ListenStats, ServeOptions, TlsSetup, bind_shared, serve};
use modelgate_runtime::Runtime;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::adapter::Adapter;
use crate::admin::Admin;
use crate::admin::console::Console;
use crate::gateway::{Gateway, Shared};
use crate::pipeline::{BuildError, Pipeline};
use crate::reload::Reloader;

/// Why the server could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration:\n{0}")]
    Build(#[from] BuildError),
    #[error("cannot load the API-key store: {0}")]
    Keys(#[from] modelgate_authn::KeyStoreError),
    #[error(transparent)]
    Kube(#[from] modelgate_kube::StartError),
    #[error("listen[{index}]: {source}")]
    Tls {
        index: usize,
        source: modelgate_listen::TlsError,
    },
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the built-in models: {0}")]
    Runtime(#[from] modelgate_runtime::RuntimeError),
    #[error("cannot start an I/O thread: {0}")]
    Thread(std::io::Error),
    /// A service started beside the listeners (e.g. `ext_authz`) failed.
    #[error("{0}")]
    Addon(String),
}

/// Runs the server until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config, config_path: PathBuf) -> Result<(), StartError> {
    run_with(config, config_path, None).await
}

/// Called once when every listener is bound and the server is ready, with
/// the addresses actually bound (listeners first, then admin).
pub type OnReady = Box<dyn FnOnce(&[SocketAddr], SocketAddr) + Send>;

/// A service started beside the listeners once the pipeline is built (e.g.
/// Envoy ext_authz): given the configuration, the decision ([`Adapter`]) and
/// the stop signal, it binds and returns what it [`Started`];
/// `Ok(None)` when the configuration does not ask for it.
pub type Addon = Box<
    dyn FnOnce(&Config, Adapter, watch::Receiver<bool>) -> Result<Option<Started>, String> + Send,
>;

/// A started [`Addon`]: the thread serving it (joined at shutdown) and its
/// TLS setup, whose certificate `SIGHUP` reloads with the listeners'.
pub struct Started {
    pub thread: std::thread::JoinHandle<()>,
    pub tls: Option<Arc<TlsSetup>>,
}

/// [`run`], calling `on_ready` once the server is ready.
pub async fn run_with(
    config: Config,
    config_path: PathBuf,
    on_ready: Option<OnReady>,
) -> Result<(), StartError> {
    run_with_addons(config, config_path, on_ready, Vec::new()).await
}

/// [`run_with`], also starting `addons` beside the listeners.
pub async fn run_with_addons(
    config: Config,
    config_path: PathBuf,
    on_ready: Option<OnReady>,
    addons: Vec<Addon>,
) -> Result<(), StartError> {
    modelgate_upstream::set_worker_count(config.runtime.io_threads);
    let listeners_cfg = config.listeners.clone();
    let admin_addr = config.admin.address;
    // Stops watching the API-key Secrets when dropped, on return.
    let (shared, _kube_keys) = shared_state(config).await?;
    let listen_stats = ListenStats::default();
    listen_stats.register(
        |n, h, m| shared.metrics.register(n, h, m),
        |n, h, m| shared.metrics.register(n, h, m),
        |n, h, m| shared.metrics.register(n, h, m),
    );
    let io_threads = listeners_cfg
        .first()
        .map_or(1, |_| shared.pipeline.load().config.runtime.io_threads);
    let bound = bind_listeners(&listeners_cfg, io_threads, &listen_stats)?;
    let admin_tcp = TcpListener::bind(admin_addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: admin_addr,
            source,
        })?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let reloader = Arc::new(Reloader::new(
        shared.clone(),
        config_path,
        listeners_cfg.clone(),
        bound.tls_setups,
    ));
    let console = Arc::new(Console::new(shared.clone(), reloader.clone()));
    let gateway = Arc::new(Gateway {
        shared: shared.clone(),
        console: console.clone(),
    });
    let mut threads = spawn_io_threads(bound.per_thread, &gateway, &stop_rx)?;
    let mut addon_tls = Vec::new();
    for addon in addons {
        let config = shared.pipeline.load_full();
        let started = addon(
            &config.config,
            Adapter::new(shared.clone()),
            stop_rx.clone(),
        )
        .map_err(StartError::Addon)?;
        if let Some(s) = started {
            threads.push(s.thread);
            addon_tls.extend(s.tls);
        }
    }
    let admin_tcp_addr = admin_tcp.local_addr().unwrap_or(admin_addr);
    reloader.add_tls(addon_tls);
    let admin_task = spawn_admin(admin_tcp, admin_tcp_addr, &shared, console, &stop_rx);
    let watch_task = reloader.clone().spawn_watchers();
    shared.ready.store(true, Ordering::Release);
    tracing::info!(
        models = shared.pipeline.load().config.models.len(),
        "modelgate ready"
    );
    if let Some(f) = on_ready {
        f(&bound.addrs, admin_tcp_addr);
    }

    wait_for_stop(reloader).await;
    shared.ready.store(false, Ordering::Release);
    let drain = listeners_cfg
        .iter()
        .map(|l| l.drain_timeout)
        .max()
        .unwrap_or(Duration::ZERO);
    tracing::info!(drain_timeout = ?drain, "shutting down: no new connections, draining in-flight requests");
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
    let _ = admin_task.await;
    watch_task.abort();
    shared.pipeline.load().decisions.flush();
    tracing::info!("stopped");
    Ok(())
}

/// The state every request reads: API keys (file, and labelled Secrets
/// watched live — issue 12 — while the returned watch lives), the built-in
/// runtime, the pipeline and the metrics.
async fn shared_state(
    config: Config,
) -> Result<(Arc<Shared>, Option<modelgate_kube::SecretKeyWatch>), StartError> {
    let metrics = Arc::new(Metrics::new());
    let kube_keys = match config
        .auth
        .api_keys
        .as_ref()
        .and_then(|k| k.kubernetes.as_ref())
    {
        Some(k) => Some(modelgate_kube::SecretKeyWatch::start(k, &metrics).await?),
        None => None,
    };
    let keys = Arc::new(ArcSwap::from_pointee(match &config.auth.api_keys {
        Some(k) => KeyStore::load(&k.file)?.with_secrets(kube_keys.as_ref().map(|w| w.keys())),
        None => KeyStore::empty(),
    }));
    metrics.keystore_reloaded(true, keys.load().len());
    let runtime = match crate::builtin::specs(&config) {
        specs if specs.is_empty() => None,
        specs => Some(Runtime::start(specs, crate::builtin::settings(&config))?),
    };
    let pipeline = Pipeline::build(config, keys.clone(), None)?;
    metrics.set_models(pipeline.config.models.iter().map(|m| m.name.as_str()));
    crate::pipeline::register_identity_metrics(&metrics, &pipeline.identity_metrics);
    metrics.register(
        "external_authz_checks",
        "External CUSTOM authorizer checks by provider and outcome",
        pipeline.providers.checks(),
    );
    crate::pipeline::register_upstream_metrics(&metrics, &pipeline.upstream_metrics);
    if let Some(l) = &pipeline.limiter {
        l.register(&metrics);
    }
    let shared = Arc::new(Shared {
        pipeline: ArcSwap::from_pointee(pipeline),
        metrics,
        keys,
        ready: AtomicBool::new(false),
        runtime,
    });
    Ok((shared, kube_keys))
}

/// The listeners, bound: per I/O thread its sockets, the TLS setups (for
/// certificate reloads) and the addresses actually bound.
struct Bound {
    per_thread: Vec<Vec<(ServeOptions, std::net::TcpListener)>>,
    tls_setups: Vec<Arc<TlsSetup>>,
    addrs: Vec<SocketAddr>,
}

/// Binds one socket per listener per I/O thread (SO_REUSEPORT).
fn bind_listeners(
    listeners_cfg: &[modelgate_config::Listener],
    io_threads: usize,
    listen_stats: &ListenStats,
) -> Result<Bound, StartError> {
    let mut bound = Bound {
        per_thread: (0..io_threads).map(|_| Vec::new()).collect(),
        tls_setups: Vec::new(),
        addrs: Vec::new(),
    };
    for (index, l) in listeners_cfg.iter().enumerate() {
        let tls = match &l.tls {
            Some(t) => Some(Arc::new(
                TlsSetup::new(t, l.http2).map_err(|source| StartError::Tls { index, source })?,
            )),
            None => None,
        };
        if let Some(t) = &tls {
            bound.tls_setups.push(t.clone());
        }
        let sockets = bind_shared(l.address, io_threads).map_err(|source| StartError::Bind {
            addr: l.address,
            source,
        })?;
        let addr = sockets
            .first()
            .and_then(|s| s.local_addr().ok())
            .unwrap_or(l.address);
        bound.addrs.push(addr);
        tracing::info!(address = %addr, tls = tls.is_some(), http2 = l.http2, io_threads, "listening");
        let opts = ServeOptions {
            listener: index,
            http2: l.http2,
            header_read_timeout: l.header_read_timeout,
            drain_timeout: l.drain_timeout,
            limits: l.limits,
            tls,
            gate: Gate::new(index, l.limits.max_connections, listen_stats),
        };
        for (w, sock) in sockets.into_iter().enumerate() {
            bound.per_thread[w].push((opts.clone(), sock));
        }
    }
    Ok(bound)
}

/// Starts one named OS thread per I/O thread, each serving its sockets.
fn spawn_io_threads(
    per_thread: Vec<Vec<(ServeOptions, std::net::TcpListener)>>,
    gateway: &Arc<Gateway>,
    stop_rx: &watch::Receiver<bool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, StartError> {
    let mut threads = Vec::new();
    for (w, sockets) in per_thread.into_iter().enumerate() {
        let gateway = gateway.clone();
        let stop = stop_rx.clone();
        let t = std::thread::Builder::new()
            .name(format!("modelgate-io-{w}"))
            .spawn(move || io_thread(w, sockets, gateway, stop))
            .map_err(StartError::Thread)?;
        threads.push(t);
    }
    Ok(threads)
}

/// Serves the admin port (health, readiness, metrics) until `stop_rx`.
fn spawn_admin(
    admin_tcp: TcpListener,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    console: Arc<Console>,
    stop_rx: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tracing::info!(address = %addr, "admin listening");
    let admin_opts = ServeOptions {
        listener: 0,
        http2: false,
        header_read_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(1),
        limits: Default::default(),
        tls: None,
        // Its own, unexported counters: the admin port is not a listener.
        gate: Gate::new(0, 1024, &ListenStats::default()),
    };
    tokio::spawn(serve(
        admin_tcp,
        admin_opts,
        Arc::new(Admin {
            shared: shared.clone(),
            console,
        }),
        stop_rx.clone(),
    ))
}

/// One I/O thread: its own event loop serving its sockets; every task of a
/// connection (including its upstream connections) stays on this thread.
fn io_thread(
    index: usize,
    sockets: Vec<(ServeOptions, std::net::TcpListener)>,
    gateway: Arc<Gateway>,
    stop: watch::Receiver<bool>,
) {
    modelgate_upstream::pin_current_thread(index);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, thread = index, "cannot start an I/O thread's event loop");
            return;
        }
    };
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for (opts, sock) in sockets {
            match TcpListener::from_std(sock) {
                Ok(l) => tasks.push(tokio::spawn(serve(l, opts, gateway.clone(), stop.clone()))),
                Err(e) => tracing::error!(error = %e, thread = index, "cannot register a listening socket"),
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Waits for SIGTERM/SIGINT; SIGHUP triggers a reload meanwhile.
async fn wait_for_stop(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading configuration, keys and certificates");
                    reloader.reload_all();
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        let _ = reloader;
    }
}
