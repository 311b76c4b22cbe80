//! Events, filters and pagination, verification against tampering, export
//! round-trips, record history and as-of reconstruction.

use super::*;

#[tokio::test]
async fn tenant_creation_is_three_chained_events_and_verifies() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let body = t.get("/api/v1/audit/events?order=asc").await.expect(200).json();
    let events = body["data"].as_array().expect("data");
    assert_eq!(events.len(), 3, "{body}");
    assert_eq!(body["next_cursor"], Value::Null);
    let actions: Vec<_> = events.iter().map(|e| e["action"].as_str().unwrap_or("")).collect();
    assert_eq!(actions, ["tenant.create", "user.create", "api_key.create"]);
    assert_eq!(seqs(events), [1, 2, 3]);
    assert_eq!(events[0]["entity_id"], t.id.as_str());
    assert_eq!(events[0]["after"]["name"], "Acme");
    assert_eq!(events[1]["entity_id"], t.owner_id.as_str());
    assert_eq!(events[1]["after"]["role"], "owner");
    assert_eq!(events[2]["after"]["user_id"], t.owner_id.as_str());
    for e in events {
        assert_eq!(e["before"], Value::Null, "creations have no before-state");
        assert!(e["after"].is_object());
        assert!(e["changed_fields"].as_array().is_some_and(|f| f.contains(&json!("id"))));
        assert_eq!(e["client"], "plinth");
    }
    assert_eq!(events[0]["prev_hash"], "0".repeat(64));
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
    assert_eq!(events[2]["prev_hash"], events[1]["hash"]);

    let v = verify(&t).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"], 3);
    assert_eq!(v["head"]["seq"], 3);
    assert_eq!(v["head"]["hash"], events[2]["hash"]);
    s.stop().await;
}

#[tokio::test]
async fn filters_and_pagination() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let (alice, bob) = (user("alice"), user("bob"));
    for i in 0..12 {
        let id = format!("opp{i}");
        let actor = if i % 3 == 0 { &bob } else { &alice };
        append(
            &s,
            &t.id,
            actor,
            "record.create",
            ("record:opportunity", &id),
            None,
            Some(json!({"amount": i, "stage": "new"})),
        )
        .await;
        append(
            &s,
            &t.id,
            actor,
            "record.update",
            ("record:opportunity", &id),
            Some(json!({"amount": i, "stage": "new"})),
            Some(json!({"amount": i, "stage": if i % 2 == 0 { "won" } else { "new" }, "note": "x"})),
        )
        .await;
    }
    append(
        &s,
        &t.id,
        &plugin("terr@1.2.0"),
        "group.create",
        ("group", "g1"),
        None,
        Some(json!({"name": "EMEA"})),
    )
    .await;
    let total = 3 + 24 + 1;

    // Pagination in both directions covers every event exactly once, in order.
    let desc = all_pages(&t, "order=desc", 5).await;
    assert_eq!(seqs(&desc), (1..=total).rev().collect::<Vec<i64>>());
    let asc = all_pages(&t, "order=asc", 7).await;
    assert_eq!(seqs(&asc), (1..=total).collect::<Vec<i64>>());
    let default = t.get("/api/v1/audit/events").await.expect(200).json();
    assert_eq!(default["data"][0]["seq"], total, "newest first by default");

    let count = |q: &'static str| all_pages(&t, q, 500);
    let by_bob = count("actor=bob").await;
    assert_eq!(by_bob.len(), 8);
    assert!(by_bob.iter().all(|e| e["actor"]["user"] == "bob"));
    assert_eq!(count("key=key-of-alice").await.len(), 16);
    let by_plugin = count("plugin=terr%401.2.0").await;
    assert_eq!(seqs(&by_plugin), [total]);
    assert_eq!(count("entity_type=record%3Aopportunity").await.len(), 24);
    let one = count("entity_type=record%3Aopportunity&entity_id=opp4").await;
    assert_eq!(
        one.iter()
            .map(|e| e["action"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["record.update", "record.create"]
    );
    assert_eq!(count("action=record.update").await.len(), 12);
    // `stage` changed only on even opportunities' updates; `note` on every update.
    assert_eq!(count("changed_field=stage&action=record.update").await.len(), 6);
    assert_eq!(count("changed_field=note").await.len(), 12);
    assert_eq!(count("changed_field=not").await.len(), 0, "whole names only");
    assert_eq!(count("changed_field=Note").await.len(), 0, "case-sensitive");

    // Time range: from is inclusive, to exclusive.
    let at = asc[10]["occurred_at"].as_str().expect("time").to_string();
    let after = t
        .get(&format!("/api/v1/audit/events?from={at}&order=asc&limit=500"))
        .await
        .expect(200)
        .json();
    assert!(
        after["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|e| e["occurred_at"].as_str() >= Some(at.as_str())))
    );
    assert!(seqs(after["data"].as_array().expect("data")).contains(&11));
    let before = t
        .get(&format!("/api/v1/audit/events?to={at}&limit=500"))
        .await
        .expect(200)
        .json();
    assert!(!seqs(before["data"].as_array().expect("data")).contains(&11));
    assert_eq!(
        before["data"].as_array().map(Vec::len).unwrap_or(0) + after["data"].as_array().map(Vec::len).unwrap_or(0),
        total as usize
    );

    // Bad parameters are 400 problems naming each one.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("from=yesterday", "from"),
        ("order=sideways", "order"),
        ("cursor=garbage", "cursor"),
        ("colour=red", "colour"),
        ("actor=a&actor=b", "actor"),
        ("actor=", "actor"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ] {
        let r = t
            .get(&format!("/api/v1/audit/events?{query}"))
            .await
            .expect_problem(400, "bad-request");
        assert!(r.problem_fields().iter().any(|f| f == field), "{query}: {}", r.body);
    }
    let long = "x".repeat(201);
    t.get(&format!("/api/v1/audit/events?actor={long}")).await.expect(400);
    // A cursor made for one order is refused for the other.
    let page = t.get("/api/v1/audit/events?limit=2").await.expect(200).json();
    let c = page["next_cursor"].as_str().expect("cursor");
    t.get(&format!("/api/v1/audit/events?order=asc&cursor={c}"))
        .await
        .expect(400);
    s.stop().await;
}

#[tokio::test]
async fn verify_reports_the_first_tampered_event() {
    let s = TestServer::start().await;

    // Rows altered, deleted or cut off in place are reported where they break the
    // chain: (tenant, events appended after its 3 of creation, the tampering, at seq,
    // reason, events checked before it where that matters, whether the broken event
    // is named by id where that matters).
    let altered = "UPDATE audit_events SET action = 'x' WHERE tenant_id = $1 AND seq = $2";
    let forged_state =
        "UPDATE audit_events SET after_state = '{\"name\":\"forged\"}' WHERE tenant_id = $1 AND seq = $2";
    let deleted = "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = $2";
    for (name, appended, statement, seq, reason, checked, named) in [
        // A column altered in place: that event's hash no longer matches.
        ("Altered", 7, altered, 6, "hash mismatch", Some(5), Some(true)),
        // Any other column, too, e.g. the after-state.
        ("State", 5, forged_state, 4, "hash mismatch", None, None),
        // A deleted middle row: a gap at its seq.
        ("Deleted", 6, deleted, 5, "sequence gap", None, Some(false)),
        // A truncated tail: the head says 9, the last event is 8.
        ("Truncated", 6, deleted, 9, "head mismatch", Some(8), None),
    ] {
        let t = with_events(&s, name, appended).await;
        assert_eq!(verify(&t).await["ok"], true, "{name} before tampering");
        tamper(&s, statement, &t.id, seq).await;
        let v = verify(&t).await;
        let broken = &v["first_broken"];
        assert_eq!(v["ok"], false, "{name}: {v}");
        assert_eq!(
            (broken["seq"].as_i64(), broken["reason"].as_str()),
            (Some(seq), Some(reason)),
            "{name}: {v}"
        );
        if let Some(checked) = checked {
            assert_eq!(v["events_checked"], checked, "{name}: {v}");
        }
        match named {
            Some(true) => assert!(broken["id"].is_string(), "{name}: {v}"),
            Some(false) => assert_eq!(broken["id"], Value::Null, "{name}: {v}"),
            None => {}
        }
    }

    // A forged event re-hashed to look consistent still breaks the next link.
    let e = with_events(&s, "Forged", 5).await;
    let page = e
        .get("/api/v1/audit/events?order=asc&limit=500")
        .await
        .expect(200)
        .json();
    let text = |v: &Value| v.as_str().expect("text").to_string();
    let mut forged = AuditEvent {
        tenant_id: e.id.clone(),
        seq: 4,
        id: text(&page["data"][3]["id"]),
        occurred_at: text(&page["data"][3]["occurred_at"]),
        actor_user: Some("u".into()),
        actor_key: Some("key-of-u".into()),
        actor_plugin: None,
        action: "record.delete".into(),
        entity_type: "record:account".into(),
        entity_id: Some("acc0".into()),
        before_state: None,
        after_state: None,
        changed_fields: r#"["name"]"#.into(),
        request_id: Some("req".into()),
        api_version: Some("2026-11-01".into()),
        client: Some("tests".into()),
        prev_hash: text(&page["data"][2]["hash"]),
        hash: String::new(),
    };
    forged.hash = forged.compute_hash();
    // Tampering on purpose: the forged row is what verify must catch.
    sqlx::query("UPDATE audit_events SET action = $3, after_state = NULL, hash = $4 WHERE tenant_id = $1 AND seq = $2")
        .bind(&e.id)
        .bind(4_i64)
        .bind(&forged.action)
        .bind(&forged.hash)
        .execute(s.db().writer())
        .await
        .expect("forge");
    let v = verify(&e).await;
    assert_eq!(
        (v["first_broken"]["seq"].as_i64(), v["first_broken"]["reason"].as_str()),
        (Some(5), Some("broken link")),
        "{v}"
    );

    // A row inserted beyond the head, outside the chain (tampering on purpose).
    let f = with_events(&s, "Appended", 2).await;
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, seq, id, occurred_at, action, entity_type, changed_fields, prev_hash, hash) \
         VALUES ($1, 6, 'X', '2026-01-01T00:00:00.000Z', 'record.create', 'record:account', '[]', 'p', 'h')",
    )
    .bind(&f.id)
    .execute(s.db().writer())
    .await
    .expect("insert");
    let v = verify(&f).await;
    assert_eq!(
        (v["first_broken"]["seq"].as_i64(), v["first_broken"]["reason"].as_str()),
        (Some(6), Some("head mismatch")),
        "{v}"
    );

    // Other tenants' chains are untouched by all this, and awkward text (which the
    // database JSON-encodes on verify's fast path) verifies.
    let g = with_events(&s, "Clean", 3).await;
    let awkward = "q\" b\\ c\u{1}\u{1f}\u{7f} é ✓ 𝄞 \u{2028}\n\r\t/";
    append(
        &s,
        &g.id,
        &plugin(awkward),
        awkward,
        (awkward, awkward),
        Some(json!({ awkward: awkward })),
        Some(json!({ "x": [awkward, 1.5e300, -0.0, 12345678901234567_i64] })),
    )
    .await;
    let v = verify(&g).await;
    assert_eq!((v["ok"].clone(), v["events"].clone()), (json!(true), json!(7)), "{v}");
    s.stop().await;
}

/// CSV cells back to the event-list JSON shape.
fn csv_event(headers: &csv::StringRecord, row: &csv::StringRecord) -> Value {
    let cell = |name: &str| {
        let i = headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("column {name}"));
        row.get(i).unwrap_or("").to_string()
    };
    let opt = |name: &str| {
        let v = cell(name);
        if v.is_empty() { Value::Null } else { Value::String(v) }
    };
    let json_cell = |name: &str| {
        let v = cell(name);
        if v.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&v).unwrap_or_else(|e| panic!("{name}: {e}: {v}"))
        }
    };
    json!({
        "seq": cell("seq").parse::<i64>().expect("seq"),
        "id": cell("id"),
        "occurred_at": cell("occurred_at"),
        "actor": { "user": opt("actor_user"), "key": opt("actor_key"), "plugin": opt("actor_plugin") },
        "action": cell("action"),
        "entity_type": cell("entity_type"),
        "entity_id": opt("entity_id"),
        "before": json_cell("before"),
        "after": json_cell("after"),
        "changed_fields": json_cell("changed_fields"),
        "request_id": opt("request_id"),
        "api_version": opt("api_version"),
        "client": opt("client"),
        "prev_hash": cell("prev_hash"),
        "hash": cell("hash"),
    })
}

#[tokio::test]
async fn export_round_trips_as_csv_and_jsonl() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let awkward = json!({
        "name": "Smith, \"Jr.\"\r\nline two",
        "note": "ünïcødé ✓, =SUM(A1)",
        "nested": {"a": [1, 2.5, null, true]},
    });
    append(
        &s,
        &t.id,
        &user("alice"),
        "record.create",
        ("record:account", "a1"),
        None,
        Some(awkward.clone()),
    )
    .await;
    append(
        &s,
        &t.id,
        &plugin("imp@1.0.0"),
        "record.update",
        ("record:account", "a1"),
        Some(awkward),
        Some(json!({"name": ""})),
    )
    .await;
    // More than one export page (1,000 events) to exercise the streaming pages.
    let mut tx = s.db().writer().begin().await.expect("begin");
    for i in 0..1_100 {
        let after = json!({"n": i});
        audit::append(
            &mut tx,
            s.db().dialect(),
            &t.id,
            &user("bulk"),
            NewEvent {
                action: "record.create",
                entity_type: "record:lead",
                entity_id: Some(&format!("l{i}")),
                before: None,
                after: Some(&after),
            },
        )
        .await
        .expect("append");
    }
    tx.commit().await.expect("commit");
    let listed = all_pages(&t, "order=asc", 500).await;
    assert_eq!(listed.len(), 1_105);

    let r = t.get("/api/v1/audit/export?format=jsonl").await.expect(200);
    assert_eq!(r.header("content-type"), Some("application/jsonl"));
    let disposition = r.header("content-disposition").unwrap_or("");
    assert!(
        disposition.starts_with("attachment; filename=\"audit-") && disposition.ends_with(".jsonl\""),
        "{disposition}"
    );
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines, listed);

    let r = t.get("/api/v1/audit/export?format=csv").await.expect(200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(r.header("content-disposition").unwrap_or("").ends_with(".csv\""));
    let mut reader = csv::Reader::from_reader(r.text.as_bytes());
    let headers = reader.headers().expect("header row").clone();
    let parsed: Vec<Value> = reader
        .records()
        .map(|row| csv_event(&headers, &row.expect("CSV row")))
        .collect();
    assert_eq!(parsed.len(), listed.len());
    assert_eq!(parsed, listed);

    // Filters and order apply as in the list.
    let r = t
        .get("/api/v1/audit/export?format=jsonl&entity_id=a1&order=desc")
        .await
        .expect(200);
    let lines: Vec<Value> = r.text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(seqs(&lines), [5, 4]);
    t.get("/api/v1/audit/export?format=xml").await.expect(400);
    // An empty selection is a header-only CSV.
    let r = t
        .get("/api/v1/audit/export?format=csv&action=nothing")
        .await
        .expect(200);
    assert_eq!(r.text.lines().count(), 1, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn record_history_and_state_as_of() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    // A record with a fixed id and no events of its own (the records API would audit
    // its creation): the history below is exactly the events appended here.
    s.sql(
        "INSERT INTO records (tenant_id, id, object, owner_id, data, version, created_at, updated_at) \
         VALUES ($1, 'o1', 'opportunity', $2, '{}', 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        &[&t.id, &t.owner_id],
    )
    .await;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(5));
    let v1 = json!({"name": "Deal", "amount": 100});
    let v2 = json!({"name": "Deal", "amount": 250});
    let id = ("record:opportunity", "o1");
    let created = append(&s, &t.id, &user("alice"), "record.create", id, None, Some(v1.clone())).await;
    pause().await;
    append(
        &s,
        &t.id,
        &user("bob"),
        "record.update",
        ("record:opportunity", "other"),
        None,
        Some(json!({})),
    )
    .await;
    let updated = append(
        &s,
        &t.id,
        &user("bob"),
        "record.update",
        id,
        Some(v1.clone()),
        Some(v2.clone()),
    )
    .await;
    pause().await;
    let deleted = append(&s, &t.id, &user("bob"), "record.delete", id, Some(v2.clone()), None).await;
    pause().await;
    let restored = append(&s, &t.id, &user("bob"), "record.restore", id, None, Some(v2.clone())).await;

    // History: this record only, oldest first, paginated.
    let history = "/api/v1/records/opportunity/o1/history";
    let r = t.get(&format!("{history}?limit=3")).await.expect(200).json();
    let actions: Vec<_> = r["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [json!("record.create"), json!("record.update"), json!("record.delete")]
    );
    assert_eq!(r["data"][1]["before"], v1);
    assert_eq!(r["data"][1]["after"], v2);
    assert_eq!(r["data"][1]["changed_fields"], json!(["amount"]));
    let c = r["next_cursor"].as_str().expect("more");
    let r = t.get(&format!("{history}?limit=3&cursor={c}")).await.expect(200).json();
    assert_eq!(seqs(r["data"].as_array().expect("data")), [restored.seq]);
    assert_eq!(r["next_cursor"], Value::Null);
    for path in [
        "/api/v1/records/opportunity/nope/history",
        "/api/v1/records/account/o1/history",
        "/api/v1/records/Bad%20Object/o1/history",
    ] {
        t.get(path).await.expect_problem(404, "not-found");
    }
    t.get(&format!("{history}?limit=9999")).await.expect(400);

    // As-of: the state after the last event at or before the time.
    let as_of = |at: String| {
        let s = &s;
        let tenant = t.id.clone();
        async move {
            plinth_core::audit::state_as_of(s.db(), &tenant, id.0, id.1, &at)
                .await
                .expect("as of")
        }
    };
    assert_eq!(as_of("2000-01-01T00:00:00Z".into()).await, None, "before it existed");
    assert_eq!(
        as_of(created.occurred_at.clone()).await,
        Some(v1.clone()),
        "at creation (inclusive)"
    );
    assert_eq!(as_of(updated.occurred_at.clone()).await, Some(v2.clone()));
    assert_eq!(as_of(deleted.occurred_at.clone()).await, None, "deleted then");
    assert_eq!(as_of(restored.occurred_at.clone()).await, Some(v2.clone()));
    assert_eq!(as_of("2100-01-01T00:00:00+02:00".into()).await, Some(v2));
    let other_tenant =
        plinth_core::audit::state_as_of(s.db(), "someone-else", id.0, id.1, "2100-01-01T00:00:00Z").await;
    assert_eq!(other_tenant.expect("as of"), None);
    let bad = plinth_core::audit::state_as_of(s.db(), &t.id, id.0, id.1, "last tuesday").await;
    assert!(matches!(bad, Err(plinth_core::store::StoreError::Invalid(_))));
    s.stop().await;
}
