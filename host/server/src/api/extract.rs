//! Extractors and response helpers every API module shares: query strings whose
//! errors are problems ([`ApiQuery`]), cursor pages ([`PageQuery`], [`Page`]), and
//! optimistic concurrency (`If-Match` as [`IfMatch`], `ETag` by [`with_etag`]).

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};

use super::{ApiError, ApiResult};

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 500;

/// A query-string extractor whose rejections are problem documents (400 naming the
/// parameter) rather than axum's plain-text ones.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

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
pub struct PageQuery {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<i64>,
}

impl PageQuery {
    /// The page size, validated against [`MAX_LIMIT`].
    pub fn limit(&self) -> ApiResult<i64> {
        self.limit_up_to(MAX_LIMIT)
    }

    /// The page size, validated against a list's own largest page.
    pub fn limit_up_to(&self, max: i64) -> ApiResult<i64> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT.min(max)),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(_) => {
                Err(ApiError::validation("bad page size").with_field("limit", format!("must be between 1 and {max}")))
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
pub struct Page<T> {
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

/// A JSON response with an `ETag: "<version>"`.
pub fn with_etag(status: StatusCode, version: i64, body: impl Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// The version an `If-Match` header demands: `None` when there is none or it is `*`;
/// `"3"`, `3` and `W/"3"` name version 3. A value that names no version can match no
/// version, so it is refused with 412 (RFC 9110 §13.1.1) before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Option<i64>);

impl IfMatch {
    /// Parse a header value.
    pub fn parse(raw: Option<&HeaderValue>) -> ApiResult<IfMatch> {
        let Some(raw) = raw else {
            return Ok(IfMatch(None));
        };
        let refused = |shown: &str| {
            ApiError::precondition_failed(format!(
                "If-Match {shown}does not name a version: send an ETag this API returned, like \"3\""
            ))
        };
        // Only visible ASCII reads as text; anything else names no version either.
        let Ok(text) = raw.to_str().map(str::trim) else {
            return Err(refused(""));
        };
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        bare.parse::<i64>()
            .map(|v| IfMatch(Some(v)))
            .map_err(|_| refused(&format!("{text} ")))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        IfMatch::parse(parts.headers.get(header::IF_MATCH))
    }
}

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_names_a_version_or_nothing() {
        let parse = |v: &'static str| IfMatch::parse(Some(&HeaderValue::from_static(v)));
        assert_eq!(IfMatch::parse(None).unwrap(), IfMatch(None));
        assert_eq!(parse("*").unwrap(), IfMatch(None));
        assert_eq!(parse("\"3\"").unwrap(), IfMatch(Some(3)));
        assert_eq!(parse("W/\"4\"").unwrap(), IfMatch(Some(4)));
        assert_eq!(parse(" 5 ").unwrap(), IfMatch(Some(5)));
        let refused = parse("\"abc\"").unwrap_err();
        assert_eq!(refused.status(), StatusCode::PRECONDITION_FAILED);
        assert!(
            refused.body()["detail"]
                .as_str()
                .unwrap()
                .starts_with("If-Match \"abc\" does not")
        );
        let binary = IfMatch::parse(Some(&HeaderValue::from_bytes(b"\"\xff\"").unwrap())).unwrap_err();
        assert_eq!(binary.status(), StatusCode::PRECONDITION_FAILED);
    }

    #[test]
    fn pages_say_whether_there_is_more() {
        let page = Page::from_items(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((page.data, page.next_cursor), (vec![1, 2], Some("2".to_string())));
        let last = Page::from_items(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
    }
}
