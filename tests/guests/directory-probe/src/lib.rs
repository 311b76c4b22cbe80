//! The directory probe: one endpoint per `directory` function, answering with the
//! people the host returned (or the host's error as a problem). Query parameters:
//! `levels` for the manager chain, `cursor` and `limit` for pages.

use plinth_sdk::directory::{self, Page, Person};
use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::{Error, Plugin, Request, Response, Router, export_plugin};

struct Probe;

fn person(p: &Person) -> Value {
    json!({
        "id": p.id, "name": p.name, "email": p.email, "roles": p.roles, "active": p.active,
        "locale": p.locale, "time_zone": p.time_zone, "manager_id": p.manager_id,
    })
}

fn page(p: Page) -> Response {
    let people: Vec<Value> = p.people.iter().map(person).collect();
    Response::json(&json!({ "people": people, "next_cursor": p.next_cursor }))
}

fn number(req: &Request, name: &str, default: u32) -> Result<u32, Error> {
    Ok(req.query_parse(name)?.unwrap_or(default))
}

impl Plugin for Probe {
    fn router() -> Router {
        Router::new()
            .get("/people", |req| {
                Ok(page(directory::list(req.query("cursor"), number(req, "limit", 100)?)?))
            })
            .get("/people/{id}", |req| {
                Ok(Response::json(&person(&directory::get(req.param("id")?)?)))
            })
            .get("/people/{id}/managers", |req| {
                let chain = directory::manager_chain(req.param("id")?, number(req, "levels", 10)?)?;
                Ok(Response::json(&chain.iter().map(person).collect::<Vec<_>>()))
            })
            .get("/people/{id}/reports", |req| {
                let limit = number(req, "limit", 100)?;
                Ok(page(directory::direct_reports(
                    req.param("id")?,
                    req.query("cursor"),
                    limit,
                )?))
            })
            .get("/people/{id}/organisation", |req| {
                let limit = number(req, "limit", 100)?;
                Ok(page(directory::all_reports(
                    req.param("id")?,
                    req.query("cursor"),
                    limit,
                )?))
            })
            .get("/groups/{id}/members", |req| {
                let limit = number(req, "limit", 100)?;
                Ok(page(directory::group_members(
                    req.param("id")?,
                    req.query("cursor"),
                    limit,
                )?))
            })
    }
}

export_plugin!(Probe);
