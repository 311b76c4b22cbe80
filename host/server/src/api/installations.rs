//! `/api/v1/installations`: a tenant's plugins — install (showing what each asks
//! for, installing dependencies after confirmation), grants, enable/disable,
//! upgrade, rollback, uninstall/purge, plugin settings, execution metrics and the
//! audited history of every step. Tenant admins and owners only, except reading.

use std::collections::BTreeSet;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use plinth_core::installed;
use plinth_core::manifest::{Manifest, Role};
use plinth_runtime::bindings::Caller;
use plinth_runtime::marketplace::install::{self, Grant, LifecycleError, Steward, VersionSpec};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/installations",
            list,
            doc(
                "installations",
                "This tenant's plugins (admins: everything; others: the enabled ones, id, version and state)",
                Access::READER,
            ),
        )
        .post(
            "/api/v1/installations",
            create,
            doc(
                "installations",
                "Install a plugin (and, confirmed, its dependencies)",
                Access::ADMIN,
            )
            .json()
            .status(201),
        )
        .get(
            "/api/v1/installations/{plugin}",
            one,
            doc(
                "installations",
                "One installation: version, state, grants, history, kept roll-ups",
                Access::READER,
            ),
        )
        .delete(
            "/api/v1/installations/{plugin}",
            uninstall,
            doc(
                "installations",
                "Uninstall (`?purge=true` deletes its data)",
                Access::ADMIN,
            )
            .status(204),
        )
        .post(
            "/api/v1/installations/{plugin}/enable",
            enable,
            doc("installations", "Switch on", Access::ADMIN),
        )
        .post(
            "/api/v1/installations/{plugin}/disable",
            disable,
            doc(
                "installations",
                "Switch off (endpoints 404; events and timers held)",
                Access::ADMIN,
            ),
        )
        .post(
            "/api/v1/installations/{plugin}/upgrade",
            upgrade,
            doc(
                "installations",
                "Upgrade (new capabilities need a grant)",
                Access::ADMIN,
            )
            .json(),
        )
        .post(
            "/api/v1/installations/{plugin}/rollback",
            rollback,
            doc("installations", "Back to the previous version", Access::ADMIN),
        )
        .get(
            "/api/v1/installations/{plugin}/metrics",
            metrics,
            doc("installations", "Execution metrics", Access::ADMIN),
        )
        .get(
            "/api/v1/installations/{plugin}/settings",
            settings,
            doc("installations", "Plugin settings", Access::ADMIN),
        )
        .put(
            "/api/v1/installations/{plugin}/settings/{key}",
            put_setting,
            doc("installations", "Set a setting (JSON value)", Access::ADMIN)
                .json()
                .status(204),
        )
        .delete(
            "/api/v1/installations/{plugin}/settings/{key}",
            delete_setting,
            doc("installations", "Remove a setting", Access::ADMIN).status(204),
        )
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        let detail = e.to_string();
        match e {
            LifecycleError::NotPublished(_) | LifecycleError::NotInstalled(_) => ApiError::not_found(detail),
            LifecycleError::Cycle(chain) => ApiError::conflict(detail).with_extra("chain", json!(chain)),
            LifecycleError::Conflict { chain, .. } => ApiError::conflict(detail).with_extra("chain", json!(chain)),
            LifecycleError::NeedsConfirmation(plan) => ApiError::new(
                StatusCode::CONFLICT,
                "confirmation-required",
                "Confirmation required",
                detail,
            )
            .with_extra("plan", json!(plan)),
            LifecycleError::UnknownGrant(_) => {
                ApiError::validation(detail).with_field("grants", "lists capabilities the plugin does not request")
            }
            LifecycleError::GrantRequired(missing) => {
                ApiError::new(StatusCode::FORBIDDEN, "grant-required", "Grant required", detail)
                    .with_extra("missing", json!(missing))
            }
            LifecycleError::AlreadyInstalled(_) | LifecycleError::InvalidState(_) | LifecycleError::Concurrent => {
                ApiError::conflict(detail)
            }
            LifecycleError::Dependents { dependents, .. } => {
                ApiError::conflict(detail).with_extra("dependents", json!(dependents))
            }
            LifecycleError::HookFailed { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "install-failed",
                "Install failed",
                detail,
            ),
            LifecycleError::Rollups { problems, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rollups-invalid",
                "Roll-ups do not fit",
                detail,
            )
            .with_fields(problems),
            LifecycleError::Plugin(plinth_runtime::plugins::PluginError::Trust(t)) => {
                super::marketplace::trust_problem(t)
            }
            LifecycleError::Plugin(p) => ApiError::unavailable(p.to_string()),
            LifecycleError::Store(s) => s.into(),
        }
    }
}

fn steward(ctx: &Ctx) -> Steward {
    Steward {
        tenant: ctx.auth.tenant_id.clone(),
        actor: ctx.actor(),
        caller: Caller {
            tenant_id: ctx.auth.tenant_id.clone(),
            user_id: Some(ctx.auth.user_id.clone()),
            roles: ctx.auth.roles(),
            api_version: ctx.api_version.clone(),
            request_id: ctx.request_id.clone(),
        },
    }
}

fn spec(version: Option<String>, range: Option<String>) -> ApiResult<VersionSpec> {
    match (version, range) {
        (Some(_), Some(_)) => {
            Err(ApiError::validation("give `version` or `range`, not both")
                .with_field("range", "conflicts with version"))
        }
        (Some(v), None) => v.parse().map(VersionSpec::Exact).map_err(|e| {
            ApiError::validation("`version` is not a semantic version").with_field("version", e.to_string())
        }),
        (None, Some(r)) => r
            .parse()
            .map(VersionSpec::Range)
            .map_err(|e| ApiError::validation("`range` is not a semver range").with_field("range", e.to_string())),
        (None, None) => Ok(VersionSpec::Range(semver::VersionReq::STAR)),
    }
}

/// `"all"` or a list of capability keys.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Grants {
    Keyword(String),
    Keys(Vec<String>),
}

fn grant(g: Option<Grants>) -> ApiResult<Option<Grant>> {
    match g {
        None => Ok(None),
        Some(Grants::Keyword(k)) if k == "all" => Ok(Some(Grant::All)),
        Some(Grants::Keyword(_)) => Err(ApiError::validation("`grants` is \"all\" or a list of capabilities")
            .with_field("grants", "unknown keyword")),
        Some(Grants::Keys(keys)) => Ok(Some(Grant::Only(keys.into_iter().collect()))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    plugin: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    range: Option<String>,
    /// `"all"` or the capability keys granted. Required: an install without it answers
    /// 422 listing what the plugin requests.
    #[serde(default)]
    grants: Option<Grants>,
    #[serde(default)]
    confirm_dependencies: bool,
}

async fn create(State(state): State<AppState>, ctx: Ctx, ApiJson(body): ApiJson<InstallBody>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let spec = spec(body.version, body.range)?;
    let Some(grant) = grant(body.grants)? else {
        let versions = state.db.package_versions(&body.plugin).await?;
        let requested: Vec<String> = versions
            .first()
            .and_then(|v| Manifest::parse(&v.manifest).ok())
            .map(|m| m.capabilities.keys().into_iter().collect())
            .unwrap_or_default();
        return Err(
            ApiError::validation("choose what to grant: \"all\" or a list of the requested capabilities")
                .with_field("grants", "is required")
                .with_extra("requested", json!(requested)),
        );
    };
    let planned = install::install(
        &state.db,
        &state.plugins,
        &steward(&ctx),
        &body.plugin,
        spec,
        grant,
        body.confirm_dependencies,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "installed": planned }))).into_response())
}

/// What non-admins see of an installation: which plugin, which version, whether it is
/// on — enough to use it, nothing of its grants, package or who installed it.
fn summary(i: &plinth_core::store::installations::Installation) -> Value {
    json!({ "plugin_id": i.plugin_id, "version": i.version, "state": i.state })
}

async fn list(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    let all = state.db.installations(&ctx.auth.tenant_id).await?;
    if ctx.auth.role.at_least(Role::Admin) {
        return Ok(axum::Json(json!({ "data": all })).into_response());
    }
    let usable: Vec<Value> = all.iter().filter(|i| i.state == "enabled").map(summary).collect();
    Ok(axum::Json(json!({ "data": usable })).into_response())
}

async fn history(state: &AppState, tenant: &str, plugin: &str) -> ApiResult<Vec<Value>> {
    let parse = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null)
    };
    Ok(state
        .db
        .entity_events(tenant, "plugin", plugin, 100)
        .await?
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "at": e.occurred_at,
                "action": e.action,
                "user": e.actor_user,
                "plugin_actor": e.actor_plugin,
                "before": parse(&e.before_state),
                "after": parse(&e.after_state),
            })
        })
        .collect())
}

async fn one(State(state): State<AppState>, ctx: Ctx, Path(plugin): Path<String>) -> ApiResult<Response> {
    let installation = state
        .db
        .installation(None, &ctx.auth.tenant_id, &plugin)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("`{plugin}` is not installed")))?;
    if !ctx.auth.role.at_least(Role::Admin) {
        if installation.state != "enabled" {
            return Err(ApiError::not_found(format!("`{plugin}` is not installed")));
        }
        return Ok(axum::Json(summary(&installation)).into_response());
    }
    let requested = match state.db.package(&installation.digest).await? {
        Some(row) => Manifest::parse(&row.manifest)
            .map(|m| m.capabilities.keys())
            .unwrap_or_default(),
        None => BTreeSet::new(),
    };
    let mut doc = serde_json::to_value(&installation).map_err(ApiError::internal)?;
    doc["requested"] = json!(requested);
    doc["history"] = json!(history(&state, &ctx.auth.tenant_id, &plugin).await?);
    // The roll-ups the host keeps for it (`[[rollups]]` of objects the tenant granted).
    let mut conn = state
        .db
        .reader()
        .acquire()
        .await
        .map_err(plinth_core::store::StoreError::from)?;
    let rollups = plinth_core::store::rollups::rollups_of_plugin(&mut conn, &ctx.auth.tenant_id, &plugin).await?;
    doc["rollups"] = rollups
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "object": r.object,
                "dimensions": r.definition.dimensions.iter().map(|d| &d.name).collect::<Vec<_>>(),
                "sums": r.definition.sums.iter().map(|s| &s.name).collect::<Vec<_>>(),
                "built_at": r.created_at,
            })
        })
        .collect();
    Ok(axum::Json(doc).into_response())
}

async fn enable(State(state): State<AppState>, ctx: Ctx, Path(plugin): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let i = install::set_enabled(&state.db, &state.plugins, &steward(&ctx), &plugin, true).await?;
    Ok(axum::Json(i).into_response())
}

async fn disable(State(state): State<AppState>, ctx: Ctx, Path(plugin): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let i = install::set_enabled(&state.db, &state.plugins, &steward(&ctx), &plugin, false).await?;
    Ok(axum::Json(i).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradeBody {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    range: Option<String>,
    /// Capabilities newly granted (needed for every capability the new version adds).
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    confirm_dependencies: bool,
}

async fn upgrade(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(plugin): Path<String>,
    ApiJson(body): ApiJson<UpgradeBody>,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let spec = spec(body.version, body.range)?;
    let grants = body.grants.into_iter().collect();
    let i = install::upgrade(
        &state.db,
        &state.plugins,
        &steward(&ctx),
        &plugin,
        spec,
        grants,
        body.confirm_dependencies,
    )
    .await?;
    Ok(axum::Json(i).into_response())
}

async fn rollback(State(state): State<AppState>, ctx: Ctx, Path(plugin): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let i = install::rollback(&state.db, &state.plugins, &steward(&ctx), &plugin).await?;
    Ok(axum::Json(i).into_response())
}

async fn uninstall(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(plugin): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let purge = match raw.as_deref() {
        None | Some("") | Some("purge=false") => false,
        Some("purge=true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown query `{other}` (only purge=true|false)"
            )));
        }
    };
    install::uninstall(&state.db, &state.plugins, &steward(&ctx), &plugin, purge).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn metrics(State(state): State<AppState>, ctx: Ctx, Path(plugin): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    let installed = state.db.installation(None, &ctx.auth.tenant_id, &plugin).await?;
    if installed.is_none() {
        return Err(ApiError::not_found(format!("`{plugin}` is not installed")));
    }
    let series = state.plugins.metrics.for_plugin(&ctx.auth.tenant_id, &plugin);
    Ok(axum::Json(json!({ "plugin": plugin, "scope": "this host process", "series": series })).into_response())
}

async fn settings(State(state): State<AppState>, ctx: Ctx, Path(plugin): Path<String>) -> ApiResult<Response> {
    ctx.auth.require(Role::Admin)?;
    installed::require_installed(&state.db, ctx.tenant(), &plugin).await?;
    let all = state.db.settings(&ctx.auth.tenant_id, &plugin).all().await?;
    let map: serde_json::Map<String, Value> = all
        .into_iter()
        .map(|(k, v)| (k, serde_json::from_str(&v).unwrap_or(Value::Null)))
        .collect();
    Ok(axum::Json(json!({ "plugin": plugin, "settings": map })).into_response())
}

async fn write_setting(state: &AppState, ctx: &Ctx, plugin: &str, key: &str, value: Option<Value>) -> ApiResult<()> {
    ctx.auth.require(Role::Admin)?;
    if value.as_ref().is_some_and(|v| v.to_string().len() > 64 * 1024) {
        return Err(ApiError::payload_too_large("a setting is at most 64 KiB of JSON"));
    }
    installed::set_setting(&state.db, ctx.tenant(), &ctx.actor(), plugin, key, value).await?;
    Ok(())
}

async fn put_setting(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((plugin, key)): Path<(String, String)>,
    ApiJson(value): ApiJson<Value>,
) -> ApiResult<Response> {
    write_setting(&state, &ctx, &plugin, &key, Some(value)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_setting(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((plugin, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    write_setting(&state, &ctx, &plugin, &key, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
