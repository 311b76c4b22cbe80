//! Groups, memberships and record shares over REST:
//! `/api/v1/groups` (+ `/{id}`, `/{id}/ancestors`, `/{id}/descendants`, `/{id}/tree`,
//! `/{id}/members`), `/api/v1/users/{id}/groups`, `/api/v1/records/{object}/{id}/shares`.
//!
//! Reads need any role; group and membership writes need `manager`; share writes need
//! `member` plus the record-level check of `store::shares::can_manage_shares`.
//! Groups created by plugins (`owner_plugin` set) can be read here but are changed
//! only by their plugin: REST writes to them answer 409 `managed-by-plugin`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{ApiQuery, IfMatch, Page, PageQuery, present, with_etag};
use super::routes::{Access, Routes, doc};
use super::tenancy::caller;
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use plinth_core::manifest::Role;
use plinth_core::store::groups as store;
use plinth_core::store::shares as share_store;
use plinth_core::tenancy::groups::{self as service, GroupOwner, GroupPatch, TREE_MAX_DEPTH};
use plinth_core::tenancy::shares as share_service;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/groups",
            list_groups,
            doc("groups", "Groups (`?parent_id=`, `?root=true`)", Access::READER),
        )
        .post(
            "/api/v1/groups",
            create_group,
            doc("groups", "Create a group", Access::MANAGER).json().status(201),
        )
        .get(
            "/api/v1/groups/{id}",
            get_group,
            doc("groups", "One group", Access::READER),
        )
        .patch(
            "/api/v1/groups/{id}",
            patch_group,
            doc("groups", "Rename or move a group (with its subtree)", Access::MANAGER).json(),
        )
        .delete(
            "/api/v1/groups/{id}",
            delete_group,
            doc("groups", "Delete a leaf group without shares", Access::MANAGER).status(204),
        )
        .get(
            "/api/v1/groups/{id}/ancestors",
            ancestors,
            doc("groups", "Path from the root", Access::READER),
        )
        .get(
            "/api/v1/groups/{id}/descendants",
            descendants,
            doc("groups", "Subtree, paginated", Access::READER),
        )
        .get(
            "/api/v1/groups/{id}/tree",
            tree,
            doc("groups", "Subtree as a nested tree", Access::READER),
        )
        .get(
            "/api/v1/groups/{id}/members",
            list_members,
            doc("groups", "Members of a group", Access::READER),
        )
        .post(
            "/api/v1/groups/{id}/members",
            add_member,
            doc("groups", "Add a member", Access::MANAGER).json().status(201),
        )
        .delete(
            "/api/v1/groups/{id}/members/{user_id}",
            remove_member,
            doc("groups", "Remove a member", Access::MANAGER).status(204),
        )
        .get(
            "/api/v1/users/{id}/groups",
            groups_of_user,
            doc("groups", "Groups a user belongs to", Access::READER),
        )
        .get(
            "/api/v1/records/{object}/{id}/shares",
            list_shares,
            doc("records", "Groups a record is shared with", Access::MEMBER),
        )
        .post(
            "/api/v1/records/{object}/{id}/shares",
            add_share,
            doc("records", "Share a record with a group", Access::MEMBER)
                .json()
                .status(201),
        )
        .delete(
            "/api/v1/records/{object}/{id}/shares/{group_id}",
            remove_share,
            doc("records", "Stop sharing a record with a group", Access::MEMBER).status(204),
        )
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("group {id} not found"))
}

/// 404 unless the group exists in the caller's tenant.
async fn require_group(state: &AppState, ctx: &Ctx, id: &str) -> ApiResult<store::Group> {
    let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
    store::group(&mut conn, ctx.tenant(), id)
        .await?
        .ok_or_else(|| not_found(id))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupListQuery {
    cursor: Option<String>,
    limit: Option<i64>,
    parent_id: Option<String>,
    root: Option<bool>,
}

/// `GET /groups` (all, id order), `?parent_id=` (its children), `?root=true` (roots).
async fn list_groups(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<GroupListQuery>,
) -> ApiResult<Response> {
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let tenant = ctx.tenant();
    let groups = match (q.parent_id.as_deref(), q.root.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(
                ApiError::validation("conflicting filters").with_field("root", "cannot be combined with parent_id")
            );
        }
        (Some(parent), false) => {
            require_group(&state, &ctx, parent).await?;
            let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
            store::children(&mut conn, tenant, Some(parent), after, limit + 1).await?
        }
        (None, true) => {
            let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
            store::children(&mut conn, tenant, None, after, limit + 1).await?
        }
        (None, false) => {
            let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
            store::groups(&mut conn, tenant, after, limit + 1).await?
        }
    };
    Ok(axum::Json(Page::from_items(groups, limit, |g| g.id.clone())).into_response())
}

async fn get_group(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let g = require_group(&state, &ctx, &id).await?;
    Ok(with_etag(StatusCode::OK, g.version, &g))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroupBody {
    name: String,
    parent_id: Option<String>,
}

async fn create_group(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewGroupBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Manager)?;
    let g = service::create_group(
        &state.db,
        ctx.tenant(),
        &ctx.actor(),
        GroupOwner::Rest,
        &body.name,
        body.parent_id.as_deref(),
    )
    .await?;
    Ok(with_etag(StatusCode::CREATED, g.version, &g))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupPatchBody {
    name: Option<String>,
    /// `null` moves the group to the root level.
    #[serde(default, deserialize_with = "present")]
    parent_id: Option<Option<String>>,
}

async fn patch_group(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    ApiJson(body): ApiJson<GroupPatchBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Manager)?;
    let patch = GroupPatch {
        name: body.name,
        parent_id: body.parent_id,
    };
    let g = service::update_group(
        &state.db,
        ctx.tenant(),
        &ctx.actor(),
        GroupOwner::Rest,
        &id,
        expected,
        patch,
    )
    .await?;
    Ok(with_etag(StatusCode::OK, g.version, &g))
}

async fn delete_group(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Manager)?;
    service::delete_group(&state.db, ctx.tenant(), &ctx.actor(), GroupOwner::Rest, &id, expected).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /groups/{id}/ancestors`: root first, each with its distance from the group.
async fn ancestors(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    require_group(&state, &ctx, &id).await?;
    let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
    let data = store::ancestors(&mut conn, ctx.tenant(), &id).await?;
    Ok(axum::Json(serde_json::json!({ "data": data })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescendantsQuery {
    cursor: Option<String>,
    limit: Option<i64>,
    max_depth: Option<i64>,
}

fn check_max_depth(max_depth: Option<i64>, ceiling: i64) -> ApiResult<()> {
    match max_depth {
        Some(d) if !(1..=ceiling).contains(&d) => {
            Err(ApiError::validation("bad max_depth")
                .with_field("max_depth", format!("must be between 1 and {ceiling}")))
        }
        _ => Ok(()),
    }
}

/// Descendant cursors are `<depth>-<id>`: the list is ordered by depth, then id.
fn descendant_cursor(raw: Option<&str>) -> ApiResult<Option<(i64, &str)>> {
    let Some(raw) = raw.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let bad = || ApiError::validation("bad cursor").with_field("cursor", "is not a cursor from this list");
    let (depth, id) = raw.split_once('-').ok_or_else(bad)?;
    let depth = depth.parse::<i64>().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok(Some((depth, id)))
}

/// `GET /groups/{id}/descendants?max_depth=&cursor=&limit=`: breadth first.
async fn descendants(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DescendantsQuery>,
) -> ApiResult<Response> {
    let limit = PageQuery {
        cursor: None,
        limit: q.limit,
    }
    .limit()?;
    check_max_depth(q.max_depth, i64::MAX)?;
    let after = descendant_cursor(q.cursor.as_deref())?;
    require_group(&state, &ctx, &id).await?;
    let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
    let data = store::descendants(&mut conn, ctx.tenant(), &id, q.max_depth, after, limit + 1).await?;
    Ok(axum::Json(Page::from_items(data, limit, |d| format!("{}-{}", d.depth, d.group.id))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeQuery {
    max_depth: Option<i64>,
}

/// `GET /groups/{id}/tree?max_depth=`: the subtree nested (at most 100 levels and
/// 5,000 groups; larger subtrees are paged through `/descendants`).
async fn tree(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TreeQuery>,
) -> ApiResult<Response> {
    check_max_depth(q.max_depth, TREE_MAX_DEPTH)?;
    let t = service::tree(&state.db, ctx.tenant(), &id, q.max_depth.unwrap_or(TREE_MAX_DEPTH)).await?;
    Ok(axum::Json(t).into_response())
}

async fn list_members(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let (limit, after) = (q.limit()?, q.after()?);
    require_group(&state, &ctx, &id).await?;
    let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
    let members = store::members_of(&mut conn, ctx.tenant(), &id, after, limit + 1).await?;
    Ok(axum::Json(Page::from_items(members, limit, |m| m.user_id.clone())).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMemberBody {
    user_id: String,
    role: Option<String>,
}

async fn add_member(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewMemberBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Manager)?;
    let m = service::add_member(
        &state.db,
        ctx.tenant(),
        &ctx.actor(),
        GroupOwner::Rest,
        &id,
        &body.user_id,
        body.role.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(m)).into_response())
}

async fn remove_member(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Manager)?;
    service::remove_member(&state.db, ctx.tenant(), &ctx.actor(), GroupOwner::Rest, &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /users/{id}/groups`: the groups the user belongs to directly, with the role.
async fn groups_of_user(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let (limit, after) = (q.limit()?, q.after()?);
    state
        .db
        .user(ctx.tenant(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
    let data = store::groups_of_user(&mut conn, ctx.tenant(), &id, after, limit + 1).await?;
    Ok(axum::Json(Page::from_items(data, limit, |m| m.group.id.clone())).into_response())
}

async fn list_shares(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let (limit, after) = (q.limit()?, q.after()?);
    let mut conn = state.db.reader().acquire().await.map_err(ApiError::internal)?;
    share_service::record_for(&mut conn, ctx.tenant(), caller(&ctx), &object, &id, false).await?;
    let shares = share_store::shares_of(&mut conn, ctx.tenant(), &id, after, limit + 1).await?;
    Ok(axum::Json(Page::from_items(shares, limit, |s| s.group_id.clone())).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewShareBody {
    group_id: String,
    access: String,
}

async fn add_share(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<NewShareBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Member)?;
    let s = share_service::add_share(
        &state.db,
        ctx.tenant(),
        &ctx.actor(),
        caller(&ctx),
        (&object, &id),
        &body.group_id,
        &body.access,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(s)).into_response())
}

async fn remove_share(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id, group_id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Member)?;
    share_service::remove_share(
        &state.db,
        ctx.tenant(),
        &ctx.actor(),
        caller(&ctx),
        (&object, &id),
        &group_id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
