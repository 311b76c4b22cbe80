//! `/api/v1/objects`: the schemas of the standard objects and the tenant's custom
//! objects (type, required, enum values and references of every field), and the
//! management of custom objects (admins).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiJson, ApiResult, AppState, Ctx, FieldProblem};
use plinth_core::manifest::Role;
use plinth_core::records::schema::{self, FieldDef, ObjectSchema};
use plinth_core::records::{self};
use plinth_core::store::audit::{self, NewEvent};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/objects", get(list).post(create))
        .route("/api/v1/objects/{name}", get(get_one).patch(update).delete(delete))
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

fn problems(list: Vec<(String, String)>) -> ApiError {
    ApiError::validation("the object definition is not valid; see `errors`")
        .with_fields(list.into_iter().map(|(field, message)| FieldProblem { field, message }))
}

async fn known(state: &AppState, tenant: &str) -> ApiResult<BTreeMap<String, ()>> {
    Ok(state
        .db
        .custom_objects(tenant)
        .await?
        .into_iter()
        .map(|o| (o.name, ()))
        .collect())
}

fn check_label(label: &str, out: &mut Vec<(String, String)>) {
    let n = label.trim().chars().count();
    if n == 0 || n > 200 {
        out.push(("label".into(), "must be 1–200 characters".into()));
    }
}

async fn create(State(state): State<AppState>, ctx: Ctx, ApiJson(body): ApiJson<CreateBody>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let tenant = ctx.auth.tenant_id.clone();
    let mut issues = schema::check_custom_object(&body.name, &body.fields, &known(&state, &tenant).await?);
    check_label(&body.label, &mut issues);
    if !issues.is_empty() {
        return Err(problems(issues));
    }
    let object = ObjectSchema {
        name: body.name,
        label: body.label.trim().to_string(),
        standard: false,
        fields: body.fields,
    };
    let mut tx = state.db.writer().begin().await.map_err(ApiError::internal)?;
    state.db.insert_custom_object(&mut tx, &tenant, &object).await?;
    let after = serde_json::to_value(&object).unwrap_or_default();
    let event = NewEvent {
        action: "object_type.create",
        entity_type: "object_type",
        entity_id: Some(&object.name),
        before: None,
        after: Some(&after),
    };
    audit::append(&mut tx, state.db.dialect(), &tenant, &ctx.actor(), event).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, axum::Json(object)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    label: Option<String>,
    /// The complete new field list: existing fields keep name and type (labels,
    /// `required` and enum values may change; enum values may only be added); new
    /// fields may be appended. Removing fields is not supported (data would be
    /// orphaned).
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
    let tenant = ctx.auth.tenant_id.clone();
    let current = state
        .db
        .custom_object(&tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no custom object `{name}`")))?;
    let mut next = current.clone();
    let mut issues = Vec::new();
    if let Some(label) = &body.label {
        check_label(label, &mut issues);
        next.label = label.trim().to_string();
    }
    if let Some(fields) = body.fields {
        for old in &current.fields {
            match fields.iter().find(|f| f.name == old.name) {
                None => issues.push(("fields".into(), format!("field `{}` cannot be removed", old.name))),
                Some(new) if new.field_type != old.field_type => {
                    issues.push(("fields".into(), format!("field `{}` cannot change its type", old.name)))
                }
                Some(new) if old.values.iter().any(|v| !new.values.contains(v)) => {
                    issues.push(("fields".into(), format!("enum `{}` may only gain values", old.name)))
                }
                Some(_) => {}
            }
        }
        issues.extend(schema::check_custom_object(
            &name,
            &fields,
            &known(&state, &tenant).await?,
        ));
        next.fields = fields;
    }
    if !issues.is_empty() {
        return Err(problems(issues));
    }
    let mut tx = state.db.writer().begin().await.map_err(ApiError::internal)?;
    state.db.update_custom_object(&mut tx, &tenant, &next).await?;
    let (before, after) = (
        serde_json::to_value(&current).unwrap_or_default(),
        serde_json::to_value(&next).unwrap_or_default(),
    );
    let event = NewEvent {
        action: "object_type.update",
        entity_type: "object_type",
        entity_id: Some(&name),
        before: Some(&before),
        after: Some(&after),
    };
    audit::append(&mut tx, state.db.dialect(), &tenant, &ctx.actor(), event).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(axum::Json(next).into_response())
}

async fn delete(State(state): State<AppState>, ctx: Ctx, Path(name): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let tenant = ctx.auth.tenant_id.clone();
    let current = state
        .db
        .custom_object(&tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no custom object `{name}`")))?;
    let mut tx = state.db.writer().begin().await.map_err(ApiError::internal)?;
    state.db.delete_custom_object(&mut tx, &tenant, &name).await?;
    let before = serde_json::to_value(&current).unwrap_or_default();
    let event = NewEvent {
        action: "object_type.delete",
        entity_type: "object_type",
        entity_id: Some(&name),
        before: Some(&before),
        after: None,
    };
    audit::append(&mut tx, state.db.dialect(), &tenant, &ctx.actor(), event).await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
