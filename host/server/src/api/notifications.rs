//! `/api/v1/me/notifications`: the caller's own inbox — what plugins notified them of —
//! and their choice of categories that also come by email. Any role; everyone sees
//! only their own notifications (another user's id is simply not found).
//!
//! | endpoint | body / query | answer |
//! |---|---|---|
//! | `GET /api/v1/me/notifications` | `unread=true`, `cursor`, `limit` (1–200) | `{data: [notification], next_cursor, unread}` — unread first, newest first |
//! | `POST /api/v1/me/notifications/{id}/read` | — | the notification |
//! | `POST /api/v1/me/notifications/read-all` | — | `{marked}` |
//! | `GET /api/v1/me/notification-settings` | — | `{email: [category]}` |
//! | `PUT /api/v1/me/notification-settings/{category}` | `{email: bool}` | `{category, email}` |

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::extract::ApiQuery;
use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use plinth_core::store::notifications::InboxCursor;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/me/notifications",
            inbox,
            doc(
                "notifications",
                "My notifications: unread first, newest first",
                Access::READER,
            ),
        )
        .post(
            "/api/v1/me/notifications/{id}/read",
            read_one,
            doc("notifications", "Mark one of my notifications read", Access::READER),
        )
        .post(
            "/api/v1/me/notifications/read-all",
            read_all,
            doc("notifications", "Mark all my notifications read", Access::READER),
        )
        .get(
            "/api/v1/me/notification-settings",
            settings,
            doc("notifications", "The categories I also get by email", Access::READER),
        )
        .put(
            "/api/v1/me/notification-settings/{category}",
            set_email,
            doc(
                "notifications",
                "Get a category's notifications by email too, or not",
                Access::READER,
            )
            .json(),
        )
}

/// Largest page.
const MAX_PAGE: i64 = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxQuery {
    #[serde(default)]
    unread: bool,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// Cursors are `u.<id>` (still in the unread part) or `r.<id>` (in the read part).
fn parse_cursor(raw: &str) -> ApiResult<InboxCursor> {
    let bad = || ApiError::validation("bad cursor").with_field("cursor", "is not a cursor from this list");
    let (part, id) = raw.split_once('.').ok_or_else(bad)?;
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    match part {
        "u" => Ok(InboxCursor::Unread(id.to_string())),
        "r" => Ok(InboxCursor::Read(id.to_string())),
        _ => Err(bad()),
    }
}

async fn inbox(State(state): State<AppState>, ctx: Ctx, ApiQuery(q): ApiQuery<InboxQuery>) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            ApiError::validation("bad page size").with_field("limit", format!("must be between 1 and {MAX_PAGE}"))
        );
    }
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(parse_cursor)
        .transpose()?;
    let (tenant, user) = (ctx.tenant(), ctx.auth.user_id.as_str());
    let (items, more) = state.db.inbox(tenant, user, cursor.as_ref(), limit, q.unread).await?;
    let next_cursor = if more {
        items.last().map(|n| match n.read_at {
            None => format!("u.{}", n.id),
            Some(_) => format!("r.{}", n.id),
        })
    } else {
        None
    };
    let unread = state.db.unread_count(tenant, user).await?;
    Ok(axum::Json(json!({ "data": items, "next_cursor": next_cursor, "unread": unread })).into_response())
}

async fn read_one(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let marked = state.db.mark_read(ctx.tenant(), &ctx.auth.user_id, &id).await?;
    match marked {
        Some(n) => Ok(axum::Json(n).into_response()),
        None => Err(ApiError::not_found(format!("you have no notification {id}"))),
    }
}

async fn read_all(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    let marked = state.db.mark_all_read(ctx.tenant(), &ctx.auth.user_id).await?;
    Ok(axum::Json(json!({ "marked": marked })).into_response())
}

async fn settings(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    let email = state.db.email_categories(ctx.tenant(), &ctx.auth.user_id).await?;
    Ok(axum::Json(json!({ "email": email })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: bool,
}

async fn set_email(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(category): Path<String>,
    ApiJson(body): ApiJson<EmailBody>,
) -> ApiResult<Response> {
    if !plinth_core::notify::category_ok(&category) {
        return Err(ApiError::validation("bad category").with_field("category", "must match ^[a-z][a-z0-9_.-]{0,63}$"));
    }
    state
        .db
        .set_email_category(ctx.tenant(), &ctx.auth.user_id, &category, body.email)
        .await?;
    Ok(axum::Json(json!({ "category": category, "email": body.email })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_name_their_part_of_the_inbox() {
        assert_eq!(parse_cursor("u.01J").unwrap(), InboxCursor::Unread("01J".into()));
        assert_eq!(parse_cursor("r.01J").unwrap(), InboxCursor::Read("01J".into()));
        for bad in ["01J", "x.01J", "u.", "u.0'1"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
