//! `/api/v1/plugins/{plugin}/{path…}`: plugin endpoints. A request reaches the
//! tenant's active version of the plugin only if the manifest declares the route
//! and the caller has its minimum role; bodies are checked against the endpoint's
//! JSON Schema when one is declared. The plugin's status and headers come back,
//! minus hop-by-hop and security-sensitive headers the host owns.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;

use super::routes::Routes;
use super::{ApiError, ApiResult, AppState, Ctx};
use plinth_core::manifest::Role;
use plinth_core::store::installations::state;
use plinth_runtime::admission::{self, Refusal};
use plinth_runtime::bindings::{self, Caller};
use plinth_runtime::engine::CallError;
use plinth_runtime::plugins::{Active, Resolved};
use plinth_runtime::sandbox::percent_decode;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .gateway("/api/v1/plugins/{plugin}", any(root))
        .gateway("/api/v1/plugins/{plugin}/", any(root))
        .gateway("/api/v1/plugins/{plugin}/{*path}", any(endpoint))
}

/// Request headers a plugin never sees.
const DROP_REQUEST: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Response headers a plugin may not set: hop-by-hop ones and those the host owns.
const DROP_RESPONSE: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "set-cookie",
    "strict-transport-security",
    "content-security-policy",
    "x-frame-options",
    "www-authenticate",
    "x-request-id",
    "api-version",
    "deprecation",
    "sunset",
    "server",
    "date",
];

async fn root(state: State<AppState>, ctx: Ctx, Path(plugin): Path<String>, req: Request) -> ApiResult<Response> {
    dispatch(state, ctx, plugin, "/".to_string(), req).await
}

async fn endpoint(
    state: State<AppState>,
    ctx: Ctx,
    Path((plugin, path)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    dispatch(state, ctx, plugin, format!("/{path}"), req).await
}

/// The active, enabled installation, or the problem that explains why not.
pub async fn enabled_plugin(state: &AppState, tenant: &str, plugin: &str) -> ApiResult<Arc<Active>> {
    let resolved = state.plugins.resolve(tenant, plugin).await.map_err(|e| {
        tracing::warn!(%plugin, error = %e, "an installed plugin could not be prepared");
        ApiError::unavailable(format!("the plugin `{plugin}` cannot run right now"))
    })?;
    let installation = match resolved {
        Resolved::Active(active) => return Ok(active),
        Resolved::NotInstalled => {
            return Err(ApiError::not_found(format!(
                "the plugin `{plugin}` is not installed in this tenant"
            )));
        }
        Resolved::Inactive(i) => i,
    };
    match installation.state.as_str() {
        state::REVOKED => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "plugin-disabled",
            "Plugin disabled",
            format!("the plugin `{plugin}` is disabled: the key that signed its version was revoked"),
        )
        .with_extra("plugin", plugin.into())),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "plugin-disabled",
            "Plugin disabled",
            format!("the plugin `{plugin}` is disabled in this tenant"),
        )
        .with_extra("plugin", plugin.into())),
    }
}

async fn dispatch(
    State(state): State<AppState>,
    ctx: Ctx,
    plugin: String,
    raw_path: String,
    req: Request,
) -> ApiResult<Response> {
    let active = enabled_plugin(&state, &ctx.auth.tenant_id, &plugin).await?;
    let path = percent_decode(&raw_path);
    let method = req.method().clone();
    let endpoint = admission::endpoint(&active.manifest, method.as_str(), &path, ctx.auth.role)
        .map_err(|r| refusal_problem(&plugin, ctx.auth.role, r))?
        .clone();

    let query: Vec<(String, String)> = match req.uri().query() {
        None => Vec::new(),
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|e| ApiError::bad_request(format!("query parameters: {e}")))?
        }
    };
    let headers = forwarded_headers(req.headers());
    let body = if method == Method::GET || method == Method::DELETE {
        Bytes::new()
    } else {
        Bytes::from_request(req, &state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(format!(
                    "the body is larger than the limit of {} bytes",
                    state.config.body_limit
                ))
            } else {
                ApiError::bad_request(format!("could not read the body: {r}"))
            }
        })?
    };
    state
        .plugin_schemas
        .check_body(&active.installation.digest, &endpoint, &body)
        .map_err(|r| refusal_problem(&plugin, ctx.auth.role, r))?;

    let caller = Caller {
        tenant_id: ctx.auth.tenant_id.clone(),
        user_id: Some(ctx.auth.user_id.clone()),
        roles: ctx.auth.roles(),
        api_version: ctx.api_version.clone(),
        request_id: ctx.request_id.clone(),
    };
    let request = bindings::plinth::plugin::types::Request {
        method: method.as_str().to_string(),
        path,
        query,
        headers,
        body: body.to_vec(),
    };
    let _places = state
        .bulkheads
        .enter(state.config.bulkheads, &ctx.auth.tenant_id, &plugin)
        .await?;
    let outcome = state.plugins.handle(&active, caller, request).await;
    match outcome.result {
        Ok(response) => Ok(to_http(response)),
        Err(e) => Err(call_problem(&plugin, &e)),
    }
}

fn forwarded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !DROP_REQUEST.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
        .collect()
}

fn to_http(response: bindings::plinth::plugin::types::Response) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    for (name, value) in response.headers {
        let lower = name.to_ascii_lowercase();
        if DROP_RESPONSE.contains(&lower.as_str())
            || lower.starts_with("proxy-")
            || lower.starts_with("access-control-")
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(lower.as_bytes()), HeaderValue::from_str(&value)) {
            headers.append(n, v);
        }
    }
    // The plugin's own answer: its error bodies are its to choose.
    out.extensions_mut().insert(super::error::PluginAnswer);
    out
}

/// A request the admission check refused, as a problem.
fn refusal_problem(plugin: &str, role: Role, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NoEndpoint { method, path } => {
            ApiError::not_found(format!("the plugin `{plugin}` has no endpoint {method} {path}"))
        }
        Refusal::MethodNotAllowed { allowed, .. } => ApiError::method_not_allowed(&Refusal::allow_header(&allowed)),
        Refusal::Forbidden { required } => {
            ApiError::forbidden(format!("this needs the {required} role or higher; you are {role}"))
        }
        Refusal::InvalidBody(problems) => {
            ApiError::validation("the body does not match the endpoint's schema; see `errors`").with_fields(problems)
        }
    }
}

/// A failed plugin call as a problem: the kind is named, internals are not.
pub fn call_problem(plugin: &str, e: &CallError) -> ApiError {
    let (status, slug, title) = match e {
        CallError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "plugin-timeout", "Plugin timed out"),
        CallError::MemoryExhausted { .. } => (StatusCode::BAD_GATEWAY, "plugin-memory", "Plugin ran out of memory"),
        CallError::Trap { .. } => (StatusCode::BAD_GATEWAY, "plugin-crashed", "Plugin crashed"),
        CallError::ResponseTooLarge { .. } => (
            StatusCode::BAD_GATEWAY,
            "plugin-response-too-large",
            "Plugin response too large",
        ),
        CallError::InvalidResponse(_) | CallError::Plugin(_) => (
            StatusCode::BAD_GATEWAY,
            "plugin-invalid-response",
            "Invalid plugin response",
        ),
        CallError::Host(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
    };
    ApiError::new(status, slug, title, format!("`{plugin}`: {e}")).with_extra("plugin", plugin.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_headers_are_filtered() {
        let r = to_http(bindings::plinth::plugin::types::Response {
            status: 201,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Set-Cookie".into(), "session=stolen".into()),
                ("Transfer-Encoding".into(), "chunked".into()),
                ("Access-Control-Allow-Origin".into(), "*".into()),
                ("X-Custom".into(), "ok".into()),
                ("Bad Name".into(), "x".into()),
                ("X-Bad-Value".into(), "line\nbreak".into()),
            ],
            body: b"{}".to_vec(),
        });
        assert_eq!(r.status(), StatusCode::CREATED);
        let names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "x-custom"]);
    }

    #[test]
    fn request_credentials_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer plk_secret"));
        h.insert("cookie", HeaderValue::from_static("a=b"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        assert_eq!(
            forwarded_headers(&h),
            vec![("accept".to_string(), "application/json".to_string())]
        );
    }
}
