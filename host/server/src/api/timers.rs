//! A plugin's timers in the tenant, for tenant admins:
//!
//! - `GET /api/v1/installations/{plugin}/timers`: next fire, cron and zone, counts and
//!   the last error of each timer;
//! - `DELETE /api/v1/installations/{plugin}/timers/{key}`: cancel one (audited as
//!   `plugin_timer.cancel`; 404 when the key has no timer).
//!
//! Both answer 404 for a plugin the tenant has not installed; rows are read by tenant
//! in the store, so another tenant's timers are never reachable.
//!
//! Query: `cursor` (from `next_cursor`), `limit` (1–500, default 100). Each timer has a
//! `state`: `pending`, `firing` (claimed by a scheduler now), `held` (the installation
//! is disabled or revoked: it fires once the plugin is enabled again), `paused` (the
//! user it runs as, `run_as`, is deactivated: it fires once they are active again) or
//! `failed` (a one-shot timer whose fire failed; kept for a week to show `last_error`).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiResult, AppState, Ctx};
use plinth_core::installed;
use plinth_core::manifest::Role;
use plinth_core::store::installations::state as installation;
use plinth_core::store::time as stored;
use plinth_core::store::timers::TimerRow;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/installations/{plugin}/timers",
            list,
            doc(
                "installations",
                "The plugin's timers: next fire, cron, state, last error",
                Access::ADMIN,
            ),
        )
        .delete(
            "/api/v1/installations/{plugin}/timers/{key}",
            cancel,
            doc("installations", "Cancel one of the plugin's timers", Access::ADMIN).status(204),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// One timer as the API shows it.
#[derive(Debug, Serialize)]
struct TimerView {
    key: String,
    kind: &'static str,
    state: &'static str,
    next_fire: Option<String>,
    cron: Option<String>,
    time_zone: Option<String>,
    payload: String,
    created_at: String,
    updated_at: String,
    fires: i64,
    failures: i64,
    last_fired_at: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
    /// The user it runs as (whose call set it); `None`: no user.
    run_as: Option<String>,
}

/// `paused`: the user it runs as is deactivated.
fn view(t: TimerRow, held: bool, paused: bool, now: &str) -> TimerView {
    let firing = t.claimed_by.is_some() && t.claim_until.as_deref().is_some_and(|u| u > now);
    let state = match (&t.due_at, held, paused, firing) {
        (None, _, _, _) => "failed",
        (Some(_), true, _, _) => "held",
        (Some(_), false, true, _) => "paused",
        (Some(_), false, false, true) => "firing",
        (Some(_), false, false, false) => "pending",
    };
    TimerView {
        key: t.key,
        kind: if t.cron.is_some() { "cron" } else { "once" },
        state,
        next_fire: t.due_at,
        cron: t.cron,
        time_zone: t.time_zone,
        payload: t.payload,
        created_at: t.created_at,
        updated_at: t.updated_at,
        fires: t.fires,
        failures: t.failures,
        last_fired_at: t.last_fired_at,
        last_error: t.last_error,
        last_error_at: t.last_error_at,
        run_as: t.run_as,
    }
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(plugin): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let q: ListQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("bad query: {e} (cursor, limit)")))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(format!("`limit` is 1–{MAX_LIMIT}")).with_field("limit", "out of range"));
    }
    let installed = installed::require_installed(&state.db, ctx.tenant(), &plugin).await?;
    let held = installed.state != installation::ENABLED;
    let mut rows = state
        .db
        .timers_page(ctx.tenant(), &plugin, q.cursor.as_deref(), limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|t| t.key.clone()) } else { None };
    let now = stored::format(state.plugins.services().timers.now());
    let mut data = Vec::with_capacity(rows.len());
    for t in rows {
        let paused = match &t.run_as {
            None => false,
            Some(user) => state
                .db
                .user(ctx.tenant(), user)
                .await?
                .is_none_or(|u| u.status != "active"),
        };
        data.push(view(t, held, paused, &now));
    }
    Ok(axum::Json(json!({
        "plugin": plugin,
        "installation_state": installed.state,
        "data": data,
        "next_cursor": next_cursor,
    }))
    .into_response())
}

async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((plugin, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    installed::cancel_timer(&state.db, ctx.tenant(), &ctx.actor(), &plugin, &key).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
