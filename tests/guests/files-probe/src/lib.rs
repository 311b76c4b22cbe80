//! The files probe:
//! - `POST /copy/{id}`: read the file in 64 KiB pieces (`std::io::Read`) into a new
//!   file (`std::io::Write`), never holding it whole; answers the copy's metadata and
//!   the bytes copied;
//! - `POST /write` `{name, text, repeat?, owner_id?}`: a file of `text` × `repeat`;
//! - `POST /abandon` `{name}`: starts a file, writes 3 MiB and drops it unfinished;
//! - `GET /files`, `GET /files/{id}`, `DELETE /files/{id}`: list, read the metadata
//!   of, and delete files.

use std::io::{Read, Write};

use plinth_sdk::files::{self, FileInfo};
use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::{Error, Plugin, Response, Router, export_plugin};

struct Probe;

fn shown(f: &FileInfo) -> Value {
    json!({ "id": f.id, "name": f.name, "content_type": f.content_type, "size": f.size,
            "digest": f.digest, "owner_id": f.owner_id, "created_at": f.created_at })
}

impl Plugin for Probe {
    fn router() -> Router {
        Router::new()
            .post("/copy/{id}", |req| {
                let id = req.param("id")?;
                let source = files::info(id)?;
                let mut input = files::open(id)?;
                let mut output = files::create(&format!("copy of {}", source.name), &source.content_type, None)?;
                let mut piece = vec![0u8; 64 * 1024];
                let mut copied = 0u64;
                loop {
                    let n = input.read(&mut piece).map_err(Error::from_io)?;
                    if n == 0 {
                        break;
                    }
                    output.write_all(&piece[..n]).map_err(Error::from_io)?;
                    copied += n as u64;
                }
                let copy = output.finish()?;
                Ok(Response::json(&json!({ "copied": copied, "file": shown(&copy) })))
            })
            .post("/write", |req| {
                let body: Value = req.json()?;
                let name = body["name"].as_str().unwrap_or("note.txt");
                let text = body["text"].as_str().unwrap_or_default();
                let repeat = body["repeat"].as_u64().unwrap_or(1);
                let mut w = files::create(name, "text/plain", body["owner_id"].as_str())?;
                for _ in 0..repeat {
                    w.append(text.as_bytes())?;
                }
                Ok(Response::json(&shown(&w.finish()?)))
            })
            .post("/abandon", |req| {
                let body: Value = req.json()?;
                let mut w = files::create(
                    body["name"].as_str().unwrap_or("x.bin"),
                    "application/octet-stream",
                    None,
                )?;
                w.append(&vec![7u8; 3 << 20])?;
                drop(w);
                Ok(Response::json(&json!({ "abandoned": true })))
            })
            .get("/files", |_| {
                let page = files::list(None, 100)?;
                Ok(Response::json(&page.files.iter().map(shown).collect::<Vec<_>>()))
            })
            .get("/files/{id}", |req| {
                Ok(Response::json(&shown(&files::info(req.param("id")?)?)))
            })
            .delete("/files/{id}", |req| {
                Ok(Response::json(&json!({ "deleted": files::delete(req.param("id")?)? })))
            })
    }
}

export_plugin!(Probe);
