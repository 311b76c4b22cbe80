//! The `records` and `audit` capabilities from inside a real component: scoped by the
//! manifest (objects, fields, read vs read-write) and by the caller's visibility,
//! confined to the caller's tenant, audited as the plugin.

use plinth_core::manifest::Role;
use plinth_runtime::engine::Runtime;
use plinth_runtime::sandbox::{Sandbox, SandboxPlugin, request};
use plinth_tests::{TestServer, guest, test_runtime_config};
use serde_json::{Value, json};

struct Probe {
    sandbox: Sandbox,
    plugin: SandboxPlugin,
    role: Role,
}

impl Probe {
    async fn new(s: &TestServer, tenant: &str, user: Option<&str>, role: Role) -> Probe {
        let sandbox = Sandbox::with(
            Runtime::new(test_runtime_config()).unwrap(),
            s.db().clone(),
            tenant,
            user,
        );
        let (manifest, component) = guest("crm-probe");
        let plugin = sandbox.load(manifest, component).await.unwrap();
        Probe { sandbox, plugin, role }
    }

    /// The same plugin called for another user (with their role), or for no user.
    fn as_user(&self, tenant: &str, user: Option<&str>, role: Role) -> Probe {
        Probe {
            sandbox: self.sandbox.acting_as(tenant, user),
            plugin: self.plugin.clone(),
            role,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let out = self
            .sandbox
            .request(&self.plugin, self.role, request(method, path, vec![], body))
            .await
            .unwrap();
        let res = out.result.expect("the call itself succeeds");
        (res.status, serde_json::from_slice(&res.body).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn records_through_a_plugin_are_scoped_audited_and_isolated() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let alice = s.user(&t, "Alice", "member").await;
    let bob = s.user(&t, "Bob", "member").await;
    let probe = Probe::new(&s, &t.id, Some(&alice.id), Role::Member).await;

    // Alice creates through the plugin: owned by her, audited as the plugin for her.
    let (status, body) = probe
        .call("POST", "/accounts", Some(json!({ "name": "Alpha", "country": "de" })))
        .await;
    assert_eq!(status, 201, "{body}");
    let alpha = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["fields"]["country"], "DE");
    let r = t.get(&format!("/api/v1/records/account/{alpha}")).await.expect(200);
    assert_eq!(r.body["owner_id"], alice.id.as_str());
    let events: Vec<(Value, Value, Value)> = t
        .audit_events(&[("entity_id", &alpha)])
        .await
        .iter()
        .map(|e| {
            (
                e["action"].clone(),
                e["actor"]["user"].clone(),
                e["actor"]["plugin"].clone(),
            )
        })
        .collect();
    let by_the_plugin_for_alice = |action: &str| (json!(action), json!(alice.id), json!("crm-probe@0.1.0"));
    assert_eq!(
        events,
        [
            by_the_plugin_for_alice("record.create"),
            by_the_plugin_for_alice("plugin.crm-probe.account.created"),
        ]
    );

    // Undeclared fields never leave the host, even when the record has them.
    let r = t
        .post(
            "/api/v1/records/account",
            json!({ "fields": { "name": "Beta", "website": "https://beta.test", "country": "AT" } }),
        )
        .await
        .expect(201);
    let beta = r.body["id"].as_str().unwrap().to_string();
    let system = probe.as_user(&t.id, None, Role::Member);
    let (_, got) = system.call("GET", &format!("/accounts/{beta}"), None).await;
    assert_eq!(got["fields"], json!({ "name": "Beta", "country": "AT" }));

    // Visibility: Bob sees neither (not his, not shared); a system call sees both.
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["fields"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, list) = probe
        .as_user(&t.id, Some(&bob.id), Role::Member)
        .call("GET", "/accounts", None)
        .await;
    assert!(names(&list).is_empty(), "{list}");
    let (_, list) = probe.call("GET", "/accounts", None).await;
    assert_eq!(names(&list), ["Alpha"]);
    let (_, list) = system.call("GET", "/accounts", None).await;
    assert_eq!(names(&list), ["Alpha", "Beta"]);
    let (_, list) = system.call("GET", "/accounts?country=AT", None).await;
    assert_eq!(names(&list), ["Beta"]);
    let (status, _) = probe
        .as_user(&t.id, Some(&bob.id), Role::Member)
        .call("GET", &format!("/accounts/{alpha}"), None)
        .await;
    assert_eq!(status, 404);

    // Optimistic concurrency through the plugin.
    let (status, body) = probe
        .call(
            "PATCH",
            &format!("/accounts/{alpha}?version=1"),
            Some(json!({ "city": "Berlin" })),
        )
        .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)), "{body}");
    let (status, _) = probe
        .call(
            "PATCH",
            &format!("/accounts/{alpha}?version=1"),
            Some(json!({ "city": "Bonn" })),
        )
        .await;
    assert_eq!(status, 409);

    // Every way past the manifest is `denied`.
    for what in [
        "undeclared-field",
        "write-read-only-object",
        "undeclared-object",
        "filter-undeclared-field",
        "aggregate-undeclared-field",
    ] {
        let (_, body) = probe.call("POST", &format!("/try/{what}"), None).await;
        assert_eq!(
            (body["allowed"].as_bool(), body["kind"].as_str()),
            (Some(false), Some("denied")),
            "{what}: {body}"
        );
    }

    // Another tenant's plugin call cannot reach this tenant's records by id.
    let other = s.tenant("Other").await;
    let elsewhere = probe.as_user(&other.id, Some(&other.owner_id), Role::Owner);
    let (status, _) = elsewhere.call("GET", &format!("/accounts/{alpha}"), None).await;
    assert_eq!(status, 404);
    let (_, list) = elsewhere.call("GET", "/accounts", None).await;
    assert!(names(&list).is_empty());
    s.stop().await;
}

#[tokio::test]
async fn plugin_aggregates_match_the_rest_api() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let items: Vec<Value> = (0..30)
        .map(|i| {
            let stage = ["proposal", "negotiation", "closed_won"][i % 3];
            json!({ "fields": { "name": format!("D{i}"), "stage": stage,
                                "close_date": "2027-01-01", "amount": { "value": i * 100, "currency": "EUR" } } })
        })
        .collect();
    t.post("/api/v1/records/opportunity/bulk", json!({ "create": items }))
        .await
        .expect(201);
    let probe = Probe::new(&s, &t.id, Some(&t.owner_id), Role::Owner).await;
    let (status, rows) = probe.call("GET", "/pipeline", None).await;
    assert_eq!(status, 200, "{rows}");
    let req = json!({ "group_by": ["stage"], "measures": [{"fn": "count"}, {"fn": "sum", "field": "amount"}] });
    let rest = t
        .post("/api/v1/records/opportunity/aggregate", req)
        .await
        .expect(200)
        .json();
    assert_eq!(rows, rest["rows"]);
    assert_eq!(rows.as_array().unwrap().len(), 3);
    s.stop().await;
}
