//! The smallest complete Plinth plugin: one endpoint that greets, one that counts its
//! calls in storage. See `plugin.toml` for what it declares and the README's
//! plugin-author quickstart for how to build, sign and call it.

use plinth_sdk::storage::Collection;
use plinth_sdk::{Error, Plugin, Request, Response, Router, export_plugin, serde_json::json};

struct Hello;

impl Plugin for Hello {
    fn router() -> Router {
        Router::new().get("/greet/{name}", greet).post("/count", count)
    }
}

/// `GET /greet/{name}` → `{"greeting": "Hello, Ada!"}`.
fn greet(req: &Request) -> Result<Response, Error> {
    let name = req.param("name")?;
    if name.chars().count() > 100 {
        return Err(Error::invalid("name is longer than 100 characters").with_field("name", "too long"));
    }
    Ok(Response::json(&json!({ "greeting": format!("Hello, {name}!") })))
}

/// `POST /count` → `{"count": n}`, where n counts this tenant's calls.
fn count(_req: &Request) -> Result<Response, Error> {
    let counters: Collection<u64> = Collection::new("counters");
    let stored = counters.update("calls", |n| n.unwrap_or(0) + 1)?;
    Ok(Response::json(&json!({ "count": stored.value })))
}

export_plugin!(Hello);

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes above and `plugin.toml`'s `[[endpoints]]` name the same endpoints.
    #[test]
    fn every_declared_endpoint_has_a_route_and_every_route_is_declared() {
        Hello::router()
            .check_against_manifest(include_str!("../plugin.toml"))
            .unwrap_or_else(|problems| panic!("{problems:#?}"));
    }
}
