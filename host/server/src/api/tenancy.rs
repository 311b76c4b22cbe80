//! Users, API keys and `/me` (`/api/v1/users`, `/api/v1/keys`, `/api/v1/me`), and the
//! mapping of [`TenancyError`] to problems that the group handlers share.
//!
//! Reads need any role; writes need `admin` (users) or are limited to one's own keys
//! unless admin. Ids of other tenants are simply not found (404).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiQuery, IfMatch, Page, PageQuery, present, with_etag};
use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx, FieldProblem};
use plinth_core::manifest::Role;
use plinth_core::store::tenancy::ApiKey;
use plinth_core::tenancy::keys::{self, KeyRequest};
use plinth_core::tenancy::users::{self, Profile, UserPatch};
use plinth_core::tenancy::{Caller, TenancyError};

impl From<TenancyError> for ApiError {
    fn from(e: TenancyError) -> Self {
        match e {
            TenancyError::NotFound(m) => ApiError::not_found(m),
            TenancyError::Forbidden(m) => ApiError::forbidden(m),
            TenancyError::Conflict(m) => ApiError::conflict(m),
            TenancyError::Invalid(fields) => ApiError::validation("the request has invalid fields").with_fields(
                fields
                    .into_iter()
                    .map(|(field, message)| FieldProblem { field, message }),
            ),
            TenancyError::VersionMismatch { current } => ApiError::precondition_failed(format!(
                "If-Match does not match the current version \"{current}\"; fetch it again"
            ))
            .with_extra("current_version", current.into()),
            TenancyError::Cycle {
                group,
                new_parent,
                path,
            } => {
                let what = if group == new_parent {
                    "the group itself"
                } else {
                    "one of its descendants"
                };
                let detail = format!(
                    "cannot move group {group} under {new_parent}: {new_parent} is {what}, so the move would \
                     create a cycle ({})",
                    path.join(" → ")
                );
                ApiError::new(StatusCode::CONFLICT, "group-cycle", "Group cycle", detail)
                    .with_extra("group_id", group.into())
                    .with_extra("parent_id", new_parent.into())
                    .with_extra("cycle", json!(path))
            }
            TenancyError::ManagerCycle { user, manager, path } => {
                let detail = format!(
                    "{manager} cannot manage {user}: {user} is above {manager} in the management chain, so \
                     it would become a cycle ({})",
                    path.join(" → ")
                );
                ApiError::new(StatusCode::CONFLICT, "manager-cycle", "Manager cycle", detail)
                    .with_extra("user_id", user.into())
                    .with_extra("manager_id", manager.into())
                    .with_extra("cycle", json!(path))
            }
            e @ TenancyError::ManagedElsewhere { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "managed-by-plugin",
                "Managed elsewhere",
                e.to_string(),
            ),
            TenancyError::LastOwner(m) => ApiError::new(StatusCode::CONFLICT, "last-owner", "Last owner", m),
            TenancyError::Store(e) => e.into(),
        }
    }
}

/// The service-level caller of a request.
pub(crate) fn caller(ctx: &Ctx) -> Caller<'_> {
    Caller {
        user_id: &ctx.auth.user_id,
        role: ctx.auth.role,
    }
}

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/me",
            me,
            doc("identity", "The caller: user, role, tenant", Access::READER),
        )
        .get(
            "/api/v1/users",
            list_users,
            doc("identity", "Users of the tenant", Access::READER),
        )
        .post(
            "/api/v1/users",
            create_user,
            doc("identity", "Add a user", Access::ADMIN).json().status(201),
        )
        .get(
            "/api/v1/users/{id}",
            get_user,
            doc("identity", "One user", Access::READER),
        )
        .patch(
            "/api/v1/users/{id}",
            patch_user,
            doc("identity", "Change a user's name, role or status", Access::ADMIN).json(),
        )
        .get(
            "/api/v1/keys",
            list_keys,
            doc("identity", "API keys (all for admins, own otherwise)", Access::READER),
        )
        .post(
            "/api/v1/keys",
            create_key,
            doc("identity", "Create an API key (secret shown once)", Access::READER)
                .json()
                .status(201),
        )
        .get(
            "/api/v1/keys/{id}",
            get_key,
            doc("identity", "One API key (never its secret)", Access::READER),
        )
        .post(
            "/api/v1/keys/{id}/revoke",
            revoke_key,
            doc("identity", "Revoke an API key", Access::READER),
        )
}

/// `GET /api/v1/me`: the caller's user, role, tenant and key.
async fn me(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    let user = state
        .db
        .user(ctx.tenant(), &ctx.auth.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("your user no longer exists"))?;
    let tenant = state
        .db
        .tenant(ctx.tenant())
        .await?
        .ok_or_else(|| ApiError::not_found("your tenant no longer exists"))?;
    let key = state.db.api_key(ctx.tenant(), &ctx.auth.key_id).await?;
    Ok(axum::Json(json!({
        "user": user,
        "tenant": { "id": tenant.id, "name": tenant.name, "default_api_version": tenant.default_api_version },
        "key": key,
        "api_version": ctx.api_version,
    }))
    .into_response())
}

async fn list_users(State(state): State<AppState>, ctx: Ctx, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Response> {
    let limit = q.limit()?;
    let users = state.db.users(ctx.tenant(), q.after()?, limit + 1).await?;
    Ok(axum::Json(Page::from_items(users, limit, |u| u.id.clone())).into_response())
}

async fn get_user(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let user = state
        .db
        .user(ctx.tenant(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    Ok(with_etag(StatusCode::OK, user.version, &user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    email: String,
    name: String,
    role: String,
    #[serde(default)]
    manager_id: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewUserBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let user = users::create_user(
        &state.db,
        ctx.tenant(),
        &ctx.actor(),
        caller(&ctx),
        &body.email,
        &body.name,
        &body.role,
        &Profile {
            manager_id: body.manager_id,
            locale: body.locale,
            time_zone: body.time_zone,
        },
    )
    .await?;
    Ok(with_etag(StatusCode::CREATED, user.version, &user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatchBody {
    name: Option<String>,
    role: Option<String>,
    status: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    manager_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    locale: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    time_zone: Option<Option<String>>,
}

async fn patch_user(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    ApiJson(body): ApiJson<UserPatchBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let patch = UserPatch {
        name: body.name,
        role: body.role,
        status: body.status,
        manager_id: body.manager_id,
        locale: body.locale,
        time_zone: body.time_zone,
    };
    let user = users::update_user(
        &state.db,
        ctx.tenant(),
        &ctx.actor(),
        caller(&ctx),
        &id,
        expected,
        patch,
    )
    .await?;
    // A role or status change must bite on the very next request.
    state.auth_cache.invalidate();
    Ok(with_etag(StatusCode::OK, user.version, &user))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyListQuery {
    cursor: Option<String>,
    limit: Option<i64>,
    user_id: Option<String>,
}

async fn list_keys(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<KeyListQuery>,
) -> ApiResult<Response> {
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    };
    let limit = page.limit()?;
    let after = page.after()?;
    // Admins see every key (or one user's); everyone else sees only their own.
    let user = match (ctx.auth.is_admin(), q.user_id.as_deref()) {
        (true, u) => u,
        (false, Some(u)) if u != ctx.auth.user_id => {
            return Err(ApiError::forbidden("only admins and owners list other users' keys"));
        }
        (false, _) => Some(ctx.auth.user_id.as_str()),
    };
    let keys: Vec<ApiKey> = match user {
        Some(u) => {
            if state.db.user(ctx.tenant(), u).await?.is_none() {
                return Err(ApiError::not_found(format!("user {u} not found")));
            }
            state.db.api_keys_of_user(ctx.tenant(), u, after, limit + 1).await?
        }
        None => state.db.api_keys(ctx.tenant(), after, limit + 1).await?,
    };
    Ok(axum::Json(Page::from_items(keys, limit, |k| k.id.clone())).into_response())
}

async fn get_key(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let key = state
        .db
        .api_key(ctx.tenant(), &id)
        .await?
        .filter(|k| keys::can_see(caller(&ctx), k))
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found")))?;
    Ok(axum::Json(key).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    name: String,
    user_id: Option<String>,
    expires_at: Option<String>,
    api_version: Option<String>,
}

async fn create_key(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Member)?;
    let created = keys::create_key(
        &state.db,
        ctx.tenant(),
        &ctx.actor(),
        caller(&ctx),
        KeyRequest {
            name: &body.name,
            user_id: body.user_id.as_deref(),
            expires_at: body.expires_at.as_deref(),
            api_version: body.api_version.as_deref(),
        },
    )
    .await?;
    let mut response = (StatusCode::CREATED, axum::Json(&created)).into_response();
    // The secret is in this body only: keep it out of every cache.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn revoke_key(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Member)?;
    let key = keys::revoke_key(&state.db, ctx.tenant(), &ctx.actor(), caller(&ctx), &id).await?;
    state.auth_cache.invalidate();
    Ok(axum::Json(key).into_response())
}
