//! Who may read what: the compliance report, tenant isolation, and roles.

use plinth_core::audit::policy::evaluate_pending;

use super::*;

#[tokio::test]
async fn compliance_report_lists_activity_access_changes_and_grants() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let admin = user("admin1");
    append(
        &s,
        &t.id,
        &admin,
        "user.update",
        ("user", "u2"),
        Some(json!({"role": "member", "name": "A"})),
        Some(json!({"role": "admin", "name": "A"})),
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "user.update",
        ("user", "u3"),
        Some(json!({"name": "B"})),
        Some(json!({"name": "C"})),
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "api_key.revoke",
        ("api_key", "k1"),
        Some(json!({"revoked_at": null})),
        Some(json!({"revoked_at": "now"})),
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "group_member.add",
        ("group_member", "g1:u2"),
        None,
        Some(json!({"group_id": "g1", "user_id": "u2"})),
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "record_share.remove",
        ("record_share", "r1:g1"),
        Some(json!({"record_id": "r1"})),
        None,
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "group.move",
        ("group", "g2"),
        Some(json!({"parent_id": "g1"})),
        Some(json!({"parent_id": "g3"})),
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "group.update",
        ("group", "g2"),
        Some(json!({"name": "A"})),
        Some(json!({"name": "B"})),
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "plugin.install",
        ("plugin", "pivot"),
        None,
        Some(json!({"version": "1.0.0", "grants": ["storage", "records:opportunity:read"]})),
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "plugin.grant",
        ("plugin", "pivot"),
        Some(json!({"grants": ["storage", "records:opportunity:read"]})),
        Some(json!({"grants": ["storage", "http:https://x.example"]})),
    )
    .await;
    append(
        &s,
        &t.id,
        &admin,
        "plugin.enable",
        ("plugin", "pivot"),
        None,
        Some(json!({"enabled": true})),
    )
    .await;
    for i in 0..3 {
        append(
            &s,
            &t.id,
            &plugin("pivot@1.0.0"),
            "record.update",
            ("record:opportunity", &format!("o{i}")),
            Some(json!({"a": 1})),
            Some(json!({"a": 2})),
        )
        .await;
    }

    let r = get_ok(&s, &t, &format!("/api/v1/audit/compliance?{ALL_TIME}")).await;
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
    let empty = get_ok(
        &s,
        &t,
        "/api/v1/audit/compliance?from=2001-01-01T00:00:00Z&to=2001-02-01T00:00:00Z",
    )
    .await;
    assert_eq!(empty["activity"], json!([]));

    // CSV: one table with a section column.
    let r = s
        .call(
            "GET",
            &format!("/api/v1/audit/compliance?{ALL_TIME}&format=csv"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
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
        let r = s
            .call("GET", &format!("/api/v1/audit/compliance?{q}"), Some(&t.key), None)
            .await;
        assert_eq!(r.status, 400, "{q}");
    }
    s.stop().await;
}

#[tokio::test]
async fn tenants_see_nothing_of_each_other() {
    let s = TestServer::start().await;
    let a = s.tenant("Alpha").await;
    let b = s.tenant("Beta").await;
    append(
        &s,
        &a.id,
        &user("ua"),
        "record.create",
        ("record:opportunity", "secret"),
        None,
        Some(json!({"amount": 1})),
    )
    .await;
    let policy = create_policy(
        &s,
        &a,
        json!({"name": "p", "kind": "field-change", "object": "opportunity", "field": "amount"}),
    )
    .await;
    append(
        &s,
        &a.id,
        &user("ua"),
        "record.update",
        ("record:opportunity", "secret"),
        Some(json!({"amount": 1})),
        Some(json!({"amount": 9})),
    )
    .await;
    evaluate_pending(s.db()).await.expect("evaluate");
    let alert = alerts(&s, &a, "").await.first().cloned().expect("A has an alert");

    let events = all_pages(&s, &b, "order=asc", 500).await;
    assert_eq!(events.len(), 3, "B sees only its own creation");
    assert!(
        events
            .iter()
            .all(|e| e["entity_id"] != "secret" && e["entity_id"] != a.id.as_str())
    );
    assert!(all_pages(&s, &b, "entity_id=secret", 500).await.is_empty());
    let v = verify(&s, &b).await;
    assert_eq!((v["ok"].clone(), v["events"].clone()), (json!(true), json!(3)));
    let r = s
        .call("GET", "/api/v1/audit/export?format=jsonl", Some(&b.key), None)
        .await;
    assert_eq!(r.text.lines().count(), 3);
    assert!(!r.text.contains("secret"));

    let pid = policy["id"].as_str().unwrap_or("");
    let ppath = format!("/api/v1/audit/policies/{pid}");
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"enabled": false}))),
        ("DELETE", None),
    ] {
        let r = s.call(method, &ppath, Some(&b.key), body).await;
        assert_eq!(r.status, 404, "{method} {ppath}: {}", r.text);
    }
    assert_eq!(get_ok(&s, &b, "/api/v1/audit/policies").await["data"], json!([]));
    assert!(alerts(&s, &b, "").await.is_empty());
    assert!(alerts(&s, &b, &format!("policy={pid}")).await.is_empty());
    let r = s
        .call(
            "POST",
            &format!(
                "/api/v1/audit/alerts/{}/acknowledge",
                alert["id"].as_str().unwrap_or("")
            ),
            Some(&b.key),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call("GET", "/api/v1/records/opportunity/secret/history", Some(&b.key), None)
        .await;
    assert_eq!(r.status, 404);
    let c = get_ok(&s, &b, &format!("/api/v1/audit/compliance?{ALL_TIME}")).await;
    assert!(
        !c.to_string().contains("secret") && !c.to_string().contains("\"ua\""),
        "{c}"
    );

    // Nothing B did changed A: the policy is still enabled, the alert unacknowledged.
    assert_eq!(get_ok(&s, &a, &ppath).await["enabled"], true);
    assert_eq!(alerts(&s, &a, "acknowledged=false").await.len(), 1);
    assert_eq!(verify(&s, &a).await["ok"], true);
    s.stop().await;
}

#[tokio::test]
async fn only_admins_and_owners_read_the_ledger() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    append(
        &s,
        &t.id,
        &user("u"),
        "record.create",
        ("record:account", "a1"),
        None,
        Some(json!({"name": "x"})),
    )
    .await;
    let (_, admin) = key_with_role(&s, &t.id, "admin").await;
    let (_, manager) = key_with_role(&s, &t.id, "manager").await;
    let (member_id, member) = key_with_role(&s, &t.id, "member").await;
    let (_, read_only) = key_with_role(&s, &t.id, "read-only").await;
    // The record the history below is about: the member owns it, so may see it.
    s.sql(
        "INSERT INTO records (tenant_id, id, object, owner_id, data, version, created_at, updated_at) \
         VALUES ($1, 'a1', 'account', $2, '{\"name\":\"x\"}', 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        &[&t.id, &member_id],
    )
    .await;
    let endpoints = [
        ("GET", "/api/v1/audit/events".to_string(), None),
        ("GET", "/api/v1/audit/verify".into(), None),
        ("GET", "/api/v1/audit/export?format=csv".into(), None),
        ("GET", "/api/v1/audit/policies".into(), None),
        (
            "POST",
            "/api/v1/audit/policies".into(),
            Some(json!({"name": "x", "kind": "capability-grant", "capability": "storage"})),
        ),
        ("GET", "/api/v1/audit/policies/01ARZ3NDEKTSV4RRFFQ69G5FAV".into(), None),
        (
            "PATCH",
            "/api/v1/audit/policies/01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            Some(json!({"name": "y"})),
        ),
        (
            "DELETE",
            "/api/v1/audit/policies/01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            None,
        ),
        ("GET", "/api/v1/audit/alerts".into(), None),
        (
            "POST",
            "/api/v1/audit/alerts/01ARZ3NDEKTSV4RRFFQ69G5FAV/acknowledge".into(),
            None,
        ),
        ("GET", format!("/api/v1/audit/compliance?{ALL_TIME}"), None),
    ];
    for key in [&manager, &member, &read_only] {
        for (method, path, body) in &endpoints {
            let r = s.call(method, path, Some(key), body.clone()).await;
            assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
            assert_eq!(r.body["type"], "https://plinth.dev/problems/forbidden");
        }
    }
    for (method, path, _) in &endpoints {
        let r = s.call(method, path, None, None).await;
        assert_eq!(r.status, 401, "{method} {path}");
    }
    let r = s.call("GET", "/api/v1/audit/events", Some(&admin), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(4));
    // Record history is for members and up (visibility is the records module's check).
    let r = s
        .call("GET", "/api/v1/records/account/a1/history", Some(&member), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s
        .call("GET", "/api/v1/records/account/a1/history", Some(&read_only), None)
        .await;
    assert_eq!(r.status, 403);
    s.stop().await;
}
