//! The `sharing` capability from inside a real component installed from the
//! marketplace on a real server: plugin-managed group trees, memberships and shares,
//! enforced by the host for every REST client (recursive through ancestors); confined
//! to the plugin's own groups, the manifest's objects and the caller's tenant; audited
//! as the plugin.

use plinth_tests::{Call, Client, Guest, TestServer};
use serde_json::{Value, json};

const PROBE: &str = "sharing-probe";

/// A server whose marketplace holds the sharing probe.
async fn server_with_probe() -> TestServer {
    let s = TestServer::start().await;
    let publisher = s.publisher("plinth-tests").await;
    publisher.publish(&s, &Guest::named(PROBE)).await.expect(201);
    s
}

/// Operation `name` of the probe, called as `c` with `args`.
fn op(c: &Client, name: &str, args: Value) -> Call {
    c.post(&format!("/api/v1/plugins/{PROBE}/op/{name}"), args)
}

/// Like [`op`], but the call must succeed; its answer.
async fn ok(c: &Client, name: &str, args: Value) -> Value {
    op(c, name, args).await.expect(200).json()
}

/// The id of an object the probe or the API returned.
fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// Create an account in Germany as `c`; its id.
async fn account(c: &Client, name: &str) -> String {
    let body = json!({ "fields": { "name": name, "country": "DE" } });
    id(&c.post("/api/v1/records/account", body).await.expect(201).json())
}

/// Account names `c` sees through the core REST list.
async fn visible(c: &Client) -> Vec<String> {
    let page = c
        .get("/api/v1/records/account?sort=name&limit=100")
        .await
        .expect(200)
        .json();
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["fields"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn plugin_groups_drive_recursive_visibility_for_every_client() {
    let s = server_with_probe().await;
    let t = s.tenant("Acme").await;
    s.install(&t, PROBE, json!("all")).await.expect(201);
    let rep = s.user(&t, "Rep", "member").await;
    let boss = s.user(&t, "Boss", "manager").await;
    let other = s.user(&t, "Other", "member").await;

    // Accounts owned by the tenant owner: nobody else sees them yet.
    let alpha = account(&t, "Alpha").await;
    let beta = account(&t, "Beta").await;
    assert!(visible(&rep).await.is_empty());

    // EMEA > DACH > Berlin, built by the plugin (as the tenant owner).
    let emea = id(&ok(&t, "create", json!({ "name": "EMEA" })).await);
    let dach = id(&ok(&t, "create", json!({ "name": "DACH", "parent": emea })).await);
    let berlin = ok(&t, "create", json!({ "name": "Berlin", "parent": dach })).await;
    assert_eq!(berlin["depth"], 2);
    let berlin = id(&berlin);
    ok(
        &t,
        "add-member",
        json!({ "group": berlin, "user": rep.id, "role": "member" }),
    )
    .await;
    // Changing a role is one audited update, not a second membership.
    for role in ["owner", "forecast-manager"] {
        ok(
            &t,
            "add-member",
            json!({ "group": emea, "user": boss.id, "role": role }),
        )
        .await;
        let members = ok(&t, "members", json!({ "group": emea })).await;
        assert_eq!(members, json!([{ "user": boss.id, "role": role }]));
    }

    // Alpha shared with Berlin: the rep sees it, and so does the EMEA manager above.
    let share = json!({ "object": "account", "record": alpha, "group": berlin, "access": "read" });
    ok(&t, "add-shares", json!({ "shares": [share] })).await;
    assert_eq!(visible(&rep).await, ["Alpha"]);
    assert_eq!(visible(&boss).await, ["Alpha"]);
    assert!(visible(&other).await.is_empty());
    rep.get(&format!("/api/v1/records/account/{beta}")).await.expect(404);

    // A read share does not let the rep write; upgrading it to read-write does.
    let rename = || {
        rep.patch(
            &format!("/api/v1/records/account/{alpha}"),
            json!({ "fields": { "name": "Alpha GmbH" } }),
        )
    };
    rename().await.expect(403);
    let rw = json!({ "object": "account", "record": alpha, "group": berlin, "access": "read-write" });
    ok(&t, "add-shares", json!({ "shares": [rw] })).await;
    rename().await.expect(200);

    // Aggregates honour the same visibility.
    let r = boss
        .post(
            "/api/v1/records/account/aggregate",
            json!({ "measures": [{ "fn": "count" }] }),
        )
        .await
        .expect(200);
    assert_eq!(r.body["rows"][0]["count"], 1, "{}", r.text);

    // Move Berlin out from under EMEA: the EMEA manager loses Alpha, the rep keeps it.
    let moved = ok(&t, "move", json!({ "id": berlin })).await;
    assert_eq!(
        (moved["parent_id"].clone(), moved["depth"].clone()),
        (Value::Null, json!(0))
    );
    assert!(visible(&boss).await.is_empty());
    assert_eq!(visible(&rep).await, ["Alpha GmbH"]);
    ok(&t, "move", json!({ "id": berlin, "parent": dach })).await;
    assert_eq!(visible(&boss).await, ["Alpha GmbH"]);

    // Under its own descendant: refused with the path.
    let r = op(&t, "move", json!({ "id": emea, "parent": berlin }))
        .await
        .expect(409);
    assert!(r.body["detail"].as_str().unwrap().contains("cycle"), "{}", r.text);

    // Traversal: ancestors root first with depths; descendants paged with a cursor.
    let path = ok(&t, "ancestors", json!({ "id": berlin })).await;
    let names: Vec<(&str, u64)> = path
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["depth"].as_u64().unwrap()))
        .collect();
    assert_eq!(names, [("EMEA", 0), ("DACH", 1), ("Berlin", 2)]);
    let first = ok(&t, "descendants", json!({ "id": emea, "limit": 1 })).await;
    assert_eq!(first["groups"][0]["name"], "DACH");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = ok(&t, "descendants", json!({ "id": emea, "limit": 1, "cursor": cursor })).await;
    assert_eq!(second["groups"][0]["name"], "Berlin");
    assert_eq!(second["groups"][0]["depth"], 2);

    // Roots are the plugin's own: a REST-managed root group is not among them, and
    // the plugin cannot touch it or share with it.
    let finance = id(&t
        .post("/api/v1/groups", json!({ "name": "Finance" }))
        .await
        .expect(201)
        .json());
    let roots = ok(&t, "children", json!({})).await;
    let root_names: Vec<&str> = roots["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(root_names, ["EMEA"]);
    let to_finance = json!({ "object": "account", "record": beta, "group": finance });
    for (name, args) in [
        ("get", json!({ "id": finance })),
        ("rename", json!({ "id": finance, "name": "X" })),
        ("add-shares", json!({ "shares": [to_finance] })),
    ] {
        op(&t, name, args).await.expect(404);
    }
    // …and REST cannot rearrange the plugin's tree.
    t.patch(&format!("/api/v1/groups/{berlin}"), json!({ "name": "B" }))
        .await
        .expect(409);

    // Beyond the manifest: an undeclared object, a read-write share of a read-only
    // object; atomicity: one bad share in a batch changes nothing.
    let contact = id(&t
        .post("/api/v1/records/contact", json!({ "fields": { "last_name": "Doe" } }))
        .await
        .expect(201)
        .json());
    let deal = json!({ "fields": { "name": "Deal", "stage": "prospecting", "close_date": "2027-01-31", "account_id": alpha } });
    let deal = id(&t.post("/api/v1/records/opportunity", deal).await.expect(201).json());
    let good = json!({ "object": "account", "record": beta, "group": berlin });
    let missing = json!({ "object": "account", "record": "01JNOTAREALRECORD000000000", "group": berlin });
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({ "object": "account", "record": beta, "group": berlin }))
        .collect();
    for (shares, status) in [
        (
            json!([{ "object": "contact", "record": contact, "group": berlin }]),
            403,
        ),
        (
            json!([{ "object": "opportunity", "record": deal, "group": berlin, "access": "read-write" }]),
            403,
        ),
        (json!([good, missing]), 404),
        (json!(too_many), 429),
    ] {
        op(&t, "add-shares", json!({ "shares": shares })).await.expect(status);
        assert_eq!(visible(&rep).await, ["Alpha GmbH"], "{status}: nothing shared");
    }

    // A member calling the plugin cannot share what they cannot see.
    let hidden = json!({ "object": "account", "record": beta, "group": berlin });
    op(&rep, "add-shares", json!({ "shares": [hidden] })).await.expect(404);

    // Group listing of shares; a group with shares cannot be deleted; removal counts.
    let shares = ok(&t, "group-shares", json!({ "group": berlin })).await;
    assert_eq!(
        shares["shares"],
        json!([{ "object": "account", "record": alpha, "group": berlin, "access": "read-write" }])
    );
    op(&t, "delete", json!({ "id": berlin })).await.expect(409);
    let gone = json!({ "object": "account", "record": alpha, "group": berlin });
    let n = ok(&t, "remove-shares", json!({ "shares": [gone.clone(), gone] })).await;
    assert_eq!(n, 1);
    assert!(visible(&rep).await.is_empty());
    ok(&t, "delete", json!({ "id": berlin })).await;
    op(&t, "get", json!({ "id": berlin })).await.expect(404);

    // Every change is in the audit ledger as the plugin's.
    let events = t.audit_events(&[("plugin", "sharing-probe@0.1.0")]).await;
    let plugin_actions: Vec<&str> = events
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("record_share.") || a.starts_with("group"))
        .collect();
    assert_eq!(
        plugin_actions,
        [
            "group.create",
            "group.create",
            "group.create",
            "group_member.add",
            "group_member.add",
            "group_member.update",
            "record_share.add",
            "record_share.update",
            "group.move",
            "group.move",
            "record_share.remove",
            "group.delete",
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn sharing_is_confined_to_the_grant_and_the_tenant() {
    let s = server_with_probe().await;
    let a = s.tenant("Acme").await;
    let b = s.tenant("Globex").await;
    s.install(&a, PROBE, json!("all")).await.expect(201);
    // Globex grants everything but `sharing`: each call is denied, not trapped.
    let without_sharing = json!([
        "records:account:read",
        "records:account:write",
        "records:opportunity:read"
    ]);
    s.install(&b, PROBE, without_sharing).await.expect(201);
    let r = op(&b, "create", json!({ "name": "X" })).await.expect(403);
    assert!(
        r.body["detail"].as_str().unwrap_or_default().contains("sharing"),
        "{}",
        r.text
    );

    // Acme's groups and records are invisible to Globex's installation…
    let g = id(&ok(&a, "create", json!({ "name": "EMEA" })).await);
    // (Globex now grants `sharing` too: reinstalled with every grant.)
    b.delete(&format!("/api/v1/installations/{PROBE}?purge=true"))
        .await
        .expect(204);
    s.install(&b, PROBE, json!("all")).await.expect(201);
    op(&b, "get", json!({ "id": g })).await.expect(404);
    let roots = ok(&b, "children", json!({})).await;
    assert_eq!(roots["groups"], json!([]));
    let acme_account = account(&a, "Acme Corp").await;
    let mine = ok(&b, "create", json!({ "name": "Mine" })).await;
    let share = json!({ "object": "account", "record": acme_account, "group": mine["id"] });
    op(&b, "add-shares", json!({ "shares": [share.clone()] }))
        .await
        .expect(404);
    // …and Acme's plugin cannot use Globex's group.
    op(&a, "add-shares", json!({ "shares": [share] })).await.expect(404);
    s.stop().await;
}
