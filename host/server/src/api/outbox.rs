//! `/api/v1/outbox`: the tenant's queued and delivered notifications — emails (from
//! plugins and audit alerts) and webhook calls — with status, attempts, last error,
//! recipients and subject. Tenant admins and owners only; never another tenant's
//! rows, never message bodies or attachment bytes.
//!
//! | endpoint | query | answer |
//! |---|---|---|
//! | `GET /api/v1/outbox` | `kind=email\|webhook`, `status=pending\|sending\|sent\|failed`, `cursor`, `limit` (1–200, default 50) | `{data: [item], next_cursor}`, newest first |
//! | `GET /api/v1/outbox/{id}` | — | one item |

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiResult, AppState, Ctx};
use plinth_core::manifest::Role;
use plinth_core::outbox::email;
use plinth_core::store::outbox::{self, OutboxFilter, OutboxRow, kind, status};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/outbox",
            list,
            doc(
                "outbox",
                "Queued and delivered emails and webhook calls, newest first",
                Access::ADMIN,
            ),
        )
        .get(
            "/api/v1/outbox/{id}",
            one,
            doc("outbox", "One outbox item: status, attempts, last error", Access::ADMIN),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    kind: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// An outbox row as shown to the tenant admin.
fn item(r: &OutboxRow) -> Value {
    let source = match (&r.plugin_id, r.kind.as_str()) {
        (Some(p), _) => format!("plugin:{p}"),
        (None, _) => serde_json::from_str::<Value>(&r.payload)
            .ok()
            .and_then(|p| p["type"].as_str().map(str::to_string))
            .unwrap_or_else(|| "host".into()),
    };
    let mut doc = json!({
        "id": r.id,
        "kind": r.kind,
        "status": r.status,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "next_attempt_at": (r.status == status::PENDING).then_some(&r.next_attempt_at),
        "created_at": r.created_at,
        "finished_at": r.finished_at,
        "result": r.result,
        "source": source,
    });
    if r.kind == kind::EMAIL {
        let p = email::summary(&r.payload).unwrap_or_default();
        doc["email"] = json!({
            "to": p.to,
            "cc": p.cc,
            "subject": p.subject,
            "attachments": p.attachments,
        });
    } else if r.kind == kind::WEBHOOK {
        let p: Value = serde_json::from_str(&r.payload).unwrap_or(Value::Null);
        doc["webhook"] = json!({ "webhook_id": r.webhook_id, "type": p["type"] });
    }
    doc
}

async fn list(State(state): State<AppState>, ctx: Ctx, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let q: ListQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e} (allowed: kind, status, cursor, limit)")))?;
    if let Some(k) = &q.kind
        && k != kind::EMAIL
        && k != kind::WEBHOOK
    {
        return Err(ApiError::validation("unknown kind").with_field("kind", "is `email` or `webhook`"));
    }
    if let Some(s) = &q.status
        && ![status::PENDING, status::SENDING, status::SENT, status::FAILED].contains(&s.as_str())
    {
        return Err(
            ApiError::validation("unknown status").with_field("status", "is `pending`, `sending`, `sent` or `failed`")
        );
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit out of range").with_field("limit", "is 1–200"));
    }
    let filter = OutboxFilter {
        kind: q.kind,
        status: q.status,
        before_id: q.cursor,
    };
    let rows = outbox::list(&state.db, ctx.tenant(), &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<&OutboxRow> = rows.iter().take(limit as usize).collect();
    let next = if more { page.last().map(|r| r.id.clone()) } else { None };
    let data: Vec<Value> = page.into_iter().map(item).collect();
    Ok(axum::Json(json!({ "data": data, "next_cursor": next })).into_response())
}

async fn one(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let row = outbox::get(&state.db, ctx.tenant(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no outbox item `{id}`")))?;
    Ok(axum::Json(item(&row)).into_response())
}
