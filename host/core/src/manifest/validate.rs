//! Walks a parsed `plugin.toml` section by section, building the typed [`Manifest`] and
//! collecting every problem on the way.

use std::collections::{BTreeMap, BTreeSet};

use toml::{Table, Value};

use super::capabilities::check_event_pattern;
use super::registry::{Capability, EVENTS, Grant, HTTP, RECORDS, REGISTRY};
use super::walk::{Ctx, check_id, is_category, is_ident, join};
use super::{
    Access, Capabilities, Endpoint, FieldSet, HttpOrigin, Limits, Manifest, ManifestError, Method, PathTemplate,
    PluginInfo, Problem, RecordAccess, Role,
};

const TOP_KEYS: &[&str] = &[
    "plugin",
    "capabilities",
    "endpoints",
    "limits",
    "dependencies",
    "rollups",
];
const PLUGIN_KEYS: &[&str] = &[
    "id",
    "name",
    "version",
    "publisher",
    "description",
    "categories",
    "api",
    "homepage",
];
const RECORD_KEYS: &[&str] = &["access", "fields", "lock", "read_as", "system_write"];
const ENDPOINT_KEYS: &[&str] = &["method", "path", "role", "summary", "description", "body_schema"];
const LIMIT_KEYS: &[&str] = &["timeout_ms", "memory_mib"];

const MAX_DESCRIPTION: usize = 4000;
const MAX_CATEGORIES: usize = 10;
const MAX_EVENTS: usize = 100;
const MAX_ORIGINS: usize = 50;
const MAX_ENDPOINTS: usize = 200;

/// Parses and validates manifest text (size already checked by the caller).
pub(super) fn manifest(text: &str) -> Result<Manifest, ManifestError> {
    let doc: Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    let mut cx = Ctx::default();
    cx.unknown_keys("", &doc, TOP_KEYS);

    let plugin = cx
        .require::<&Table>(&doc, "", "plugin")
        .and_then(|t| plugin(&mut cx, t));
    let capabilities = cx
        .get::<&Table>(&doc, "", "capabilities")
        .map(|t| capabilities(&mut cx, t))
        .unwrap_or_default();
    let endpoints = doc.get("endpoints").map(|v| endpoints(&mut cx, v)).unwrap_or_default();
    let limits = cx
        .get::<&Table>(&doc, "", "limits")
        .map(|t| limits(&mut cx, t))
        .unwrap_or_default();
    // Taken straight from the document so a self-dependency is caught even when other
    // `[plugin]` fields are broken.
    let own_id = doc.get("plugin").and_then(|p| p.get("id")).and_then(Value::as_str);
    let dependencies = cx
        .get::<&Table>(&doc, "", "dependencies")
        .map(|t| dependencies(&mut cx, t, own_id))
        .unwrap_or_default();

    let rollups = doc
        .get("rollups")
        .map(|v| super::rollups::rollups(&mut cx, v, &capabilities.records))
        .unwrap_or_default();

    match plugin {
        Some(plugin) if cx.problems.is_empty() => Ok(Manifest {
            plugin,
            capabilities,
            endpoints,
            limits,
            dependencies,
            rollups,
        }),
        _ if !cx.problems.is_empty() => Err(ManifestError { problems: cx.problems }),
        // Unreachable in practice (a missing plugin is always reported), but never
        // return an error without a problem in it.
        _ => Err(ManifestError::single("plugin", "invalid `[plugin]` table")),
    }
}

fn syntax_error(text: &str, err: &toml::de::Error) -> ManifestError {
    let message = err.message().trim();
    let message = match err.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("TOML syntax error at line {line}, column {column}: {message}")
        }
        None => format!("TOML syntax error: {message}"),
    };
    ManifestError {
        problems: vec![Problem::new("", message)],
    }
}

fn plugin(cx: &mut Ctx, t: &Table) -> Option<PluginInfo> {
    const P: &str = "plugin";
    cx.unknown_keys(P, t, PLUGIN_KEYS);

    let id = identifier(cx, t, "id");
    let name = cx
        .require::<&str>(t, P, "name")
        .and_then(|raw| cx.check("plugin.name", check_name(raw)).map(|()| raw.trim().to_owned()));
    let version = cx.require::<&str>(t, P, "version").and_then(|raw| {
        let parsed = semver::Version::parse(raw);
        cx.check(
            "plugin.version",
            parsed.map_err(|e| format!("invalid semver version `{raw}`: {e}")),
        )
    });
    let publisher = identifier(cx, t, "publisher");
    let description = cx
        .get::<&str>(t, P, "description")
        .filter(|d| cx.max_chars("plugin.description", d, MAX_DESCRIPTION))
        .map(str::to_owned);
    let categories = cx
        .get::<&[Value]>(t, P, "categories")
        .map(|items| {
            let parse = |c: &str| {
                is_category(c)
                    .then(|| c.to_owned())
                    .ok_or_else(|| format!("`{c}` must match ^[a-z][a-z0-9-]{{0,39}}$"))
            };
            cx.string_list("plugin.categories", items, MAX_CATEGORIES, parse, String::clone)
        })
        .unwrap_or_default();
    let api = cx
        .require::<&str>(t, P, "api")
        .and_then(|raw| cx.check("plugin.api", version_req(raw)));
    let homepage = cx
        .get::<&str>(t, P, "homepage")
        .and_then(|h| cx.check("plugin.homepage", check_homepage(h)))
        .map(str::to_owned);

    Some(PluginInfo {
        id: id?,
        name: name?,
        version: version?,
        publisher: publisher?,
        description,
        categories,
        api: api?,
        homepage,
    })
}

fn identifier(cx: &mut Ctx, t: &Table, key: &str) -> Option<String> {
    let raw = cx.require::<&str>(t, "plugin", key)?;
    cx.check(&join("plugin", key), check_id(raw)).map(|()| raw.to_owned())
}

fn check_name(raw: &str) -> Result<(), String> {
    let len = raw.trim().chars().count();
    if len == 0 {
        return Err("must not be empty".into());
    }
    if len > 100 {
        return Err(format!("must be at most 100 characters (found {len})"));
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn check_homepage(url: &str) -> Result<&str, String> {
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(format!("`{url}` must start with https:// or http://"));
    }
    let len = url.chars().count();
    if len > 500 {
        return Err(format!("must be at most 500 characters (found {len})"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    Ok(url)
}

fn version_req(raw: &str) -> Result<semver::VersionReq, String> {
    semver::VersionReq::parse(raw).map_err(|e| format!("invalid version requirement `{raw}`: {e}"))
}

fn capabilities(cx: &mut Ctx, t: &Table) -> Capabilities {
    const P: &str = "capabilities";
    let known: Vec<&str> = REGISTRY
        .iter()
        .filter(|c| c.grant != Grant::Always)
        .map(|c| c.key)
        .collect();
    cx.unknown_keys(P, t, &known);
    let mut caps = Capabilities::default();
    for flag in Capability::flags() {
        caps.set_flag(flag, cx.get::<bool>(t, P, flag.key).unwrap_or(false));
    }
    caps.events = cx
        .get::<&[Value]>(t, P, EVENTS.key)
        .map(|items| {
            cx.string_list(
                "capabilities.events",
                items,
                MAX_EVENTS,
                check_event_pattern,
                String::clone,
            )
        })
        .unwrap_or_default();
    caps.http = cx
        .get::<&[Value]>(t, P, HTTP.key)
        .map(|items| {
            let parse = |s: &str| s.parse::<HttpOrigin>().map_err(|e| e.0);
            // `https://x` and `https://x:443` reach the same server: one is a duplicate.
            let identity = |o: &HttpOrigin| (o.scheme.clone(), o.host.clone(), o.effective_port());
            cx.string_list("capabilities.http", items, MAX_ORIGINS, parse, identity)
        })
        .unwrap_or_default();
    caps.records = cx
        .get::<&Table>(t, P, RECORDS.key)
        .map(|r| records(cx, r))
        .unwrap_or_default();
    caps
}

fn records(cx: &mut Ctx, t: &Table) -> BTreeMap<String, RecordAccess> {
    let mut out = BTreeMap::new();
    for (object, value) in t {
        let path = join("capabilities.records", object);
        let name_ok = is_ident(object);
        if !name_ok {
            cx.report(
                &path,
                format!("invalid object name `{object}`; must match ^[a-z][a-z0-9_]{{0,62}}$"),
            );
        }
        let Some(entry) = cx.expect::<&Table>(&path, value) else {
            continue;
        };
        cx.unknown_keys(&path, entry, RECORD_KEYS);
        let access = cx.require::<&str>(entry, &path, "access").and_then(|a| {
            let parsed = a.parse::<Access>().map_err(|e| e.0);
            cx.check(&join(&path, "access"), parsed)
        });
        // Absent `fields` means the whole object: the grant is per object anyway.
        let fields = match entry.get("fields") {
            None => Some(FieldSet::All),
            Some(v) => {
                let fields_path = join(&path, "fields");
                cx.expect::<&[Value]>(&fields_path, v)
                    .and_then(|items| field_set(cx, &fields_path, items))
            }
        };
        let lock = cx.get::<bool>(entry, &path, "lock").unwrap_or(false);
        let read_as = cx.get::<bool>(entry, &path, "read_as").unwrap_or(false);
        let system_write = cx.get::<bool>(entry, &path, "system_write").unwrap_or(false);
        if system_write && access.is_some_and(|a| a != Access::ReadWrite) {
            cx.report(join(&path, "system_write"), "needs `access = \"read-write\"`");
        }
        if let (true, Some(access), Some(fields)) = (name_ok, access, fields) {
            out.insert(
                object.clone(),
                RecordAccess {
                    access,
                    fields,
                    lock,
                    read_as,
                    system_write,
                },
            );
        }
    }
    out
}

fn field_set(cx: &mut Ctx, path: &str, items: &[Value]) -> Option<FieldSet> {
    if items.is_empty() {
        cx.report(path, r#"must not be empty (use ["*"] for all fields)"#);
        return None;
    }
    if let [only] = items
        && only.as_str() == Some("*")
    {
        return Some(FieldSet::All);
    }
    let parse = |f: &str| {
        if f == "*" {
            Err("`*` (all fields) must be the only entry".to_owned())
        } else if is_ident(f) {
            Ok(f.to_owned())
        } else {
            Err(format!("invalid field name `{f}`; must match ^[a-z][a-z0-9_]{{0,62}}$"))
        }
    };
    let before = cx.problems.len();
    let names = cx.string_list(path, items, usize::MAX, parse, String::clone);
    (cx.problems.len() == before).then(|| FieldSet::Only(names.into_iter().collect::<BTreeSet<_>>()))
}

fn endpoints(cx: &mut Ctx, value: &Value) -> Vec<Endpoint> {
    let Some(items) = value.as_array() else {
        cx.report("endpoints", "expected an array of tables (`[[endpoints]]`)");
        return Vec::new();
    };
    if items.len() > MAX_ENDPOINTS {
        cx.report(
            "endpoints",
            format!("must have at most {MAX_ENDPOINTS} entries (found {})", items.len()),
        );
    }
    let mut out: Vec<(usize, Endpoint)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        let Some(t) = cx.expect::<&Table>(&path, item) else {
            continue;
        };
        let Some(endpoint) = endpoint(cx, &path, t) else {
            continue;
        };
        if let Some((j, _)) = out
            .iter()
            .find(|(_, e)| e.method == endpoint.method && e.path.conflicts_with(&endpoint.path))
        {
            cx.report(
                format!("{path}.path"),
                format!("`{} {}` conflicts with endpoints[{j}]", endpoint.method, endpoint.path),
            );
            continue;
        }
        out.push((i, endpoint));
    }
    out.into_iter().map(|(_, e)| e).collect()
}

fn endpoint(cx: &mut Ctx, prefix: &str, t: &Table) -> Option<Endpoint> {
    cx.unknown_keys(prefix, t, ENDPOINT_KEYS);
    let method = cx
        .require::<&str>(t, prefix, "method")
        .and_then(|m| cx.check(&join(prefix, "method"), m.parse::<Method>().map_err(|e| e.0)));
    let path = cx.require::<&str>(t, prefix, "path").and_then(|p| {
        let parsed = p.parse::<PathTemplate>().map_err(|e| e.0);
        cx.check(&join(prefix, "path"), parsed)
    });
    let role = match cx.get::<&str>(t, prefix, "role") {
        None => Some(Role::Member).filter(|_| !t.contains_key("role")),
        Some(r) => cx.check(&join(prefix, "role"), r.parse::<Role>().map_err(|e| e.0)),
    };
    let summary = optional_text(cx, t, prefix, "summary", 200);
    let description = optional_text(cx, t, prefix, "description", MAX_DESCRIPTION);
    let body_schema = cx
        .get::<&str>(t, prefix, "body_schema")
        .and_then(|s| cx.check(&join(prefix, "body_schema"), compile_schema(s)));
    let text_ok = |field: &Option<String>, key: &str| field.is_some() || !t.contains_key(key);
    let body_ok = body_schema.is_some() || !t.contains_key("body_schema");
    if !(text_ok(&summary, "summary") && text_ok(&description, "description") && body_ok) {
        return None;
    }
    Some(Endpoint {
        method: method?,
        path: path?,
        role: role?,
        summary,
        description,
        body_schema,
    })
}

fn optional_text(cx: &mut Ctx, t: &Table, prefix: &str, key: &str, max: usize) -> Option<String> {
    cx.get::<&str>(t, prefix, key)
        .filter(|s| cx.max_chars(&join(prefix, key), s, max))
        .map(str::to_owned)
}

fn compile_schema(text: &str) -> Result<serde_json::Value, String> {
    let schema: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
    if !schema.is_object() {
        return Err("must be a JSON object (a JSON Schema)".into());
    }
    jsonschema::validator_for(&schema).map_err(|e| format!("is not a valid JSON Schema: {e}"))?;
    Ok(schema)
}

fn limits(cx: &mut Ctx, t: &Table) -> Limits {
    const P: &str = "limits";
    cx.unknown_keys(P, t, LIMIT_KEYS);
    let mut bounded = |key: &str, max: u64| {
        let n = cx.get::<i64>(t, P, key)?;
        let ok = u64::try_from(n).ok().filter(|n| (1..=max).contains(n));
        if ok.is_none() {
            cx.report(join(P, key), format!("must be between 1 and {max} (found {n})"));
        }
        ok
    };
    Limits {
        timeout_ms: bounded("timeout_ms", 600_000),
        memory_mib: bounded("memory_mib", 4096),
    }
}

fn dependencies(cx: &mut Ctx, t: &Table, own_id: Option<&str>) -> BTreeMap<String, semver::VersionReq> {
    let mut out = BTreeMap::new();
    for (id, value) in t {
        let path = join("dependencies", id);
        let id_ok = cx
            .check(&path, check_id(id).map_err(|e| format!("invalid plugin id: {e}")))
            .is_some();
        let not_self = own_id != Some(id.as_str());
        if !not_self {
            cx.report(&path, "a plugin cannot depend on itself");
        }
        let req = cx
            .expect::<&str>(&path, value)
            .and_then(|raw| cx.check(&path, version_req(raw)));
        if let (true, true, Some(req)) = (id_ok, not_self, req) {
            out.insert(id.clone(), req);
        }
    }
    out
}
