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

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiQuery, Page, PageQuery};
use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use plinth_core::manifest::Role;
use plinth_core::outbox::webhooks::{self, NewWebhook, WebhookError, WebhookPatch};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/webhooks",
            list,
            doc("webhooks", "The tenant's webhooks (never their secrets)", Access::ADMIN),
        )
        .post(
            "/api/v1/webhooks",
            create,
            doc(
                "webhooks",
                "Register a webhook; its signing secret is returned once",
                Access::ADMIN,
            )
            .json()
            .status(201),
        )
        .get(
            "/api/v1/webhooks/{id}",
            one,
            doc("webhooks", "One webhook", Access::ADMIN),
        )
        .patch(
            "/api/v1/webhooks/{id}",
            update,
            doc(
                "webhooks",
                "Change a webhook's URL, events, alerts, enabled flag or secret",
                Access::ADMIN,
            )
            .json(),
        )
        .delete(
            "/api/v1/webhooks/{id}",
            remove,
            doc("webhooks", "Delete a webhook and its delivery log", Access::ADMIN).status(204),
        )
        .get(
            "/api/v1/webhooks/{id}/deliveries",
            deliveries,
            doc(
                "webhooks",
                "Delivery attempts of a webhook, newest first",
                Access::ADMIN,
            ),
        )
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

async fn deliveries(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let limit = q.limit_up_to(200)?;
    let rows = webhooks::deliveries(&state.db, ctx.tenant(), &id, q.after()?, limit + 1).await?;
    Ok(axum::Json(Page::from_items(rows, limit, |d| d.id.clone())).into_response())
}
