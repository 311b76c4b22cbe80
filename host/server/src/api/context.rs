//! `Ctx`: everything a handler needs to know about who is asking and how — the
//! authenticated caller, the request id, the API version and the client — and the
//! audit [`Actor`] derived from it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{ApiError, AppState, Auth};
use plinth_core::store::audit::Actor;
use plinth_core::versioning::{ApiVersion, DEFAULT_VERSION};

/// Longest client name kept.
const MAX_CLIENT: usize = 200;

/// Request id header (set by the server when the client sends none).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An authenticated request's context.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The caller.
    pub auth: Auth,
    /// The request id.
    pub request_id: String,
    /// The API version in use.
    pub api_version: String,
    /// The client name (`X-Client-Name`, else `User-Agent`).
    pub client: Option<String>,
}

impl Ctx {
    /// Tenant of the caller.
    pub fn tenant(&self) -> &str {
        &self.auth.tenant_id
    }

    /// The audit actor for changes made by this request.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.auth.user_id.clone()),
            key_id: Some(self.auth.key_id.clone()),
            plugin: None,
            request_id: Some(self.request_id.clone()),
            api_version: Some(self.api_version.clone()),
            client: self.client.clone(),
        }
    }
}

/// The request id of a request (empty if the id layer did not run).
pub fn request_id(parts: &Parts) -> String {
    parts
        .headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The client name of a request.
pub fn client_name(parts: &Parts) -> Option<String> {
    let raw = parts
        .headers
        .get("x-client-name")
        .or_else(|| parts.headers.get(axum::http::header::USER_AGENT))
        .and_then(|v| v.to_str().ok())?;
    Some(raw.chars().take(MAX_CLIENT).collect())
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let api_version = parts
            .extensions
            .get::<ApiVersion>()
            .map(|v| v.0.clone())
            .unwrap_or_else(|| DEFAULT_VERSION.to_string());
        Ok(Ctx {
            auth,
            request_id: request_id(parts),
            api_version,
            client: client_name(parts),
        })
    }
}
