//! Requests to the plugin's endpoints and the responses it gives.

use serde::{Serialize, de::DeserializeOwned};

use crate::{Caller, Error};

/// A request to one of the plugin's endpoints, with the path parameters the router
/// matched.
///
/// ```
/// use plinth_sdk::{Request, Caller};
/// let req = Request::builder("POST", "/greet")
///     .query("lang", "de")
///     .body(br#"{"name":"Ada"}"#.to_vec())
///     .build();
/// assert_eq!(req.query("lang"), Some("de"));
/// #[derive(serde::Deserialize)] struct Body { name: String }
/// assert_eq!(req.json::<Body>().unwrap().name, "Ada");
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    /// Who is calling.
    pub caller: Caller,
    /// Upper-case method.
    pub method: String,
    /// Path below the plugin's mount point, starting with `/`.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    pub(crate) params: Vec<(String, String)>,
}

impl Request {
    /// Start building a request by hand, for tests of handlers and routers.
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("GET", "/ping").build();
    /// assert_eq!(req.method, "GET");
    /// ```
    pub fn builder(method: &str, path: &str) -> RequestBuilder {
        RequestBuilder {
            request: Request {
                caller: Caller {
                    tenant_id: "test-tenant".into(),
                    user_id: Some("test-user".into()),
                    roles: vec!["member".into()],
                    api_version: "2026-11-01".into(),
                    request_id: "test-request".into(),
                },
                method: method.to_string(),
                path: path.to_string(),
                query: Vec::new(),
                headers: Vec::new(),
                body: Vec::new(),
                params: Vec::new(),
            },
        }
    }

    /// A path parameter matched by the router, e.g. `id` for `/territories/{id}`.
    /// Asking for a name the route does not declare is a plugin bug, reported as 500.
    ///
    /// ```
    /// use plinth_sdk::{Router, Request, Response};
    /// let router = Router::new().get("/t/{id}", |req| Ok(Response::text(req.param("id")?)));
    /// let res = router.handle(Request::builder("GET", "/t/42").build());
    /// assert_eq!(res.body, b"42");
    /// ```
    pub fn param(&self, name: &str) -> Result<&str, Error> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| Error::internal(format!("route has no parameter `{name}`")))
    }

    /// The first value of a query parameter.
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("GET", "/").query("limit", "10").build();
    /// assert_eq!(req.query("limit"), Some("10"));
    /// assert_eq!(req.query("cursor"), None);
    /// ```
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A query parameter parsed into `T`; `Ok(None)` when absent, 400 when unparsable.
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("GET", "/").query("limit", "x").build();
    /// assert!(req.query_parse::<u32>("limit").is_err());
    /// assert_eq!(req.query_parse::<u32>("depth").unwrap(), None);
    /// ```
    pub fn query_parse<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.query(name) {
            None => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|_| {
                Error::invalid(format!("query parameter `{name}` has an invalid value"))
                    .with_field(name, format!("cannot parse {raw:?}"))
            }),
        }
    }

    /// The first value of a header (name compared case-insensitively).
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("GET", "/").header("X-Trace", "abc").build();
    /// assert_eq!(req.header("x-trace"), Some("abc"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decode the body as JSON. Malformed JSON or a wrong shape is a 400 naming the
    /// line and column.
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("POST", "/").body(b"{oops".to_vec()).build();
    /// let err = req.json::<serde_json::Value>().unwrap_err();
    /// assert_eq!(err.kind().status(), 400);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::invalid(format!("the request body is not valid: {e}")))
    }
}

/// Builds a [`Request`] for tests.
///
/// ```
/// let req = plinth_sdk::Request::builder("GET", "/").role("admin").build();
/// assert!(req.caller.has_role("admin"));
/// ```
#[derive(Debug)]
pub struct RequestBuilder {
    request: Request,
}

impl RequestBuilder {
    /// Add a query parameter.
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("GET", "/").query("a", "1").build();
    /// assert_eq!(req.query("a"), Some("1"));
    /// ```
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.request.query.push((name.into(), value.into()));
        self
    }

    /// Add a header.
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("GET", "/").header("a", "1").build();
    /// assert_eq!(req.header("a"), Some("1"));
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Set the body.
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("POST", "/").body(b"hi".to_vec()).build();
    /// assert_eq!(req.body, b"hi");
    /// ```
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.request.body = body;
        self
    }

    /// Replace the caller's roles with this one role.
    ///
    /// ```
    /// let req = plinth_sdk::Request::builder("GET", "/").role("read-only").build();
    /// assert_eq!(req.caller.roles, vec!["read-only"]);
    /// ```
    pub fn role(mut self, role: &str) -> Self {
        self.request.caller.roles = vec![role.into()];
        self
    }

    /// Finish.
    ///
    /// ```
    /// let _ = plinth_sdk::Request::builder("GET", "/").build();
    /// ```
    pub fn build(self) -> Request {
        self.request
    }
}

/// What a handler returns: status, headers and body.
///
/// ```
/// use plinth_sdk::Response;
/// let res = Response::json(&serde_json::json!({"ok": true})).with_status(201).with_header("x-id", "7");
/// assert_eq!(res.status, 201);
/// assert_eq!(res.header("content-type"), Some("application/json"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A 200 response with a JSON body. If `value` cannot be serialised (a plugin bug,
    /// e.g. a map with non-string keys) the response is a 500 problem instead.
    ///
    /// ```
    /// let res = plinth_sdk::Response::json(&vec![1, 2, 3]);
    /// assert_eq!(res.body, b"[1,2,3]");
    /// ```
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            },
            Err(e) => Response::from_error(&Error::from(e)),
        }
    }

    /// A 201 response with a JSON body.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Response::created(&"x").status, 201);
    /// ```
    pub fn created<T: Serialize + ?Sized>(value: &T) -> Response {
        Response::json(value).with_status(201)
    }

    /// A 204 response with no body.
    ///
    /// ```
    /// assert!(plinth_sdk::Response::no_content().body.is_empty());
    /// ```
    pub fn no_content() -> Response {
        Response {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A 200 plain-text response.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Response::text("hi").body, b"hi");
    /// ```
    pub fn text(text: impl Into<String>) -> Response {
        Response {
            status: 200,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: text.into().into_bytes(),
        }
    }

    /// The problem+json response for an error.
    ///
    /// ```
    /// let res = plinth_sdk::Response::from_error(&plinth_sdk::Error::conflict("stale"));
    /// assert_eq!(res.status, 409);
    /// assert_eq!(res.header("content-type"), Some("application/problem+json"));
    /// ```
    pub fn from_error(error: &Error) -> Response {
        Response {
            status: error.kind().status(),
            headers: vec![("content-type".into(), "application/problem+json".into())],
            body: error.to_problem().to_string().into_bytes(),
        }
    }

    /// Change the status.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Response::text("").with_status(202).status, 202);
    /// ```
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Add a header (the name is lowercased).
    ///
    /// ```
    /// let res = plinth_sdk::Response::text("").with_header("ETag", "\"3\"");
    /// assert_eq!(res.header("etag"), Some("\"3\""));
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The first value of a header.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Response::text("").header("content-type"), Some("text/plain; charset=utf-8"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl From<Error> for Response {
    fn from(e: Error) -> Self {
        Response::from_error(&e)
    }
}
