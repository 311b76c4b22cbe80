//! The HTTP API: axum routers, extractors and the one error type. Handlers are small
//! `async fn`s that validate input and call services; `app(state)` builds the whole
//! router so tests can drive it without a socket.
//!
//! Middleware, outermost first: request id (`x-request-id`, generated when absent),
//! tracing span per request, panic → 500 problem, body limit, request metrics,
//! authentication. Around and inside that, for `/api/v1/**`: request tracking
//! (outermost: `API-Version` on every response, the request log) and version
//! selection (innermost, after authentication) — see `versions.rs`.

mod audit;
pub mod auth;
pub mod bulkhead;
pub mod context;
mod error;
mod events;
pub mod extract;
mod files;
pub mod filter;
mod groups;
mod idempotency;
mod installations;
mod jobs;
pub mod json;
mod marketplace;
mod notifications;
mod objects;
mod openapi;
mod operator;
mod outbox;
pub mod plugins;
mod publishers;
pub mod ratelimit;
pub mod records;
pub mod routes;
mod secrets;
mod system;
mod tenancy;
mod timers;
mod usage;
mod versions;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{Auth, AuthCache, Operator};
pub use context::Ctx;
pub use error::{ApiError, ApiResult, FieldProblem, PROBLEM_BASE};
pub use json::ApiJson;
pub use routes::Routes;

use plinth_core::store::Db;
use plinth_runtime::engine::Runtime;
use plinth_runtime::plugins::PluginHost;

/// Server settings the API needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Longest silence while a request body is being read: a stalled upload is cut off.
    pub body_idle_timeout: Duration,
    /// Requests per API key (`None`: unlimited).
    pub rate_limit: Option<ratelimit::RateLimit>,
    /// Plugin calls at once per tenant × plugin and per tenant.
    pub bulkheads: bulkhead::BulkheadConfig,
    /// Request log (client tracking) settings.
    pub request_log: plinth_core::versioning::RequestLogConfig,
    /// File size limit and tenant quota.
    pub files: plinth_core::files::FilesConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit: 2 * 1024 * 1024,
            body_idle_timeout: Duration::from_secs(30),
            rate_limit: Some(ratelimit::RateLimit::default()),
            bulkheads: bulkhead::BulkheadConfig::default(),
            files: plinth_core::files::FilesConfig::default(),
            request_log: plinth_core::versioning::RequestLogConfig::default(),
        }
    }
}

/// Shared state of every handler. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<AppInner>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct AppInner {
    /// The database.
    pub db: Db,
    /// The plugin runtime.
    pub runtime: Runtime,
    /// API settings.
    pub config: ApiConfig,
    /// Resolved API keys.
    pub auth_cache: AuthCache,
    /// Prometheus exposition of the process's metrics.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Tenants' installed plugins.
    pub plugins: Arc<PluginHost>,
    /// Compiled JSON Schemas of plugin endpoint bodies.
    pub plugin_schemas: plinth_runtime::admission::SchemaCache,
    /// The API version registry.
    pub versions: plinth_core::versioning::Versions,
    /// The request log's buffer (written by the background task).
    pub request_log: plinth_core::versioning::RequestLog,
    /// Seals webhook and plugin secrets.
    pub vault: plinth_core::secrets::Vault,
    /// The guarded outbound HTTP client (its address rules also judge webhook URLs).
    pub outbound: plinth_core::outbound::HttpClient,
    /// Event delivery settings and the worker's wake-up signal.
    pub events: crate::workers::events::Events,
    /// Per-API-key request buckets.
    pub rate_limiter: ratelimit::RateLimiter,
    /// Plugin-call compartments per tenant and plugin.
    pub bulkheads: bulkhead::Bulkheads,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// The API's state over an assembled plugin host (whose services hold the
    /// database, secret key and outbound client). `server.rs` assembles the parts.
    pub fn new(plugins: Arc<PluginHost>, config: ApiConfig) -> AppState {
        let services = plugins.services();
        let request_log = plinth_core::versioning::RequestLog::new(config.request_log.clone());
        AppState(Arc::new(AppInner {
            vault: services.vault.clone(),
            outbound: services.http.clone(),
            db: services.db.clone(),
            runtime: plugins.runtime().clone(),
            config,
            auth_cache: AuthCache::default(),
            metrics: system::metrics_handle(),
            plugins,
            plugin_schemas: plinth_runtime::admission::SchemaCache::default(),
            rate_limiter: ratelimit::RateLimiter::default(),
            bulkheads: bulkhead::Bulkheads::default(),
            versions: plinth_core::versioning::Versions::default(),
            request_log,
            events: crate::workers::events::Events::default(),
        }))
    }

    /// Start the background work the API relies on (batched key-usage writes; the
    /// request log and registry refresh of `versions.rs`). Returns when `shutdown`
    /// resolves, after a final flush.
    pub async fn run_background(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let (stop_versioning, stopped) = tokio::sync::watch::channel(false);
        let versioning = tokio::spawn(versions::background(self.clone(), stopped));
        tokio::pin!(shutdown);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.flush_key_uses().await;
                    self.rate_limiter.prune(Duration::from_secs(600), std::time::Instant::now());
                    ticks += 1;
                    // Expired idempotency keys go about every ten minutes.
                    if ticks % 120 == 1 {
                        let now = plinth_core::store::time::now();
                        if let Err(e) = self.db.sweep_idempotency_keys(&now).await {
                            tracing::warn!(error = ?e, "could not sweep expired idempotency keys");
                        }
                    }
                }
                () = &mut shutdown => {
                    self.flush_key_uses().await;
                    let _ = stop_versioning.send(true);
                    let _ = versioning.await;
                    return;
                }
            }
        }
    }

    async fn flush_key_uses(&self) {
        let uses = self.auth_cache.take_pending_uses();
        if let Err(e) = self.db.touch_keys(&uses).await {
            tracing::warn!(error = ?e, "could not record API key usage");
        }
    }
}

#[derive(Clone, Copy)]
struct MakeUlid;

impl MakeRequestId for MakeUlid {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        ulid::Ulid::new().to_string().parse().ok().map(RequestId::new)
    }
}

/// Every route of the API with its description (the OpenAPI document is generated from
/// the same list).
fn routes() -> Routes {
    Routes::new()
        .merge(system::routes())
        .merge(objects::routes())
        .merge(openapi::routes())
        .merge(records::routes())
        .merge(marketplace::routes())
        .merge(installations::routes())
        .merge(timers::routes())
        .merge(publishers::routes())
        .merge(plugins::routes())
        .merge(versions::routes())
        .merge(audit::routes())
        .merge(events::routes())
        .merge(tenancy::routes())
        .merge(groups::routes())
        .merge(operator::routes())
        .merge(outbox::routes())
        .merge(webhooks::routes())
        .merge(secrets::routes())
        .merge(jobs::routes())
        .merge(notifications::routes())
        .merge(files::routes())
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The whole HTTP application plus `extra` routes behind the same middleware
/// (benchmarks compare a native handler with a plugin endpoint this way).
pub fn app_with(state: AppState, extra: Router<AppState>) -> Router {
    let request_id = HeaderName::from_static(context::REQUEST_ID_HEADER);
    Router::new()
        .merge(extra)
        .merge(routes().into_router())
        .fallback(|| async { ApiError::not_found("no such endpoint").into_response() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this endpoint does not support that method",
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            versions::select_version,
        ))
        // Inside authentication: keys belong to the API key that sent them.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn(system::record_metrics))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.config.body_idle_timeout,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeUlid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(context::REQUEST_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::internal("handler panicked").into_response()
                })),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            versions::track_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            events::wake_after_writes,
        ))
        .layer(axum::middleware::from_fn(error::problems_everywhere))
        .with_state(state)
}
