//! The audit ledger through the real server: events and their filters, pagination,
//! verification against direct tampering, export round-trips, record history, as-of
//! reconstruction, policies raising alerts and outbox rows, the compliance report,
//! roles and tenant isolation. Runs on SQLite, and on PostgreSQL when
//! `PLINTH_TEST_DATABASE_URL` is set.
//!
//! Only tenant creation is a real mutation in this crate today, so other events are
//! appended with `store::audit::append` in a transaction, as every mutation does.

use plinth_host::audit::policy::evaluate_pending;
use plinth_host::store::audit::{self, Actor, AuditEvent, NewEvent};
use plinth_host::store::tenancy::{self, NewKey};
use plinth_tests::{TestServer, TestTenant};
use serde_json::{Value, json};

const ALL_TIME: &str = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";

fn user(id: &str) -> Actor {
    Actor {
        user_id: Some(id.into()),
        key_id: Some(format!("key-of-{id}")),
        request_id: Some("req".into()),
        api_version: Some("2026-11-01".into()),
        client: Some("tests".into()),
        ..Actor::default()
    }
}

fn plugin(p: &str) -> Actor {
    Actor {
        plugin: Some(p.into()),
        ..Actor::default()
    }
}

/// Append one event in its own transaction, as a mutation would.
async fn append(
    s: &TestServer,
    tenant: &str,
    actor: &Actor,
    action: &str,
    entity: (&str, &str),
    before: Option<Value>,
    after: Option<Value>,
) -> AuditEvent {
    let mut tx = s.db().writer().begin().await.expect("begin");
    let e = audit::append(
        &mut tx,
        s.db().dialect(),
        tenant,
        actor,
        NewEvent {
            action,
            entity_type: entity.0,
            entity_id: Some(entity.1),
            before: before.as_ref(),
            after: after.as_ref(),
        },
    )
    .await
    .expect("append");
    tx.commit().await.expect("commit");
    e
}

/// A user with `role` and an API key for them.
async fn key_with_role(s: &TestServer, tenant: &str, role: &str) -> (String, String) {
    let mut tx = s.db().writer().begin().await.expect("begin");
    let email = format!("{role}-{}@example.test", ulid::Ulid::new());
    let u = tenancy::insert_user(&mut tx, tenant, &email, role, role)
        .await
        .expect("user");
    let secret = plinth_host::tenancy::new_secret(plinth_host::tenancy::KEY_PREFIX);
    tenancy::insert_key(
        &mut tx,
        tenant,
        NewKey {
            user_id: &u.id,
            name: "test",
            secret_hash: &secret.hash,
            prefix: "plk_test",
            api_version: None,
            created_by: None,
            expires_at: None,
        },
    )
    .await
    .expect("key");
    tx.commit().await.expect("commit");
    (u.id, secret.plaintext)
}

async fn get_ok(s: &TestServer, t: &TestTenant, path: &str) -> Value {
    let r = s.call("GET", path, Some(&t.key), None).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    r.body
}

/// Every event of a list, following cursors; also checks page sizes.
async fn all_pages(s: &TestServer, t: &TestTenant, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/audit/events?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = get_ok(s, t, &path).await;
        let data = body["data"].as_array().expect("data").clone();
        assert!(data.len() <= limit);
        out.extend(data.clone());
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(data.len(), limit, "only full pages have a next cursor");
                cursor = Some(c.to_string());
            }
            None => return out,
        }
    }
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["seq"].as_i64().expect("seq")).collect()
}

#[tokio::test]
async fn tenant_creation_is_three_chained_events_and_verifies() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let body = get_ok(&s, &t, "/api/v1/audit/events?order=asc").await;
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

    let v = get_ok(&s, &t, "/api/v1/audit/verify").await;
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
    let desc = all_pages(&s, &t, "order=desc", 5).await;
    assert_eq!(seqs(&desc), (1..=total).rev().collect::<Vec<i64>>());
    let asc = all_pages(&s, &t, "order=asc", 7).await;
    assert_eq!(seqs(&asc), (1..=total).collect::<Vec<i64>>());
    let default = get_ok(&s, &t, "/api/v1/audit/events").await;
    assert_eq!(default["data"][0]["seq"], total, "newest first by default");

    let count = |q: &'static str| {
        let (s, t) = (&s, &t);
        async move { all_pages(s, t, q, 500).await }
    };
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
    let from_q = format!("from={at}&order=asc&limit=500");
    let after = get_ok(&s, &t, &format!("/api/v1/audit/events?{from_q}")).await;
    assert!(
        after["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|e| e["occurred_at"].as_str() >= Some(at.as_str())))
    );
    assert!(seqs(after["data"].as_array().expect("data")).contains(&11));
    let before = get_ok(&s, &t, &format!("/api/v1/audit/events?to={at}&limit=500")).await;
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
        let r = s
            .call("GET", &format!("/api/v1/audit/events?{query}"), Some(&t.key), None)
            .await;
        assert_eq!(r.status, 400, "{query}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert!(
            r.body["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|p| p["field"] == field)),
            "{query}: {}",
            r.body
        );
    }
    let long = "x".repeat(201);
    let r = s
        .call("GET", &format!("/api/v1/audit/events?actor={long}"), Some(&t.key), None)
        .await;
    assert_eq!(r.status, 400);
    // A cursor made for one order is refused for the other.
    let page = get_ok(&s, &t, "/api/v1/audit/events?limit=2").await;
    let c = page["next_cursor"].as_str().expect("cursor");
    let r = s
        .call(
            "GET",
            &format!("/api/v1/audit/events?order=asc&cursor={c}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    s.stop().await;
}

async fn verify(s: &TestServer, t: &TestTenant) -> Value {
    get_ok(s, t, "/api/v1/audit/verify").await
}

async fn with_events(s: &TestServer, name: &str, n: usize) -> TestTenant {
    let t = s.tenant(name).await;
    for i in 0..n {
        let id = format!("acc{i}");
        append(
            s,
            &t.id,
            &user("u"),
            "record.create",
            ("record:account", &id),
            None,
            Some(json!({"name": id})),
        )
        .await;
    }
    t
}

async fn sql(s: &TestServer, statement: &str, tenant: &str, seq: i64) {
    let done = sqlx::query(statement)
        .bind(tenant)
        .bind(seq)
        .execute(s.db().writer())
        .await
        .expect("tamper");
    assert_eq!(done.rows_affected(), 1, "{statement}");
}

#[tokio::test]
async fn verify_reports_the_first_tampered_event() {
    let s = TestServer::start().await;

    // A column altered in place: that event's hash no longer matches.
    let a = with_events(&s, "Altered", 7).await;
    assert_eq!(verify(&s, &a).await["ok"], true);
    sql(
        &s,
        "UPDATE audit_events SET action = 'x' WHERE tenant_id = $1 AND seq = $2",
        &a.id,
        6,
    )
    .await;
    let v = verify(&s, &a).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_broken"]["seq"], 6);
    assert_eq!(v["first_broken"]["reason"], "hash mismatch");
    assert_eq!(v["events_checked"], 5);
    assert!(v["first_broken"]["id"].is_string());

    // Any other column, too, e.g. the after-state.
    let b = with_events(&s, "State", 5).await;
    sql(
        &s,
        "UPDATE audit_events SET after_state = '{\"name\":\"forged\"}' WHERE tenant_id = $1 AND seq = $2",
        &b.id,
        4,
    )
    .await;
    let v = verify(&s, &b).await;
    assert_eq!(
        (v["first_broken"]["seq"].as_i64(), v["first_broken"]["reason"].as_str()),
        (Some(4), Some("hash mismatch"))
    );

    // A deleted middle row: a gap at its seq.
    let c = with_events(&s, "Deleted", 6).await;
    sql(
        &s,
        "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = $2",
        &c.id,
        5,
    )
    .await;
    let v = verify(&s, &c).await;
    assert_eq!(v["first_broken"]["seq"], 5, "{v}");
    assert_eq!(v["first_broken"]["reason"], "sequence gap");
    assert_eq!(v["first_broken"]["id"], Value::Null);

    // A truncated tail: the head says 9, the last event is 8.
    let d = with_events(&s, "Truncated", 6).await;
    sql(
        &s,
        "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = $2",
        &d.id,
        9,
    )
    .await;
    let v = verify(&s, &d).await;
    assert_eq!(v["first_broken"]["seq"], 9, "{v}");
    assert_eq!(v["first_broken"]["reason"], "head mismatch");
    assert_eq!(v["events_checked"], 8);

    // A forged event re-hashed to look consistent still breaks the next link.
    let e = with_events(&s, "Forged", 5).await;
    let page = get_ok(&s, &e, "/api/v1/audit/events?order=asc&limit=500").await;
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
    sqlx::query("UPDATE audit_events SET action = $3, after_state = NULL, hash = $4 WHERE tenant_id = $1 AND seq = $2")
        .bind(&e.id)
        .bind(4_i64)
        .bind(&forged.action)
        .bind(&forged.hash)
        .execute(s.db().writer())
        .await
        .expect("forge");
    let v = verify(&s, &e).await;
    assert_eq!(
        (v["first_broken"]["seq"].as_i64(), v["first_broken"]["reason"].as_str()),
        (Some(5), Some("broken link")),
        "{v}"
    );

    // A row inserted beyond the head, outside the chain.
    let f = with_events(&s, "Appended", 2).await;
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, seq, id, occurred_at, action, entity_type, changed_fields, prev_hash, hash) \
         VALUES ($1, 6, 'X', '2026-01-01T00:00:00.000Z', 'record.create', 'record:account', '[]', 'p', 'h')",
    )
    .bind(&f.id)
    .execute(s.db().writer())
    .await
    .expect("insert");
    let v = verify(&s, &f).await;
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
    let v = verify(&s, &g).await;
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
    let listed = all_pages(&s, &t, "order=asc", 500).await;
    assert_eq!(listed.len(), 1_105);

    let r = s
        .call("GET", "/api/v1/audit/export?format=jsonl", Some(&t.key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
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

    let r = s
        .call("GET", "/api/v1/audit/export?format=csv", Some(&t.key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
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
    let r = s
        .call(
            "GET",
            "/api/v1/audit/export?format=jsonl&entity_id=a1&order=desc",
            Some(&t.key),
            None,
        )
        .await;
    let lines: Vec<Value> = r.text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(seqs(&lines), [5, 4]);
    let r = s
        .call("GET", "/api/v1/audit/export?format=xml", Some(&t.key), None)
        .await;
    assert_eq!(r.status, 400);
    // An empty selection is a header-only CSV.
    let r = s
        .call(
            "GET",
            "/api/v1/audit/export?format=csv&action=nothing",
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.text.lines().count(), 1, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn record_history_and_state_as_of() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
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
    let r = get_ok(&s, &t, "/api/v1/records/opportunity/o1/history?limit=3").await;
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
    let r = get_ok(
        &s,
        &t,
        &format!("/api/v1/records/opportunity/o1/history?limit=3&cursor={c}"),
    )
    .await;
    assert_eq!(seqs(r["data"].as_array().expect("data")), [restored.seq]);
    assert_eq!(r["next_cursor"], Value::Null);
    for path in [
        "/api/v1/records/opportunity/nope/history",
        "/api/v1/records/account/o1/history",
        "/api/v1/records/Bad%20Object/o1/history",
    ] {
        let r = s.call("GET", path, Some(&t.key), None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
    }
    let r = s
        .call(
            "GET",
            "/api/v1/records/opportunity/o1/history?limit=9999",
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 400);

    // As-of: the state after the last event at or before the time.
    let as_of = |at: String| {
        let s = &s;
        let tenant = t.id.clone();
        async move {
            plinth_host::audit::state_as_of(s.db(), &tenant, id.0, id.1, &at)
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
        plinth_host::audit::state_as_of(s.db(), "someone-else", id.0, id.1, "2100-01-01T00:00:00Z").await;
    assert_eq!(other_tenant.expect("as of"), None);
    let bad = plinth_host::audit::state_as_of(s.db(), &t.id, id.0, id.1, "last tuesday").await;
    assert!(matches!(bad, Err(plinth_host::store::StoreError::Invalid(_))));
    s.stop().await;
}

async fn create_policy(s: &TestServer, t: &TestTenant, body: Value) -> Value {
    let r = s.call("POST", "/api/v1/audit/policies", Some(&t.key), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn alerts(s: &TestServer, t: &TestTenant, query: &str) -> Vec<Value> {
    get_ok(s, t, &format!("/api/v1/audit/alerts?limit=500&{query}")).await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn outbox(s: &TestServer, tenant: &str) -> Vec<(String, Value)> {
    use sqlx::Row as _;
    let rows = sqlx::query("SELECT kind, payload, status FROM outbox WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant)
        .fetch_all(s.db().reader())
        .await
        .expect("outbox");
    rows.iter()
        .map(|r| {
            assert_eq!(r.get::<String, _>("status"), "pending");
            let payload: String = r.get("payload");
            (r.get("kind"), serde_json::from_str(&payload).expect("payload JSON"))
        })
        .collect()
}

#[tokio::test]
async fn policies_raise_exactly_the_expected_alerts() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let del = |n: usize, actor: Actor, prefix: &'static str| {
        let (s, tenant) = (&s, t.id.clone());
        async move {
            let mut last = None;
            for i in 0..n {
                let id = format!("{prefix}{i}");
                last = Some(
                    append(
                        s,
                        &tenant,
                        &actor,
                        "record.delete",
                        ("record:account", &id),
                        Some(json!({"id": id})),
                        None,
                    )
                    .await,
                );
            }
            last
        }
    };
    // Deletes before the policy exists are history: never judged.
    del(8, user("early"), "e").await;

    let mass = create_policy(
        &s,
        &t,
        json!({"name": "Mass delete", "kind": "mass-delete", "threshold": 5, "window_minutes": 10,
               "notify": {"emails": ["sec@acme.example", "ops@acme.example"], "webhook": true}}),
    )
    .await;
    let field = create_policy(
        &s,
        &t,
        json!({"name": "Amounts", "kind": "field-change", "object": "opportunity", "field": "amount"}),
    )
    .await;
    let grant = create_policy(
        &s,
        &t,
        json!({"name": "Outbound HTTP", "kind": "capability-grant", "capability": "http:*", "notify": {"webhook": true}}),
    )
    .await;
    let off = create_policy(
        &s,
        &t,
        json!({"name": "Off", "kind": "field-change", "object": "opportunity", "field": "amount", "enabled": false}),
    )
    .await;
    assert_eq!(mass["enabled"], true);
    assert_eq!(off["enabled"], false);

    // Mass delete: the 6th delete of one actor within the window fires, once; further
    // deletes in the window do not; another actor's 5 deletes stay under the threshold.
    del(5, user("mallory"), "m").await;
    let sixth = del(1, user("mallory"), "m6-").await.expect("event");
    del(3, user("mallory"), "m7-").await;
    del(5, user("carol"), "c").await;
    // Field change: only opportunity events whose changed fields include amount.
    let amount = append(
        &s,
        &t.id,
        &user("bob"),
        "record.update",
        ("record:opportunity", "o1"),
        Some(json!({"amount": 1, "stage": "a"})),
        Some(json!({"amount": 2, "stage": "a"})),
    )
    .await;
    append(
        &s,
        &t.id,
        &user("bob"),
        "record.update",
        ("record:opportunity", "o1"),
        Some(json!({"stage": "a"})),
        Some(json!({"stage": "b"})),
    )
    .await;
    append(
        &s,
        &t.id,
        &user("bob"),
        "record.update",
        ("record:account", "a1"),
        Some(json!({"amount": 1})),
        Some(json!({"amount": 2})),
    )
    .await;
    // Capability grant: newly granted http keys only.
    let granted = append(
        &s,
        &t.id,
        &user("admin"),
        "plugin.grant",
        ("plugin", "enrich"),
        Some(json!({"grants": ["storage"]})),
        Some(json!({"grants": ["storage", "http:https://api.enrich.example"]})),
    )
    .await;
    append(
        &s,
        &t.id,
        &user("admin"),
        "plugin.grant",
        ("plugin", "enrich"),
        Some(json!({"grants": ["storage", "http:https://api.enrich.example"]})),
        Some(json!({"grants": ["storage", "http:https://api.enrich.example", "email"]})),
    )
    .await;

    let report = evaluate_pending(s.db()).await.expect("evaluate");
    assert_eq!(report.alerts, 3, "{report:?}");
    let again = evaluate_pending(s.db()).await.expect("evaluate again");
    assert_eq!(again.alerts, 0, "idempotent");

    let all = alerts(&s, &t, "").await;
    assert_eq!(all.len(), 3, "{all:?}");
    let by_policy = |p: &Value| {
        all.iter()
            .filter(|a| a["policy_id"] == p["id"])
            .cloned()
            .collect::<Vec<_>>()
    };
    let m = by_policy(&mass);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["event_seq"], sixth.seq);
    assert_eq!(m[0]["event_id"], sixth.id.as_str());
    assert_eq!(m[0]["actor"], "user:mallory");
    assert_eq!(m[0]["kind"], "mass-delete");
    assert!(
        m[0]["message"].as_str().is_some_and(|t| t.contains("6 deletes")),
        "{}",
        m[0]
    );
    let f = by_policy(&field);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["event_seq"], amount.seq);
    let g = by_policy(&grant);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0]["event_seq"], granted.seq);
    assert!(
        g[0]["message"]
            .as_str()
            .is_some_and(|t| t.contains("http:https://api.enrich.example"))
    );
    assert!(by_policy(&off).is_empty());

    // Outbox: mass-delete has email + webhook, grant has webhook, field-change none.
    let queued = outbox(&s, &t.id).await;
    let mut kinds: Vec<(String, String)> = queued
        .iter()
        .map(|(k, p)| (k.clone(), p["alert"]["policy_id"].as_str().unwrap_or("").to_string()))
        .collect();
    kinds.sort();
    let mut expected = vec![
        ("email".to_string(), mass["id"].as_str().unwrap_or("").to_string()),
        ("webhook".to_string(), mass["id"].as_str().unwrap_or("").to_string()),
        ("webhook".to_string(), grant["id"].as_str().unwrap_or("").to_string()),
    ];
    expected.sort();
    assert_eq!(kinds, expected);
    let email = queued
        .iter()
        .find(|(k, _)| k == "email")
        .map(|(_, p)| p.clone())
        .unwrap_or_default();
    assert_eq!(email["to"], json!(["sec@acme.example", "ops@acme.example"]));
    assert_eq!(email["tenant_id"], t.id.as_str());
    assert_eq!(email["alert"]["event_seq"], sixth.seq);

    // Continued mass deletion inside the same window: still one alert.
    del(4, user("mallory"), "m8-").await;
    evaluate_pending(s.db()).await.expect("evaluate");
    assert_eq!(
        alerts(&s, &t, &format!("policy={}", mass["id"].as_str().unwrap_or("")))
            .await
            .len(),
        1
    );

    // Re-enabling a disabled policy judges only what follows.
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/audit/policies/{}", off["id"].as_str().unwrap_or("")),
            Some(&t.key),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    evaluate_pending(s.db()).await.expect("evaluate");
    let off_query = format!("policy={}", off["id"].as_str().unwrap_or(""));
    assert!(
        alerts(&s, &t, &off_query).await.is_empty(),
        "nothing from before it was enabled"
    );
    let later = append(
        &s,
        &t.id,
        &user("bob"),
        "record.update",
        ("record:opportunity", "o2"),
        Some(json!({"amount": 1})),
        Some(json!({"amount": 3})),
    )
    .await;
    evaluate_pending(s.db()).await.expect("evaluate");
    let now_on = alerts(&s, &t, &off_query).await;
    assert_eq!(
        now_on.iter().map(|a| a["event_seq"].as_i64()).collect::<Vec<_>>(),
        [Some(later.seq)]
    );

    // Acknowledging: filtered lists, idempotent, audited.
    let id = m[0]["id"].as_str().unwrap_or("").to_string();
    assert_eq!(alerts(&s, &t, "acknowledged=true").await.len(), 0);
    let r = s
        .call(
            "POST",
            &format!("/api/v1/audit/alerts/{id}/acknowledge"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["acknowledged_by"], t.owner_id.as_str());
    let at = r.body["acknowledged_at"].clone();
    assert!(at.is_string());
    let r = s
        .call(
            "POST",
            &format!("/api/v1/audit/alerts/{id}/acknowledge"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["acknowledged_at"].clone()), (200, at));
    let acked = alerts(&s, &t, "acknowledged=true").await;
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0]["id"], id.as_str());
    assert_eq!(alerts(&s, &t, "acknowledged=false").await.len(), 4);
    let events = get_ok(&s, &t, "/api/v1/audit/events?action=audit_alert.acknowledge").await;
    assert_eq!(
        events["data"].as_array().map(Vec::len),
        Some(1),
        "acknowledging once is one event"
    );
    let r = s
        .call("POST", "/api/v1/audit/alerts/NOPE/acknowledge", Some(&t.key), None)
        .await;
    assert_eq!(r.status, 404);

    // Alert pagination: 5 alerts in pages of 2, newest first, each once.
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get_ok(&s, &t, &format!("/api/v1/audit/alerts?limit=2{cursor}")).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        sizes.push(data.len());
        ids.extend(data.iter().map(|a| a["id"].as_str().unwrap_or("").to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    sorted.dedup();
    assert_eq!(ids, sorted);
    s.stop().await;
}

#[tokio::test]
async fn policy_crud_is_validated_and_audited() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let p = create_policy(
        &s,
        &t,
        json!({"name": "Deletes", "kind": "mass-delete", "threshold": 10, "window_minutes": 5}),
    )
    .await;
    let id = p["id"].as_str().expect("id").to_string();
    assert_eq!(p["version"], 1);
    assert_eq!(p["notify"], json!({"emails": [], "webhook": false}));
    let path = format!("/api/v1/audit/policies/{id}");

    let r = s.call("GET", &path, Some(&t.key), None).await;
    assert_eq!((r.status, r.header("etag")), (200, Some("\"1\"")));
    assert_eq!(r.body, p);
    let list = get_ok(&s, &t, "/api/v1/audit/policies").await;
    assert_eq!(list["data"], json!([p]));

    // Invalid bodies: 422 naming every field; unknown fields 400.
    for (body, fields) in [
        (
            json!({"kind": "mass-delete", "threshold": 0}),
            vec!["name", "window_minutes", "threshold"],
        ),
        (
            json!({"name": "x", "kind": "field-change", "object": "Opp", "field": "a b", "threshold": 1}),
            vec!["threshold", "object", "field"],
        ),
        (json!({"name": " ", "kind": "nope"}), vec!["name", "kind"]),
        (
            json!({"name": "x", "kind": "capability-grant", "capability": "a*b", "notify": {"emails": ["not-an-email"]}}),
            vec!["capability", "notify.emails[0]"],
        ),
    ] {
        let r = s
            .call("POST", "/api/v1/audit/policies", Some(&t.key), Some(body.clone()))
            .await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        let mut got: Vec<String> = r.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|p| p["field"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{body}");
    }
    let r = s
        .call(
            "POST",
            "/api/v1/audit/policies",
            Some(&t.key),
            Some(json!({"name": "x", "kind": "mass-delete", "colour": 1})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("colour"), "{}", r.text);
    let r = s
        .call(
            "POST",
            "/api/v1/audit/policies",
            Some(&t.key),
            Some(json!({"name": "x", "threshold": "five"})),
        )
        .await;
    assert_eq!(r.status, 400);

    // PATCH: parameters merge into the rule; switching kind replaces it.
    let r = s
        .call("PATCH", &path, Some(&t.key), Some(json!({"threshold": 20})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.body["threshold"].clone(),
            r.body["window_minutes"].clone(),
            r.body["version"].clone()
        ),
        (json!(20), json!(5), json!(2))
    );
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&t.key),
            Some(json!({"kind": "field-change", "object": "lead", "field": "status"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["kind"], "field-change");
    assert!(r.body.get("threshold").is_none());
    let r = s
        .call("PATCH", &path, Some(&t.key), Some(json!({"threshold": 3})))
        .await;
    assert_eq!(r.status, 422, "a field-change has no threshold");
    // If-Match: a stale version is refused.
    let mut req = s
        .http
        .patch(format!("{}{path}", s.url))
        .bearer_auth(&t.key)
        .json(&json!({"name": "Renamed"}));
    req = req.header("if-match", "\"1\"");
    let r = plinth_tests::Reply::from(req.send().await.expect("sent")).await;
    assert_eq!(r.status, 412, "{}", r.text);
    let req = s
        .http
        .patch(format!("{}{path}", s.url))
        .bearer_auth(&t.key)
        .header("if-match", "\"3\"")
        .json(&json!({"name": "Renamed"}));
    let r = plinth_tests::Reply::from(req.send().await.expect("sent")).await;
    assert_eq!((r.status, r.body["name"].clone()), (200, json!("Renamed")));

    let r = s.call("DELETE", &path, Some(&t.key), None).await;
    assert_eq!(r.status, 204);
    for method in ["GET", "PATCH", "DELETE"] {
        let body = (method == "PATCH").then(|| json!({"name": "x"}));
        let r = s.call(method, &path, Some(&t.key), body).await;
        assert_eq!(r.status, 404, "{method} after delete");
    }

    // Every change is in the ledger with before/after.
    let events = get_ok(
        &s,
        &t,
        &format!("/api/v1/audit/events?entity_type=audit_policy&entity_id={id}&order=asc"),
    )
    .await;
    let events = events["data"].as_array().expect("data");
    let actions: Vec<_> = events.iter().map(|e| e["action"].as_str().unwrap_or("")).collect();
    assert_eq!(
        actions,
        [
            "audit_policy.create",
            "audit_policy.update",
            "audit_policy.update",
            "audit_policy.update",
            "audit_policy.delete"
        ]
    );
    assert_eq!(events[0]["after"], p);
    assert_eq!(events[0]["actor"]["user"], t.owner_id.as_str());
    let changed = events[1]["changed_fields"].as_array().cloned().unwrap_or_default();
    assert!(
        changed.contains(&json!("threshold")) && changed.contains(&json!("version")),
        "{changed:?}"
    );
    assert!(!changed.contains(&json!("window_minutes")));
    assert_eq!(events[4]["after"], Value::Null);
    assert_eq!(events[4]["before"]["name"], "Renamed");
    s.stop().await;
}

#[tokio::test]
async fn policy_count_is_capped_per_tenant() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    for i in 0..100 {
        create_policy(
            &s,
            &t,
            json!({"name": format!("p{i}"), "kind": "capability-grant", "capability": "storage"}),
        )
        .await;
    }
    let r = s
        .call(
            "POST",
            "/api/v1/audit/policies",
            Some(&t.key),
            Some(json!({"name": "one too many", "kind": "capability-grant", "capability": "storage"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        get_ok(&s, &t, "/api/v1/audit/policies").await["data"]
            .as_array()
            .map(Vec::len),
        Some(100)
    );
    // The refused creation left no event behind.
    let events = all_pages(&s, &t, "action=audit_policy.create", 500).await;
    assert_eq!(events.len(), 100);
    s.stop().await;
}

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
    assert_eq!(admin_row["total"], 8);
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

    // Access changes: the role change, key, membership, share (not the name change) —
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
    assert_eq!(count("access_change"), 6);
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
    let (_, member) = key_with_role(&s, &t.id, "member").await;
    let (_, read_only) = key_with_role(&s, &t.id, "read-only").await;
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
