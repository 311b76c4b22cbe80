//! The event endpoints under `/api/v1/events`, for tenant admins and owners: the
//! tenant's event log, each installation's delivery state, and the dead-letter list
//! with replay and discard (both audited). Every query is scoped to the caller's
//! tenant, so another tenant's ids are simply not found.
//!
//! | endpoint | parameters | answer |
//! |---|---|---|
//! | `GET /api/v1/events` | `after` (seq, default 0), `limit` (1–500, default 50) | `{data: [event], next_after}` |
//! | `GET /api/v1/events/subscriptions` | — | `{data: [delivery state per installation]}` |
//! | `GET /api/v1/events/dead-letters` | `plugin`, `cursor`, `limit` | `{data: [dead letter], next_cursor}` |
//! | `POST /api/v1/events/dead-letters/{id}/replay` | — | 202, the dead letter (`state: replaying`) |
//! | `DELETE /api/v1/events/dead-letters/{id}` | — | 204 |
//!
//! Also here: the middleware that wakes the delivery worker after a write request
//! succeeded (its transaction has committed by then), so events are delivered at
//! once instead of at the worker's next poll.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiResult, AppState, Ctx};
use plinth_core::audit::params::{Params, encode_cursor};
use plinth_core::events::dead_letters;
use plinth_core::manifest::Role;

/// Cursor kind of dead-letter pages.
const CURSOR_KIND: &str = "dl1";

/// The event routes.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/events",
            list_events,
            doc("events", "The tenant's event log in commit order", Access::ADMIN),
        )
        .get(
            "/api/v1/events/subscriptions",
            subscriptions,
            doc("events", "Delivery progress of each installation", Access::ADMIN),
        )
        .get(
            "/api/v1/events/dead-letters",
            list_dead_letters,
            doc("events", "Events a plugin failed to handle", Access::ADMIN),
        )
        .delete(
            "/api/v1/events/dead-letters/{id}",
            discard,
            doc("events", "Discard a dead letter", Access::ADMIN).status(204),
        )
        .post(
            "/api/v1/events/dead-letters/{id}/replay",
            replay,
            doc("events", "Re-queue a dead letter for delivery", Access::ADMIN).status(202),
        )
}

/// Wake the delivery worker after every successful write request.
pub(super) async fn wake_after_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let write = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let response = next.run(request).await;
    if write && response.status().is_success() {
        state.events.wake();
    }
    response
}

/// `GET /api/v1/events`: the tenant's event log in seq (commit) order.
async fn list_events(State(state): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let (params, unknown) = Params::parse_all(q.as_deref(), &["after", "limit"])?;
    let mut check = params.check_with(unknown);
    let after = match params.get("after") {
        None => 0,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).unwrap_or_else(|| {
            check.issue(
                "after",
                "must be a whole number of 0 or more (a `seq` from this endpoint)",
            );
            0
        }),
    };
    let limit = check.limit();
    check.finish()?;
    let events = state.db.events_after(ctx.tenant(), after, limit).await?;
    let next_after = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let data: Vec<Value> = events
        .into_iter()
        .map(|e| {
            let payload = serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::String(e.payload.clone()));
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("payload".into(), payload);
            }
            v
        })
        .collect();
    Ok(axum::Json(json!({ "data": data, "next_after": next_after })).into_response())
}

/// `GET /api/v1/events/subscriptions`: how far each installation's deliveries got.
async fn subscriptions(State(state): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    Params::parse(q.as_deref(), &[])?;
    let data = state.db.cursor_statuses(ctx.tenant()).await?;
    Ok(axum::Json(json!({ "data": data })).into_response())
}

/// `GET /api/v1/events/dead-letters`: parked events, oldest first.
async fn list_dead_letters(State(state): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let (params, unknown) = Params::parse_all(q.as_deref(), &["plugin", "cursor", "limit"])?;
    let mut check = params.check_with(unknown);
    let plugin = check.text("plugin");
    let after = check.cursor(CURSOR_KIND).unwrap_or_default();
    let limit = check.limit();
    check.finish()?;
    let letters = state
        .db
        .dead_letters(ctx.tenant(), plugin.as_deref(), &after, limit)
        .await?;
    let next_cursor = (letters.len() as i64 == limit)
        .then(|| letters.last().map(|l| encode_cursor(CURSOR_KIND, &l.id)))
        .flatten();
    Ok(axum::Json(json!({ "data": letters, "next_cursor": next_cursor })).into_response())
}

fn id(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
}

/// `POST /api/v1/events/dead-letters/{id}/replay`: re-queue it for delivery.
async fn replay(
    State(state): State<AppState>,
    ctx: Ctx,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let id = id(path)?;
    let letter = dead_letters::replay(&state.db, ctx.tenant(), &ctx.actor(), &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(letter)).into_response())
}

/// `DELETE /api/v1/events/dead-letters/{id}`: drop it.
async fn discard(
    State(state): State<AppState>,
    ctx: Ctx,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let id = id(path)?;
    dead_letters::discard(&state.db, ctx.tenant(), &ctx.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
