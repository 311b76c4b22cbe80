//! Uses `records` and `audit` from inside a component: the happy paths, and each way
//! a call can exceed its grants (every one must come back `denied`).

use plinth_sdk::records::{self, Aggregate, Find, Op};
use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::{Error, Plugin, Request, Response, Router, export_plugin};

struct Probe;

impl Plugin for Probe {
    fn router() -> Router {
        Router::new()
            .post("/accounts", |req| {
                let body: Value = req.json()?;
                let r = records::create("account", &body, None)?;
                plinth_sdk::audit::append("account.created", "account", Some(&r.id), None::<&Value>, Some(&body))?;
                Ok(Response::created(
                    &json!({ "id": r.id, "fields": r.fields, "version": r.version }),
                ))
            })
            .get("/accounts", |req| {
                let mut q = Find::new().sort_asc("name").limit(500);
                if let Some(c) = req.query("country") {
                    q = q.filter("country", Op::Eq, c);
                }
                let page = records::find("account", &q)?;
                Ok(Response::json(
                    &page
                        .records
                        .iter()
                        .map(|r| json!({ "id": r.id, "fields": r.fields }))
                        .collect::<Vec<_>>(),
                ))
            })
            .get("/accounts/{id}", |req| {
                let r = records::get("account", req.param("id")?)?;
                Ok(Response::json(
                    &json!({ "id": r.id, "fields": r.fields, "version": r.version }),
                ))
            })
            .patch("/accounts/{id}", |req| {
                let body: Value = req.json()?;
                let expected = req.query_parse::<u64>("version")?;
                let r = records::update("account", req.param("id")?, &body, expected)?;
                Ok(Response::json(&json!({ "version": r.version, "fields": r.fields })))
            })
            .get("/pipeline", |_| {
                let rows =
                    records::aggregate("opportunity", &Aggregate::new().group_by("stage").count().sum("amount"))?;
                Ok(Response::json(&rows))
            })
            .post("/try/{what}", attempt)
    }
}

/// Each attempt goes beyond the manifest; the error kind comes back as the status.
fn attempt(req: &Request) -> Result<Response, Error> {
    let result = match req.param("what")? {
        "undeclared-field" => {
            records::create("account", &json!({ "name": "X", "website": "https://x.test" }), None).map(|_| ())
        }
        "write-read-only-object" => records::create(
            "opportunity",
            &json!({ "name": "X", "stage": "proposal", "close_date": "2027-01-01" }),
            None,
        )
        .map(|_| ()),
        "undeclared-object" => records::find("contact", &Find::new()).map(|_| ()),
        "filter-undeclared-field" => {
            records::find("account", &Find::new().filter("website", Op::IsNull, true)).map(|_| ())
        }
        "aggregate-undeclared-field" => {
            records::aggregate("opportunity", &Aggregate::new().group_by("close_date:month")).map(|_| ())
        }
        other => return Err(Error::invalid(format!("unknown attempt {other}"))),
    };
    match result {
        Ok(()) => Ok(Response::json(&json!({ "allowed": true }))),
        Err(e) => Ok(Response::json(
            &json!({ "allowed": false, "kind": e.kind().slug(), "message": e.message() }),
        )),
    }
}

export_plugin!(Probe);
