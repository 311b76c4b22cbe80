//! `plinth plugin new`: a plugin crate that builds as is — one endpoint, a manifest
//! declaring it, and the toolchain pin the SDK needs.

use std::path::Path;

use anyhow::{Context, bail};

use plinth_core::manifest::Manifest;

pub(crate) fn create(dir: &Path, id: &str, publisher: &str, sdk: &Path) -> anyhow::Result<()> {
    let manifest = plugin_toml(id, publisher);
    // Validate with the real parser, so a bad NAME or publisher fails before any file is written.
    if let Err(e) = Manifest::parse(&manifest) {
        bail!("cannot scaffold `{id}` (publisher `{publisher}`):\n{e}");
    }
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the SDK path {} does not exist", sdk.display()))?;
    let sdk = sdk.to_str().context("the SDK path is not UTF-8")?;
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("could not create {}", dir.display()))?;
    let files = [
        ("Cargo.toml", cargo_toml(id, sdk)),
        ("plugin.toml", manifest),
        ("src/lib.rs", LIB_RS.to_string()),
        ("rust-toolchain.toml", TOOLCHAIN.to_string()),
        (".gitignore", "/target\n*.plpkg\n".to_string()),
    ];
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("could not write {}", path.display()))?;
    }
    Ok(())
}

fn cargo_toml(id: &str, sdk: &str) -> String {
    let crate_name = id.replace('-', "_");
    format!(
        r#"[package]
name = "{crate_name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
plinth-sdk = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}

# A standalone crate, not part of any surrounding workspace.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
"#
    )
}

fn plugin_toml(id: &str, publisher: &str) -> String {
    format!(
        r#"[plugin]
id = "{id}"
name = "{id}"
version = "0.1.0"
publisher = "{publisher}"
description = "Describe what {id} does."
api = "^1.0"

[capabilities]
storage = true

[[endpoints]]
method = "GET"
path = "/hello/{{name}}"
role = "member"
summary = "Say hello"

[[endpoints]]
method = "POST"
path = "/notes"
role = "member"
summary = "Store a note"
body_schema = '''{{"type": "object", "required": ["text"], "properties": {{"text": {{"type": "string", "maxLength": 1000}}}}}}'''
"#
    )
}

const LIB_RS: &str = r#"//! A Plinth plugin. Declare every endpoint and capability in plugin.toml.

use plinth_sdk::serde_json::json;
use plinth_sdk::storage::Collection;
use plinth_sdk::{Error, Plugin, Request, Response, Router, export_plugin};

struct MyPlugin;

impl Plugin for MyPlugin {
    fn router() -> Router {
        Router::new().get("/hello/{name}", hello).post("/notes", add_note)
    }
}

fn hello(req: &Request) -> Result<Response, Error> {
    Ok(Response::json(&json!({ "message": format!("Hello, {}!", req.param("name")?) })))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Note {
    text: String,
}

fn add_note(req: &Request) -> Result<Response, Error> {
    let note: Note = req.json()?;
    let notes: Collection<Note> = Collection::new("notes");
    let id = req.caller.request_id.clone();
    notes.insert(&id, &note)?;
    Ok(Response::created(&json!({ "id": id })))
}

export_plugin!(MyPlugin);
"#;

const TOOLCHAIN: &str = r#"[toolchain]
channel = "1.95.0"
targets = ["wasm32-wasip2"]
"#;
