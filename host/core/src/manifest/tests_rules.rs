//! One failing example per validation rule: each row is a manifest, the exact path of the
//! single problem it must produce, and a fragment of that problem's message.

use super::Manifest;

const BASE_PLUGIN: &[(&str, &str)] = &[
    ("id", r#""demo""#),
    ("name", r#""Demo""#),
    ("version", r#""1.0.0""#),
    ("publisher", r#""acme""#),
    ("api", r#""^1.0""#),
];

/// A `[plugin]` table with `key` set to `value` (added if new), or removed when `None`.
fn plugin_with(key: &str, value: Option<&str>) -> String {
    let mut lines = vec!["[plugin]".to_owned()];
    let mut replaced = false;
    for (k, v) in BASE_PLUGIN {
        if *k == key {
            replaced = true;
            if let Some(value) = value {
                lines.push(format!("{k} = {value}"));
            }
        } else {
            lines.push(format!("{k} = {v}"));
        }
    }
    if let (false, Some(value)) = (replaced, value) {
        lines.push(format!("{key} = {value}"));
    }
    lines.join("\n") + "\n"
}

/// A valid `[plugin]` table followed by `rest`.
fn doc(rest: &str) -> String {
    format!("{}\n{rest}\n", plugin_with("", None))
}

/// Top-level keys `rest` (which must come before any table header) and a valid `[plugin]`.
fn top(rest: &str) -> String {
    format!("{rest}\n{}", plugin_with("", None))
}

/// A valid manifest with one `[[endpoints]]` whose body is `body`.
fn endpoint(body: &str) -> String {
    doc(&format!("[[endpoints]]\n{body}"))
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| quoted(&s)).collect();
    format!("[{}]", items.join(", "))
}

fn rows() -> Vec<(String, &'static str, &'static str)> {
    let p = |k: &str, v: &str| plugin_with(k, Some(v));
    let caps = |body: &str| doc(&format!("[capabilities]\n{body}"));
    let account = |body: &str| doc(&format!("[capabilities.records.account]\n{body}"));
    let ok_route = "method = \"GET\"\npath = \"/a\"";
    vec![
        // document
        ("[plugin\nid = 1".into(), "", "TOML syntax error at line 1"),
        (doc("a = 1\na = 2"), "", "line 9, column 1"),
        (String::new(), "plugin", "missing required key `plugin`"),
        ("plugin = \"x\"".into(), "plugin", "expected a table, found a string"),
        (top("endpoint = 1"), "endpoint", "did you mean `endpoints`?"),
        // [plugin]
        (plugin_with("id", None), "plugin.id", "missing required key `id`"),
        (p("id", "5"), "plugin.id", "expected a string, found an integer"),
        (p("id", "\"a\""), "plugin.id", "2–64 characters"),
        (p("id", &quoted(&"a".repeat(65))), "plugin.id", "2–64 characters"),
        (
            p("id", "\"Territories\""),
            "plugin.id",
            "start with a lowercase ASCII letter",
        ),
        (
            p("id", "\"terr_x\""),
            "plugin.id",
            "only lowercase letters, digits and `-`",
        ),
        (p("id", "\"terr-\""), "plugin.id", "must not end with `-`"),
        (p("id", "\"a--b\""), "plugin.id", "must not contain `--`"),
        (
            p("publisher", "\"acme corp\""),
            "plugin.publisher",
            "only lowercase letters",
        ),
        (p("name", "\"   \""), "plugin.name", "must not be empty"),
        (
            p("name", &quoted(&"n".repeat(101))),
            "plugin.name",
            "at most 100 characters",
        ),
        (p("name", "\"a\\u0007b\""), "plugin.name", "control characters"),
        (p("version", "\"1.2\""), "plugin.version", "invalid semver version"),
        (p("version", "1"), "plugin.version", "expected a string"),
        (
            p("description", &quoted(&"d".repeat(4001))),
            "plugin.description",
            "at most 4000",
        ),
        (
            p("categories", &list((0..11).map(|i| format!("c{i}")))),
            "plugin.categories",
            "at most 10 entries",
        ),
        (
            p("categories", "[\"Sales\"]"),
            "plugin.categories[0]",
            "must match ^[a-z][a-z0-9-]{0,39}$",
        ),
        (
            p("categories", "[\"sales\", 3]"),
            "plugin.categories[1]",
            "expected a string, found an integer",
        ),
        (
            p("categories", "[\"sales\", \"sales\"]"),
            "plugin.categories[1]",
            "duplicate entry `sales`",
        ),
        (
            p("categories", "\"sales\""),
            "plugin.categories",
            "expected an array, found a string",
        ),
        (p("api", "\"banana\""), "plugin.api", "invalid version requirement"),
        (
            p("homepage", "\"ftp://x.org\""),
            "plugin.homepage",
            "must start with https:// or http://",
        ),
        (
            p("homepage", &quoted(&format!("https://{}", "h".repeat(493)))),
            "plugin.homepage",
            "at most 500",
        ),
        (p("homepage", "\"https://a b.org\""), "plugin.homepage", "whitespace"),
        (
            p("verison", "\"1.0.0\""),
            "plugin.verison",
            "unknown key `verison`; did you mean `version`?",
        ),
        // [capabilities]
        (top("capabilities = 1"), "capabilities", "expected a table"),
        (
            caps("storage = \"yes\""),
            "capabilities.storage",
            "expected a boolean, found a string",
        ),
        (caps("emails = true"), "capabilities.emails", "did you mean `email`?"),
        (
            caps("events = [\"Record.x\"]"),
            "capabilities.events[0]",
            "dot-separated segments",
        ),
        (
            caps("events = [\"a.*.b\"]"),
            "capabilities.events[0]",
            "wildcard is only allowed",
        ),
        (
            caps("events = [\"a.\"]"),
            "capabilities.events[0]",
            "dot-separated segments",
        ),
        (
            caps("events = [\"a.b\", \"a.b\"]"),
            "capabilities.events[1]",
            "duplicate entry",
        ),
        (
            caps(&format!("events = {}", list((0..101).map(|i| format!("e{i}"))))),
            "capabilities.events",
            "at most 100 entries",
        ),
        (
            caps("http = [\"https://api.example.com/v1\"]"),
            "capabilities.http[0]",
            "must not contain a path",
        ),
        (
            caps("http = [\"https://api.example.com/\"]"),
            "capabilities.http[0]",
            "must not contain a path",
        ),
        (
            caps("http = [\"ftp://example.com\"]"),
            "capabilities.http[0]",
            "scheme must be `http` or `https`",
        ),
        (
            caps("http = [\"example.com\"]"),
            "capabilities.http[0]",
            "must look like",
        ),
        (
            caps("http = [\"https://user@example.com\"]"),
            "capabilities.http[0]",
            "userinfo",
        ),
        (
            caps("http = [\"https://example.com?a=1\"]"),
            "capabilities.http[0]",
            "query",
        ),
        (
            caps("http = [\"https://api.*.example.com\"]"),
            "capabilities.http[0]",
            "leading `*.` label",
        ),
        (
            caps("http = [\"https://*.com\"]"),
            "capabilities.http[0]",
            "at least two labels",
        ),
        (
            caps("http = [\"https://example.com:99999\"]"),
            "capabilities.http[0]",
            "invalid port",
        ),
        (
            caps("http = [\"https://exa_mple.com\"]"),
            "capabilities.http[0]",
            "invalid host label",
        ),
        (
            caps("http = [\"https://API.example.com\", \"https://api.example.com:443\"]"),
            "capabilities.http[1]",
            "duplicate entry",
        ),
        (
            caps(&format!(
                "http = {}",
                list((0..51).map(|i| format!("https://h{i}.example.com")))
            )),
            "capabilities.http",
            "at most 50 entries",
        ),
        (
            doc("[capabilities.records.Account]\naccess = \"read\""),
            "capabilities.records.Account",
            "invalid object name",
        ),
        (
            doc("[capabilities.records]\naccount = 1"),
            "capabilities.records.account",
            "expected a table, found an integer",
        ),
        (
            account("fields = [\"*\"]"),
            "capabilities.records.account.access",
            "missing required key `access`",
        ),
        (
            account("access = \"write\""),
            "capabilities.records.account.access",
            "expected `read` or `read-write`",
        ),
        (
            account("access = \"read\"\nfields = []"),
            "capabilities.records.account.fields",
            "must not be empty",
        ),
        (
            account("access = \"read\"\nfields = \"*\""),
            "capabilities.records.account.fields",
            "expected an array",
        ),
        (
            account("access = \"read\"\nfields = [\"*\", \"name\"]"),
            "capabilities.records.account.fields[0]",
            "must be the only entry",
        ),
        (
            account("access = \"read\"\nfields = [\"Name\"]"),
            "capabilities.records.account.fields[0]",
            "invalid field name",
        ),
        (
            account("access = \"read\"\nfields = [\"name\", \"name\"]"),
            "capabilities.records.account.fields[1]",
            "duplicate entry",
        ),
        (
            account("access = \"read\"\nacess = \"read\""),
            "capabilities.records.account.acess",
            "did you mean `access`?",
        ),
        // [[endpoints]]
        (top("endpoints = \"x\""), "endpoints", "expected an array of tables"),
        (
            top("endpoints = [1]"),
            "endpoints[0]",
            "expected a table, found an integer",
        ),
        (
            endpoint("method = \"get\"\npath = \"/a\""),
            "endpoints[0].method",
            "unknown method `get`",
        ),
        (
            endpoint("path = \"/a\""),
            "endpoints[0].method",
            "missing required key `method`",
        ),
        (
            endpoint("method = \"GET\""),
            "endpoints[0].path",
            "missing required key `path`",
        ),
        (
            endpoint("method = \"GET\"\npath = \"a\""),
            "endpoints[0].path",
            "must start with `/`",
        ),
        (
            endpoint("method = \"GET\"\npath = \"/a/\""),
            "endpoints[0].path",
            "must not end with `/`",
        ),
        (
            endpoint("method = \"GET\"\npath = \"/a//b\""),
            "endpoints[0].path",
            "empty segment",
        ),
        (
            endpoint("method = \"GET\"\npath = \"/a/{Id}\""),
            "endpoints[0].path",
            "invalid parameter name `Id`",
        ),
        (
            endpoint("method = \"GET\"\npath = \"/a/{id}/b/{id}\""),
            "endpoints[0].path",
            "duplicate parameter `{id}`",
        ),
        (
            endpoint("method = \"GET\"\npath = \"/a b\""),
            "endpoints[0].path",
            "invalid segment `a b`",
        ),
        (
            endpoint("method = \"GET\"\npath = \"/a/x{id}\""),
            "endpoints[0].path",
            "invalid segment",
        ),
        (
            endpoint("method = \"GET\"\npath = \"/a/../b\""),
            "endpoints[0].path",
            "`.` or `..`",
        ),
        (
            endpoint(&format!("method = \"GET\"\npath = \"/{}\"", "a".repeat(300))),
            "endpoints[0].path",
            "at most 300",
        ),
        (
            endpoint(&format!("{ok_route}\nrole = \"superuser\"")),
            "endpoints[0].role",
            "unknown role `superuser`",
        ),
        (
            endpoint(&format!("{ok_route}\nrole = \"Member\"")),
            "endpoints[0].role",
            "unknown role",
        ),
        (
            endpoint(&format!("{ok_route}\nsummary = {}", quoted(&"s".repeat(201)))),
            "endpoints[0].summary",
            "at most 200",
        ),
        (
            endpoint(&format!("{ok_route}\ndescription = {}", quoted(&"d".repeat(4001)))),
            "endpoints[0].description",
            "at most 4000",
        ),
        (
            endpoint(&format!("{ok_route}\nbody_schema = \"not json\"")),
            "endpoints[0].body_schema",
            "is not valid JSON",
        ),
        (
            endpoint(&format!("{ok_route}\nbody_schema = \"[1]\"")),
            "endpoints[0].body_schema",
            "must be a JSON object",
        ),
        (
            endpoint(&format!("{ok_route}\nbody_schema = '{{\"type\": 5}}'")),
            "endpoints[0].body_schema",
            "is not a valid JSON Schema",
        ),
        (
            endpoint(&format!("{ok_route}\nbody_schema = {{ type = \"object\" }}")),
            "endpoints[0].body_schema",
            "expected a string, found a table",
        ),
        (
            endpoint(&format!("{ok_route}\nroles = \"admin\"")),
            "endpoints[0].roles",
            "did you mean `role`?",
        ),
        (
            doc(
                "[[endpoints]]\nmethod = \"GET\"\npath = \"/a/{id}\"\n[[endpoints]]\nmethod = \"GET\"\npath = \"/a/{key}\"",
            ),
            "endpoints[1].path",
            "conflicts with endpoints[0]",
        ),
        (
            doc(&(0..201)
                .map(|i| format!("[[endpoints]]\nmethod = \"GET\"\npath = \"/e{i}\"\n"))
                .collect::<String>()),
            "endpoints",
            "at most 200 entries",
        ),
        // [limits]
        (top("limits = 3"), "limits", "expected a table, found an integer"),
        (
            doc("[limits]\ntimeout_ms = 0"),
            "limits.timeout_ms",
            "between 1 and 600000",
        ),
        (
            doc("[limits]\ntimeout_ms = 600001"),
            "limits.timeout_ms",
            "between 1 and 600000",
        ),
        (
            doc("[limits]\nmemory_mib = 5000"),
            "limits.memory_mib",
            "between 1 and 4096",
        ),
        (
            doc("[limits]\nmemory_mib = -1"),
            "limits.memory_mib",
            "between 1 and 4096",
        ),
        (
            doc("[limits]\ntimeout_ms = 1.5"),
            "limits.timeout_ms",
            "expected an integer, found a float",
        ),
        (doc("[limits]\ncpu = 2"), "limits.cpu", "unknown key `cpu`"),
        // [dependencies]
        (
            doc("[dependencies]\nBad = \"^1\""),
            "dependencies.Bad",
            "invalid plugin id",
        ),
        (
            doc("[dependencies]\n\"a.b\" = \"^1\""),
            "dependencies.\"a.b\"",
            "invalid plugin id",
        ),
        (
            doc("[dependencies]\ndemo = \"^1\""),
            "dependencies.demo",
            "cannot depend on itself",
        ),
        (
            doc("[dependencies]\naccounts-core = \"nope\""),
            "dependencies.accounts-core",
            "invalid version requirement",
        ),
        (
            doc("[dependencies]\naccounts-core = 1"),
            "dependencies.accounts-core",
            "expected a string, found an integer",
        ),
        // [[rollups]]
        (
            rollup("name = \"Bad\"\nobject = \"opportunity\""),
            "rollups[0].name",
            "invalid roll-up name",
        ),
        (
            rollup("object = \"opportunity\""),
            "rollups[0].name",
            "missing required key `name`",
        ),
        (
            rollup("name = \"p\"\nobject = \"lead\""),
            "rollups[0].object",
            "not declared in [capabilities.records]",
        ),
        (
            rollup("name = \"p\"\nobject = \"opportunity\"\ndimensions = [\"stage:week\"]"),
            "rollups[0].dimensions[0]",
            "unknown time bucket `week`",
        ),
        (
            rollup("name = \"p\"\nobject = \"opportunity\"\ndimensions = [\"region\"]"),
            "rollups[0].dimensions[0]",
            "not among the fields the plugin declares",
        ),
        (
            rollup("name = \"p\"\nobject = \"opportunity\"\ndimensions = [\"stage\", \"stage:month\"]"),
            "rollups[0].dimensions[1]",
            "duplicate entry",
        ),
        (
            rollup("name = \"p\"\nobject = \"opportunity\"\ndimensions = [\"a\", \"b\", \"c\", \"d\", \"stage\"]"),
            "rollups[0].dimensions",
            "at most 4 entries",
        ),
        (
            rollup("name = \"p\"\nobject = \"opportunity\"\nsums = [\"owner_id\"]"),
            "rollups[0].sums[0]",
            "not among the fields the plugin declares",
        ),
        (
            rollup("name = \"p\"\nobject = \"opportunity\"\nfilter = \"x\""),
            "rollups[0].filter",
            "unknown key `filter`",
        ),
        (
            rollup("name = \"p\"\nobject = \"opportunity\"\n\n[[rollups]]\nname = \"p\"\nobject = \"opportunity\""),
            "rollups[1].name",
            "duplicate roll-up name `p`",
        ),
        (top("rollups = 3"), "rollups", "expected an array of tables"),
    ]
}

/// A valid manifest declaring `opportunity` (fields stage, amount, close_date, a, b,
/// c, d) with one `[[rollups]]` whose body is `body`.
fn rollup(body: &str) -> String {
    doc(&format!(
        "[capabilities.records.opportunity]\naccess = \"read\"\n\
         fields = [\"stage\", \"amount\", \"close_date\", \"a\", \"b\", \"c\", \"d\"]\n\n[[rollups]]\n{body}"
    ))
}

#[test]
fn every_rule_has_a_failing_example() {
    let rows = rows();
    assert!(rows.len() >= 40, "only {} rows", rows.len());
    let mut failures = Vec::new();
    for (toml, path, fragment) in &rows {
        match Manifest::parse(toml) {
            Ok(_) => failures.push(format!("{path}: accepted, expected `{fragment}`")),
            Err(err) => {
                let hit = err
                    .problems
                    .iter()
                    .any(|p| p.path == *path && p.message.contains(fragment));
                if !hit || err.problems.len() != 1 {
                    failures.push(format!(
                        "{path}: expected one problem containing `{fragment}`, got:\n  {}",
                        err.to_string().replace('\n', "\n  ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rows_start_from_a_valid_manifest() {
    // The helpers must produce valid manifests when nothing is broken, or a row could
    // pass for the wrong reason.
    assert!(Manifest::parse(&doc("")).is_ok());
    let ok = endpoint("method = \"GET\"\npath = \"/a/{id}\"\nrole = \"owner\"");
    assert!(Manifest::parse(&ok).is_ok());
    let ok = doc("[capabilities.records.account]\naccess = \"read\"");
    assert!(Manifest::parse(&ok).is_ok());
    let ok = rollup(
        "name = \"p\"\nobject = \"opportunity\"\ndimensions = [\"stage\", \"close_date:month\", \"owner_id\"]\nsums = [\"amount\"]",
    );
    assert!(Manifest::parse(&ok).is_ok(), "{:?}", Manifest::parse(&ok));
}

#[test]
fn from_bytes_rejects_oversize_and_non_utf8() {
    let err = Manifest::from_bytes(&[b'a', 0xff, 0xfe]).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].path, "");
    assert!(err.problems[0].message.contains("not valid UTF-8"));
    // Document-level problems have no path, so Display is the bare message.
    assert_eq!(err.to_string(), err.problems[0].message);

    let mut big = doc("").into_bytes();
    big.extend(std::iter::repeat_n(b'#', Manifest::MAX_BYTES));
    let err = Manifest::from_bytes(&big).unwrap_err();
    assert!(err.problems[0].message.contains("256 KiB"), "{err}");
    let text = String::from_utf8(big).unwrap();
    assert!(Manifest::parse(&text).is_err());

    assert!(Manifest::from_bytes(doc("").as_bytes()).is_ok());
}
