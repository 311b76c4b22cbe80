//! Plugins for tests, built from source: the test guests in `tests/guests/*` and the
//! first-party plugins embedded in the host, each a manifest plus a component. A
//! [`Guest`] changes its manifest through a builder — by key path, never by patching
//! text — so a test says exactly what differs from the plugin as written:
//!
//! ```ignore
//! let probe = Guest::named("event-probe")
//!     .set("plugin.id", "probe-b")
//!     .set("capabilities.events", json!(["record.account.*"]));
//! publisher.publish(&s, &probe).await.expect(201);
//! ```

use plinth_core::manifest::Manifest;
use serde_json::Value;

/// A plugin's manifest (as a TOML table) and component.
#[derive(Debug, Clone)]
pub struct Guest {
    manifest: toml::Table,
    component: Vec<u8>,
}

impl Guest {
    /// The test guest `tests/guests/<name>`.
    pub fn named(name: &str) -> Guest {
        let (manifest, component) = crate::guest_files(name);
        Guest::from_parts(&manifest, component)
    }

    /// The first-party plugin whose crate is `crate_name` (`hello`, `territories`).
    pub fn bundled(crate_name: &str) -> Guest {
        let b =
            plinth_host::bundled::find(crate_name).unwrap_or_else(|| panic!("no bundled plugin named {crate_name}"));
        Guest::from_parts(b.manifest, b.component.to_vec())
    }

    /// A manifest text and component.
    pub fn from_parts(manifest: &str, component: Vec<u8>) -> Guest {
        let manifest = manifest
            .parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("a test manifest is TOML: {e}"));
        Guest { manifest, component }
    }

    /// Set the value at a dotted key path (`plugin.version`, `capabilities.http`,
    /// `limits.timeout_ms`), creating tables on the way. `value` is any JSON value
    /// TOML can hold.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Guest {
        let value: Value = value.into();
        let value = toml::Value::try_from(&value).unwrap_or_else(|e| panic!("{path} = {value}: not TOML: {e}"));
        let (table, key) = self.table_for(path);
        table.insert(key, value);
        self
    }

    /// Remove the value at a dotted key path (it need not exist).
    pub fn remove(mut self, path: &str) -> Guest {
        let (table, key) = self.table_for(path);
        table.remove(&key);
        self
    }

    /// Append a table to an array of tables (`endpoints`, `rollups`).
    pub fn push(mut self, path: &str, entry: Value) -> Guest {
        let entry = toml::Value::try_from(&entry).unwrap_or_else(|e| panic!("{path} += {entry}: not TOML: {e}"));
        let (table, key) = self.table_for(path);
        match table.entry(key).or_insert_with(|| toml::Value::Array(Vec::new())) {
            toml::Value::Array(items) => items.push(entry),
            other => panic!("{path} is not an array: {other}"),
        }
        self
    }

    /// Replace the component (a build of another guest, a corrupted one, …).
    pub fn with_component(mut self, component: Vec<u8>) -> Guest {
        self.component = component;
        self
    }

    /// The manifest as `plugin.toml` text.
    pub fn manifest_text(&self) -> String {
        toml::to_string(&self.manifest).expect("a TOML table serialises")
    }

    /// The manifest, parsed and validated as the host does.
    pub fn manifest(&self) -> Manifest {
        Manifest::parse(&self.manifest_text()).unwrap_or_else(|e| panic!("the test manifest is invalid: {e}"))
    }

    /// The component.
    pub fn component(&self) -> &[u8] {
        &self.component
    }

    /// The plugin id.
    pub fn id(&self) -> String {
        self.manifest["plugin"]["id"].as_str().unwrap_or_default().to_string()
    }

    fn table_for(&mut self, path: &str) -> (&mut toml::Table, String) {
        let mut parts: Vec<&str> = path.split('.').collect();
        let key = parts.pop().unwrap_or_default().to_string();
        let mut table = &mut self.manifest;
        for part in parts {
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                other => panic!("{path}: `{part}` is not a table but {other}"),
            };
        }
        (table, key)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn edits_land_at_their_key_paths() {
        let text = r#"
[plugin]
id = "probe"
version = "1.0.0"

[capabilities]
storage = true
"#;
        let g = Guest::from_parts(text, vec![1, 2, 3])
            .set("plugin.version", "2.0.0")
            .set("capabilities.events", json!(["record.*"]))
            .remove("capabilities.storage")
            .set("limits.timeout_ms", 500)
            .push("endpoints", json!({ "method": "GET", "path": "/x", "role": "member" }));
        let back: toml::Table = g.manifest_text().parse().unwrap();
        assert_eq!(back["plugin"]["version"].as_str(), Some("2.0.0"));
        assert_eq!(back["capabilities"]["events"][0].as_str(), Some("record.*"));
        assert!(back["capabilities"].get("storage").is_none());
        assert_eq!(back["limits"]["timeout_ms"].as_integer(), Some(500));
        assert_eq!(back["endpoints"][0]["path"].as_str(), Some("/x"));
        assert_eq!(g.id(), "probe");
        assert_eq!(g.component(), [1, 2, 3]);
    }
}
