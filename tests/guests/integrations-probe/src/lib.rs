//! Uses `email`, `http` (through `plinth_sdk::outbound`) and `secrets` from inside a
//! component. Capability errors come back as `200 {"ok": false, "kind", "message"}`
//! so tests can tell a denial from a failed call.

use plinth_sdk::email::{self, Message};
use plinth_sdk::outbound::Fetch;
use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::{Error, Plugin, Request, Response, Router, export_plugin, secrets};
use serde::Deserialize;

struct Probe;

/// An attachment: `text` as given, or else `size` bytes generated from `seed` (so
/// large files need not travel through the endpoint's body): byte `i` is
/// `(i * 31 + seed) % 256`.
#[derive(Deserialize)]
struct FileSpec {
    filename: String,
    content_type: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    size: usize,
    #[serde(default)]
    seed: u8,
}

#[derive(Deserialize)]
struct EmailSpec {
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    #[serde(default)]
    attachments: Vec<FileSpec>,
}

#[derive(Deserialize)]
struct FetchSpec {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
    timeout_ms: Option<u32>,
}

fn get() -> String {
    "GET".into()
}

fn outcome(result: Result<Value, Error>) -> Result<Response, Error> {
    Ok(Response::json(&match result {
        Ok(v) => json!({ "ok": true, "result": v }),
        Err(e) => json!({ "ok": false, "kind": e.kind().slug(), "message": e.message() }),
    }))
}

fn send_email(req: &Request) -> Result<Response, Error> {
    let spec: EmailSpec = req.json()?;
    let mut m = Message {
        to: spec.to,
        cc: spec.cc,
        subject: spec.subject,
        text: spec.text,
        html: spec.html,
        ..Message::default()
    };
    for f in spec.attachments {
        let content = match f.text {
            Some(t) => t.into_bytes(),
            None => (0..f.size)
                .map(|i| (i.wrapping_mul(31) as u8).wrapping_add(f.seed))
                .collect(),
        };
        m = m.attach(f.filename, f.content_type, content);
    }
    outcome(email::send(&m).map(|id| json!({ "id": id })))
}

fn fetch(req: &Request) -> Result<Response, Error> {
    let spec: FetchSpec = req.json()?;
    let mut f = Fetch::new(&spec.method, &spec.url).body(spec.body.into_bytes());
    for (n, v) in &spec.headers {
        f = f.header(n, v);
    }
    if let Some(ms) = spec.timeout_ms {
        f = f.timeout_ms(ms);
    }
    outcome(f.send().map(|r| {
        json!({
            "status": r.status,
            "headers": r.headers,
            "body": String::from_utf8_lossy(&r.body),
            "size": r.body.len(),
        })
    }))
}

impl Plugin for Probe {
    fn router() -> Router {
        Router::new()
            .post("/email", send_email)
            .post("/fetch", fetch)
            .get("/secrets/{name}", |req| {
                outcome(secrets::get(req.param("name")?).map(|v| json!({ "value": v })))
            })
            .put("/secrets/{name}", |req| {
                let body: Value = req.json()?;
                let value = body["value"].as_str().unwrap_or_default();
                outcome(secrets::set(req.param("name")?, value).map(|()| Value::Null))
            })
            .delete("/secrets/{name}", |req| {
                outcome(secrets::delete(req.param("name")?).map(|()| Value::Null))
            })
    }
}

export_plugin!(Probe);
