//! Behaviour tests: the full example, many problems at once, garbage input, and the
//! matching/grant helpers. Per-rule failing examples live in `tests_rules.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;

/// The complete example from the module documentation, so the docs cannot drift from
/// what the parser accepts.
fn doc_example() -> String {
    let source = include_str!("mod.rs");
    let mut lines = source
        .lines()
        .map(|l| l.strip_prefix("//!").unwrap_or(l))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```toml")
        .skip(1);
    let mut out = String::new();
    for line in lines.by_ref().take_while(|l| *l != "```") {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn origin(s: &str) -> HttpOrigin {
    s.parse().unwrap()
}

fn path(s: &str) -> PathTemplate {
    s.parse().unwrap()
}

fn expected_full() -> Manifest {
    let mut records = BTreeMap::new();
    records.insert(
        "account".to_owned(),
        RecordAccess {
            access: Access::ReadWrite,
            fields: FieldSet::Only(set(&["name", "owner_id", "territory"])),
            lock: true,
            read_as: false,
            system_write: false,
        },
    );
    records.insert(
        "opportunity".to_owned(),
        RecordAccess {
            access: Access::Read,
            fields: FieldSet::All,
            lock: false,
            read_as: false,
            system_write: false,
        },
    );
    let mut dependencies = BTreeMap::new();
    dependencies.insert("accounts-core".to_owned(), semver::VersionReq::parse("^1.2").unwrap());
    Manifest {
        plugin: PluginInfo {
            id: "territories".into(),
            name: "Territory management".into(),
            version: semver::Version::new(1, 2, 0),
            publisher: "plinth".into(),
            description: Some("Assign accounts to sales territories.".into()),
            categories: vec!["sales".into(), "admin-tools".into()],
            api: semver::VersionReq::parse("^1.0").unwrap(),
            homepage: Some("https://plinth.example/territories".into()),
        },
        capabilities: {
            let mut caps = Capabilities::default()
                .with(&registry::STORAGE)
                .with(&registry::CONFIG)
                .with(&registry::SECRETS)
                .with(&registry::SHARING)
                .with(&registry::AUDIT)
                .with(&registry::SCHEDULE)
                .with(&registry::EMAIL)
                .with(&registry::EMIT);
            caps.events = vec![
                "record.opportunity.updated".into(),
                "record.account.*".into(),
                "territories.*".into(),
            ];
            caps.http = vec![
                HttpOrigin {
                    scheme: "https".into(),
                    host: "api.example.com".into(),
                    port: None,
                },
                HttpOrigin {
                    scheme: "https".into(),
                    host: "*.example.org".into(),
                    port: Some(8443),
                },
            ];
            caps.records = records;
            caps
        },
        endpoints: vec![
            Endpoint {
                method: Method::Get,
                path: path("/territories/{id}/children"),
                role: Role::Member,
                summary: Some("List children".into()),
                description: Some("Lists the direct child territories of a territory.".into()),
                body_schema: None,
            },
            Endpoint {
                method: Method::Post,
                path: path("/territories"),
                role: Role::Manager,
                summary: None,
                description: None,
                body_schema: Some(json!({
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}}
                })),
            },
        ],
        limits: Limits {
            timeout_ms: Some(2000),
            memory_mib: Some(64),
        },
        dependencies,
        rollups: vec![RollupSpec {
            name: "pipeline".into(),
            object: "opportunity".into(),
            dimensions: vec!["stage".into(), "close_date:month".into()],
            sums: vec!["amount".into()],
        }],
    }
}

#[test]
fn full_example_parses_into_expected_struct() {
    let text = doc_example();
    assert!(text.contains("[[endpoints]]"), "example not found:\n{text}");
    let manifest = Manifest::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifest, expected_full());
    assert_eq!(Manifest::from_bytes(text.as_bytes()), Ok(expected_full()));
}

#[test]
fn minimal_manifest_uses_defaults() {
    let text = "[plugin]\nid = \"hi\"\nname = \"  Hi \"\nversion = \"0.1.0\"\n\
                publisher = \"me\"\napi = \"1\"\n\
                [[endpoints]]\nmethod = \"GET\"\npath = \"/\"\n\
                [capabilities.records.contact]\naccess = \"read\"\n";
    let m = Manifest::parse(text).unwrap();
    assert_eq!(m.plugin.name, "Hi");
    assert_eq!(m.plugin.description, None);
    assert!(m.plugin.categories.is_empty());
    assert_eq!(m.endpoints[0].role, Role::Member);
    assert_eq!(m.capabilities.records["contact"].fields, FieldSet::All);
    assert!(!m.capabilities.has(&registry::STORAGE));
    assert_eq!(m.limits, Limits::default());
    assert!(m.dependencies.is_empty());
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
unknown = 1

[plugin]
id = "Bad_Id"
name = ""
version = "x"
publisher = "ok-pub"
api = "^1"
extra = 1

[capabilities]
storage = 1
http = ["ftp://a.com", "https://ok.com", "https://ok.com"]
events = ["*", "BAD"]

[capabilities.records.account]
access = "write"

[[endpoints]]
method = "get"
path = "nope"

[[endpoints]]
method = "GET"
path = "/a/{x}/{x}"

[limits]
timeout_ms = 0
memory_mib = "big"

[dependencies]
Bad = "1"
other = "!!"
"#;
    let err = Manifest::parse(text).unwrap_err();
    let paths: BTreeSet<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
    let expected = [
        "unknown",
        "plugin.extra",
        "plugin.id",
        "plugin.name",
        "plugin.version",
        "capabilities.storage",
        "capabilities.http[0]",
        "capabilities.http[2]",
        "capabilities.events[1]",
        "capabilities.records.account.access",
        "endpoints[0].method",
        "endpoints[0].path",
        "endpoints[1].path",
        "limits.timeout_ms",
        "limits.memory_mib",
        "dependencies.Bad",
        "dependencies.other",
    ];
    assert_eq!(paths, expected.into_iter().collect(), "{err}");
    assert_eq!(err.problems.len(), expected.len(), "{err}");
    // Display: one problem per line, each as `path: message`.
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), expected.len());
    assert!(shown.lines().any(|l| l.starts_with("plugin.version: ")));
}

#[test]
fn garbage_never_panics() {
    let deep_arrays = format!("a = {}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_inline = format!("a = {}1{}", "{b = ".repeat(5000), "}".repeat(5000));
    let deep_dotted = format!("{} = 1", vec!["a"; 5000].join("."));
    let deep_header = format!("[{}]", vec!["a"; 5000].join("."));
    let deep_plugin = format!("[plugin.{}]", vec!["a"; 2000].join("."));
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\0\x01\x02\x7f".to_vec(),
        vec![0xff; 64],
        (0u8..=255).cycle().take(4096).collect(),
        b"[[plugin]]\n[[capabilities]]\n[[limits]]\n[[dependencies]]".to_vec(),
        b"plugin = []\ncapabilities = 1\nendpoints = [[], {}, 1]\nlimits = []".to_vec(),
        b"[capabilities]\nrecords = 5\nhttp = 1\nevents = [[1]]".to_vec(),
        b"[dependencies]\n\"\" = \"\"".to_vec(),
        "[plugin]\nid = \"\u{1F600}\u{1F600}\"\nname = \"\u{202E}\""
            .as_bytes()
            .to_vec(),
        deep_arrays.into_bytes(),
        deep_inline.into_bytes(),
        deep_dotted.into_bytes(),
        deep_header.into_bytes(),
        deep_plugin.into_bytes(),
    ];
    for input in &inputs {
        let err = Manifest::from_bytes(input).unwrap_err();
        assert!(!err.problems.is_empty());
    }
}

#[test]
fn truncations_of_a_valid_manifest_never_panic() {
    let text = doc_example();
    for (i, _) in text.char_indices() {
        if let Err(e) = Manifest::parse(&text[..i]) {
            assert!(!e.problems.is_empty());
        }
    }
}

#[test]
fn path_template_matching() {
    let t = path("/territories/{id}/children");
    assert_eq!(t.as_str(), "/territories/{id}/children");
    assert_eq!(t.params(), vec!["id"]);
    assert_eq!(
        t.matches("/territories/42/children"),
        Some(vec![("id".to_owned(), "42".to_owned())])
    );
    assert_eq!(t.matches("/territories//children"), None);
    assert_eq!(t.matches("/territories/42/children/"), None);
    assert_eq!(t.matches("/territories/42"), None);
    assert_eq!(t.matches("/Territories/42/children"), None);
    assert_eq!(t.matches("territories/42/children"), None);
    assert_eq!(t.matches("/territories/4/2/children"), None);

    let two = path("/a/{x}/b/{y_2}");
    assert_eq!(two.params(), vec!["x", "y_2"]);
    assert_eq!(
        two.matches("/a/1/b/%20"),
        Some(vec![
            ("x".to_owned(), "1".to_owned()),
            ("y_2".to_owned(), "%20".to_owned())
        ])
    );

    let root = path("/");
    assert!(root.params().is_empty());
    assert_eq!(root.matches("/"), Some(vec![]));
    assert_eq!(root.matches(""), None);
    assert_eq!(root.matches("/a"), None);

    assert!(path("/a/{id}").conflicts_with(&path("/a/{key}")));
    assert!(!path("/a/{id}").conflicts_with(&path("/a/b")));
    assert!(!path("/a").conflicts_with(&path("/a/{id}")));
}

#[test]
fn http_origin_matching_and_display() {
    let exact = origin("https://api.example.com");
    assert_eq!(exact.to_string(), "https://api.example.com");
    assert!(exact.matches("https", "api.example.com", 443));
    assert!(exact.matches("HTTPS", "API.Example.com.", 443));
    assert!(!exact.matches("https", "api.example.com", 8443));
    assert!(!exact.matches("http", "api.example.com", 443));
    assert!(!exact.matches("https", "x.api.example.com", 443));

    let plain = origin("http://10.0.0.1");
    assert!(plain.matches("http", "10.0.0.1", 80));
    assert!(!plain.matches("http", "10.0.0.1", 443));

    let wild = origin("HTTPS://*.Example.ORG:8443");
    assert_eq!(wild.to_string(), "https://*.example.org:8443");
    assert!(wild.matches("https", "a.example.org", 8443));
    assert!(wild.matches("https", "a.b.example.org", 8443));
    assert!(!wild.matches("https", "example.org", 8443));
    assert!(!wild.matches("https", ".example.org", 8443));
    assert!(!wild.matches("https", "badexample.org", 8443));
    assert!(!wild.matches("https", "a.example.org", 443));
    assert!(!wild.matches("https", "a.example.org.evil.com", 8443));
}

#[test]
fn capability_keys_and_restrict() {
    let caps = expected_full().capabilities;
    let keys = caps.keys();
    let expected = set(&[
        "storage",
        "config",
        "secrets",
        "sharing",
        "audit",
        "schedule",
        "email",
        "emit",
        "events:record.opportunity.updated",
        "events:record.account.*",
        "events:territories.*",
        "http:https://api.example.com",
        "http:https://*.example.org:8443",
        "records:account:read",
        "records:account:write",
        "records:account:lock",
        "records:opportunity:read",
    ]);
    assert_eq!(keys, expected);
    assert_eq!(caps.restrict(&keys), caps);
    assert_eq!(caps.restrict(&BTreeSet::new()), Capabilities::default());

    let granted = set(&[
        "storage",
        "events:territories.*",
        "http:https://*.example.org:8443",
        "records:account:read",
        // Write without read grants nothing for that object.
        "records:opportunity:write",
        // Keys that were never requested do not add capabilities.
        "email-typo",
        "events:other.*",
    ]);
    let effective = caps.restrict(&granted);
    assert!(effective.has(&registry::STORAGE) && !effective.has(&registry::EMAIL) && !effective.has(&registry::CONFIG));
    assert_eq!(effective.events, vec!["territories.*".to_owned()]);
    assert_eq!(effective.http, vec![origin("https://*.example.org:8443")]);
    assert_eq!(effective.records.len(), 1);
    assert_eq!(effective.records["account"].access, Access::Read);
    assert_eq!(effective.records["account"].fields, caps.records["account"].fields);
    assert!(effective.keys().is_subset(&granted));
}

#[test]
fn field_set_allows() {
    assert!(FieldSet::All.allows("anything"));
    let only = FieldSet::Only(set(&["name"]));
    assert!(only.allows("name"));
    assert!(!only.allows("owner_id"));
}

#[test]
fn role_ordering() {
    assert!(Role::Owner > Role::Admin);
    assert!(Role::Admin > Role::Manager);
    assert!(Role::Manager > Role::Member);
    assert!(Role::Member > Role::ReadOnly);
    assert_eq!(Role::Owner.rank(), 4);
    assert_eq!(Role::ReadOnly.rank(), 0);
    assert!(Role::Admin.at_least(Role::Member));
    assert!(Role::Member.at_least(Role::Member));
    assert!(!Role::ReadOnly.at_least(Role::Member));
    assert!(!Role::Manager.at_least(Role::Admin));
    let mut sorted = Role::ALL.to_vec();
    sorted.sort();
    assert_eq!(sorted.first(), Some(&Role::ReadOnly));
    assert_eq!(sorted.last(), Some(&Role::Owner));
    assert_eq!(Role::default(), Role::Member);
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(role.to_string(), role.as_str());
    }
    assert!("Owner".parse::<Role>().is_err());
}

#[test]
fn method_and_access_strings() {
    for method in Method::ALL {
        assert_eq!(method.as_str().parse::<Method>(), Ok(method));
    }
    assert_eq!(Method::Patch.as_str(), "PATCH");
    assert!("get".parse::<Method>().is_err());
    assert_eq!("read-write".parse::<Access>(), Ok(Access::ReadWrite));
    assert!("write".parse::<Access>().is_err());
}

#[test]
fn serializes_to_api_json() {
    let value = serde_json::to_value(expected_full()).unwrap();
    assert_eq!(value["plugin"]["version"], "1.2.0");
    assert_eq!(value["plugin"]["api"], "^1.0");
    assert_eq!(
        value["capabilities"]["http"],
        json!(["https://api.example.com", "https://*.example.org:8443"])
    );
    assert_eq!(
        value["capabilities"]["records"]["account"],
        json!({"access": "read-write", "fields": ["name", "owner_id", "territory"], "lock": true})
    );
    assert_eq!(
        value["capabilities"]["records"]["opportunity"],
        json!({"access": "read", "fields": "*"})
    );
    assert_eq!(value["endpoints"][0]["method"], "GET");
    assert_eq!(value["endpoints"][0]["path"], "/territories/{id}/children");
    assert_eq!(value["endpoints"][1]["role"], "manager");
    assert_eq!(value["endpoints"][1]["body_schema"]["type"], "object");
    assert_eq!(value["limits"], json!({"timeout_ms": 2000, "memory_mib": 64}));
    assert_eq!(value["dependencies"]["accounts-core"], "^1.2");
    assert_eq!(serde_json::to_value(Role::ReadOnly).unwrap(), "read-only");

    let err = Manifest::parse("").unwrap_err();
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        json!({"problems": [{"path": "plugin", "message": "missing required key `plugin`"}]})
    );
}
