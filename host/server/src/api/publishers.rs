//! `/api/v1/operator/publishers`: the operator's registry of publishers, their keys
//! (add for rotation, retire, revoke) and upload tokens. Operator token required.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Operator};
use plinth_core::package::PublicKey;
use plinth_runtime::marketplace::publishers;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/operator/publishers",
            list,
            doc("operator", "Registered publishers", Access::Operator),
        )
        .post(
            "/api/v1/operator/publishers",
            create,
            doc("operator", "Register a publisher", Access::Operator)
                .json()
                .status(201),
        )
        .get(
            "/api/v1/operator/publishers/{id}",
            one,
            doc("operator", "One publisher and its keys", Access::Operator),
        )
        .post(
            "/api/v1/operator/publishers/{id}/keys",
            add_key,
            doc("operator", "Add a key (rotation)", Access::Operator)
                .json()
                .status(201),
        )
        .post(
            "/api/v1/operator/publishers/{id}/keys/{key_id}/retire",
            retire,
            doc("operator", "Retire a key", Access::Operator),
        )
        .post(
            "/api/v1/operator/publishers/{id}/keys/{key_id}/revoke",
            revoke,
            doc("operator", "Revoke a key", Access::Operator),
        )
        .post(
            "/api/v1/operator/publishers/{id}/tokens",
            token,
            doc("operator", "Issue an upload token", Access::Operator).status(201),
        )
}

fn key(text: &str) -> ApiResult<PublicKey> {
    text.parse().map_err(|e: plinth_core::package::PackageError| {
        ApiError::validation("the public key is not valid").with_field("public_key", e.to_string())
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    _op: Operator,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Response> {
    let public = body.public_key.as_deref().map(key).transpose()?;
    let display = body.display_name.unwrap_or_else(|| body.id.clone());
    if display.trim().is_empty() || display.chars().count() > 200 {
        return Err(ApiError::validation("display_name is 1–200 characters").with_field("display_name", "invalid"));
    }
    let p = publishers::register(&state.db, &body.id, display.trim(), public.as_ref()).await?;
    tracing::info!(publisher = %p.id, "operator registered a publisher");
    Ok((StatusCode::CREATED, axum::Json(p)).into_response())
}

async fn list(State(state): State<AppState>, _op: Operator) -> ApiResult<Response> {
    let mut all = Vec::new();
    for id in state.db.publisher_ids().await? {
        if let Some(p) = state.db.publisher(&id).await? {
            all.push(p);
        }
    }
    Ok(axum::Json(json!({ "data": all })).into_response())
}

async fn one(State(state): State<AppState>, _op: Operator, Path(id): Path<String>) -> ApiResult<Response> {
    let p = state
        .db
        .publisher(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no publisher `{id}`")))?;
    Ok(axum::Json(p).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    public_key: String,
}

async fn add_key(
    State(state): State<AppState>,
    _op: Operator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<KeyBody>,
) -> ApiResult<Response> {
    let p = publishers::add_key(&state.db, &id, &key(&body.public_key)?).await?;
    Ok((StatusCode::CREATED, axum::Json(p)).into_response())
}

async fn retire(
    State(state): State<AppState>,
    _op: Operator,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let p = publishers::retire_key(&state.db, &id, &key_id).await?;
    Ok(axum::Json(p).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    _op: Operator,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let r = publishers::revoke_key(&state.db, &id, &key_id).await?;
    state.plugins.forget_revoked(&r);
    Ok(axum::Json(r).into_response())
}

async fn token(State(state): State<AppState>, _op: Operator, Path(id): Path<String>) -> ApiResult<Response> {
    let token = publishers::issue_token(&state.db, &id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "publisher": id, "token": token, "note": "shown once" })),
    )
        .into_response())
}
