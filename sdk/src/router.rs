//! Dispatch of endpoint requests to handlers by method and path template.

use crate::{Error, Request, Response};

/// A handler: takes the request (with its path parameters), returns a response or an
/// error that becomes a problem+json response.
pub type Handler = Box<dyn Fn(&Request) -> Result<Response, Error>>;

struct Route {
    method: &'static str,
    segments: Vec<Segment>,
    handler: Handler,
}

enum Segment {
    Literal(String),
    Param(String),
}

/// Routes requests to handlers by method and path template. Templates are the ones the
/// manifest's `[[endpoints]]` declare: literal segments and `{name}` parameters, each
/// parameter matching one non-empty segment. Unknown paths answer 404, a known path
/// with another method 405 with an `allow` header.
///
/// ```
/// use plinth_sdk::{Router, Request, Response};
/// let router = Router::new()
///     .get("/territories/{id}/children", |req| {
///         Ok(Response::json(&serde_json::json!({ "parent": req.param("id")? })))
///     })
///     .post("/territories", |_req| Ok(Response::created(&"made")));
/// let res = router.handle(Request::builder("GET", "/territories/t-7/children").build());
/// assert_eq!(res.status, 200);
/// assert_eq!(router.handle(Request::builder("DELETE", "/territories").build()).status, 405);
/// assert_eq!(router.handle(Request::builder("GET", "/nope").build()).status, 404);
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for r in &self.routes {
            list.entry(&format_args!("{} {}", r.method, template_string(&r.segments)));
        }
        list.finish()
    }
}

fn template_string(segments: &[Segment]) -> String {
    if segments.is_empty() {
        return "/".into();
    }
    segments
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => format!("/{l}"),
            Segment::Param(p) => format!("/{{{p}}}"),
        })
        .collect()
}

fn parse_template(template: &str) -> Vec<Segment> {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => Segment::Param(name.to_string()),
            None => Segment::Literal(s.to_string()),
        })
        .collect()
}

impl Router {
    /// An empty router (every request answers 404).
    ///
    /// ```
    /// let r = plinth_sdk::Router::new();
    /// assert_eq!(r.handle(plinth_sdk::Request::builder("GET", "/").build()).status, 404);
    /// ```
    pub fn new() -> Self {
        Router::default()
    }

    /// Add a route for any method.
    ///
    /// ```
    /// use plinth_sdk::{Router, Response};
    /// let r = Router::new().route("PATCH", "/x", |_| Ok(Response::no_content()));
    /// assert_eq!(r.handle(plinth_sdk::Request::builder("PATCH", "/x").build()).status, 204);
    /// ```
    pub fn route(
        mut self,
        method: &'static str,
        template: &str,
        handler: impl Fn(&Request) -> Result<Response, Error> + 'static,
    ) -> Self {
        self.routes.push(Route {
            method,
            segments: parse_template(template),
            handler: Box::new(handler),
        });
        self
    }

    /// Add a `GET` route.
    ///
    /// ```
    /// let r = plinth_sdk::Router::new().get("/a", |_| Ok(plinth_sdk::Response::text("a")));
    /// # let _ = r;
    /// ```
    pub fn get(self, template: &str, handler: impl Fn(&Request) -> Result<Response, Error> + 'static) -> Self {
        self.route("GET", template, handler)
    }

    /// Add a `POST` route.
    ///
    /// ```
    /// let r = plinth_sdk::Router::new().post("/a", |_| Ok(plinth_sdk::Response::no_content()));
    /// # let _ = r;
    /// ```
    pub fn post(self, template: &str, handler: impl Fn(&Request) -> Result<Response, Error> + 'static) -> Self {
        self.route("POST", template, handler)
    }

    /// Add a `PUT` route.
    ///
    /// ```
    /// let r = plinth_sdk::Router::new().put("/a/{id}", |_| Ok(plinth_sdk::Response::no_content()));
    /// # let _ = r;
    /// ```
    pub fn put(self, template: &str, handler: impl Fn(&Request) -> Result<Response, Error> + 'static) -> Self {
        self.route("PUT", template, handler)
    }

    /// Add a `PATCH` route.
    ///
    /// ```
    /// let r = plinth_sdk::Router::new().patch("/a/{id}", |_| Ok(plinth_sdk::Response::no_content()));
    /// # let _ = r;
    /// ```
    pub fn patch(self, template: &str, handler: impl Fn(&Request) -> Result<Response, Error> + 'static) -> Self {
        self.route("PATCH", template, handler)
    }

    /// Add a `DELETE` route.
    ///
    /// ```
    /// let r = plinth_sdk::Router::new().delete("/a/{id}", |_| Ok(plinth_sdk::Response::no_content()));
    /// # let _ = r;
    /// ```
    pub fn delete(self, template: &str, handler: impl Fn(&Request) -> Result<Response, Error> + 'static) -> Self {
        self.route("DELETE", template, handler)
    }

    /// The routes as `(method, template)`, in the order they were added.
    ///
    /// ```
    /// let r = plinth_sdk::Router::new()
    ///     .get("/notes/{id}", |_| Ok(plinth_sdk::Response::no_content()))
    ///     .post("/notes", |_| Ok(plinth_sdk::Response::no_content()));
    /// assert_eq!(r.routes(), [("GET", "/notes/{id}".to_string()), ("POST", "/notes".to_string())]);
    /// ```
    pub fn routes(&self) -> Vec<(&'static str, String)> {
        self.routes
            .iter()
            .map(|r| (r.method, template_string(&r.segments)))
            .collect()
    }

    /// Check the routes against a manifest's `[[endpoints]]`: every declared endpoint
    /// must have a route and every route must be declared (the host only lets
    /// declared endpoints through, so an undeclared route is dead code and a declared
    /// endpoint without a route answers 404). Parameter names may differ; their
    /// positions may not. Returns every mismatch. Meant for a plugin's own tests,
    /// so a plugin's routes are, in effect, written once:
    ///
    /// ```
    /// let manifest = r#"
    /// [[endpoints]]
    /// method = "GET"
    /// path = "/notes/{id}"
    ///
    /// [[endpoints]]
    /// method = "DELETE"
    /// path = "/notes/{id}"
    /// "#;
    /// let r = plinth_sdk::Router::new()
    ///     .get("/notes/{note}", |_| Ok(plinth_sdk::Response::no_content()))
    ///     .post("/notes", |_| Ok(plinth_sdk::Response::no_content()));
    /// assert_eq!(
    ///     r.check_against_manifest(manifest).unwrap_err(),
    ///     [
    ///         "DELETE /notes/{id} is declared in [[endpoints]] but has no route",
    ///         "POST /notes has a route but no [[endpoints]] entry",
    ///     ]
    /// );
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn check_against_manifest(&self, manifest: &str) -> Result<(), Vec<String>> {
        let doc: toml::Table = manifest
            .parse()
            .map_err(|e| vec![format!("the manifest is not TOML: {e}")])?;
        let mut problems = Vec::new();
        let mut declared = Vec::new();
        for (i, endpoint) in doc
            .get("endpoints")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let method = endpoint.get("method").and_then(toml::Value::as_str);
            let path = endpoint.get("path").and_then(toml::Value::as_str);
            match (method, path) {
                (Some(m), Some(p)) => declared.push((m.to_ascii_uppercase(), p.to_string())),
                _ => problems.push(format!("endpoints[{i}] has no method or path")),
            }
        }
        let shape = |template: &str| -> Vec<Option<String>> {
            parse_template(template)
                .into_iter()
                .map(|s| match s {
                    Segment::Literal(l) => Some(l),
                    Segment::Param(_) => None,
                })
                .collect()
        };
        let routes = self.routes();
        for (method, path) in &declared {
            if !routes.iter().any(|(m, t)| m == method && shape(t) == shape(path)) {
                problems.push(format!("{method} {path} is declared in [[endpoints]] but has no route"));
            }
        }
        for (method, template) in &routes {
            if !declared.iter().any(|(m, p)| m == method && shape(p) == shape(template)) {
                problems.push(format!("{method} {template} has a route but no [[endpoints]] entry"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Dispatch a request: the first route whose template and method match wins.
    ///
    /// ```
    /// use plinth_sdk::{Router, Request, Response, Error};
    /// let r = Router::new().get("/fail", |_| Err(Error::conflict("busy")));
    /// assert_eq!(r.handle(Request::builder("GET", "/fail").build()).status, 409);
    /// ```
    pub fn handle(&self, mut request: Request) -> Response {
        let path: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
        let mut allowed: Vec<&'static str> = Vec::new();
        for route in &self.routes {
            let Some(params) = match_segments(&route.segments, &path) else {
                continue;
            };
            if route.method != request.method {
                if !allowed.contains(&route.method) {
                    allowed.push(route.method);
                }
                continue;
            }
            request.params = params;
            return (route.handler)(&request).unwrap_or_else(Response::from);
        }
        if allowed.is_empty() {
            Response::from_error(&Error::not_found(format!("no endpoint at {}", request.path)))
        } else {
            let error = Error::new(
                crate::ErrorKind::Invalid,
                format!("{} is not allowed here", request.method),
            );
            Response::from_error(&error)
                .with_status(405)
                .with_header("allow", &allowed.join(", "))
        }
    }
}

fn match_segments(template: &[Segment], path: &[&str]) -> Option<Vec<(String, String)>> {
    if template.len() != path.len() {
        return None;
    }
    let mut params = Vec::new();
    for (segment, actual) in template.iter().zip(path) {
        match segment {
            Segment::Literal(l) if l == actual => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) => params.push((name.clone(), (*actual).to_string())),
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_params(req: &Request) -> Result<Response, Error> {
        Ok(Response::json(&req.params))
    }

    #[test]
    fn literal_routes_win_in_declaration_order() {
        let r = Router::new()
            .get("/t/new", |_| Ok(Response::text("literal")))
            .get("/t/{id}", echo_params);
        assert_eq!(r.handle(Request::builder("GET", "/t/new").build()).body, b"literal");
        assert_eq!(
            r.handle(Request::builder("GET", "/t/9").build()).body,
            br#"[["id","9"]]"#
        );
    }

    #[test]
    fn several_params_and_trailing_slash() {
        let r = Router::new().get("/a/{x}/b/{y}", echo_params);
        let res = r.handle(Request::builder("GET", "/a/1/b/2/").build());
        assert_eq!(res.body, br#"[["x","1"],["y","2"]]"#);
        assert_eq!(r.handle(Request::builder("GET", "/a/1/b").build()).status, 404);
    }

    #[test]
    fn root_route_and_method_not_allowed_lists_methods() {
        let r = Router::new()
            .get("/", |_| Ok(Response::text("root")))
            .post("/", |_| Ok(Response::text("made")));
        assert_eq!(r.handle(Request::builder("GET", "/").build()).body, b"root");
        let res = r.handle(Request::builder("DELETE", "/").build());
        assert_eq!(res.status, 405);
        assert_eq!(res.header("allow"), Some("GET, POST"));
    }

    #[test]
    fn handler_errors_become_problems_with_fields() {
        let r = Router::new().post("/x", |_| Err(Error::invalid("bad").with_field("name", "empty")));
        let res = r.handle(Request::builder("POST", "/x").build());
        assert_eq!(res.status, 400);
        let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
        assert_eq!(body["errors"][0]["field"], "name");
        assert_eq!(body["type"], "https://plinth.dev/problems/invalid");
    }
}
