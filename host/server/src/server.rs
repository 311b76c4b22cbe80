//! Starting and stopping the HTTP server: data directory, database, runtime, router,
//! listener, background workers and graceful shutdown (in-flight requests finish).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiConfig, AppState};
use plinth_core::store::Db;
use std::sync::Arc;

use plinth_runtime::engine::{HostLimits, Runtime, RuntimeConfig};
use plinth_runtime::plugins::PluginHost;

/// Everything needed to start a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Data directory: SQLite database (unless `database_url`), compiled-component cache.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite file.
    pub database_url: Option<String>,
    /// API settings.
    pub api: ApiConfig,
    /// Plugin call ceilings.
    pub limits: HostLimits,
    /// Most plugin calls running at once; further calls wait for a slot.
    pub max_concurrent_calls: u32,
    /// Sign (with a local key kept in the data dir) and publish the bundled
    /// first-party plugins on start. On by default for the embedded database.
    pub first_party: bool,
    /// The clock plugin timers go by (the system clock; tests drive a manual one).
    pub clock: plinth_core::timers::Clock,
    /// Timer scheduler settings.
    pub scheduler: crate::workers::timers::SchedulerConfig,
    /// Job worker settings.
    pub jobs: crate::workers::jobs::JobsConfig,
    /// How long a connection may take to send a request's headers, and the largest head.
    pub connections: crate::http::ConnectionLimits,
    /// Email and webhook delivery.
    pub outbox: plinth_core::outbox::OutboxConfig,
    /// Outbound HTTP rules (plugins' `http` and webhook delivery).
    pub http: plinth_core::outbound::HttpPolicy,
    /// The secret key (base64 of 32 bytes, from `PLINTH_SECRET_KEY`); `None` uses the
    /// key file in the data directory, created on first start.
    pub secret_key: Option<plinth_core::secrets::KeyText>,
    /// Fold the roll-up deltas of subtree moves into the kept totals in the background
    /// (`store::rollups::run_folder`). On by default; reads are exact either way, and
    /// tests that fold by hand turn it off.
    pub fold_rollups: bool,
}

impl ServerConfig {
    /// Defaults: 127.0.0.1:8080, `./plinth-data`, SQLite.
    pub fn new(data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            database_url: None,
            api: ApiConfig::default(),
            limits: HostLimits::default(),
            max_concurrent_calls: RuntimeConfig::default().max_concurrent_calls,
            first_party: true,
            clock: plinth_core::timers::Clock::system(),
            scheduler: crate::workers::timers::SchedulerConfig::default(),
            jobs: crate::workers::jobs::JobsConfig::default(),
            connections: crate::http::ConnectionLimits::default(),
            outbox: plinth_core::outbox::OutboxConfig::default(),
            http: plinth_core::outbound::HttpPolicy::default(),
            secret_key: None,
            fold_rollups: true,
        }
    }

    /// Open (creating when needed) the data directory and the database.
    pub async fn open_db(&self) -> anyhow::Result<Db> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("could not create the data directory {}", self.data_dir.display()))?;
        match &self.database_url {
            Some(url) => Db::connect(url).await.context("could not connect to the database"),
            None => {
                let path = self.data_dir.join("plinth.db");
                Db::open_sqlite(&path)
                    .await
                    .with_context(|| format!("could not open {}", path.display()))
            }
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The application state (database, runtime…).
    pub state: AppState,
    /// The timer scheduler's progress.
    pub scheduler: crate::workers::timers::SchedulerHandle,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting, let in-flight requests finish, flush background work, close
    /// the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("server task panicked")??;
        self.state.db.close().await;
        Ok(())
    }

    /// Wait until the server stops by itself (after a shutdown signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")??;
        self.state.db.close().await;
        Ok(())
    }

    /// The token that stops the server (and every background worker) when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Open everything and start serving in the background.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let db = config.open_db().await?;
    start_with_db(config, db).await
}

/// The parts of a host, assembled from its configuration.
#[derive(Debug)]
pub struct Assembly {
    /// The API's state: database, runtime, plugin host, services.
    pub state: AppState,
    /// Email and webhook delivery, to be run in the background.
    pub outbox: plinth_core::outbox::Worker,
}

/// Build the parts of a host over `db`: the runtime, the services plugins use (secret
/// key, guarded outbound HTTP, timer clock), the plugin host and the API state. The
/// one place they are assembled: [`start_with_db`] serves them, benchmarks drive them.
pub fn assemble(config: &ServerConfig, db: Db) -> anyhow::Result<Assembly> {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(config.data_dir.join("cache")),
        limits: config.limits,
        max_concurrent_calls: config.max_concurrent_calls,
        ..RuntimeConfig::default()
    })?;
    let (services, outbox) = integrations(config, &db)?;
    let plugins = Arc::new(PluginHost::with_services(services, runtime));
    let state = AppState::new(plugins, config.api.clone());
    Ok(Assembly { state, outbox })
}

/// Start serving over an already-open database.
pub async fn start_with_db(config: ServerConfig, db: Db) -> anyhow::Result<RunningServer> {
    let Assembly { state, outbox } = assemble(&config, db)?;
    if config.first_party {
        let outcomes =
            crate::bundled::bootstrap::publish_first_party(&state.db, &state.runtime, &config.data_dir).await?;
        for (plugin, version, outcome) in outcomes {
            tracing::info!(%plugin, %version, ?outcome, "first-party plugin");
        }
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let app = api::app(state.clone());
    let scheduler = crate::workers::timers::Scheduler::new(state.db.clone(), state.plugins.clone(), config.scheduler);
    let scheduler_handle = scheduler.handle();
    // Every background loop, each ending when `shutdown` is cancelled; the server waits
    // for all of them after the last in-flight request.
    let stopped = || shutdown.clone().cancelled_owned();
    let db = &state.db;
    let mut workers: Vec<(&'static str, tokio::task::JoinHandle<()>)> = vec![
        (
            "API background work",
            tokio::spawn(state.clone().run_background(stopped())),
        ),
        (
            "audit policy evaluator",
            tokio::spawn(plinth_core::audit::policy::run_evaluator(db.clone(), stopped())),
        ),
        (
            "event delivery worker",
            tokio::spawn(crate::workers::events::worker::run(
                db.clone(),
                state.plugins.clone(),
                state.events.clone(),
                stopped(),
            )),
        ),
        ("timer scheduler", tokio::spawn(scheduler.run(stopped()))),
        (
            "job worker",
            tokio::spawn(
                crate::workers::jobs::JobWorker::new(db.clone(), state.plugins.clone(), config.jobs)
                    .run(shutdown.clone()),
            ),
        ),
        ("outbox worker", tokio::spawn(outbox.run(stopped()))),
        (
            "abandoned-upload sweeper",
            tokio::spawn(plinth_core::files::run_sweeper(db.clone(), stopped())),
        ),
    ];
    if config.fold_rollups {
        let folder = plinth_core::store::rollups::run_folder(db.clone(), stopped());
        workers.push(("roll-up folder", tokio::spawn(folder)));
    }
    let serving = shutdown.clone();
    let connections = config.connections;
    let task = tokio::spawn(async move {
        crate::http::serve(listener, app, connections, serving).await;
        for (name, worker) in workers {
            worker.await.with_context(|| format!("the {name} panicked"))?;
        }
        Ok(())
    });
    Ok(RunningServer {
        addr,
        state,
        scheduler: scheduler_handle,
        shutdown,
        task,
    })
}

/// The services plugins and the API use (secret key, guarded outbound HTTP) and
/// the outbox worker, from the configuration.
fn integrations(
    config: &ServerConfig,
    db: &Db,
) -> anyhow::Result<(plinth_runtime::caps::Services, plinth_core::outbox::Worker)> {
    use plinth_core::secrets::{self, KeySource};
    let key = config.secret_key.as_ref().map(|k| k.expose());
    let (vault, source) = secrets::load_or_create(key, &config.data_dir).context("could not load the secret key")?;
    match &source {
        KeySource::Configured => tracing::info!(key_id = %vault.key_id(), "secret key from PLINTH_SECRET_KEY"),
        KeySource::File(path) | KeySource::Created(path) => {
            tracing::info!(key_id = %vault.key_id(), file = %path.display(), "secret key from the data directory");
            if config.database_url.is_some() {
                tracing::warn!(
                    "the secret key comes from this host's data directory: other hosts on the same database \
                     cannot read the secrets it seals; set PLINTH_SECRET_KEY on every host (docs/integrations.md)"
                );
            }
        }
    }
    let http = plinth_core::outbound::HttpClient::new(config.http.clone())?;
    let worker = plinth_core::outbox::Worker::new(
        db.clone(),
        vault.clone(),
        http.clone(),
        &config.data_dir,
        config.outbox.clone(),
    )?;
    tracing::info!(email = %worker.describe(), "outbox worker");
    let services = plinth_runtime::caps::Services {
        db: db.clone(),
        timers: plinth_core::timers::Timers::new(config.clock.clone()),
        http,
        vault,
        files: config.api.files,
        jobs: plinth_core::jobs::Signal::default(),
    };
    Ok((services, worker))
}

/// Resolve when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
