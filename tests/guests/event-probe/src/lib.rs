//! Records every `on-event` attempt in its storage (exposed at `GET /received`), fails
//! the first `fail_times` attempts at each event (setting `fail_times`; negative:
//! always), and reacts to its own events:
//!
//! - `<id>.loop`: emits `loop` again (a self-triggering chain the host must stop);
//! - `<id>.touch` `{id, stage}`: updates that opportunity's stage (a record write
//!   made while handling an event);
//! - `<id>.notify` `{user_id, title}`: notifies that user, keyed by the event id —
//!   *before* deciding whether to fail, so a retried delivery notifies again and the
//!   host must keep it to one.
//!
//! `POST /emit/{name}` emits an event with the request body as payload; `POST
//! /touch/{id}` updates an opportunity with the body's fields; `POST /notify` sends the
//! body as a notification (`{user_id, key, category, title, body?, link?}`).

use plinth_sdk::notify::Notification;
use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::storage::Collection;
use plinth_sdk::{Caller, Error, Event, Plugin, Response, Router, config, events, export_plugin, records};

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str, Error> {
    v[name]
        .as_str()
        .ok_or_else(|| Error::invalid(format!("`{name}` is required")))
}

struct Probe;

fn log() -> Collection<Vec<Value>> {
    Collection::new("log")
}

impl Plugin for Probe {
    fn router() -> Router {
        Router::new()
            .get("/received", |_| {
                let entries = log().get("all")?.map(|v| v.value).unwrap_or_default();
                Ok(Response::json(&entries))
            })
            .post("/emit/{name}", |req| {
                let payload: Value = req.json()?;
                events::emit(req.param("name")?, &payload)?;
                Ok(Response::json(&json!({ "emitted": true })))
            })
            .post("/notify", |req| {
                let b: Value = req.json()?;
                let mut n = Notification::new(
                    field(&b, "user_id")?,
                    field(&b, "key")?,
                    field(&b, "category")?,
                    field(&b, "title")?,
                )
                .body(b["body"].as_str().unwrap_or_default());
                if let Some(link) = b["link"].as_str() {
                    n = n.link(link);
                }
                Ok(Response::json(&json!({ "sent": n.send()? })))
            })
            .post("/touch/{id}", |req| {
                let fields: Value = req.json()?;
                let r = records::update("opportunity", req.param("id")?, &fields, None)?;
                Ok(Response::json(&json!({ "version": r.version })))
            })
    }

    fn on_event(caller: &Caller, event: Event) -> Result<(), Error> {
        let attempt = Collection::<u32>::new("attempts")
            .update(&event.id, |n| n.unwrap_or(0) + 1)?
            .value;
        let fail_times: i64 = config::get("fail_times")?.unwrap_or(0);
        let fail = fail_times < 0 || i64::from(attempt) <= fail_times;
        let payload: Value = event.payload_json()?;
        let entry = json!({
            "id": event.id,
            "name": event.name,
            "depth": event.depth,
            "cause": event.cause,
            "attempt": attempt,
            "failed": fail,
            "user_id": caller.user_id,
            "roles": caller.roles,
            "request_id": caller.request_id,
            "payload": payload,
        });
        log().update("all", |entries| {
            let mut entries = entries.unwrap_or_default();
            entries.push(entry.clone());
            entries
        })?;
        if event.name.ends_with(".notify") {
            Notification::new(
                field(&payload, "user_id")?,
                &event.id,
                "probe.events",
                field(&payload, "title")?,
            )
            .send()?;
        }
        if fail {
            return Err(Error::internal(format!("told to fail attempt {attempt}")));
        }
        if event.name.ends_with(".loop") {
            events::emit("loop", &json!({ "after": event.id }))?;
        } else if event.name.ends_with(".touch") {
            let id = payload["id"].as_str().unwrap_or_default();
            records::update("opportunity", id, &json!({ "stage": payload["stage"] }), None)?;
        }
        Ok(())
    }
}

export_plugin!(Probe);
