//! The lock probe: `POST /locks/{id}` locks an account (body `{"reason": …}`),
//! `DELETE /locks/{id}` unlocks it, `PATCH /accounts/{id}` renames it (body
//! `{"name": …}`) — the locking plugin's own write; `GET /visible-to/{user_id}` lists
//! the ids of the accounts that user may see (`records.read-as`).

use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::{Error, Plugin, Request, Response, Router, export_plugin, records};

struct Probe;

fn text(req: &Request, field: &str) -> Result<String, Error> {
    let body: Value = req.json()?;
    body[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("`{field}` is required")))
}

impl Plugin for Probe {
    fn router() -> Router {
        Router::new()
            .post("/locks/{id}", |req| {
                records::lock("account", req.param("id")?, &text(req, "reason")?)?;
                Ok(Response::no_content())
            })
            .delete("/locks/{id}", |req| {
                let released = records::unlock("account", req.param("id")?)?;
                Ok(Response::json(&json!({ "released": released })))
            })
            .get("/visible-to/{user_id}", |req| {
                records::read_as(Some(req.param("user_id")?))?;
                let page = records::find("account", &records::Find::new())?;
                records::read_as(None)?;
                let ids: Vec<String> = page.records.into_iter().map(|r| r.id).collect();
                Ok(Response::json(&ids))
            })
            .patch("/accounts/{id}", |req| {
                let name = text(req, "name")?;
                let r = records::update("account", req.param("id")?, &json!({ "name": name }), None)?;
                Ok(Response::json(&json!({ "id": r.id, "version": r.version })))
            })
    }
}

export_plugin!(Probe);
