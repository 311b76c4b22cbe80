//! Plugin manifests (`plugin.toml`): the format, its parser and its validator.
//!
//! Every Plinth feature is a WebAssembly plugin that ships a `plugin.toml`. This module
//! owns turning that file into a typed [`Manifest`]; everything downstream (install,
//! per-tenant capability grants, upgrade diffs, endpoint routing, resource limits) works
//! from the typed value and never from raw TOML.
//!
//! Validation reports **every** problem at once, each with the field path it concerns
//! (`plugin.version`, `capabilities.http[1]`, `endpoints[2].path`, …), so a publisher can
//! fix a manifest in one round trip instead of one error per upload. That is why the
//! document is walked as a [`toml::Table`] rather than deserialised with serde, which
//! stops at the first unknown key or type mismatch.
//!
//! # Format
//!
//! A complete manifest using every key:
//!
//! ```toml
//! [plugin]
//! id = "territories"
//! name = "Territory management"
//! version = "1.2.0"
//! publisher = "plinth"
//! description = "Assign accounts to sales territories."
//! categories = ["sales", "admin-tools"]
//! api = "^1.0"
//! homepage = "https://plinth.example/territories"
//!
//! [capabilities]
//! storage = true
//! config = true
//! secrets = true
//! sharing = true
//! audit = true
//! schedule = true
//! email = true
//! emit = true
//! events = ["record.opportunity.updated", "record.account.*", "territories.*"]
//! http = ["https://api.example.com", "https://*.example.org:8443"]
//!
//! [capabilities.records.account]
//! access = "read-write"
//! fields = ["name", "owner_id", "territory"]
//! lock = true
//!
//! [capabilities.records.opportunity]
//! access = "read"
//! fields = ["*"]
//!
//! [[endpoints]]
//! method = "GET"
//! path = "/territories/{id}/children"
//! role = "member"
//! summary = "List children"
//! description = "Lists the direct child territories of a territory."
//!
//! [[endpoints]]
//! method = "POST"
//! path = "/territories"
//! role = "manager"
//! body_schema = '''{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}'''
//!
//! [limits]
//! timeout_ms = 2000
//! memory_mib = 64
//!
//! [dependencies]
//! accounts-core = "^1.2"
//!
//! [[rollups]]
//! name = "pipeline"
//! object = "opportunity"
//! dimensions = ["stage", "close_date:month"]
//! sums = ["amount"]
//! ```
//!
//! # Rules
//!
//! * **`[plugin]`** (required). `id` and `publisher`: 2–64 characters, a lowercase ASCII
//!   letter first, then `[a-z0-9-]`, not ending in `-`, no `--`. `name`: 1–100 characters
//!   after trimming (stored trimmed), no control characters. `version`: semver. `api`: a
//!   semver requirement on the `plinth:plugin` WIT contract version. Optional:
//!   `description` (≤ 4000 characters), `categories` (≤ 10 distinct entries matching
//!   `^[a-z][a-z0-9-]{0,39}$`), `homepage` (`http://` or `https://`, ≤ 500 characters, no
//!   whitespace).
//! * **`[capabilities]`** (optional; anything absent is not requested, so denied).
//!   Booleans `storage`, `config`, `secrets`, `sharing`, `audit`, `schedule`, `email`,
//!   `emit`, `directory`, `notify`, `files`, `jobs` (one [`registry`] row each). `events`: ≤ 100 distinct subscription patterns, either `*` or dot-separated
//!   segments of `[a-z0-9_-]+` with an optional final `.*`. `http`: ≤ 50 distinct outbound
//!   origins `scheme://host[:port]` with scheme `http`/`https`, no path, query, fragment or
//!   userinfo; the host may start with a `*.` wildcard label followed by at least two
//!   labels. `[capabilities.records.<object>]` with object `^[a-z][a-z0-9_]{0,62}$`:
//!   `access` (required, `read` | `read-write`) and `fields` (optional, default all):
//!   `["*"]` for all fields or a non-empty list of distinct `^[a-z][a-z0-9_]{0,62}$` names,
//!   `lock` (optional boolean): the plugin may lock records of the object, `read_as`
//!   (optional boolean): it may narrow its reads of the object to another user's
//!   visibility, and `system_write` (optional boolean, read-write objects only): its
//!   writes of the object run as the plugin rather than the calling user.
//! * **`[[endpoints]]`** (≤ 200). `method`: `GET` | `POST` | `PUT` | `PATCH` | `DELETE`.
//!   `path`: see [`PathTemplate`]. Optional `role` (minimum [`Role`], default `member`),
//!   `summary` (≤ 200), `description` (≤ 4000), `body_schema` (a JSON object, given as a
//!   JSON string, that compiles as a JSON Schema). Two endpoints conflict when they have
//!   the same method and their paths are equal once every `{param}` is treated alike.
//! * **`[limits]`** (optional). `timeout_ms` in 1..=600000, `memory_mib` in 1..=4096.
//!   What a call gets is clamped to the host's ceilings (by default 60 s and 64 MiB;
//!   the server's `plugin_timeout_ms` and `plugin_memory_mib` change them); without
//!   `[limits]` a call gets 2 s and 64 MiB.
//! * **`[dependencies]`** (optional). Plugin id (same rule as `plugin.id`, not the plugin
//!   itself) to semver requirement.
//! * **`[[rollups]]`** (≤ 8; see [`rollups`]). `name` (unique, `^[a-z][a-z0-9_]{0,62}$`),
//!   `object` (declared in `[capabilities.records]`), optional `dimensions` (≤ 4 distinct
//!   fields, each optionally `:day|month|quarter|year`) and `sums` (≤ 4 distinct fields);
//!   every field must be one the plugin declares for the object (dimensions may also
//!   name `owner_id`, `created_at`, `updated_at`, `created_by`, `updated_by`).
//!
//! Any other key is an error naming it, with a "did you mean" hint when a known key is
//! close. Problems about the document as a whole (size, encoding, TOML syntax) have an
//! empty path.
//!
//! ```ignore
//! let manifest = Manifest::from_bytes(&uploaded_bytes)?;
//! assert!(manifest.capabilities.keys().contains("storage"));
//! ```

mod capabilities;
mod endpoint;
pub mod registry;
pub mod rollups;
mod validate;
mod walk;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rules;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

pub use capabilities::{Access, Capabilities, FieldSet, HttpOrigin, RecordAccess};
pub use endpoint::{Endpoint, MAX_BODY_PROBLEMS, Method, PathTemplate, Role, body_problems};
pub use registry::{Capability, Grant};
pub use rollups::RollupSpec;

/// A validated plugin manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The `[plugin]` table: identity and metadata.
    pub plugin: PluginInfo,
    /// What the plugin asks to be allowed to do (`[capabilities]`).
    pub capabilities: Capabilities,
    /// HTTP endpoints the plugin serves (`[[endpoints]]`), in manifest order.
    pub endpoints: Vec<Endpoint>,
    /// Requested resource limits (`[limits]`).
    pub limits: Limits,
    /// Other plugins this one needs, by id, with the versions it accepts.
    pub dependencies: BTreeMap<String, semver::VersionReq>,
    /// Subtree totals the host keeps for the plugin (`[[rollups]]`).
    pub rollups: Vec<RollupSpec>,
}

/// Identity and metadata from the `[plugin]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// Globally unique plugin id, e.g. `territories`.
    pub id: String,
    /// Human-readable name, trimmed.
    pub name: String,
    /// The plugin's own version.
    pub version: semver::Version,
    /// Publisher id (same rule as the plugin id).
    pub publisher: String,
    /// Long description, if any.
    pub description: Option<String>,
    /// Marketplace categories, in manifest order.
    pub categories: Vec<String>,
    /// Accepted versions of the `plinth:plugin` WIT contract.
    pub api: semver::VersionReq,
    /// Project homepage URL, if any.
    pub homepage: Option<String>,
}

/// Resource limits the plugin asks for; the host clamps them to its own maxima.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Per-call wall-clock timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear memory ceiling in MiB.
    pub memory_mib: Option<u64>,
}

/// One thing wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Field path such as `endpoints[2].path`; empty for the document as a whole.
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A manifest was rejected; carries every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct ManifestError {
    /// All problems, in the order they were found (never empty).
    pub problems: Vec<Problem>,
}

fn render_problems(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n")
}

impl ManifestError {
    fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem::new(path, message)],
        }
    }
}

/// A single value (method, role, access level, origin, path template) that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl Manifest {
    /// Largest manifest accepted, in bytes (256 KiB).
    pub const MAX_BYTES: usize = 256 * 1024;

    /// Parses and validates manifest text, reporting every problem found.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        // Enforced here too so that callers holding a `&str` get the same bound on
        // parser work as uploads going through `from_bytes`.
        if text.len() > Self::MAX_BYTES {
            return Err(too_large(text.len()));
        }
        validate::manifest(text)
    }

    /// Like [`Manifest::parse`], for raw uploaded bytes: checks size and UTF-8 first.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > Self::MAX_BYTES {
            return Err(too_large(bytes.len()));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse(text),
            Err(e) => Err(ManifestError::single(
                "",
                format!(
                    "manifest is not valid UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )),
        }
    }
}

fn too_large(len: usize) -> ManifestError {
    ManifestError::single(
        "",
        format!(
            "manifest is {len} bytes; the maximum is 256 KiB ({} bytes)",
            Manifest::MAX_BYTES
        ),
    )
}

/// Which declared endpoint a request reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointMatch<'a> {
    /// This endpoint, with the path parameters it captured.
    Found(&'a Endpoint, Vec<(String, String)>),
    /// The path is declared, but not for this method; these methods are.
    MethodNotAllowed(Vec<Method>),
    /// No endpoint has this path.
    NotFound,
}

impl Manifest {
    /// Find the `[[endpoints]]` entry for `method` and `path` (the path below the
    /// plugin's mount point). The host routes only declared endpoints to a plugin.
    pub fn find_endpoint(&self, method: &str, path: &str) -> EndpointMatch<'_> {
        let mut allowed = Vec::new();
        for endpoint in &self.endpoints {
            if let Some(params) = endpoint.path.matches(path) {
                if endpoint.method.as_str() == method {
                    return EndpointMatch::Found(endpoint, params);
                }
                if !allowed.contains(&endpoint.method) {
                    allowed.push(endpoint.method);
                }
            }
        }
        if allowed.is_empty() {
            EndpointMatch::NotFound
        } else {
            EndpointMatch::MethodNotAllowed(allowed)
        }
    }
}
