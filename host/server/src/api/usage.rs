//! Usage analytics for tenant admins: `GET /api/v1/usage` (requests, errors and
//! latency per version, client or route) and `GET /api/v1/usage/deprecated-clients`
//! (keys and clients still on deprecated or retired versions). Only the caller's
//! tenant's requests are ever read.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiResult, AppState, Ctx};
use plinth_core::manifest::Role;
use plinth_core::store::request_log::LogGroup;
use plinth_core::store::time as store_time;
use plinth_core::versioning::usage::{self, Window};

/// Window of `GET /api/v1/usage` when `from` is not given.
const DEFAULT_USAGE_WINDOW: time::Duration = time::Duration::hours(24);

pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/usage",
            usage_report,
            doc("usage", "Request analytics by version, client or route", Access::ADMIN),
        )
        .get(
            "/api/v1/usage/deprecated-clients",
            deprecated_clients,
            doc("usage", "Clients still on deprecated versions", Access::ADMIN),
        )
}

/// Query of both endpoints; times are RFC 3339.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsQuery {
    from: Option<String>,
    to: Option<String>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("the query string is not valid: {}", e.body_text())))
}

/// `[from, to)`: `to` defaults to now, `from` to `to - default_span`.
fn window(from: Option<&str>, to: Option<&str>, default_span: time::Duration) -> Result<Window, ApiError> {
    let parse = |field: &'static str, value: &str| {
        store_time::parse(value).ok_or_else(|| {
            ApiError::validation("the time window is not valid")
                .with_field(field, "must be an RFC 3339 time such as 2026-11-24T00:00:00Z")
        })
    };
    let to = match to {
        Some(t) => parse("to", t)?,
        None => OffsetDateTime::now_utc(),
    };
    let from = match from {
        Some(f) => parse("from", f)?,
        None => to - default_span,
    };
    if from >= to {
        return Err(ApiError::validation("the time window is not valid").with_field("from", "must be before `to`"));
    }
    Ok(Window {
        from: store_time::format(from),
        to: store_time::format(to),
    })
}

/// `GET /api/v1/usage?from=&to=&group_by=version|client|route`.
async fn usage_report(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<usage::UsageReport>> {
    ctx.auth.require(Role::Admin)?;
    let q = query(q)?;
    let group = match q.group_by.as_deref() {
        None => LogGroup::Version,
        Some(name) => usage::parse_group(name).ok_or_else(|| {
            ApiError::validation("the grouping is not valid").with_field("group_by", "must be version, client or route")
        })?,
    };
    let window = window(q.from.as_deref(), q.to.as_deref(), DEFAULT_USAGE_WINDOW)?;
    Ok(Json(usage::usage(&state.db, ctx.tenant(), &window, group).await?))
}

/// `GET /api/v1/usage/deprecated-clients?from=&to=` (default window: the retention
/// period, i.e. everything still logged).
async fn deprecated_clients(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<ClientsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    ctx.auth.require(Role::Admin)?;
    let q = query(q)?;
    let days = match state.request_log.config().retention_days {
        0 => 3650,
        d => i64::from(d),
    };
    let window = window(q.from.as_deref(), q.to.as_deref(), time::Duration::days(days))?;
    let registry = state.versions.ensure_loaded(&state.db).await?;
    let clients = usage::deprecated_clients(&state.db, &registry, ctx.tenant(), &window).await?;
    Ok(Json(json!({"from": window.from, "to": window.to, "data": clients})))
}
