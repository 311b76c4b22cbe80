//! `/api/v1/objects`: the schemas of the standard objects and the tenant's custom
//! objects (type, required, enum values and references of every field), and the
//! management of custom objects (admins).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::routes::{Access, Routes, doc};
use super::{ApiJson, ApiResult, AppState, Ctx};
use plinth_core::manifest::Role;
use plinth_core::records::objects::{self, NewObject, ObjectPatch};
use plinth_core::records::schema::FieldDef;
use plinth_core::records::{self};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/objects",
            list,
            doc("objects", "Schemas of every standard and custom object", Access::READER),
        )
        .post(
            "/api/v1/objects",
            create,
            doc("objects", "Define a custom object", Access::ADMIN)
                .json()
                .status(201),
        )
        .get(
            "/api/v1/objects/{name}",
            get_one,
            doc("objects", "One object's schema", Access::READER),
        )
        .patch(
            "/api/v1/objects/{name}",
            update,
            doc("objects", "Relabel a custom object or add fields", Access::ADMIN).json(),
        )
        .delete(
            "/api/v1/objects/{name}",
            delete,
            doc("objects", "Delete a custom object without records", Access::ADMIN).status(204),
        )
}

async fn list(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    let all = records::schemas(&state.db, &ctx.auth.tenant_id).await?;
    Ok(axum::Json(json!({ "data": all })).into_response())
}

async fn get_one(State(state): State<AppState>, ctx: Ctx, Path(name): Path<String>) -> ApiResult<Response> {
    let s = records::schema(&state.db, &ctx.auth.tenant_id, &name).await?;
    Ok(axum::Json(s).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    label: String,
    fields: Vec<FieldDef>,
}

async fn create(State(state): State<AppState>, ctx: Ctx, ApiJson(body): ApiJson<CreateBody>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let new = NewObject {
        name: body.name,
        label: body.label,
        fields: body.fields,
    };
    let object = objects::create(&state.db, ctx.tenant(), &ctx.actor(), new).await?;
    Ok((StatusCode::CREATED, axum::Json(object)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    label: Option<String>,
    /// The complete new field list (see `records::objects` for what may change).
    #[serde(default)]
    fields: Option<Vec<FieldDef>>,
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let patch = ObjectPatch {
        label: body.label,
        fields: body.fields,
    };
    let object = objects::update(&state.db, ctx.tenant(), &ctx.actor(), &name, patch).await?;
    Ok(axum::Json(object).into_response())
}

async fn delete(State(state): State<AppState>, ctx: Ctx, Path(name): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    objects::delete(&state.db, ctx.tenant(), &ctx.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
