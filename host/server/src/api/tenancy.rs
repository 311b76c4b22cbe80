//! Users, API keys and `/me` (`/api/v1/users`, `/api/v1/keys`, `/api/v1/me`), plus
//! what the tenancy and group handlers share: cursor pages, `ETag`/`If-Match`, and
//! the mapping of [`TenancyError`] to problems.
//!
//! Reads need any role; writes need `admin` (users) or are limited to one's own keys
//! unless admin. Ids of other tenants are simply not found (404).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, ApiJson, ApiResult, AppState, Ctx, FieldProblem};
use plinth_core::manifest::Role;
use plinth_core::store::tenancy::ApiKey;
use plinth_core::tenancy::keys::{self, KeyRequest};
use plinth_core::tenancy::users::{self, UserPatch};
use plinth_core::tenancy::{Caller, TenancyError};

/// Default page size.
pub(crate) const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub(crate) const MAX_LIMIT: i64 = 500;

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

/// A query-string extractor whose rejections are problem documents (400 naming the
/// parameter) rather than axum's plain-text ones.
#[derive(Debug, Clone)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| ApiError::bad_request(format!("bad query string: {}", rejection.body_text())))
    }
}

/// `?cursor=&limit=` of every list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<i64>,
}

impl PageQuery {
    /// The page size, validated.
    pub fn limit(&self) -> ApiResult<i64> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => {
                Err(ApiError::validation("bad page size")
                    .with_field("limit", format!("must be between 1 and {MAX_LIMIT}")))
            }
        }
    }

    /// The cursor as the id to continue after (cursors are the last id of a page).
    pub fn after(&self) -> ApiResult<Option<&str>> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(c) if c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric()) => Ok(Some(c)),
            Some(_) => Err(ApiError::validation("bad cursor").with_field("cursor", "is not a cursor from this list")),
        }
    }
}

/// A page of a list: `{ "data": [...], "next_cursor": ... }`.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Cursor for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` fetched items: the extra one only says "more".
    pub fn from_items(mut items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let more = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = if more { items.last().map(cursor_of) } else { None };
        Page {
            data: items,
            next_cursor,
        }
    }
}

/// `If-Match` as a version: `None` when absent or `*`; a value that is not a version
/// (`"3"`, `3` or `W/"3"`) matches nothing → 412.
pub(crate) fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Ok(None);
    }
    let bare = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
    bare.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::precondition_failed(format!("If-Match `{raw}` does not name a version")))
}

/// A JSON response with an `ETag: "<version>"`.
pub(crate) fn with_etag(status: StatusCode, version: i64, body: impl Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// The service-level caller of a request.
pub(crate) fn caller(ctx: &Ctx) -> Caller<'_> {
    Caller {
        user_id: &ctx.auth.user_id,
        role: ctx.auth.role,
    }
}

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", get(get_user).patch(patch_user))
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route("/api/v1/keys/{id}", get(get_key))
        .route("/api/v1/keys/{id}/revoke", post(revoke_key))
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
}

async fn patch_user(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UserPatchBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let expected = if_match(&headers)?;
    let patch = UserPatch {
        name: body.name,
        role: body.role,
        status: body.status,
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
