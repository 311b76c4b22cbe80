//! `/api/v1/installations/{plugin}/secrets`: the tenant admin sets and removes a
//! plugin's secrets and lists their names and times. No endpoint ever returns a
//! value; the plugin reads them through the WIT `secrets` interface.
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `GET /api/v1/installations/{plugin}/secrets` | — | `{plugin, data: [{name, created_at, updated_at}]}` |
//! | `PUT /api/v1/installations/{plugin}/secrets/{name}` | `{"value": "…"}` | 204 |
//! | `DELETE /api/v1/installations/{plugin}/secrets/{name}` | — | 204, or 404 if not set |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use plinth_core::manifest::Role;
use plinth_core::secrets::plugin::{self, SecretError};
use plinth_core::store::installations::state as install_state;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/installations/{plugin}/secrets",
            list,
            doc(
                "secrets",
                "Names and times of a plugin's secrets (never values)",
                Access::ADMIN,
            ),
        )
        .put(
            "/api/v1/installations/{plugin}/secrets/{name}",
            set,
            doc(
                "secrets",
                "Set a plugin secret (stored encrypted; never returned)",
                Access::ADMIN,
            )
            .json()
            .status(204),
        )
        .delete(
            "/api/v1/installations/{plugin}/secrets/{name}",
            remove,
            doc("secrets", "Remove a plugin secret", Access::ADMIN).status(204),
        )
}

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::InvalidName => ApiError::validation(e.to_string()).with_field("name", "invalid"),
            SecretError::Limit(m) => ApiError::payload_too_large(m),
            SecretError::Store(s) => s.into(),
            SecretError::Vault(v) => ApiError::internal(v),
        }
    }
}

async fn require_installed(state: &AppState, ctx: &Ctx, plugin: &str) -> ApiResult<()> {
    match state.db.installation(None, ctx.tenant(), plugin).await? {
        Some(i) if i.state != install_state::UNINSTALLED => Ok(()),
        _ => Err(ApiError::not_found(format!("`{plugin}` is not installed"))),
    }
}

async fn list(State(state): State<AppState>, ctx: Ctx, Path(plugin): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    require_installed(&state, &ctx, &plugin).await?;
    let all = plugin::list(&state.db, ctx.tenant(), &plugin).await?;
    Ok(axum::Json(json!({ "plugin": plugin, "data": all })).into_response())
}

/// The body of a PUT. The value's `Debug` is redacted, so it never reaches a log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    value: String,
}

impl std::fmt::Debug for SetBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetBody { value: <redacted> }")
    }
}

async fn set(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((plugin, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    require_installed(&state, &ctx, &plugin).await?;
    plugin::set(
        &state.db,
        &state.vault,
        ctx.tenant(),
        &plugin,
        &name,
        &body.value,
        &ctx.actor(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((plugin, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    if !plugin::delete(&state.db, ctx.tenant(), &plugin, &name, &ctx.actor()).await? {
        return Err(ApiError::not_found(format!("`{plugin}` has no secret `{name}`")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
