//! The test client: requests read as specs.
//!
//! A [`Client`] is bound to one credential (a tenant user's API key, the operator
//! token, a publisher token, or none) and an API version. A request is built, awaited,
//! and its [`Reply`] checked in one line:
//!
//! ```ignore
//! let account = t.post("/api/v1/records/account", json!({ "fields": { "name": "Acme" } }))
//!     .await
//!     .expect(201)
//!     .json();
//! max.get(&format!("/api/v1/records/account/{id}")).await.expect_problem(404, "not-found");
//! ```
//!
//! [`crate::TestTenant`] and [`crate::TestUser`] dereference to the client of their key,
//! so `t.get(…)` runs as the tenant's owner and `max.get(…)` as Max.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use serde_json::Value;

/// The newest API version: requests use it unless they choose another.
pub const NEWEST_VERSION: &str = "2027-01-15";

/// An HTTP client bound to a server, a credential and an API version. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    key: Option<String>,
    version: String,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:port`) sending `key` as
    /// its bearer token (`None`: no credentials).
    pub fn new(base: &str, http: reqwest::Client, key: Option<&str>) -> Client {
        Client {
            base: base.to_string(),
            http,
            key: key.map(str::to_string),
            version: NEWEST_VERSION.to_string(),
        }
    }

    /// The same client speaking API version `version` (`Accept-Version`; empty: none).
    pub fn in_version(&self, version: &str) -> Client {
        Client {
            version: version.to_string(),
            ..self.clone()
        }
    }

    /// The same client sending no `Accept-Version` header, so the key's or the
    /// tenant's pinned version applies.
    pub fn unversioned(&self) -> Client {
        self.in_version("")
    }

    /// The same client with another credential.
    pub fn with_key(&self, key: &str) -> Client {
        Client {
            key: Some(key.to_string()),
            ..self.clone()
        }
    }

    /// The same client talking to another server at `base` (a restarted server, a
    /// second host, a child process on the same database).
    pub fn rebased(&self, base: &str) -> Client {
        Client {
            base: base.to_string(),
            ..self.clone()
        }
    }

    /// The bearer token it sends, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// A request with any method (`"GET"`, `"PROPFIND"`, …).
    pub fn request(&self, method: &str, path: &str) -> Call {
        Call {
            client: self.clone(),
            method: reqwest::Method::from_bytes(method.as_bytes()).expect("a valid HTTP method"),
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
            version: None,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Call {
        self.request("GET", path)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Call {
        self.request("DELETE", path)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: Value) -> Call {
        self.request("POST", path).json(body)
    }

    /// `PATCH path` with a JSON body.
    pub fn patch(&self, path: &str, body: Value) -> Call {
        self.request("PATCH", path).json(body)
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: Value) -> Call {
        self.request("PUT", path).json(body)
    }

    /// The tenant's audit events matching `filters` (the audit API's query parameters,
    /// e.g. `[("action", "record.update"), ("entity_id", id)]`), oldest first, every
    /// page of them. Needs an admin's key.
    pub async fn audit_events(&self, filters: &[(&str, &str)]) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query: Vec<(&str, &str)> = filters.to_vec();
            query.push(("order", "asc"));
            query.push(("limit", "500"));
            if let Some(c) = &cursor {
                query.push(("cursor", c));
            }
            let path = format!("/api/v1/audit/events?{}", encode_query(&query));
            let page = self.get(&path).await.expect(200).json();
            let data = page["data"]
                .as_array()
                .unwrap_or_else(|| panic!("GET {path}: no `data` list in {page}"));
            events.extend(data.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return events,
            }
        }
    }
}

/// Percent-encode `pairs` as a query string.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

enum Body {
    Json(Value),
    Bytes(String, Vec<u8>),
}

/// A request being built; `.await` sends it and reads the whole [`Reply`].
#[must_use = "a request does nothing until it is awaited"]
pub struct Call {
    client: Client,
    method: reqwest::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Body>,
    version: Option<String>,
}

impl Call {
    /// Add a request header.
    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Send `If-Match: "<version>"`.
    pub fn if_match(self, version: i64) -> Call {
        self.header("if-match", &format!("\"{version}\""))
    }

    /// A JSON body.
    pub fn json(mut self, body: Value) -> Call {
        self.body = Some(Body::Json(body));
        self
    }

    /// A raw body with its content type.
    pub fn bytes(mut self, content_type: &str, body: Vec<u8>) -> Call {
        self.body = Some(Body::Bytes(content_type.to_string(), body));
        self
    }

    /// Speak API version `version` for this request only.
    pub fn version(mut self, version: &str) -> Call {
        self.version = Some(version.to_string());
        self
    }

    /// Send no `Accept-Version` header (the key's or tenant's pinned version applies).
    pub fn unversioned(mut self) -> Call {
        self.version = Some(String::new());
        self
    }

    async fn send(self) -> Reply {
        let Call {
            client,
            method,
            path,
            headers,
            body,
            version,
        } = self;
        let described = format!("{method} {path}");
        let mut req = client.http.request(method, format!("{}{path}", client.base));
        let version = version.unwrap_or(client.version.clone());
        if !version.is_empty() {
            req = req.header("accept-version", version);
        }
        if let Some(key) = &client.key {
            req = req.bearer_auth(key);
        }
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Bytes(content_type, bytes)) => req.header("content-type", content_type).body(bytes),
            None => req,
        };
        let response = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{described}: the request failed: {e}"));
        Reply::read(described, response).await
    }
}

impl IntoFuture for Call {
    type Output = Reply;
    type IntoFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// Raw body text.
    pub text: String,
    /// `METHOD path`, for failure messages.
    pub request: String,
}

impl Reply {
    /// Read a reqwest response completely.
    pub async fn from(response: reqwest::Response) -> Reply {
        let described = response.url().path().to_string();
        Reply::read(described, response).await
    }

    async fn read(request: String, response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
            request,
        }
    }

    /// Check the status; on a mismatch fail the test naming the request and showing the
    /// body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got {}: {}",
            self.request, self.status, self.text
        );
        self
    }

    /// Check the status and the problem `type` slug (`…/problems/<slug>`) of an error
    /// answer; returns the reply for further checks of its detail.
    #[track_caller]
    pub fn expect_problem(self, status: u16, slug: &str) -> Reply {
        let reply = self.expect(status);
        assert_eq!(
            reply.problem_type(),
            slug,
            "{}: expected a `{slug}` problem: {}",
            reply.request,
            reply.text
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{}: a problem is application/problem+json",
            reply.request
        );
        reply
    }

    /// The body as JSON.
    pub fn json(self) -> Value {
        self.body
    }

    /// The last segment of the problem document's `type` (empty if there is none).
    pub fn problem_type(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("")
    }

    /// The field paths listed in a problem's `errors`.
    pub fn problem_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
