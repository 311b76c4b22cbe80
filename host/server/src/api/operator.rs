//! Operator endpoints, guarded by an operator token (`plinth admin token`), not an
//! API key: create tenants (the owner's API key is returned once), list and read
//! them, rename, suspend and reactivate them. A suspended tenant's keys get 401 at
//! once (the auth cache is cleared on every change).

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::context::{client_name, request_id};
use super::extract::{ApiQuery, Page, PageQuery};
use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Operator};
use plinth_core::store::audit::Actor;
use plinth_core::tenancy::{self, tenants};
use plinth_core::versioning::DEFAULT_VERSION;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/operator/tenants",
            list_tenants,
            doc("operator", "Tenants", Access::Operator),
        )
        .post(
            "/api/v1/operator/tenants",
            create_tenant,
            doc(
                "operator",
                "Create a tenant with its owner (key shown once)",
                Access::Operator,
            )
            .json()
            .status(201),
        )
        .get(
            "/api/v1/operator/tenants/{id}",
            get_tenant,
            doc("operator", "One tenant", Access::Operator),
        )
        .patch(
            "/api/v1/operator/tenants/{id}",
            patch_tenant,
            doc("operator", "Rename, suspend or reactivate a tenant", Access::Operator).json(),
        )
}

/// The audit actor of an operator request: no tenant user or key, the client marked
/// as the operator, and the request id for correlation with the logs.
#[derive(Debug, Clone)]
struct OperatorActor(Actor);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for OperatorActor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let client = client_name(parts).map_or_else(|| "operator".to_string(), |c| format!("operator ({c})"));
        Ok(OperatorActor(Actor {
            request_id: Some(request_id(parts)).filter(|r| !r.is_empty()),
            client: Some(client),
            ..Actor::default()
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenantBody {
    name: String,
    owner_email: String,
    owner_name: String,
    default_api_version: Option<String>,
}

/// `POST /api/v1/operator/tenants` → 201 `{ tenant, owner, key, secret }`.
async fn create_tenant(
    State(state): State<AppState>,
    _op: Operator,
    OperatorActor(actor): OperatorActor,
    ApiJson(body): ApiJson<NewTenantBody>,
) -> ApiResult<Response> {
    let created = tenancy::create_tenant(
        &state.db,
        &body.name,
        &body.owner_email,
        &body.owner_name,
        body.default_api_version.as_deref().unwrap_or(DEFAULT_VERSION),
        &actor,
    )
    .await?;
    let body = json!({
        "tenant": created.tenant,
        "owner": created.owner,
        "key": created.key,
        "secret": created.api_key,
    });
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn list_tenants(
    State(state): State<AppState>,
    _op: Operator,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let (limit, after) = (q.limit()?, q.after()?);
    let tenants = state.db.tenants_page(after, limit + 1).await?;
    Ok(axum::Json(Page::from_items(tenants, limit, |t| t.id.clone())).into_response())
}

async fn get_tenant(State(state): State<AppState>, _op: Operator, Path(id): Path<String>) -> ApiResult<Response> {
    let t = state
        .db
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant {id} not found")))?;
    Ok(axum::Json(t).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatchBody {
    name: Option<String>,
    status: Option<String>,
}

async fn patch_tenant(
    State(state): State<AppState>,
    _op: Operator,
    OperatorActor(actor): OperatorActor,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TenantPatchBody>,
) -> ApiResult<Response> {
    let t = tenants::update_tenant(&state.db, &actor, &id, body.name.as_deref(), body.status.as_deref()).await?;
    // Suspension must bite on the tenant's very next request.
    state.auth_cache.invalidate();
    Ok(axum::Json(t).into_response())
}
