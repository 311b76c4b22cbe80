//! The one admission check for plugin endpoints, shared by the REST dispatch
//! (`/api/v1/plugins/{plugin}/…`) and the sandbox behind `plinth plugin call`, so a
//! request one accepts is a request the other accepts:
//!
//! 1. [`endpoint`]: the manifest declares the route for this method, and the caller's
//!    role meets the endpoint's minimum (checked before the body is read);
//! 2. [`SchemaCache::check_body`]: the body is JSON matching the endpoint's
//!    `body_schema`, when it declares one (every problem reported, capped).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use plinth_core::manifest::{Endpoint, EndpointMatch, Manifest, Method, Role};
use plinth_core::problem::FieldProblem;

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No declared endpoint has this path.
    #[error("the manifest declares no endpoint at {path}")]
    NoEndpoint {
        /// The method asked for.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The path is declared for other methods.
    #[error("{method} is not declared for this path (declared: {})", allowed_list(.allowed))]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// Methods the manifest declares for the path.
        allowed: Vec<Method>,
    },
    /// The caller's role is below the endpoint's minimum.
    #[error("the endpoint requires role {required} or higher")]
    Forbidden {
        /// The minimum role.
        required: Role,
    },
    /// The body is not JSON, or does not match the endpoint's `body_schema`.
    #[error("the body does not match the endpoint's schema: {}", problem_list(.0))]
    InvalidBody(Vec<FieldProblem>),
}

fn allowed_list(allowed: &[Method]) -> String {
    allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

fn problem_list(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(|p| {
            if p.field.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.field, p.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Refusal {
    /// The methods declared for the path, as an `Allow` header value.
    pub fn allow_header(allowed: &[Method]) -> String {
        allowed_list(allowed)
    }
}

/// Find the endpoint `method path` in `manifest` and check that `role` may call it.
pub fn endpoint<'m>(manifest: &'m Manifest, method: &str, path: &str, role: Role) -> Result<&'m Endpoint, Refusal> {
    match manifest.find_endpoint(method, path) {
        EndpointMatch::NotFound => Err(Refusal::NoEndpoint {
            method: method.to_string(),
            path: path.to_string(),
        }),
        EndpointMatch::MethodNotAllowed(allowed) => Err(Refusal::MethodNotAllowed {
            method: method.to_string(),
            allowed,
        }),
        EndpointMatch::Found(endpoint, _) if !role.at_least(endpoint.role) => Err(Refusal::Forbidden {
            required: endpoint.role,
        }),
        EndpointMatch::Found(endpoint, _) => Ok(endpoint),
    }
}

/// Compiled JSON Schemas of endpoint bodies, per package digest and route, so each
/// schema is compiled once per process.
#[derive(Debug, Default)]
pub struct SchemaCache {
    compiled: RwLock<HashMap<(String, String, String), Arc<jsonschema::Validator>>>,
}

impl SchemaCache {
    /// Check `body` against `endpoint`'s schema (none declared: anything passes).
    /// `digest` identifies the package the endpoint belongs to.
    pub fn check_body(&self, digest: &str, endpoint: &Endpoint, body: &[u8]) -> Result<(), Refusal> {
        let Some(validator) = self.validator(digest, endpoint)? else {
            return Ok(());
        };
        let instance: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Refusal::InvalidBody(vec![FieldProblem::new("", format!("the body is not JSON: {e}"))]))?;
        let problems: Vec<FieldProblem> = plinth_core::manifest::body_problems(&validator, &instance)
            .into_iter()
            .map(|(field, message)| FieldProblem { field, message })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Refusal::InvalidBody(problems))
        }
    }

    fn validator(&self, digest: &str, endpoint: &Endpoint) -> Result<Option<Arc<jsonschema::Validator>>, Refusal> {
        let Some(schema) = &endpoint.body_schema else {
            return Ok(None);
        };
        let key = (
            digest.to_string(),
            endpoint.method.as_str().to_string(),
            endpoint.path.as_str().to_string(),
        );
        if let Some(v) = self.compiled.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(v.clone()));
        }
        // Manifests are validated before they are stored, so the schema compiles;
        // say so if it does not rather than fail the call obscurely.
        let validator = Arc::new(jsonschema::validator_for(schema).map_err(|e| {
            Refusal::InvalidBody(vec![FieldProblem::new(
                "",
                format!("the endpoint's schema is invalid: {e}"),
            )])
        })?);
        self.compiled
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, validator.clone());
        Ok(Some(validator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let text = r#"
[plugin]
id = "notes"
name = "Notes"
version = "1.0.0"
publisher = "acme"
api = "^1.0"

[[endpoints]]
method = "POST"
path = "/notes"
role = "member"
body_schema = '''{"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}'''

[[endpoints]]
method = "DELETE"
path = "/notes/{id}"
role = "admin"
"#;
        Manifest::parse(text).expect("the test manifest is valid")
    }

    #[test]
    fn routes_methods_and_roles_are_checked_in_that_order() {
        let m = manifest();
        assert!(matches!(
            endpoint(&m, "GET", "/other", Role::Owner),
            Err(Refusal::NoEndpoint { .. })
        ));
        let Err(Refusal::MethodNotAllowed { allowed, .. }) = endpoint(&m, "GET", "/notes", Role::Owner) else {
            panic!("GET /notes is declared for POST only");
        };
        assert_eq!(Refusal::allow_header(&allowed), "POST");
        assert_eq!(
            endpoint(&m, "DELETE", "/notes/7", Role::Member).unwrap_err(),
            Refusal::Forbidden { required: Role::Admin }
        );
        assert_eq!(
            endpoint(&m, "DELETE", "/notes/7", Role::Admin).unwrap().path.as_str(),
            "/notes/{id}"
        );
    }

    #[test]
    fn bodies_are_checked_against_the_schema_with_every_problem() {
        let m = manifest();
        let cache = SchemaCache::default();
        let post = endpoint(&m, "POST", "/notes", Role::Member).unwrap();
        assert_eq!(cache.check_body("d1", post, br#"{"text":"hi"}"#), Ok(()));
        let Err(Refusal::InvalidBody(problems)) = cache.check_body("d1", post, br#"{"text":7}"#) else {
            panic!("a number is not a string");
        };
        assert_eq!(problems[0].field, "/text");
        let Err(Refusal::InvalidBody(problems)) = cache.check_body("d1", post, b"{not json") else {
            panic!("not JSON");
        };
        assert!(problems[0].message.starts_with("the body is not JSON"), "{problems:?}");
        let delete = endpoint(&m, "DELETE", "/notes/7", Role::Admin).unwrap();
        assert_eq!(
            cache.check_body("d1", delete, b"anything"),
            Ok(()),
            "no schema: no check"
        );
    }
}
