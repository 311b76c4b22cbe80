//! The one API error type: every failure leaves the server as an RFC 9457
//! `application/problem+json` document with a stable `type`. Internal details are
//! logged with the request id and never put in a response.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use plinth_core::problem::FieldProblem;
use plinth_core::problem::{IntoProblem, Problem as DomainProblem, ProblemKind};
use plinth_core::store::StoreError;

/// Base of every problem `type` URI; the slug after it is stable API.
pub const PROBLEM_BASE: &str = "https://plinth.dev/problems/";

/// Most field problems listed in one document; the rest are counted
/// (`errors_total`), so a body with 100,000 unknown fields gets a small answer.
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// Marks a response a plugin wrote (through the gateway): [`problems_everywhere`]
/// leaves its body alone.
#[derive(Debug, Clone, Copy)]
pub struct PluginAnswer;

/// Make every 4xx and 5xx the host answers a problem document: responses that are not
/// one already — an extractor's plain-text rejection (a path segment that is not
/// UTF-8, a body over the limit), an empty-bodied status from a layer — become one with
/// the same status, their text (when short) as the detail. Plugin answers are left as
/// the plugin wrote them.
pub async fn problems_everywhere(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.extensions().get::<PluginAnswer>().is_some()
    {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let title = status.canonical_reason().unwrap_or("Error");
    let detail = if text.is_empty() || status.is_server_error() {
        title.to_lowercase()
    } else {
        text
    };
    let slug = match status {
        StatusCode::BAD_REQUEST => "bad-request",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        StatusCode::URI_TOO_LONG => "uri-too-long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers-too-large",
        StatusCode::UNPROCESSABLE_ENTITY => "validation",
        s if s.is_server_error() => "internal",
        _ => "bad-request",
    };
    let mut out = ApiError::new(status, slug, title, detail).into_response();
    // Keep the original's headers that still apply (Allow, Retry-After, request id…).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// An API failure, rendered as problem+json. Boxed, so `Result<_, ApiError>` stays
/// small on the success path.
#[derive(Debug)]
pub struct ApiError(Box<Problem>);

#[derive(Debug)]
struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    fields: Vec<FieldProblem>,
    extra: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// A problem with an explicit status, slug and title.
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError(Box::new(Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            fields: Vec::new(),
            extra: serde_json::Map::new(),
            headers: Vec::new(),
        }))
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request", detail)
    }

    /// 400: the body is not valid JSON (detail names line and column).
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON", detail)
    }

    /// 401: no or bad credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403: authenticated, but the role or grant does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404: not found — also for ids that exist in another tenant.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405 with the allowed methods.
    pub fn method_not_allowed(allowed: &str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("allowed methods: {allowed}"),
        );
        if let Ok(v) = HeaderValue::from_str(allowed) {
            e = e.with_header(header::ALLOW, v);
        }
        e
    }

    /// 409: conflicts with the current state (duplicate, concurrent change).
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 410: gone (a retired API version).
    pub fn gone(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "gone", "Gone", detail)
    }

    /// 412: `If-Match` does not match the current version.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Precondition failed",
            detail,
        )
    }

    /// 413: the body is larger than allowed.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            detail,
        )
    }

    /// 415: the body is not JSON.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 422: well-formed but invalid; add the offending fields with [`ApiError::with_field`].
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Validation failed",
            detail,
        )
    }

    /// 429: a limit was hit.
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "limit", "Limit exceeded", detail)
    }

    /// 503: temporarily unable (shutting down, overloaded).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// 500: log `cause` (with the request id, by the caller's span) and answer with
    /// a generic message.
    pub fn internal(cause: impl std::fmt::Debug) -> Self {
        tracing::error!(cause = ?cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed to handle the request; it has been logged",
        )
    }

    /// Add a field problem.
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.0.fields.push(FieldProblem {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    /// Add several field problems.
    pub fn with_fields(mut self, fields: impl IntoIterator<Item = FieldProblem>) -> Self {
        self.0.fields.extend(fields);
        self
    }

    /// Add an extension member to the problem document.
    pub fn with_extra(mut self, key: &str, value: serde_json::Value) -> Self {
        self.0.extra.insert(key.to_string(), value);
        self
    }

    /// Add a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stable slug of the problem type.
    pub fn slug(&self) -> &'static str {
        self.0.slug
    }

    /// The problem document.
    pub fn body(&self) -> serde_json::Value {
        let p = &self.0;
        let mut doc = serde_json::Map::new();
        doc.insert("type".into(), format!("{PROBLEM_BASE}{}", p.slug).into());
        doc.insert("title".into(), p.title.into());
        doc.insert("status".into(), p.status.as_u16().into());
        doc.insert("detail".into(), p.detail.clone().into());
        if !p.fields.is_empty() {
            let listed = &p.fields[..p.fields.len().min(MAX_LISTED_PROBLEMS)];
            doc.insert("errors".into(), serde_json::to_value(listed).unwrap_or_default());
            if p.fields.len() > listed.len() {
                doc.insert("errors_total".into(), p.fields.len().into());
            }
        }
        for (k, v) in &p.extra {
            doc.insert(k.clone(), v.clone());
        }
        serde_json::Value::Object(doc)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.0.status.as_u16(), self.0.slug, self.0.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.0.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.0.headers {
            headers.append(name, value);
        }
        response
    }
}

impl From<DomainProblem> for ApiError {
    /// The one mapping from a problem kind to an HTTP status and problem `type`.
    fn from(p: DomainProblem) -> Self {
        match p.kind {
            ProblemKind::NotFound => ApiError::not_found(p.detail),
            ProblemKind::BadRequest => ApiError::bad_request(p.detail),
            ProblemKind::Invalid if p.fields.is_empty() => ApiError::validation(p.detail),
            ProblemKind::Invalid => ApiError::validation(format!("{}; see `errors`", p.detail)).with_fields(p.fields),
            ProblemKind::Denied => ApiError::forbidden(p.detail),
            ProblemKind::Conflict => ApiError::conflict(p.detail),
            ProblemKind::Stale => ApiError::precondition_failed(p.detail),
            ProblemKind::Locked => ApiError::new(StatusCode::LOCKED, "locked", "Locked", p.detail),
            ProblemKind::TooLarge => ApiError::payload_too_large(p.detail),
            ProblemKind::Limit => ApiError::too_many(p.detail),
            ProblemKind::Internal => ApiError::internal(p.detail),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        e.into_problem().into()
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
