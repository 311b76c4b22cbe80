//! `/api/v1/webhooks`: the tenant's webhooks — registration (the signing secret is
//! returned once, on creation), changes, removal, and each webhook's delivery log.
//! Tenant admins and owners only. Every change is audited (without the secret).
//!
//! | endpoint | body / query | answer |
//! |---|---|---|
//! | `POST /api/v1/webhooks` | `{url, secret?, events: [pattern], alerts, enabled}` | 201 `{…webhook, secret}` |
//! | `GET /api/v1/webhooks` | — | `{data: [webhook]}` |
//! | `GET /api/v1/webhooks/{id}` | — | webhook |
//! | `PATCH /api/v1/webhooks/{id}` | any of `url, secret, events, alerts, enabled` | webhook |
//! | `DELETE /api/v1/webhooks/{id}` | — | 204 |
//! | `GET /api/v1/webhooks/{id}/deliveries` | `cursor`, `limit` (1–200) | `{data: [delivery], next_cursor}` |

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use plinth_core::manifest::Role;
use plinth_core::outbox::webhooks::{self, NewWebhook, WebhookError, WebhookPatch};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route("/api/v1/webhooks/{id}", get(one).patch(update).delete(remove))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        let detail = e.to_string();
        match e {
            WebhookError::NotFound(_) => ApiError::not_found(detail),
            WebhookError::Invalid { field, message } => ApiError::validation(detail).with_field(field, message),
            WebhookError::Limit(m) => ApiError::too_many(m),
            WebhookError::Store(s) => s.into(),
            WebhookError::Vault(v) => ApiError::internal(v),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    alerts: bool,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    alerts: Option<bool>,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn create(State(state): State<AppState>, ctx: Ctx, ApiJson(body): ApiJson<CreateBody>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let input = NewWebhook {
        url: body.url,
        secret: body.secret,
        events: body.events,
        alerts: body.alerts,
        enabled: body.enabled,
    };
    let rules = &state.outbound.policy().addresses;
    let (view, secret) = webhooks::create(&state.db, &state.vault, rules, ctx.tenant(), &ctx.actor(), input).await?;
    let mut doc = serde_json::to_value(&view).map_err(ApiError::internal)?;
    doc["secret"] = json!(secret);
    Ok((StatusCode::CREATED, axum::Json(doc)).into_response())
}

async fn list(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let all = webhooks::list(&state.db, ctx.tenant()).await?;
    Ok(axum::Json(json!({ "data": all })).into_response())
}

async fn one(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    Ok(axum::Json(webhooks::get(&state.db, ctx.tenant(), &id).await?).into_response())
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let patch = WebhookPatch {
        url: body.url,
        secret: body.secret,
        events: body.events,
        alerts: body.alerts,
        enabled: body.enabled,
    };
    let rules = &state.outbound.policy().addresses;
    let view = webhooks::update(&state.db, &state.vault, rules, ctx.tenant(), &ctx.actor(), &id, patch).await?;
    Ok(axum::Json(view).into_response())
}

async fn remove(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    webhooks::delete(&state.db, ctx.tenant(), &ctx.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn deliveries(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let q: PageQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e} (allowed: cursor, limit)")))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit out of range").with_field("limit", "is 1–200"));
    }
    let mut rows = webhooks::deliveries(&state.db, ctx.tenant(), &id, q.cursor.as_deref(), limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|d| d.id.clone()) } else { None };
    Ok(axum::Json(json!({ "data": rows, "next_cursor": next })).into_response())
}
