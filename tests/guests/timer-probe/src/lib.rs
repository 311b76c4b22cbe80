//! The timer probe: endpoints that call each `schedule` function, and an `on_timer`
//! that records every firing (per key: how many, with which payloads and caller) in
//! storage, readable at `GET /fires`. A payload of `fail` makes `on_timer` return an
//! error; `again:<millis>` makes it schedule the same key again from inside the fire.

use std::time::Duration;

use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::storage::{Collection, Query};
use plinth_sdk::{Caller, Error, Plugin, Request, Response, Router, export_plugin, schedule};

struct Probe;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Fires {
    count: u64,
    payloads: Vec<String>,
    user: Option<String>,
    roles: Vec<String>,
}

fn text(body: &Value, field: &str) -> Result<String, Error> {
    body[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("`{field}` is required")))
}

fn listed(_req: &Request) -> Result<Response, Error> {
    let timers: Vec<Value> = schedule::list()?
        .into_iter()
        .map(|t| json!({ "key": t.key, "next_fire": t.next_fire, "cron": t.cron, "time_zone": t.time_zone, "payload": t.payload }))
        .collect();
    Ok(Response::json(&timers))
}

fn fires(_req: &Request) -> Result<Response, Error> {
    let log: Collection<Fires> = Collection::new("fires");
    let mut all = plinth_sdk::serde_json::Map::new();
    let mut cursor = None;
    loop {
        let page = log.list(Query::new().limit(1000).cursor(cursor))?;
        for f in page.items {
            all.insert(
                f.key,
                json!({ "count": f.value.count, "payloads": f.value.payloads, "user": f.value.user, "roles": f.value.roles }),
            );
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(Response::json(&Value::Object(all)))
}

impl Plugin for Probe {
    fn router() -> Router {
        Router::new()
            .post("/at", |req| {
                let b: Value = req.json()?;
                schedule::at(&text(&b, "time")?, &text(&b, "key")?, &text(&b, "payload")?)?;
                Ok(Response::json(&json!({ "ok": true })))
            })
            .post("/after", |req| {
                let b: Value = req.json()?;
                let millis = b["millis"]
                    .as_u64()
                    .ok_or_else(|| Error::invalid("`millis` is required"))?;
                schedule::after(Duration::from_millis(millis), &text(&b, "key")?, &text(&b, "payload")?)?;
                Ok(Response::json(&json!({ "ok": true })))
            })
            .post("/cron", |req| {
                let b: Value = req.json()?;
                let next = schedule::cron(
                    &text(&b, "key")?,
                    &text(&b, "expression")?,
                    &text(&b, "time_zone")?,
                    &text(&b, "payload")?,
                )?;
                Ok(Response::json(&json!({ "next_fire": next })))
            })
            .get("/timers", listed)
            .delete("/timers/{key}", |req| {
                let cancelled = schedule::cancel(req.param("key")?)?;
                Ok(Response::json(&json!({ "cancelled": cancelled })))
            })
            .get("/fires", fires)
    }

    fn on_timer(caller: &Caller, key: &str, payload: &str) -> Result<(), Error> {
        let log: Collection<Fires> = Collection::new("fires");
        log.update(key, |f| {
            let mut f = f.unwrap_or_default();
            f.count += 1;
            f.payloads.push(payload.to_string());
            f.user = caller.user_id.clone();
            f.roles = caller.roles.clone();
            f
        })?;
        if payload == "fail" {
            return Err(Error::invalid("the payload asked this timer to fail"));
        }
        if let Some(millis) = payload.strip_prefix("again:") {
            let millis: u64 = millis.parse().map_err(|_| Error::invalid("bad again: payload"))?;
            schedule::after(Duration::from_millis(millis), key, "again-done")?;
        }
        Ok(())
    }
}

export_plugin!(Probe);
