//! `/api/v1/records/{object}…`: CRUD with ETags, soft delete and restore, filtered
//! and sorted cursor listings, bulk writes and aggregates. Handlers translate HTTP
//! to the records service and back; rules live in `crate::records`.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, ApiResult, AppState, Ctx};
use crate::records::query::{self, AggregateRequest, Cursor, Deleted, ListQuery};
use crate::records::{self, Change, NewRecord, RecordError, Who};
use crate::store::records::Record;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/records/{object}", get(list).post(create))
        .route("/api/v1/records/{object}/bulk", post(bulk))
        .route("/api/v1/records/{object}/aggregate", post(aggregate))
        .route(
            "/api/v1/records/{object}/{id}",
            get(get_one).patch(patch).delete(delete),
        )
        .route("/api/v1/records/{object}/{id}/restore", post(restore))
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::NotFound(m) => ApiError::not_found(m),
            RecordError::Invalid(problems) => {
                ApiError::validation("the record is not valid; see `errors`").with_fields(problems)
            }
            RecordError::Forbidden(m) => ApiError::forbidden(m),
            RecordError::VersionMismatch { expected, current } => ApiError::precondition_failed(format!(
                "the record is at version {current}, not {expected}: fetch it again and retry"
            ))
            .with_extra("current_version", current.into()),
            RecordError::BadRequest(m) => ApiError::bad_request(m),
            RecordError::Store(e) => e.into(),
        }
    }
}

/// The acting user of a request, for the records service.
pub fn who(ctx: &Ctx) -> Who {
    Who {
        tenant: ctx.auth.tenant_id.clone(),
        user_id: ctx.auth.user_id.clone(),
        role: ctx.auth.role,
        actor: ctx.actor(),
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version an `If-Match` header demands (`None`: no header or `*`).
fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not ASCII"))?
        .trim();
    if raw == "*" {
        return Ok(None);
    }
    raw.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::bad_request("If-Match must be an ETag this API returned, like \"3\""))
}

fn one(record: &Record, status: StatusCode) -> Response {
    (
        status,
        [(header::ETAG, etag(record.version))],
        axum::Json(records::to_json(record, None)),
    )
        .into_response()
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
    ApiJson(body): ApiJson<WriteBody>,
) -> ApiResult<Response> {
    let item = NewRecord {
        fields: body.fields,
        owner_id: body.owner_id,
    };
    let created = records::create(&state.db, &who(&ctx), &object, vec![item], false).await?;
    let record = created
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("create returned nothing"))?;
    let mut response = one(&record, StatusCode::CREATED);
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
}

fn parse_params<T: for<'de> Deserialize<'de> + Default>(raw: Option<&str>) -> ApiResult<T> {
    match raw {
        None | Some("") => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| ApiError::bad_request(format!("query parameters: {e}"))),
    }
}

async fn get_one(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let params: GetParams = parse_params(raw.as_deref())?;
    let record = records::get(&state.db, &who(&ctx), &object, &id, params.include_deleted).await?;
    let fields = params
        .fields
        .as_deref()
        .map(|f| f.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>());
    Ok((
        [(header::ETAG, etag(record.version))],
        axum::Json(records::to_json(&record, fields.as_deref())),
    )
        .into_response())
}

async fn patch(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WriteBody>,
) -> ApiResult<Response> {
    let change = Change {
        id,
        fields: body.fields,
        owner_id: body.owner_id,
        expected_version: if_match(&headers)?,
    };
    let updated = records::update(&state.db, &who(&ctx), &object, vec![change], false).await?;
    let record = updated
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("update returned nothing"))?;
    Ok(one(&record, StatusCode::OK))
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let record = records::set_deleted(&state.db, &who(&ctx), &object, &id, true, if_match(&headers)?).await?;
    Ok(one(&record, StatusCode::OK))
}

async fn restore(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let record = records::set_deleted(&state.db, &who(&ctx), &object, &id, false, if_match(&headers)?).await?;
    Ok(one(&record, StatusCode::OK))
}

/// Parse the listing's query string: `filter[…]`, `sort`, `fields`, `cursor`,
/// `limit`, `deleted`; anything else is refused by name.
pub fn list_query(schema: &records::schema::ObjectSchema, raw: Option<&str>) -> ApiResult<ListQuery> {
    let pairs: Vec<(String, String)> = match raw {
        None | Some("") => Vec::new(),
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|e| ApiError::bad_request(format!("query parameters: {e}")))?
        }
    };
    let filters = query::filters_from_query(&pairs)
        .map_err(|p| ApiError::bad_request("invalid filters; see `errors`").with_fields(p))?;
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
                q.sort = query::parse_sort(schema, value)
                    .map_err(|p| ApiError::bad_request(p.message.clone()).with_fields([p]))?
            }
            "fields" => {
                let names: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(bad) = names.iter().find(|n| schema.field(n).is_none()) {
                    return Err(ApiError::bad_request(format!(
                        "`{bad}` is not a field of {}",
                        schema.name
                    )));
                }
                q.fields = Some(names);
            }
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
    let q = list_query(&schema, raw.as_deref())?;
    let (page, next) = records::list(&state.db, &who(&ctx), &object, &q).await?;
    let data: Vec<Value> = page.iter().map(|r| records::to_json(r, q.fields.as_deref())).collect();
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
    ApiJson(body): ApiJson<BulkBody>,
) -> ApiResult<Response> {
    let who = who(&ctx);
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
    let data: Vec<Value> = records.iter().map(|r| records::to_json(r, None)).collect();
    Ok((status, axum::Json(json!({ "records": data }))).into_response())
}

async fn aggregate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(object): Path<String>,
    ApiJson(body): ApiJson<AggregateRequest>,
) -> ApiResult<Response> {
    let schema = records::schema(&state.db, &ctx.auth.tenant_id, &object).await?;
    let q = query::resolve_aggregate(&schema, &body)
        .map_err(|p| ApiError::validation("the aggregate is not valid; see `errors`").with_fields(p))?;
    let (rows, truncated) = records::aggregate(&state.db, &who(&ctx), &object, &q).await?;
    Ok(axum::Json(json!({ "rows": rows, "truncated": truncated })).into_response())
}
