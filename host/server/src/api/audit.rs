//! The audit endpoints under `/api/v1/audit` (events, verify, export, policies,
//! alerts, compliance) and record history at `/api/v1/records/{object}/{id}/history`.
//!
//! Everything under `/audit` needs the admin or owner role: events carry the
//! before/after states of everything in the tenant. Record history needs `member`
//! here; whether the caller may see that record is the records module's check.
//! Handlers parse and authorise, then call `plinth_core::audit`; every call is scoped to
//! the caller's tenant, so another tenant's ids are simply not found.
//!
//! | endpoint | parameters / body | answer |
//! |---|---|---|
//! | `GET /api/v1/audit/events` | filters (see `audit::query::FILTER_PARAMS`), `order=desc\|asc`, `cursor`, `limit` (1–500, default 50) | `{data: [event], next_cursor}` |
//! | `GET /api/v1/audit/verify` | — | `{ok, events, head}` or `{ok: false, events_checked, first_broken}` |
//! | `GET /api/v1/audit/export` | filters, `order=asc\|desc`, `format=jsonl\|csv` | streamed attachment |
//! | `POST /api/v1/audit/policies` | `{name, kind, …rule, enabled?, notify?}` | 201 policy, `ETag`, `Location` |
//! | `GET /api/v1/audit/policies` | — | `{data: [policy], next_cursor: null}` (at most 100) |
//! | `GET/PATCH/DELETE /api/v1/audit/policies/{id}` | PATCH: any subset; `If-Match` honoured | policy / 204 |
//! | `GET /api/v1/audit/alerts` | `policy`, `acknowledged=true\|false`, `cursor`, `limit` | `{data: [alert], next_cursor}` |
//! | `POST /api/v1/audit/alerts/{id}/acknowledge` | — | alert |
//! | `GET /api/v1/audit/compliance` | `from`, `to` (required), `format=json\|csv` | report |
//! | `GET /api/v1/records/{object}/{id}/history` | `cursor`, `limit` | `{data: [event], next_cursor}`, oldest first |

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::json;

use super::extract::IfMatch;
use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use plinth_core::audit::params::Params;
use plinth_core::audit::policy::{self, Policy, PolicyInput};
use plinth_core::audit::{self, AuditError, alerts, compliance, export, query, verify};
use plinth_core::manifest::Role;
use plinth_core::store::time;

/// The audit routes.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/audit/events",
            list_events,
            doc("audit", "Query the audit ledger", Access::ADMIN),
        )
        .get(
            "/api/v1/audit/verify",
            verify_chain,
            doc("audit", "Verify the tenant's hash chain", Access::ADMIN),
        )
        .get(
            "/api/v1/audit/export",
            export_events,
            doc("audit", "Stream the ledger as CSV or JSON Lines", Access::ADMIN),
        )
        .get(
            "/api/v1/audit/policies",
            list_policies,
            doc("audit", "List audit policies", Access::ADMIN),
        )
        .post(
            "/api/v1/audit/policies",
            create_policy,
            doc("audit", "Create an audit policy", Access::ADMIN).json().status(201),
        )
        .get(
            "/api/v1/audit/policies/{id}",
            get_policy,
            doc("audit", "One audit policy", Access::ADMIN),
        )
        .patch(
            "/api/v1/audit/policies/{id}",
            update_policy,
            doc("audit", "Change an audit policy", Access::ADMIN).json(),
        )
        .delete(
            "/api/v1/audit/policies/{id}",
            delete_policy,
            doc("audit", "Delete an audit policy", Access::ADMIN).status(204),
        )
        .get(
            "/api/v1/audit/alerts",
            list_alerts,
            doc("audit", "Alerts raised by policies and the host", Access::ADMIN),
        )
        .post(
            "/api/v1/audit/alerts/{id}/acknowledge",
            acknowledge_alert,
            doc("audit", "Acknowledge an alert", Access::ADMIN),
        )
        .get(
            "/api/v1/audit/compliance",
            compliance_report,
            doc("audit", "Compliance report for a period (JSON or CSV)", Access::ADMIN),
        )
        .get(
            "/api/v1/records/{object}/{id}/history",
            record_history,
            doc("records", "The audit events of one record", Access::MEMBER),
        )
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        let fields = |issues: Vec<audit::Issue>| {
            issues.into_iter().map(|i| super::FieldProblem {
                field: i.field,
                message: i.message,
            })
        };
        match e {
            AuditError::BadParams(issues) => {
                ApiError::bad_request("invalid query parameters; see `errors`").with_fields(fields(issues))
            }
            AuditError::Invalid(issues) => {
                ApiError::validation("the body is invalid; see `errors`").with_fields(fields(issues))
            }
            AuditError::NotFound(m) => ApiError::not_found(m),
            AuditError::VersionMismatch(m) => ApiError::precondition_failed(m),
            AuditError::Limit(m) => ApiError::conflict(m),
            AuditError::Store(e) => e.into(),
        }
    }
}

fn admin(ctx: &Ctx) -> ApiResult<()> {
    ctx.auth.require(Role::Admin)
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
}

fn params(raw: Option<String>, allowed: &[&str]) -> ApiResult<Params> {
    Ok(Params::parse(raw.as_deref(), allowed)?)
}

/// `GET /api/v1/audit/events`: filtered, cursor-paginated events.
async fn list_events(State(state): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    admin(&ctx)?;
    let q = query::EventQuery::from_params(&params(q, &query::LIST_PARAMS)?)?;
    let page = audit::list_events(&state.db, ctx.tenant(), &q).await?;
    Ok(axum::Json(page).into_response())
}

/// `GET /api/v1/audit/verify`: walk and check the whole chain.
async fn verify_chain(State(state): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    admin(&ctx)?;
    params(q, &[])?;
    let report = verify::verify_chain(&state.db, ctx.tenant()).await?;
    if !report.ok {
        tracing::warn!(tenant = %ctx.tenant(), report = ?report, "audit chain verification failed");
    }
    Ok(axum::Json(report).into_response())
}

fn attachment(content_type: &'static str, name: &str) -> ApiResult<[(header::HeaderName, HeaderValue); 3]> {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|e| ApiError::internal(format!("content disposition: {e}")))?;
    Ok([
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ])
}

/// A file name stamp: the current time without separators.
fn stamp() -> String {
    time::now().chars().filter(char::is_ascii_alphanumeric).collect()
}

/// `GET /api/v1/audit/export`: the filtered ledger as a streamed CSV or JSONL file.
async fn export_events(State(state): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    admin(&ctx)?;
    let q = export::ExportQuery::from_params(&params(q, &export::EXPORT_PARAMS)?)?;
    let name = format!("audit-{}.{}", stamp(), q.format.extension());
    let headers = attachment(q.format.content_type(), &name)?;
    let tenant = ctx.tenant().to_string();
    let stream = export::export_stream(state.db.clone(), tenant.clone(), q).map(move |chunk| {
        chunk.map(Bytes::from).map_err(|e| {
            // The status is already sent: cutting the stream off is how the client learns.
            tracing::error!(tenant = %tenant, error = ?e, "audit export failed mid-stream");
            std::io::Error::other("audit export failed")
        })
    });
    Ok((headers, Body::from_stream(stream)).into_response())
}

fn with_etag(status: StatusCode, p: &Policy) -> Response {
    let mut r = (status, axum::Json(p)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", p.version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// `GET /api/v1/audit/policies`.
async fn list_policies(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    admin(&ctx)?;
    let data = policy::list(&state.db, ctx.tenant()).await?;
    Ok(axum::Json(json!({ "data": data, "next_cursor": null })).into_response())
}

/// `POST /api/v1/audit/policies`.
async fn create_policy(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<PolicyInput>,
) -> ApiResult<Response> {
    admin(&ctx)?;
    let p = policy::create(&state.db, ctx.tenant(), &ctx.actor(), body).await?;
    let mut r = with_etag(StatusCode::CREATED, &p);
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/audit/policies/{}", p.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// `GET /api/v1/audit/policies/{id}`.
async fn get_policy(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    admin(&ctx)?;
    let p = policy::get(&state.db, ctx.tenant(), &path(id)?).await?;
    Ok(with_etag(StatusCode::OK, &p))
}

/// `PATCH /api/v1/audit/policies/{id}` (honours `If-Match`).
async fn update_policy(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
    IfMatch(expected_version): IfMatch,
    ApiJson(body): ApiJson<PolicyInput>,
) -> ApiResult<Response> {
    admin(&ctx)?;
    let (id, version) = (path(id)?, expected_version);
    let p = policy::update(&state.db, ctx.tenant(), &ctx.actor(), &id, body, version).await?;
    Ok(with_etag(StatusCode::OK, &p))
}

/// `DELETE /api/v1/audit/policies/{id}` (honours `If-Match`).
async fn delete_policy(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
    IfMatch(expected_version): IfMatch,
) -> ApiResult<Response> {
    admin(&ctx)?;
    let (id, version) = (path(id)?, expected_version);
    policy::delete(&state.db, ctx.tenant(), &ctx.actor(), &id, version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/audit/alerts`.
async fn list_alerts(State(state): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    admin(&ctx)?;
    let q = alerts::AlertQuery::from_params(&params(q, &alerts::LIST_PARAMS)?)?;
    let page = alerts::list(&state.db, ctx.tenant(), &q).await?;
    Ok(axum::Json(page).into_response())
}

/// `POST /api/v1/audit/alerts/{id}/acknowledge`.
async fn acknowledge_alert(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    admin(&ctx)?;
    let alert = alerts::acknowledge(&state.db, ctx.tenant(), &ctx.actor(), &path(id)?).await?;
    Ok(axum::Json(alert).into_response())
}

/// `GET /api/v1/audit/compliance`.
async fn compliance_report(State(state): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    admin(&ctx)?;
    let q = compliance::ComplianceQuery::from_params(&params(q, &compliance::PARAMS)?)?;
    let report = compliance::report(&state.db, ctx.tenant(), &q).await?;
    match q.format {
        compliance::Format::Json => Ok(axum::Json(report).into_response()),
        compliance::Format::Csv => {
            let body = compliance::to_csv(&report)?;
            let headers = attachment("text/csv; charset=utf-8", &format!("compliance-{}.csv", stamp()))?;
            Ok((headers, body).into_response())
        }
    }
}

/// `GET /api/v1/records/{object}/{id}/history`: one record's events, oldest first.
async fn record_history(
    State(state): State<AppState>,
    ctx: Ctx,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Member)?;
    let (object, id) = path(ids)?;
    // Only someone who may see the record (deleted ones included) sees its history.
    plinth_core::records::get(&state.db, &crate::api::records::who(&ctx), &object, &id, true).await?;
    let p = params(q, &["cursor", "limit"])?;
    let mut c = p.check();
    let limit = c.limit();
    c.finish()?;
    let page = audit::record_history(&state.db, ctx.tenant(), &object, &id, p.get("cursor"), Some(limit)).await?;
    Ok(axum::Json(page).into_response())
}
