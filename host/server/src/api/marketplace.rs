//! `/api/v1/marketplace`: publishing (publisher tokens), the catalog (search,
//! categories, sorting), plugin and version details, and tenant reviews.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use axum::http::Method;
use plinth_core::installed;
use plinth_core::manifest::{Manifest, Role};
use plinth_core::package::MAX_COMPONENT_BYTES;
use plinth_core::store::marketplace::CatalogSort;
use plinth_runtime::marketplace::publish::{self, PublishError};
use plinth_runtime::marketplace::publishers;
use plinth_runtime::marketplace::trust::TrustError;

/// Largest package accepted for publishing.
const MAX_PACKAGE: usize = MAX_COMPONENT_BYTES + 1024 * 1024;
/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .route(
            Method::POST,
            "/api/v1/marketplace/packages",
            post(publish_package).layer(DefaultBodyLimit::max(MAX_PACKAGE)),
            doc("marketplace", "Publish a signed package", Access::Publisher)
                .binary()
                .status(201),
        )
        .get(
            "/api/v1/marketplace/plugins",
            catalog,
            doc("marketplace", "The catalog: search, category, sort", Access::Public),
        )
        .get(
            "/api/v1/marketplace/plugins/{id}",
            details,
            doc(
                "marketplace",
                "One plugin: versions, capabilities, ratings",
                Access::Public,
            ),
        )
        .get(
            "/api/v1/marketplace/plugins/{id}/versions/{version}",
            version_details,
            doc("marketplace", "One published version", Access::Public),
        )
        .put(
            "/api/v1/marketplace/plugins/{id}/review",
            put_review,
            doc("marketplace", "Rate and review (installers)", Access::ADMIN).json(),
        )
        .delete(
            "/api/v1/marketplace/plugins/{id}/review",
            delete_review,
            doc("marketplace", "Delete this tenant's review", Access::ADMIN).status(204),
        )
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        let detail = e.to_string();
        match e {
            PublishError::Trust(t) => trust_problem(t),
            PublishError::WrongPublisher { .. } => ApiError::forbidden(detail),
            PublishError::Duplicate { .. } | PublishError::NotNewer { .. } => ApiError::conflict(detail),
            PublishError::UnsupportedApi { .. } | PublishError::Component(_) | PublishError::UndeclaredImports(_) => {
                ApiError::validation(detail)
            }
            PublishError::Rollups(problems) => ApiError::validation(detail).with_fields(problems),
            PublishError::Store(s) => s.into(),
        }
    }
}

/// A trust failure as a problem whose `reason` member names the exact cause.
pub fn trust_problem(e: TrustError) -> ApiError {
    let (reason, status) = match &e {
        TrustError::Malformed(_) => ("malformed", StatusCode::BAD_REQUEST),
        TrustError::Manifest(_) => ("invalid-manifest", StatusCode::UNPROCESSABLE_ENTITY),
        TrustError::UnknownPublisher(_) => ("unknown-publisher", StatusCode::UNPROCESSABLE_ENTITY),
        TrustError::PublisherSuspended(_) => ("publisher-suspended", StatusCode::UNPROCESSABLE_ENTITY),
        TrustError::UnknownKey { .. } => ("unknown-key", StatusCode::UNPROCESSABLE_ENTITY),
        TrustError::RevokedKey(_) => ("revoked-key", StatusCode::UNPROCESSABLE_ENTITY),
        TrustError::RetiredKey(_) => ("retired-key", StatusCode::UNPROCESSABLE_ENTITY),
        TrustError::BadSignature { .. } => ("bad-signature", StatusCode::UNPROCESSABLE_ENTITY),
        TrustError::Store(_) => return ApiError::internal(e),
    };
    ApiError::new(status, "untrusted-package", "Untrusted package", e.to_string()).with_extra("reason", reason.into())
}

async fn publish_package(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("publishing needs `Authorization: Bearer <publisher token>`"))?;
    let publisher = publishers::publisher_for_token(&state.db, token.trim())
        .await?
        .ok_or_else(|| ApiError::unauthorized("the publisher token is not valid"))?;
    let row = publish::publish(&state.db, state.plugins.runtime(), &body, Some(&publisher)).await?;
    Ok((StatusCode::CREATED, axum::Json(row)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogParams {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

async fn catalog(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let p: CatalogParams = match raw.as_deref() {
        None | Some("") => CatalogParams::default(),
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|e| ApiError::bad_request(format!("query parameters: {e}")))?
        }
    };
    let sort = match p.sort.as_deref() {
        None | Some("name") => CatalogSort::Name,
        Some("rating") => CatalogSort::Rating,
        Some("installs") => CatalogSort::Installs,
        Some("recent") => CatalogSort::Recent,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort must be name, rating, installs or recent, not `{other}`"
            )));
        }
    };
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) || p.offset.is_some_and(|o| o < 0) {
        return Err(ApiError::bad_request("limit is 1–200 and offset ≥ 0"));
    }
    if p.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::bad_request("q is at most 200 characters"));
    }
    let entries = state
        .db
        .catalog(
            p.q.as_deref(),
            p.category.as_deref(),
            sort,
            limit,
            p.offset.unwrap_or(0),
        )
        .await?;
    Ok(axum::Json(json!({ "data": entries })).into_response())
}

fn capabilities(manifest_text: &str) -> Value {
    match Manifest::parse(manifest_text) {
        Ok(m) => json!({
            "requested": m.capabilities.keys(),
            "detail": m.capabilities,
            "endpoints": m.endpoints,
            "limits": { "timeout_ms": m.limits.timeout_ms, "memory_mib": m.limits.memory_mib },
            "dependencies": m.dependencies.iter().map(|(k, v)| (k.clone(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
            "api": m.plugin.api.to_string(),
        }),
        Err(_) => Value::Null,
    }
}

async fn details(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let versions = state.db.package_versions(&id).await?;
    let Some(latest) = versions.first() else {
        return Err(ApiError::not_found(format!("there is no plugin `{id}` in the catalog")));
    };
    let reviews = state.db.reviews(&id, 20).await?;
    let entry = state
        .db
        .catalog(None, None, CatalogSort::Name, 200, 0)
        .await?
        .into_iter()
        .find(|e| e.id == id);
    let mut histogram = [0u32; 5];
    for r in &reviews {
        if let Some(slot) = usize::try_from(r.rating - 1).ok().and_then(|i| histogram.get_mut(i)) {
            *slot += 1;
        }
    }
    let publisher = state.db.publisher(&latest.publisher_id).await?;
    Ok(axum::Json(json!({
        "id": id,
        "name": latest.name,
        "description": latest.description,
        "publisher": publisher.map(|p| json!({ "id": p.id, "display_name": p.display_name })),
        "latest_version": latest.version,
        "rating": {
            "average": entry.as_ref().and_then(|e| e.rating),
            "count": entry.as_ref().map_or(0, |e| e.reviews),
            "recent_histogram": histogram,
        },
        "installs": entry.as_ref().map_or(0, |e| e.installs),
        "versions": versions.iter().map(|v| json!({
            "version": v.version,
            "digest": v.digest,
            "key_id": v.key_id,
            "size": v.size,
            "published_at": v.published_at,
            "capabilities": capabilities(&v.manifest)["requested"],
        })).collect::<Vec<_>>(),
        "reviews": reviews,
    }))
    .into_response())
}

async fn version_details(
    State(state): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let row = state
        .db
        .package_version(&id, &version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("`{id}` has no published version {version}")))?;
    let mut doc = serde_json::to_value(&row).map_err(ApiError::internal)?;
    doc["manifest"] = capabilities(&row.manifest);
    Ok(axum::Json(doc).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    rating: i64,
    #[serde(default)]
    text: String,
}

async fn put_review(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let review = installed::review(&state.db, ctx.tenant(), &ctx.actor(), &id, body.rating, &body.text).await?;
    Ok(axum::Json(review).into_response())
}

async fn delete_review(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    installed::delete_review(&state.db, ctx.tenant(), &ctx.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
