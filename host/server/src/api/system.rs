//! Liveness, readiness and metrics endpoints.

use std::sync::OnceLock;

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::routes::{Access, Routes, doc};
use super::{ApiError, AppState};

/// The process-wide Prometheus recorder (installed once; later servers in the same
/// process, such as tests, share it).
pub(super) fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

/// Unauthenticated operational endpoints.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/healthz",
            healthz,
            doc("system", "Liveness: the process is up", Access::Public),
        )
        .get(
            "/readyz",
            readyz,
            doc("system", "Readiness: the database answers", Access::Public),
        )
        .get(
            "/metrics",
            metrics,
            doc("system", "Prometheus metrics (text exposition)", Access::Public),
        )
}

/// Middleware: count requests and time them, per method, route template and status.
pub(super) async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("plinth_http_requests_total", &labels).increment(1);
    metrics::histogram!("plinth_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// The process can serve: the database answers.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.db.ping().await.map_err(|e| {
        tracing::warn!(error = ?e, "readiness check failed");
        ApiError::unavailable("the database is not reachable")
    })?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ready"}"#,
    ))
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.as_ref().map(PrometheusHandle::render).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
