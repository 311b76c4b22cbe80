//! API versions over HTTP: the two middleware layers that select a request's version
//! and log it, the public version list (`GET /api/versions`), and the operator's
//! lifecycle endpoints (`/api/v1/operator/versions`).
//!
//! Both layers apply to `/api/v1/**` only:
//! - [`track_requests`] (outermost) times the request, makes sure every response —
//!   even a 401 from authentication or a 500 from a panic — carries `API-Version`, and
//!   hands a request-log entry to the batching writer;
//! - [`select_version`] (inside authentication, so it sees the key and tenant) picks
//!   the version, refuses unknown (400) and retired (410) ones, inserts [`ApiVersion`]
//!   for handlers, and adds the lifecycle headers of a deprecated version.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Auth, Operator, context, usage};
use plinth_core::store::request_log::LogEntry;
use plinth_core::store::time as store_time;
use plinth_core::versioning::lifecycle::{self, Lifecycle, LifecycleChange, LifecycleError};
use plinth_core::versioning::registry::REFRESH_EVERY;
use plinth_core::versioning::tracking::stopped;
use plinth_core::versioning::{ApiVersion, InputError, Registry, SelectError, VersionInfo, select};

/// The response header naming the version a response is in.
pub const API_VERSION: HeaderName = HeaderName::from_static("api-version");
/// The request header choosing a version.
pub const ACCEPT_VERSION: HeaderName = HeaderName::from_static("accept-version");
/// Where each version is documented; the successor `Link` points here.
pub const VERSION_DOCS: &str = "https://plinth.dev/api/versions/";

/// Routes: the public version list, the operator's lifecycle endpoints, usage.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/versions",
            list_public,
            doc(
                "versions",
                "The API versions, their lifecycle and changelog",
                Access::Public,
            ),
        )
        .get(
            "/api/v1/operator/versions",
            list_operator,
            doc("operator", "API versions with operator overrides", Access::Operator),
        )
        .put(
            "/api/v1/operator/versions/{version}",
            set_lifecycle,
            doc("operator", "Change a version's lifecycle", Access::Operator).json(),
        )
        .merge(usage::routes())
}

fn is_versioned(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/")
}

/// Who made a request and with which version, filled in by [`select_version`] for
/// [`track_requests`]. A shared slot rather than a response extension, so that it
/// survives a handler that panics.
#[derive(Debug, Clone, Default)]
struct TagSlot(Arc<OnceLock<Tag>>);

#[derive(Debug)]
struct Tag {
    tenant_id: String,
    key_id: String,
    version: String,
}

/// Middleware (outermost): `API-Version` on every `/api/v1` response, and the
/// request-log entry of every authenticated one.
pub(super) async fn track_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !is_versioned(request.uri().path()) {
        return next.run(request).await;
    }
    let _in_flight = state.request_log.begin();
    let started = Instant::now();
    let slot = TagSlot::default();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(slot.clone());
    let method = parts.method.clone();
    let route = parts.extensions.get::<MatchedPath>().cloned();
    let client = context::client_name(&parts);
    let asked = parts.headers.get(ACCEPT_VERSION).cloned();

    let mut response = next.run(Request::from_parts(parts, body)).await;

    if !response.headers().contains_key(API_VERSION) {
        // Refused before selection (a bad key) or failed hard: name the version the
        // caller asked for if it is served, else the fallback.
        let registry = state.versions.snapshot();
        let version = asked
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| registry.get(v.trim()))
            .filter(|v| v.status.lifecycle != Lifecycle::Retired)
            .map_or_else(|| registry.fallback(), |v| v.version);
        response
            .headers_mut()
            .insert(API_VERSION, HeaderValue::from_static(version));
    }
    if state.request_log.enabled()
        && let Some(tag) = slot.0.get()
    {
        state.request_log.record(LogEntry {
            tenant_id: tag.tenant_id.clone(),
            at: store_time::now(),
            key_id: Some(tag.key_id.clone()),
            client,
            api_version: tag.version.clone(),
            // Extension methods can be long; the standard ones are at most 7 bytes.
            method: method.as_str().chars().take(16).collect(),
            route: route.map_or_else(|| "unmatched".to_string(), |r| r.as_str().to_string()),
            status: i64::from(response.status().as_u16()),
            latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
        });
    }
    response
}

/// Middleware (inside authentication): choose the request's version.
pub(super) async fn select_version(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if !is_versioned(request.uri().path()) {
        return next.run(request).await;
    }
    let registry = match state.versions.ensure_loaded(&state.db).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = ?e, "could not load the API version registry");
            return ApiError::unavailable("the server cannot read its API versions; try again shortly").into_response();
        }
    };
    let asked = request
        .headers()
        .get(ACCEPT_VERSION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let chosen = {
        let auth = request.extensions().get::<Auth>();
        let chosen = select(
            &registry,
            asked.as_deref(),
            auth.and_then(|a| a.key_api_version.as_deref()),
            auth.map(|a| a.tenant_api_version.as_str()),
        );
        if let (Some(auth), Some(slot)) = (auth, request.extensions().get::<TagSlot>()) {
            let version = match &chosen {
                Ok(info) => info.version,
                Err(e) => e.requested(),
            };
            let _ = slot.0.set(Tag {
                tenant_id: auth.tenant_id.clone(),
                key_id: auth.key_id.clone(),
                version: version.to_string(),
            });
        }
        chosen
    };
    match chosen {
        Ok(info) => {
            request.extensions_mut().insert(ApiVersion(info.version.to_string()));
            let mut response = next.run(request).await;
            lifecycle_headers(response.headers_mut(), info);
            response
        }
        Err(e) => {
            let mut response = refusal(e).into_response();
            response
                .headers_mut()
                .insert(API_VERSION, HeaderValue::from_static(registry.fallback()));
            response
        }
    }
}

/// `API-Version`, and for a deprecated version `Deprecation` (RFC 9745), `Sunset`
/// (RFC 8594) and the successor `Link`.
fn lifecycle_headers(headers: &mut HeaderMap, info: &VersionInfo) {
    headers.insert(API_VERSION, HeaderValue::from_static(info.version));
    if info.status.lifecycle != Lifecycle::Deprecated {
        return;
    }
    let status = &info.status;
    if let Some(v) = status
        .deprecation
        .and_then(|d| header_value(lifecycle::deprecation_header(d)))
    {
        headers.insert(HeaderName::from_static("deprecation"), v);
    }
    if let Some(v) = status.sunset.and_then(|d| header_value(lifecycle::sunset_header(d))) {
        headers.insert(HeaderName::from_static("sunset"), v);
    }
    if let Some(v) = status.successor.as_deref().and_then(successor_link) {
        // Appended: a handler may already link other things (pagination).
        headers.append(header::LINK, v);
    }
}

fn header_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_str(&s).ok()
}

fn successor_link(successor: &str) -> Option<HeaderValue> {
    header_value(format!("<{VERSION_DOCS}{successor}>; rel=\"successor-version\""))
}

/// The problem for a version that cannot be served.
fn refusal(e: SelectError) -> ApiError {
    let detail = e.to_string();
    match e {
        SelectError::Unknown { supported, .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown-api-version",
            "Unknown API version",
            detail,
        )
        .with_extra("supported", json!(supported)),
        SelectError::Retired { version, status, .. } => {
            let mut problem = ApiError::new(StatusCode::GONE, "api-version-retired", "API version retired", detail)
                .with_extra("version", json!(version))
                .with_extra("successor", json!(status.successor))
                .with_extra("sunset", json!(status.sunset.map(lifecycle::format_date)));
            if let Some(link) = status.successor.as_deref().and_then(successor_link) {
                problem = problem.with_header(header::LINK, link);
            }
            problem
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::validation(e.detail).with_fields(
            e.fields
                .into_iter()
                .map(|(field, message)| super::FieldProblem { field, message }),
        )
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::NotFound(_) => ApiError::not_found(e.to_string()),
            LifecycleError::Invalid { field, message } => {
                ApiError::validation("the lifecycle change is not valid").with_field(field, message)
            }
            LifecycleError::Conflict(reason) => ApiError::conflict(reason),
            LifecycleError::Store(e) => ApiError::from(e),
        }
    }
}

/// One version as the API shows it.
fn version_json(info: &VersionInfo, operator: bool) -> Value {
    let mut v = json!({
        "version": info.version,
        "lifecycle": info.status.lifecycle,
        "summary": info.summary,
        "deprecation": info.status.deprecation.map(lifecycle::format_date),
        "sunset": info.status.sunset.map(lifecycle::format_date),
        "successor": info.status.successor,
        "changes": info.changes().map(|c| json!({"description": c.description()})).collect::<Vec<_>>(),
    });
    if operator && let Some(obj) = v.as_object_mut() {
        obj.insert("overridden_at".into(), json!(info.overridden_at));
    }
    v
}

fn registry_json(registry: &Registry, operator: bool) -> Value {
    json!({
        "default_version": registry.fallback(),
        "versions": registry.versions().iter().map(|v| version_json(v, operator)).collect::<Vec<_>>(),
    })
}

/// `GET /api/versions`: every version with its lifecycle and changelog (public).
async fn list_public(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let registry = state.versions.ensure_loaded(&state.db).await?;
    Ok(Json(registry_json(&registry, false)))
}

/// `GET /api/v1/operator/versions`: the same, with when each was last changed.
async fn list_operator(_: Operator, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.versions.reload(&state.db).await?;
    Ok(Json(registry_json(&state.versions.snapshot(), true)))
}

/// Body of `PUT /api/v1/operator/versions/{version}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleBody {
    lifecycle: String,
    deprecation: Option<String>,
    sunset: Option<String>,
    successor: Option<String>,
}

/// `PUT /api/v1/operator/versions/{version}`: change a version's lifecycle.
async fn set_lifecycle(
    _: Operator,
    State(state): State<AppState>,
    Path(version): Path<String>,
    ApiJson(body): ApiJson<LifecycleBody>,
) -> ApiResult<Json<Value>> {
    let change = parse_change(body)?;
    let info = state.versions.set(&state.db, &version, change).await?;
    Ok(Json(version_json(&info, true)))
}

/// Parse a lifecycle change, reporting every bad field at once.
fn parse_change(body: LifecycleBody) -> Result<LifecycleChange, ApiError> {
    let mut problems = Vec::new();
    let lifecycle = body
        .lifecycle
        .parse::<Lifecycle>()
        .map_err(|e| problems.push(("lifecycle", e.to_string())))
        .ok();
    let mut date = |field: &'static str, value: Option<String>| {
        let value = value?;
        let parsed = lifecycle::parse_date(&value);
        if parsed.is_none() {
            problems.push((field, "must be a date `YYYY-MM-DD`".to_string()));
        }
        parsed
    };
    let deprecation = date("deprecation", body.deprecation);
    let sunset = date("sunset", body.sunset);
    match lifecycle {
        Some(lifecycle) if problems.is_empty() => Ok(LifecycleChange {
            lifecycle,
            deprecation,
            sunset,
            successor: body.successor,
        }),
        _ => Err(problems.into_iter().fold(
            ApiError::validation("the lifecycle change is not valid"),
            |e, (f, m)| e.with_field(f, m),
        )),
    }
}

/// Background work of versioning: the request-log writer (with its retention purge)
/// and the periodic registry reload that picks up other hosts' changes. Returns when
/// `stop` turns true, after the final request-log flush.
pub(super) async fn background(state: AppState, stop: watch::Receiver<bool>) {
    let mut refresh_stop = stop.clone();
    let refresh = async {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = state.versions.reload(&state.db).await {
                        tracing::warn!(error = ?e, "could not reload the API version registry");
                    }
                }
                () = stopped(&mut refresh_stop) => return,
            }
        }
    };
    tokio::join!(state.request_log.run(&state.db, stop), refresh);
}
