//! Who may read what: the compliance report, tenant isolation, and roles.

use plinth_core::audit::policy::evaluate_pending;

use super::*;

#[tokio::test]
async fn compliance_report_lists_activity_access_changes_and_grants() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    append_all(
        &s,
        &t.id,
        &user("admin1"),
        json!([
            ["user.update", "user", "u2", {"role": "member", "name": "A"}, {"role": "admin", "name": "A"}],
            ["user.update", "user", "u3", {"name": "B"}, {"name": "C"}],
            ["api_key.revoke", "api_key", "k1", {"revoked_at": null}, {"revoked_at": "now"}],
            ["group_member.add", "group_member", "g1:u2", null, {"group_id": "g1", "user_id": "u2"}],
            ["record_share.remove", "record_share", "r1:g1", {"record_id": "r1"}, null],
            ["group.move", "group", "g2", {"parent_id": "g1"}, {"parent_id": "g3"}],
            ["group.update", "group", "g2", {"name": "A"}, {"name": "B"}],
            ["plugin.install", "plugin", "pivot", null,
                {"version": "1.0.0", "grants": ["storage", "records:opportunity:read"]}],
            ["plugin.grant", "plugin", "pivot",
                {"grants": ["storage", "records:opportunity:read"]},
                {"grants": ["storage", "http:https://x.example"]}],
            ["plugin.enable", "plugin", "pivot", null, {"enabled": true}],
        ]),
    )
    .await;
    let by_pivot: Vec<Value> = (0..3)
        .map(|i| json!(["record.update", "record:opportunity", format!("o{i}"), {"a": 1}, {"a": 2}]))
        .collect();
    append_all(&s, &t.id, &plugin("pivot@1.0.0"), by_pivot.into()).await;

    let r = t
        .get(&format!("/api/v1/audit/compliance?{ALL_TIME}"))
        .await
        .expect(200)
        .json();
    let activity = r["activity"].as_array().expect("activity");
    let of = |u: Value, p: Value| {
        activity
            .iter()
            .find(|a| a["actor"]["user"] == u && a["actor"]["plugin"] == p)
            .cloned()
    };
    let admin_row = of(json!("admin1"), Value::Null).expect("admin activity");
    assert_eq!(admin_row["total"], 10);
    assert!(
        admin_row["changes"]
            .as_array()
            .is_some_and(|c| c.contains(&json!({"entity_type": "user", "action": "user.update", "count": 2})))
    );
    let plugin_row = of(Value::Null, json!("pivot@1.0.0")).expect("plugin activity");
    assert_eq!(
        plugin_row["changes"],
        json!([{"entity_type": "record:opportunity", "action": "record.update", "count": 3}])
    );
    let system = of(Value::Null, Value::Null).expect("tenant creation by the system");
    assert_eq!(system["total"], 3);

    // Access changes: the role change, key, membership, share, group move (not the
    // user name change or group rename) —
    // plus the owner's creation and key at tenant creation.
    let access: Vec<_> = r["access_changes"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap_or("").to_string(),
                c["entity_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = |a: &str, e: &str| (a.to_string(), e.to_string());
    assert_eq!(
        access,
        [
            expect("user.create", &t.owner_id),
            expect("api_key.create", access[1].1.as_str()),
            expect("user.update", "u2"),
            expect("api_key.revoke", "k1"),
            expect("group_member.add", "g1:u2"),
            expect("record_share.remove", "r1:g1"),
            expect("group.move", "g2"),
        ]
    );
    assert_eq!(r["access_changes"]["truncated"], false);
    let grants = r["plugin_grants"]["items"].as_array().expect("grants");
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(grants[1]["added"], json!(["http:https://x.example"]));
    assert_eq!(grants[1]["removed"], json!(["records:opportunity:read"]));
    assert_eq!(grants[0]["added"], json!(["storage", "records:opportunity:read"]));

    // A period before everything is empty.
    let empty = t
        .get("/api/v1/audit/compliance?from=2001-01-01T00:00:00Z&to=2001-02-01T00:00:00Z")
        .await
        .expect(200)
        .json();
    assert_eq!(empty["activity"], json!([]));

    // CSV: one table with a section column.
    let r = t
        .get(&format!("/api/v1/audit/compliance?{ALL_TIME}&format=csv"))
        .await
        .expect(200);
    assert!(r.header("content-disposition").unwrap_or("").starts_with("attachment"));
    let mut reader = csv::Reader::from_reader(r.text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|x| x.expect("row")).collect();
    let count = |section: &str| rows.iter().filter(|r| r.get(0) == Some(section)).count();
    assert_eq!(count("access_change"), 7);
    assert_eq!(count("plugin_grant"), 2);
    assert_eq!(
        count("activity"),
        activity
            .iter()
            .map(|a| a["changes"].as_array().map(Vec::len).unwrap_or(0))
            .sum::<usize>()
    );

    for q in [
        "from=2026-01-01T00:00:00Z",
        "from=x&to=y",
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        t.get(&format!("/api/v1/audit/compliance?{q}")).await.expect(400);
    }
    s.stop().await;
}

#[tokio::test]
async fn tenants_see_nothing_of_each_other() {
    let s = TestServer::start().await;
    let a = s.tenant("Alpha").await;
    let b = s.tenant("Beta").await;
    let secret = ("record:opportunity", "secret");
    append(
        &s,
        &a.id,
        &user("ua"),
        "record.create",
        secret,
        None,
        Some(json!({"amount": 1})),
    )
    .await;
    let policy = create_policy(
        &a,
        json!({"name": "p", "kind": "field-change", "object": "opportunity", "field": "amount"}),
    )
    .await;
    let (before, after) = (Some(json!({"amount": 1})), Some(json!({"amount": 9})));
    append(&s, &a.id, &user("ua"), "record.update", secret, before, after).await;
    evaluate_pending(s.db()).await.expect("evaluate");
    let alert = alerts(&a, "").await.first().cloned().expect("A has an alert");

    let events = all_pages(&b, "order=asc", 500).await;
    assert_eq!(events.len(), 3, "B sees only its own creation");
    assert!(
        events
            .iter()
            .all(|e| e["entity_id"] != "secret" && e["entity_id"] != a.id.as_str())
    );
    assert!(all_pages(&b, "entity_id=secret", 500).await.is_empty());
    let v = verify(&b).await;
    assert_eq!((v["ok"].clone(), v["events"].clone()), (json!(true), json!(3)));
    let r = b.get("/api/v1/audit/export?format=jsonl").await.expect(200);
    assert_eq!(r.text.lines().count(), 3);
    assert!(!r.text.contains("secret"));

    let pid = policy["id"].as_str().unwrap_or("");
    let ppath = format!("{POLICIES}/{pid}");
    for call in [
        b.get(&ppath),
        b.patch(&ppath, json!({"enabled": false})),
        b.delete(&ppath),
    ] {
        call.await.expect_problem(404, "not-found");
    }
    assert_eq!(b.get(POLICIES).await.expect(200).json()["data"], json!([]));
    assert!(alerts(&b, "").await.is_empty());
    assert!(alerts(&b, &format!("policy={pid}")).await.is_empty());
    let alert_id = alert["id"].as_str().unwrap_or("");
    b.request("POST", &format!("/api/v1/audit/alerts/{alert_id}/acknowledge"))
        .await
        .expect_problem(404, "not-found");
    b.get("/api/v1/records/opportunity/secret/history")
        .await
        .expect_problem(404, "not-found");
    let c = b
        .get(&format!("/api/v1/audit/compliance?{ALL_TIME}"))
        .await
        .expect(200)
        .json();
    assert!(
        !c.to_string().contains("secret") && !c.to_string().contains("\"ua\""),
        "{c}"
    );

    // Nothing B did changed A: the policy is still enabled, the alert unacknowledged.
    assert_eq!(a.get(&ppath).await.expect(200).json()["enabled"], true);
    assert_eq!(alerts(&a, "acknowledged=false").await.len(), 1);
    assert_eq!(verify(&a).await["ok"], true);
    s.stop().await;
}

#[tokio::test]
async fn only_admins_and_owners_read_the_ledger() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let a1 = ("record:account", "a1");
    append(
        &s,
        &t.id,
        &user("u"),
        "record.create",
        a1,
        None,
        Some(json!({"name": "x"})),
    )
    .await;
    let admin = s.user(&t, "Admin", "admin").await;
    let manager = s.user(&t, "Manager", "manager").await;
    let member = s.user(&t, "Member", "member").await;
    let read_only = s.user(&t, "Reader", "read-only").await;
    // The record the history below is about: the member owns it, so may see it. (By
    // SQL: its id must be `a1`, the entity of the event above.)
    s.sql(
        "INSERT INTO records (tenant_id, id, object, owner_id, data, version, created_at, updated_at) \
         VALUES ($1, 'a1', 'account', $2, '{\"name\":\"x\"}', 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        &[&t.id, &member.id],
    )
    .await;
    // Every audit endpoint, called as `c`.
    let endpoints = |c: &Client| {
        let (policy, alert) = (
            format!("{POLICIES}/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            "/api/v1/audit/alerts/01ARZ3NDEKTSV4RRFFQ69G5FAV/acknowledge",
        );
        [
            c.get("/api/v1/audit/events"),
            c.get("/api/v1/audit/verify"),
            c.get("/api/v1/audit/export?format=csv"),
            c.get(POLICIES),
            c.post(
                POLICIES,
                json!({"name": "x", "kind": "capability-grant", "capability": "storage"}),
            ),
            c.get(&policy),
            c.patch(&policy, json!({"name": "y"})),
            c.delete(&policy),
            c.get("/api/v1/audit/alerts"),
            c.request("POST", alert),
            c.get(&format!("/api/v1/audit/compliance?{ALL_TIME}")),
        ]
    };
    for below_admin in [&manager, &member, &read_only] {
        for call in endpoints(below_admin) {
            call.await.expect_problem(403, "forbidden");
        }
    }
    for call in endpoints(&s.anonymous()) {
        call.await.expect_problem(401, "unauthorized");
    }
    let r = admin.get("/api/v1/audit/events").await.expect(200);
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(4));
    // Record history is for members and up (visibility is the records module's check).
    let history = "/api/v1/records/account/a1/history";
    member.get(history).await.expect(200);
    read_only.get(history).await.expect(403);
    s.stop().await;
}
