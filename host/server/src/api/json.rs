//! `ApiJson<T>`: a JSON body extractor whose every rejection is a problem document —
//! 415 for a non-JSON content type, 413 above the body limit, 400 with line and column
//! for malformed JSON, 400 naming the field for unknown or mistyped fields (types
//! opt into `#[serde(deny_unknown_fields)]`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};

/// A JSON request body decoded into `T`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// Check the content type and read the body (within the body limit).
pub async fn json_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let is_json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    });
    if is_json == Some(false) {
        return Err(ApiError::unsupported_media_type(
            "send the body as `Content-Type: application/json`",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(format!(
                "the body is larger than the limit of {} bytes",
                state.config.body_limit
            ))
        } else {
            ApiError::bad_request(format!("could not read the body: {rejection}"))
        }
    })
}

/// Decode JSON bytes, reporting position and field problems precisely.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::malformed_json("the body is empty; send a JSON document"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let problem = ApiError::bad_request(format!("the body does not have the expected shape: {inner}"));
                if path == "." || path.is_empty() {
                    problem
                } else {
                    problem.with_field(path, inner.to_string())
                }
            }
            _ => malformed(&inner),
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(inner: &serde_json::Error) -> ApiError {
    ApiError::malformed_json(format!(
        "the body is not valid JSON: {inner} (line {}, column {})",
        inner.line(),
        inner.column()
    ))
    .with_extra("line", inner.line().into())
    .with_extra("column", inner.column().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        size: u32,
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let e = parse::<Body>(b"{\n  \"name\": \"x\",\n  oops }").unwrap_err();
        assert_eq!(e.slug(), "malformed-json");
        let body = e.body();
        assert_eq!(body["line"], 3);
        assert!(body["detail"].as_str().unwrap().contains("line 3"));
    }

    #[test]
    fn unknown_and_mistyped_fields_are_named() {
        let e = parse::<Body>(br#"{"name":"x","size":1,"colour":"red"}"#).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.body()["detail"].as_str().unwrap().contains("unknown field `colour`"),
            "{}",
            e.body()
        );
        let e = parse::<Body>(br#"{"name":"x","size":"big"}"#).unwrap_err();
        assert_eq!(e.body()["errors"][0]["field"], "size");
    }

    #[test]
    fn trailing_garbage_and_empty_bodies_are_refused() {
        assert_eq!(
            parse::<Body>(br#"{"name":"x","size":1} extra"#).unwrap_err().slug(),
            "malformed-json"
        );
        assert_eq!(parse::<Body>(b"").unwrap_err().slug(), "malformed-json");
    }
}
