//! `/api/v1/records/{object}…`: CRUD with ETags, soft delete and restore, filtered
//! and sorted cursor listings, bulk writes and aggregates. Handlers translate HTTP
//! to the records service and back; rules live in `plinth_core::records`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiQuery, IfMatch};
use super::routes::Routes;
use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use plinth_core::problem::IntoProblem as _;
use plinth_core::records::query::{self, AggregateRequest, Cursor, Deleted, ListQuery};
use plinth_core::records::{self, Change, NewRecord, RecordError, Who};
use plinth_core::store::records::Record;
use plinth_core::versioning;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .per_object("/api/v1/records/{object}", routing::get(list).post(create))
        .per_object("/api/v1/records/{object}/bulk", routing::post(bulk))
        .per_object("/api/v1/records/{object}/aggregate", routing::post(aggregate))
        .per_object(
            "/api/v1/records/{object}/{id}",
            routing::get(get_one).patch(patch).delete(delete),
        )
        .per_object("/api/v1/records/{object}/{id}/restore", routing::post(restore))
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        // A stale write also says which version is current, so a client can retry.
        let current = match &e {
            RecordError::VersionMismatch { current, .. } => Some(*current),
            _ => None,
        };
        // A locked record names the lock, so a client can tell its user who holds it.
        let lock = match &e {
            RecordError::Locked { lock, .. } => {
                Some(json!({ "plugin": lock.plugin, "reason": lock.reason, "since": lock.since }))
            }
            _ => None,
        };
        let mut error = ApiError::from(e.into_problem());
        if let Some(v) = current {
            error = error.with_extra("current_version", v.into());
        }
        if let Some(lock) = lock {
            error = error.with_extra("locked_by", lock);
        }
        error
    }
}

/// The acting user of a request, for the records service.
pub fn who(ctx: &Ctx) -> Who {
    Who {
        tenant: ctx.auth.tenant_id.clone(),
        user_id: ctx.auth.user_id.clone(),
        role: ctx.auth.role,
        actor: ctx.actor(),
        override_lock: false,
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// A record as the request's API version shows it: handlers speak the newest
/// version, the version-change modules translate.
fn shown(record: &Record, fields: Option<&[String]>, version: &str) -> Value {
    let mut json = records::to_json(record, fields);
    versioning::record_out(version, &mut json);
    json
}

fn one(record: &Record, status: StatusCode, version: &str) -> Response {
    (
        status,
        [(header::ETAG, etag(record.version))],
        axum::Json(shown(record, None, version)),
    )
        .into_response()
}

/// A field name in a filter, sort or group as the newest version names it
/// (`close_date:month` keeps its bucket).
fn field_in(ctx: &Ctx, object: &str, name: &str) -> String {
    match name.split_once(':') {
        Some((field, bucket)) => format!(
            "{}:{bucket}",
            versioning::field_name_in(&ctx.api_version, object, field)
        ),
        None => versioning::field_name_in(&ctx.api_version, object, name),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    fields: Value,
    #[serde(default)]
    owner_id: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(object): Path<String>,
    ApiJson(mut body): ApiJson<WriteBody>,
) -> ApiResult<Response> {
    versioning::fields_in(&ctx.api_version, &object, &mut body.fields).map_err(|e| e.prefixed("fields"))?;
    let item = NewRecord {
        fields: body.fields,
        owner_id: body.owner_id,
    };
    let created = records::create(&state.db, &who(&ctx), &object, vec![item], false).await?;
    let record = created
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("create returned nothing"))?;
    let mut response = one(&record, StatusCode::CREATED, &ctx.api_version);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/records/{object}/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    fields: Option<String>,
    /// Reconstruct the record as it was at this time (RFC 3339) from the audit ledger.
    #[serde(default)]
    as_of: Option<String>,
}

fn parse_params<T: for<'de> Deserialize<'de> + Default>(raw: Option<&str>) -> ApiResult<T> {
    match raw {
        None | Some("") => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| ApiError::bad_request(format!("query parameters: {e}"))),
    }
}

/// `fields=a,b` in the request's version vocabulary, as newest base field names.
fn selected_fields(ctx: &Ctx, schema: &records::schema::ObjectSchema, value: &str) -> ApiResult<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for raw in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mapped = field_in(ctx, &schema.name, raw);
        let base = mapped.split('.').next().unwrap_or(&mapped).to_string();
        if schema.field(&base).is_none() {
            return Err(ApiError::bad_request(format!(
                "`{raw}` is not a field of {}",
                schema.name
            )));
        }
        if !names.contains(&base) {
            names.push(base);
        }
    }
    Ok(names)
}

async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let params: GetParams = parse_params(raw.as_deref())?;
    if let Some(at) = &params.as_of {
        return as_of(&state, &ctx, &object, &id, at).await;
    }
    let record = records::get(&state.db, &who(&ctx), &object, &id, params.include_deleted).await?;
    let fields = match params.fields.as_deref() {
        Some(f) => Some(selected_fields(
            &ctx,
            &records::schema(&state.db, &ctx.auth.tenant_id, &object).await?,
            f,
        )?),
        None => None,
    };
    let mut json = shown(&record, fields.as_deref(), &ctx.api_version);
    if let Some(lock) = state.db.record_lock(ctx.tenant(), &object, &id).await? {
        json["locked_by"] = json!({ "plugin": lock.plugin, "reason": lock.reason, "since": lock.since });
    }
    Ok(([(header::ETAG, etag(record.version))], axum::Json(json)).into_response())
}

/// `?override_lock=true` on a write: an admin writes through another plugin's lock on
/// purpose (audited). Anything else in the query string is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteParams {
    #[serde(default)]
    override_lock: bool,
}

/// The acting user of a write, overriding record locks when the query asks it to.
fn writer(ctx: &Ctx, params: &WriteParams) -> Who {
    Who {
        override_lock: params.override_lock,
        ..who(ctx)
    }
}

/// The record as it was at `at`: its audit snapshot (fields and owner) at that time.
/// Visibility is that of the record now (deleted ones included).
async fn as_of(state: &AppState, ctx: &Ctx, object: &str, id: &str, at: &str) -> ApiResult<Response> {
    let at_time = plinth_core::store::time::parse(at)
        .ok_or_else(|| ApiError::bad_request("as_of must be an RFC 3339 time, e.g. 2026-11-24T09:30:00Z"))?;
    let current = records::get(&state.db, &who(ctx), object, id, true).await?;
    let at = plinth_core::store::time::format(at_time);
    let snapshot =
        plinth_core::audit::state_as_of(&state.db, &ctx.auth.tenant_id, &format!("record:{object}"), id, &at)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{object} {id} did not exist (or was deleted) at {at}")))?;
    let mut fields = snapshot.as_object().cloned().unwrap_or_default();
    let owner = fields.remove("owner_id").unwrap_or(Value::Null);
    fields.remove("deleted_at");
    let mut json = json!({ "id": current.id, "object": object, "as_of": at, "owner_id": owner, "fields": fields });
    versioning::record_out(&ctx.api_version, &mut json);
    Ok(axum::Json(json).into_response())
}

async fn patch(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    IfMatch(expected_version): IfMatch,
    ApiQuery(params): ApiQuery<WriteParams>,
    ApiJson(mut body): ApiJson<WriteBody>,
) -> ApiResult<Response> {
    versioning::fields_in(&ctx.api_version, &object, &mut body.fields).map_err(|e| e.prefixed("fields"))?;
    let change = Change {
        id,
        fields: body.fields,
        owner_id: body.owner_id,
        expected_version,
    };
    let updated = records::update(&state.db, &writer(&ctx, &params), &object, vec![change], false).await?;
    let record = updated
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("update returned nothing"))?;
    Ok(one(&record, StatusCode::OK, &ctx.api_version))
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    IfMatch(expected_version): IfMatch,
    ApiQuery(params): ApiQuery<WriteParams>,
) -> ApiResult<Response> {
    let who = writer(&ctx, &params);
    let record = records::set_deleted(&state.db, &who, &object, &id, true, expected_version).await?;
    Ok(one(&record, StatusCode::OK, &ctx.api_version))
}

async fn restore(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    IfMatch(expected_version): IfMatch,
    ApiQuery(params): ApiQuery<WriteParams>,
) -> ApiResult<Response> {
    let who = writer(&ctx, &params);
    let record = records::set_deleted(&state.db, &who, &object, &id, false, expected_version).await?;
    Ok(one(&record, StatusCode::OK, &ctx.api_version))
}

/// Parse the listing's query string: `filter[…]`, `sort`, `fields`, `cursor`,
/// `limit`, `deleted`; anything else is refused by name. Field names are in the
/// request's API version and are translated to the newest.
pub fn list_query(ctx: &Ctx, schema: &records::schema::ObjectSchema, raw: Option<&str>) -> ApiResult<ListQuery> {
    let pairs: Vec<(String, String)> = match raw {
        None | Some("") => Vec::new(),
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|e| ApiError::bad_request(format!("query parameters: {e}")))?
        }
    };
    let mut filters = super::filter::filters_from_query(&pairs)
        .map_err(|p| ApiError::bad_request("invalid filters; see `errors`").with_fields(p))?;
    for f in &mut filters {
        f.field = field_in(ctx, &schema.name, &f.field);
    }
    let filters = query::resolve_filters(schema, &filters, "filter")
        .map_err(|p| ApiError::bad_request("invalid filters; see `errors`").with_fields(p))?;
    let mut q = ListQuery {
        filters,
        limit: query::DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    let mut cursor = None;
    for (key, value) in &pairs {
        match key.as_str() {
            k if k.starts_with("filter[") => {}
            "sort" => {
                let keys: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| match k.strip_prefix('-') {
                        Some(name) => format!("-{}", field_in(ctx, &schema.name, name)),
                        None => field_in(ctx, &schema.name, k.strip_prefix('+').unwrap_or(k)),
                    })
                    .collect();
                q.sort = query::parse_sort(schema, &keys.join(","))
                    .map_err(|p| ApiError::bad_request(p.message.clone()).with_fields([p]))?;
            }
            "fields" => q.fields = Some(selected_fields(ctx, schema, value)?),
            "cursor" => cursor = Some(value.clone()),
            "limit" => {
                q.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=query::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("limit must be between 1 and {}", query::MAX_LIMIT))
                    })?;
            }
            "deleted" => {
                q.deleted = match value.as_str() {
                    "exclude" => Deleted::Exclude,
                    "include" => Deleted::Include,
                    "only" => Deleted::Only,
                    _ => return Err(ApiError::bad_request("deleted must be exclude, include or only")),
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}` (filter[…], sort, fields, cursor, limit, deleted)"
                )));
            }
        }
    }
    if let Some(c) = cursor {
        q.cursor = Some(
            Cursor::decode(&c, q.sort.len())
                .ok_or_else(|| ApiError::bad_request("the cursor is not one this listing returned (same sort?)"))?,
        );
    }
    Ok(q)
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(object): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let schema = records::schema(&state.db, &ctx.auth.tenant_id, &object).await?;
    let q = list_query(&ctx, &schema, raw.as_deref())?;
    let (page, next) = records::list(&state.db, &who(&ctx), &object, &q).await?;
    let data: Vec<Value> = page
        .iter()
        .map(|r| shown(r, q.fields.as_deref(), &ctx.api_version))
        .collect();
    Ok(axum::Json(json!({ "data": data, "next_cursor": next })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkChange {
    id: String,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    fields: Value,
    #[serde(default)]
    owner_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    #[serde(default)]
    create: Option<Vec<WriteBody>>,
    #[serde(default)]
    update: Option<Vec<BulkChange>>,
}

async fn bulk(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(object): Path<String>,
    ApiJson(mut body): ApiJson<BulkBody>,
) -> ApiResult<Response> {
    let who = who(&ctx);
    let version = ctx.api_version.clone();
    for (i, item) in body.create.iter_mut().flatten().enumerate() {
        versioning::fields_in(&version, &object, &mut item.fields)
            .map_err(|e| e.prefixed(&format!("records[{i}].fields")))?;
    }
    for (i, item) in body.update.iter_mut().flatten().enumerate() {
        versioning::fields_in(&version, &object, &mut item.fields)
            .map_err(|e| e.prefixed(&format!("records[{i}].fields")))?;
    }
    let (records, status) = match (body.create, body.update) {
        (Some(items), None) => {
            let items = items
                .into_iter()
                .map(|b| NewRecord {
                    fields: b.fields,
                    owner_id: b.owner_id,
                })
                .collect();
            (
                records::create(&state.db, &who, &object, items, true).await?,
                StatusCode::CREATED,
            )
        }
        (None, Some(changes)) => {
            let changes = changes
                .into_iter()
                .map(|c| Change {
                    id: c.id,
                    fields: c.fields,
                    owner_id: c.owner_id,
                    expected_version: c.version,
                })
                .collect();
            (
                records::update(&state.db, &who, &object, changes, true).await?,
                StatusCode::OK,
            )
        }
        _ => return Err(ApiError::bad_request("send exactly one of `create` or `update`")),
    };
    let data: Vec<Value> = records.iter().map(|r| shown(r, None, &version)).collect();
    Ok((status, axum::Json(json!({ "records": data }))).into_response())
}

async fn aggregate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(object): Path<String>,
    ApiJson(mut body): ApiJson<AggregateRequest>,
) -> ApiResult<Response> {
    let schema = records::schema(&state.db, &ctx.auth.tenant_id, &object).await?;
    // Results are named as the client named things in its API version.
    let mut renames: Vec<(String, String)> = Vec::new();
    for g in &mut body.group_by {
        let newest = field_in(&ctx, &object, g);
        renames.push((newest.clone(), g.clone()));
        *g = newest;
    }
    for m in &mut body.measures {
        if let Some(f) = &mut m.field {
            if m.alias.is_none() {
                let func = serde_json::to_value(m.func)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                m.alias = Some(format!("{func}_{}", f.replace('.', "_")));
            }
            *f = field_in(&ctx, &object, f);
        }
        for f in &mut m.filters {
            f.field = field_in(&ctx, &object, &f.field);
        }
    }
    for f in &mut body.filters {
        f.field = field_in(&ctx, &object, &f.field);
    }
    let q = query::resolve_aggregate(&schema, &body)
        .map_err(|p| ApiError::validation("the aggregate is not valid; see `errors`").with_fields(p))?;
    let (mut rows, truncated) = records::aggregate(&state.db, &who(&ctx), &object, &q).await?;
    for row in &mut rows {
        for (newest, asked) in renames.iter().filter(|(n, a)| n != a) {
            if let Some(v) = row.remove(newest) {
                row.insert(asked.clone(), v);
            }
        }
    }
    Ok(axum::Json(json!({ "rows": rows, "truncated": truncated })).into_response())
}
