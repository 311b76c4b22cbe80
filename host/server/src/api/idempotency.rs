//! `Idempotency-Key` on every `POST` and `PATCH` (Stripe's semantics): the first
//! response to a key is kept 24 hours per tenant, API key and key; a retry with the
//! same request gets it back (with `Idempotent-Replayed: true`) instead of doing the
//! work twice; the same key with a different request answers 422, and while the first
//! is still running, 409. Server failures (5xx) are not kept, so a retry runs again.
//! See README, "Retrying safely".

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use super::auth::Auth;
use super::{ApiError, AppState};
use plinth_core::store::idempotency::{Claim, KeyScope, StoredResponse};
use plinth_core::store::time as stored;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// How long a key is kept.
const KEEP: time::Duration = time::Duration::hours(24);
/// Largest response kept; a larger one is not replayable (the key is released).
const MAX_KEPT: usize = 1024 * 1024;
/// Headers a replay repeats.
const KEPT_HEADERS: &[&str] = &["content-type", "etag", "location", "x-api-version"];

fn valid(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Middleware (inside authentication): apply an `Idempotency-Key`.
pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let applies = matches!(*request.method(), Method::POST | Method::PATCH)
        // File uploads stream up to a gigabyte; they are not buffered to be replayed.
        && !request.uri().path().starts_with("/api/v1/files");
    let key = request.headers().get(HEADER).map(|v| v.to_str().map(str::to_string));
    let (Some(key), true) = (key, applies) else {
        return next.run(request).await;
    };
    let Ok(key) = key
        .map_err(|_| ())
        .and_then(|k| if valid(&k) { Ok(k) } else { Err(()) })
    else {
        return ApiError::bad_request("Idempotency-Key must be 1–255 visible ASCII characters").into_response();
    };
    let Some(auth) = request.extensions().get::<Auth>().cloned() else {
        // Unauthenticated requests are refused further in; nothing to keep.
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.body_limit).await {
        Ok(b) => b,
        Err(_) => return ApiError::payload_too_large("the request body is larger than the limit").into_response(),
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    hasher.update([0]);
    hasher.update(&bytes);
    let hash = hex::encode(hasher.finalize());
    let scope = KeyScope {
        tenant: &auth.tenant_id,
        key_id: &auth.key_id,
        key: &key,
    };
    let now = time::OffsetDateTime::now_utc();
    let claim = state
        .db
        .claim_idempotency_key(scope, &hash, &stored::format(now), &stored::format(now + KEEP))
        .await;
    match claim {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Claim::Mismatch) => {
            return ApiError::validation(
                "this Idempotency-Key was used for a different request; use a new key for a new request",
            )
            .into_response();
        }
        Ok(Claim::InFlight) => {
            return ApiError::conflict("a request with this Idempotency-Key is still running; retry in a moment")
                .into_response();
        }
        Ok(Claim::Replay(kept)) => return replay(kept),
        Ok(Claim::Fresh) => {}
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (parts, body) = response.into_parts();
    let kept = if parts.status.is_server_error() {
        None
    } else {
        axum::body::to_bytes(body, MAX_KEPT).await.ok()
    };
    let Some(bytes) = kept else {
        if let Err(e) = state.db.release_idempotency_key(scope).await {
            tracing::warn!(error = ?e, "could not release an idempotency key");
        }
        // A 5xx body was not read; a body too large was consumed: say so.
        let status = parts.status;
        return if status.is_server_error() {
            ApiError::internal("the request failed; it may be retried with the same Idempotency-Key").into_response()
        } else {
            ApiError::internal("the response was too large to keep for Idempotency-Key replays").into_response()
        };
    };
    let headers: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            parts
                .headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|v| (name.to_string(), v.to_string()))
        })
        .collect();
    let kept = StoredResponse {
        status: parts.status.as_u16(),
        headers: serde_json::to_string(&headers).unwrap_or_default(),
        body: bytes.to_vec(),
    };
    if let Err(e) = state.db.finish_idempotency_key(scope, &kept).await {
        tracing::warn!(error = ?e, "could not keep a response for its Idempotency-Key");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(kept: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(kept.body));
    *response.status_mut() = axum::http::StatusCode::from_u16(kept.status).unwrap_or_default();
    let headers: Vec<(String, String)> = serde_json::from_str(&kept.headers).unwrap_or_default();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
