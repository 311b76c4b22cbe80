//! Authentication: `Authorization: Bearer <api key>` resolves to a tenant, user and
//! role for every request; the operator token guards operator endpoints.
//!
//! Resolution is cached for a few seconds (revocations made through this process
//! clear the cache at once; other hosts see them within [`AUTH_CACHE_TTL`]). Key
//! usage times are recorded off the request path, at most once a minute per key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use plinth_core::manifest::Role;
use plinth_core::store::tenancy::ResolvedKey;
use plinth_core::store::time;
use plinth_core::tenancy::{OPERATOR_PREFIX, hash_secret};

/// How long a resolved key is trusted without asking the database again.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most cached keys; the cache is cleared when full.
const AUTH_CACHE_MAX: usize = 10_000;
/// Key usage is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: String,
    /// The user's role.
    pub role: Role,
    /// The API key used.
    pub key_id: String,
    /// The key's pinned API version.
    pub key_api_version: Option<String>,
    /// The tenant's default API version.
    pub tenant_api_version: String,
}

impl Auth {
    /// 403 unless the caller's role is `min` or higher.
    pub fn require(&self, min: Role) -> Result<(), ApiError> {
        if self.role.at_least(min) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {min} role or higher; you are {}",
                self.role
            )))
        }
    }

    /// Owners and admins see and manage everything in their tenant.
    pub fn is_admin(&self) -> bool {
        self.role.at_least(Role::Admin)
    }

    /// Roles as strings (for the WIT caller).
    pub fn roles(&self) -> Vec<String> {
        vec![self.role.as_str().to_string()]
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Auth>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this endpoint needs `Authorization: Bearer <API key>`"))
    }
}

/// Proof that the request carries a valid operator token.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.ok_or_else(|| {
            ApiError::unauthorized("operator endpoints need `Authorization: Bearer <operator token>`")
        })?;
        if !token.starts_with(OPERATOR_PREFIX) {
            return Err(ApiError::unauthorized("that is not an operator token"));
        }
        match state.db.operator_token_valid(&hash_secret(token)).await {
            Ok(true) => Ok(Operator),
            Ok(false) => Err(ApiError::unauthorized("the operator token is not valid")),
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
    Ok(Some(token.trim()))
}

/// Cache of resolved keys and the last time each key's use was recorded.
#[derive(Debug, Default)]
pub struct AuthCache {
    keys: Mutex<HashMap<String, (ResolvedKey, Instant)>>,
    touched: Mutex<HashMap<String, Instant>>,
    pending: Mutex<Vec<(String, String, String)>>,
}

impl AuthCache {
    fn get(&self, hash: &str) -> Option<ResolvedKey> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(hash)
            .filter(|(_, at)| at.elapsed() < AUTH_CACHE_TTL)
            .map(|(k, _)| k.clone())
    }

    fn put(&self, hash: String, key: ResolvedKey) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= AUTH_CACHE_MAX {
            keys.clear();
        }
        keys.insert(hash, (key, Instant::now()));
    }

    /// Forget every cached key (after a revocation or a user/role change).
    pub fn invalidate(&self) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn note_use(&self, key: &ResolvedKey) {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        let due = touched.get(&key.key_id).is_none_or(|at| at.elapsed() >= TOUCH_EVERY);
        if due {
            touched.insert(key.key_id.clone(), Instant::now());
            drop(touched);
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).push((
                key.tenant_id.clone(),
                key.key_id.clone(),
                time::now(),
            ));
        }
    }

    /// Take the key uses waiting to be written.
    pub fn take_pending_uses(&self) -> Vec<(String, String, String)> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Middleware: resolve a Bearer API key, if present, into an [`Auth`] extension.
/// A present but invalid key is refused here (401) whatever the route; an absent
/// one is left to the routes that need it. Operator and publisher tokens pass
/// through untouched.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let token = match bearer(&parts) {
        Ok(t) => t.map(str::to_string),
        Err(e) => return e.into_response(),
    };
    // Operator and publisher tokens are checked by the endpoints that take them.
    let other = |t: &String| {
        t.starts_with(OPERATOR_PREFIX) || t.starts_with(plinth_runtime::marketplace::publishers::TOKEN_PREFIX)
    };
    if let Some(token) = token.filter(|t| !other(t)) {
        match resolve(&state, &token).await {
            Ok(auth) => {
                parts.extensions.insert(auth);
            }
            Err(e) => return e.into_response(),
        }
    }
    request = Request::from_parts(parts, body);
    next.run(request).await
}

async fn resolve(state: &AppState, token: &str) -> Result<Auth, ApiError> {
    let hash = hash_secret(token);
    let key = match state.auth_cache.get(&hash) {
        Some(k) => k,
        None => {
            let k = state
                .db
                .resolve_key(&hash)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::unauthorized("the API key is not valid"))?;
            state.auth_cache.put(hash, k.clone());
            k
        }
    };
    if key.revoked_at.is_some() {
        return Err(ApiError::unauthorized("the API key has been revoked"));
    }
    if key.expires_at.as_deref().is_some_and(|at| at <= time::now().as_str()) {
        return Err(ApiError::unauthorized("the API key has expired"));
    }
    if key.tenant_status != "active" {
        return Err(ApiError::unauthorized("the tenant is suspended"));
    }
    if key.user_status != "active" {
        return Err(ApiError::unauthorized("the key's user is disabled"));
    }
    let role = key
        .role
        .parse::<Role>()
        .map_err(|_| ApiError::internal(format!("bad stored role {}", key.role)))?;
    state.auth_cache.note_use(&key);
    Ok(Auth {
        tenant_id: key.tenant_id,
        user_id: key.user_id,
        role,
        key_id: key.key_id,
        key_api_version: key.key_api_version,
        tenant_api_version: key.tenant_api_version,
    })
}
