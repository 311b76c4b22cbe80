//! `/api/v1/files`: files larger than any request body — uploads streamed into
//! storage as they arrive, downloads streamed out with `Range`, and signed links that
//! work without an API key until they expire (docs/files.md).
//!
//! | endpoint | body / query | answer |
//! |---|---|---|
//! | `POST /api/v1/files` | raw body (`Content-Type`; name from `?name=` or `Content-Disposition`) or `multipart/form-data` (the first file part) | 201 file |
//! | `GET /api/v1/files` | `all=true` (admins: every file), `cursor`, `limit` (1–500) | `{data: [file], next_cursor}` |
//! | `GET /api/v1/files/{id}` | `Range: bytes=…`; or `?t=&exp=&sig=` without a key | the bytes (200 / 206), `ETag` = SHA-256 |
//! | `GET /api/v1/files/{id}/info` | — | file |
//! | `DELETE /api/v1/files/{id}` | — | 204 |
//! | `POST /api/v1/files/{id}/links` | `{expires_in}` seconds (60–604800, default 86400) | 201 `{url, expires_at}` |
//!
//! A file is visible to its owner and the tenant's admins; anyone else gets 404.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiQuery, Page, PageQuery};
use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiJson, ApiResult, AppState, Auth, Ctx};
use plinth_core::files::{self, FileCaller, FileError};
use plinth_core::manifest::Role;
use plinth_core::problem::IntoProblem as _;
use plinth_core::store::files::FileRow;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .route(
            Method::POST,
            "/api/v1/files",
            // The body streams into storage: no body limit but the files' own.
            post(upload).layer(DefaultBodyLimit::disable()),
            doc(
                "files",
                "Upload a file, streamed (raw body or multipart)",
                Access::MEMBER,
            )
            .binary()
            .status(201),
        )
        .get(
            "/api/v1/files",
            list,
            doc("files", "My files (admins: all)", Access::READER),
        )
        .get(
            "/api/v1/files/{id}",
            download,
            doc(
                "files",
                "Download a file (Range; a signed link needs no key)",
                Access::READER,
            ),
        )
        .get(
            "/api/v1/files/{id}/info",
            info,
            doc("files", "A file's metadata", Access::READER),
        )
        .delete(
            "/api/v1/files/{id}",
            remove,
            doc("files", "Delete a file", Access::READER).status(204),
        )
        .post(
            "/api/v1/files/{id}/links",
            link,
            doc(
                "files",
                "A link that downloads the file without a key until it expires",
                Access::READER,
            )
            .json()
            .status(201),
        )
}

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        e.into_problem().into()
    }
}

fn caller<'a>(ctx: &'a Ctx, actor: &'a plinth_core::store::audit::Actor) -> FileCaller<'a> {
    FileCaller {
        tenant: ctx.tenant(),
        user_id: &ctx.auth.user_id,
        admin: ctx.auth.is_admin(),
        actor,
        plugin: None,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    name: Option<String>,
}

/// `filename` (or `filename*` in UTF-8) of a `Content-Disposition` header.
fn disposition_name(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    let mut plain = None;
    for part in value.split(';').map(str::trim) {
        if let Some(encoded) = part.strip_prefix("filename*=") {
            let encoded = encoded.trim_matches('"');
            let rest = encoded.split_once("''").map_or(encoded, |(_, r)| r);
            return Some(url_decode(rest.as_bytes()));
        }
        if let Some(name) = part.strip_prefix("filename=") {
            plain = Some(name.trim_matches('"').to_string());
        }
    }
    plain
}

/// `%XX` escapes decoded; invalid ones kept as they are.
fn url_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn upload(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<UploadQuery>,
    request: Request,
) -> ApiResult<Response> {
    ctx.auth.require(Role::Member)?;
    let limit = state.config.files.max_size;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large(format!(
            "the file is larger than the limit of {limit} bytes"
        )));
    }
    let actor = ctx.actor();
    let who = caller(&ctx, &actor);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let file = if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("the multipart body cannot be read: {}", e.body_text())))?;
        loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|e| ApiError::bad_request(format!("the multipart body cannot be read: {e}")))?
                .ok_or_else(|| ApiError::validation("no file in the form").with_field("file", "send a file part"))?;
            let Some(name) = field.file_name().map(str::to_string).or_else(|| q.name.clone()) else {
                continue;
            };
            let part_type = field.content_type().unwrap_or("application/octet-stream").to_string();
            break files::upload(&state.db, &state.config.files, &who, &name, &part_type, field).await?;
        }
    } else {
        let name = q
            .name
            .clone()
            .or_else(|| disposition_name(request.headers()))
            .ok_or_else(|| {
                ApiError::validation("the file needs a name")
                    .with_field("name", "give ?name= or a Content-Disposition filename")
            })?;
        let body = request.into_body().into_data_stream();
        files::upload(&state.db, &state.config.files, &who, &name, &content_type, body).await?
    };
    Ok((StatusCode::CREATED, axum::Json(file)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    all: bool,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(State(state): State<AppState>, ctx: Ctx, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Response> {
    if q.all {
        ctx.auth.require(Role::Admin)?;
    }
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    };
    let limit = page.limit()?;
    let owner = (!q.all).then_some(ctx.auth.user_id.as_str());
    let rows = state.db.files(ctx.tenant(), owner, page.after()?, limit + 1).await?;
    Ok(axum::Json(Page::from_items(rows, limit, |f| f.id.clone())).into_response())
}

async fn info(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let actor = ctx.actor();
    let file = files::get(&state.db, &caller(&ctx, &actor), &id).await?;
    Ok(axum::Json(file).into_response())
}

async fn remove(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let actor = ctx.actor();
    files::delete(&state.db, &caller(&ctx, &actor), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `?t=&exp=&sig=`: a signed link.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkQuery {
    t: Option<String>,
    exp: Option<i64>,
    sig: Option<String>,
}

/// The file a download may read: through a valid, unexpired signed link, or as the
/// authenticated caller.
async fn readable(state: &AppState, parts: &Parts, id: &str, q: &LinkQuery) -> ApiResult<(String, FileRow)> {
    if let (Some(tenant), Some(exp), Some(sig)) = (&q.t, q.exp, &q.sig) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if exp < now || !state.vault.verify_link(&files::link_message(tenant, id, exp), sig) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "link-invalid",
                "Link invalid",
                "the link has expired or is not a link this server made",
            ));
        }
        return Ok((tenant.clone(), files::get_signed(&state.db, tenant, id).await?));
    }
    if q.t.is_some() || q.exp.is_some() || q.sig.is_some() {
        return Err(ApiError::bad_request("a signed link needs all of t, exp and sig"));
    }
    let auth = parts
        .extensions
        .get::<Auth>()
        .ok_or_else(|| ApiError::unauthorized("send an API key, or use a signed link"))?;
    let actor = plinth_core::store::audit::Actor::default();
    let who = FileCaller {
        tenant: &auth.tenant_id,
        user_id: &auth.user_id,
        admin: auth.is_admin(),
        actor: &actor,
        plugin: None,
    };
    Ok((auth.tenant_id.clone(), files::get(&state.db, &who, id).await?))
}

/// A single `bytes=` range of a `size`-byte file as `start..end`; `Ok(None)` for no
/// (or a multi-range) header, which serves the whole file; `Err` when unsatisfiable.
fn byte_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (from, to) = spec.split_once('-').ok_or(())?;
    let range = match (from.trim(), to.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            (size.saturating_sub(n), size)
        }
        (start, "") => (start.parse().map_err(|_| ())?, size),
        (start, end) => {
            let (s, e): (u64, u64) = (start.parse().map_err(|_| ())?, end.parse().map_err(|_| ())?);
            if e < s {
                return Err(());
            }
            (s, (e + 1).min(size))
        }
    };
    if range.0 >= size || range.0 >= range.1 {
        return Err(());
    }
    Ok(Some(range))
}

/// `attachment; filename="…"; filename*=UTF-8''…` — an ASCII fallback and the exact
/// name (RFC 6266).
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or(HeaderValue::from_static("attachment"))
}

async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LinkQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    let (tenant, file) = readable(&state, &parts, &id, &q).await?;
    let etag = format!("\"{}\"", file.digest);
    if parts.headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let size = file.size.max(0) as u64;
    let (status, start, end) = match byte_range(&parts.headers, size) {
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(()) => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "Range not satisfiable",
                format!("the file has {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let stream = files::read(state.db.clone(), tenant, &file, start, end)
        .map_ok(Bytes::from)
        .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let content_type =
        HeaderValue::from_str(&file.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_DISPOSITION, disposition(&file.name));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        headers.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    expires_in: Option<i64>,
}

async fn link(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult<Response> {
    let actor = ctx.actor();
    let file = files::get(&state.db, &caller(&ctx, &actor), &id).await?;
    let ttl = body.expires_in.unwrap_or(86_400);
    if !(60..=604_800).contains(&ttl) {
        return Err(ApiError::validation("bad expiry").with_field("expires_in", "must be 60–604800 seconds"));
    }
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + ttl;
    let sig = state.vault.sign_link(&files::link_message(ctx.tenant(), &file.id, exp));
    let url = format!("/api/v1/files/{}?t={}&exp={exp}&sig={sig}", file.id, ctx.tenant());
    let expires_at = time::OffsetDateTime::from_unix_timestamp(exp)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "url": url, "expires_at": expires_at })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(byte_range(&with_range("bytes=0-3"), 10), Ok(Some((0, 4))));
        assert_eq!(byte_range(&with_range("bytes=5-"), 10), Ok(Some((5, 10))));
        assert_eq!(byte_range(&with_range("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(byte_range(&with_range("bytes=8-100"), 10), Ok(Some((8, 10))));
        assert_eq!(
            byte_range(&with_range("bytes=0-1,4-5"), 10),
            Ok(None),
            "multi-range: the whole file"
        );
        assert_eq!(byte_range(&with_range("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(&with_range("bytes=4-2"), 10), Err(()));
    }

    #[test]
    fn names_travel_in_both_disposition_forms() {
        assert_eq!(
            disposition("Q4 ré.xlsx").to_str().unwrap(),
            "attachment; filename=\"Q4 r_.xlsx\"; filename*=UTF-8''Q4%20r%C3%A9.xlsx"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"a.csv\"; filename*=UTF-8''r%C3%A9sum%C3%A9.csv"),
        );
        assert_eq!(disposition_name(&h).as_deref(), Some("résumé.csv"));
    }
}
