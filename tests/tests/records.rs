//! Records through the REST API on a real server: CRUD with ETags and If-Match,
//! validation, soft delete and restore, listings (filters, sort, fields, cursors),
//! bulk writes, aggregates, custom objects, roles, concurrency and audit.

use std::collections::BTreeMap;

use plinth_tests::{Reply, TestServer, TestTenant};
use serde_json::{Value, json};

fn opp(name: &str, stage: &str, amount: Option<f64>, close: &str) -> Value {
    let mut fields = json!({ "name": name, "stage": stage, "close_date": close });
    if let Some(a) = amount {
        fields["amount"] = json!({ "value": a, "currency": "EUR" });
    }
    json!({ "fields": fields })
}

async fn create(s: &TestServer, key: &str, object: &str, body: Value) -> Reply {
    s.call("POST", &format!("/api/v1/records/{object}"), Some(key), Some(body))
        .await
}

async fn audit_count(s: &TestServer, tenant: &str, action: &str, id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE tenant_id = $1 AND action = $2 AND entity_id = $3")
        .bind(tenant)
        .bind(action)
        .bind(id)
        .fetch_one(s.db().reader())
        .await
        .unwrap()
}

#[tokio::test]
async fn crud_with_etags_soft_delete_restore_and_audit() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let r = create(
        &s,
        &t.key,
        "opportunity",
        opp("Big deal", "proposal", Some(125_000.5), "2027-03-31"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"1\""));
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/records/opportunity/{id}").as_str())
    );
    assert_eq!(
        r.body["fields"]["amount"],
        json!({ "value": 125000.5, "currency": "EUR" })
    );
    assert_eq!(r.body["owner_id"], t.owner_id.as_str());

    let path = format!("/api/v1/records/opportunity/{id}");
    let got = s.call("GET", &path, Some(&t.key), None).await;
    assert_eq!(
        (got.status, got.body["fields"]["name"].as_str()),
        (200, Some("Big deal"))
    );

    // PATCH with the right If-Match wins, a stale one gets 412 with the current version.
    let patch = |ver: &'static str, stage: &'static str| {
        let (s, key, path) = (&s, t.key.clone(), path.clone());
        async move {
            let req = s
                .http
                .patch(format!("{}{path}", s.url))
                .bearer_auth(key)
                .header("If-Match", ver)
                .json(&json!({ "fields": { "stage": stage, "probability": null } }));
            Reply::from(req.send().await.unwrap()).await
        }
    };
    let ok = patch("\"1\"", "negotiation").await;
    assert_eq!((ok.status, ok.header("etag")), (200, Some("\"2\"")), "{}", ok.text);
    let stale = patch("\"1\"", "closed_won").await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.body["current_version"], 2);

    let del = s.call("DELETE", &path, Some(&t.key), None).await;
    assert_eq!((del.status, del.body["version"].as_i64()), (200, Some(3)));
    assert!(del.body["deleted_at"].is_string());
    assert_eq!(s.call("GET", &path, Some(&t.key), None).await.status, 404);
    let bin = s
        .call("GET", "/api/v1/records/opportunity?deleted=only", Some(&t.key), None)
        .await;
    assert_eq!(bin.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.call("GET", &format!("{path}?include_deleted=true"), Some(&t.key), None)
            .await
            .status,
        200
    );
    let restored = s.call("POST", &format!("{path}/restore"), Some(&t.key), None).await;
    assert_eq!(
        (restored.status, restored.body["deleted_at"].clone()),
        (200, Value::Null)
    );
    assert_eq!(
        s.call("POST", &format!("{path}/restore"), Some(&t.key), None)
            .await
            .status,
        400
    );

    // Exactly one audit event per mutation, with before and after.
    for action in ["record.create", "record.update", "record.delete", "record.restore"] {
        assert_eq!(audit_count(&s, &t.id, action, &id).await, 1, "{action}");
    }
    let (before, after, changed): (String, String, String) = sqlx::query_as(
        "SELECT before_state, after_state, changed_fields FROM audit_events WHERE tenant_id = $1 AND action = 'record.update'",
    )
    .bind(&t.id)
    .fetch_one(s.db().reader())
    .await
    .unwrap();
    let (before, after): (Value, Value) = (
        serde_json::from_str(&before).unwrap(),
        serde_json::from_str(&after).unwrap(),
    );
    assert_eq!(
        (before["stage"].as_str(), after["stage"].as_str()),
        (Some("proposal"), Some("negotiation"))
    );
    assert_eq!(changed, r#"["stage"]"#);
    s.stop().await;
}

#[tokio::test]
async fn validation_reports_every_field_problem() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let r = create(
        &s,
        &t.key,
        "opportunity",
        json!({ "fields": { "stage": "won", "close_date": "31.03.2027", "amount": 5, "stgae": 1,
                            "account_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV" } }),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["type"], "https://plinth.dev/problems/validation");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "fields.stage",
        "fields.close_date",
        "fields.amount",
        "fields.stgae",
        "fields.name",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    // References are checked once the syntax is right.
    let r = create(
        &s,
        &t.key,
        "opportunity",
        json!({ "fields": { "name": "x", "stage": "proposal", "close_date": "2027-01-01",
                            "account_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV" } }),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "fields.account_id");
    // Unknown top-level members, malformed JSON, unknown objects.
    let r = create(
        &s,
        &t.key,
        "account",
        json!({ "fields": { "name": "A" }, "colour": "red" }),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body["detail"].as_str().unwrap().contains("colour"), "{}", r.text);
    let raw = s
        .http
        .post(format!("{}/api/v1/records/account", s.url))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body("{\"fields\": {\"name\": }")
        .send()
        .await
        .unwrap();
    let raw = Reply::from(raw).await;
    assert_eq!((raw.status, raw.body["line"].as_u64()), (400, Some(1)), "{}", raw.text);
    assert_eq!(
        create(&s, &t.key, "spaceship", json!({ "fields": {} })).await.status,
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn listing_filters_sorts_and_pages_stably() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let stages = ["prospecting", "proposal", "negotiation", "closed_won"];
    let mut items = Vec::new();
    for i in 0..120 {
        let amount = if i % 10 == 0 {
            None
        } else {
            Some((i % 37) as f64 * 1000.0)
        };
        items.push(opp(
            &format!("Deal {i:03}"),
            stages[i % 4],
            amount,
            &format!("2027-{:02}-15", i % 12 + 1),
        ));
    }
    let r = s
        .call(
            "POST",
            "/api/v1/records/opportunity/bulk",
            Some(&t.key),
            Some(json!({ "create": items })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let all: Vec<Value> = r.body["records"].as_array().unwrap().clone();
    assert_eq!(all.len(), 120);

    // Filters.
    let count = |q: &'static str| {
        let (s, key) = (&s, t.key.clone());
        async move {
            let r = s
                .call(
                    "GET",
                    &format!("/api/v1/records/opportunity?limit=500&{q}"),
                    Some(&key),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            r.body["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("filter[stage]=proposal").await, 30);
    assert_eq!(count("filter[stage][in]=proposal,closed_won").await, 60);
    assert_eq!(count("filter[amount][is_null]=true").await, 12);
    assert_eq!(
        count("filter[amount][gte]=30000").await,
        all.iter()
            .filter(|r| r["fields"]["amount"]["value"].as_f64().is_some_and(|a| a >= 30000.0))
            .count()
    );
    assert_eq!(count("filter[name][contains]=deal 11").await, 10);
    let early_not_prospecting = all
        .iter()
        .filter(|r| r["fields"]["close_date"].as_str().unwrap() < "2027-04-01" && r["fields"]["stage"] != "prospecting")
        .count();
    assert!(early_not_prospecting > 0);
    assert_eq!(
        count("filter[close_date][lt]=2027-04-01&filter[stage][ne]=prospecting").await,
        early_not_prospecting
    );
    assert_eq!(count("filter[amount.currency]=EUR").await, 108);

    // Bad listing parameters are client errors that say what is wrong.
    for (q, needle) in [
        ("filter[stage]=won", "closed_won"),
        ("filter[amount][gt]=lots", "number"),
        ("filter[amount][like]=1", "unknown operator"),
        ("sort=colour", "colour"),
        ("limit=0", "limit"),
        ("cursor=garbage", "cursor"),
        ("page=2", "unknown query parameter"),
    ] {
        let r = s
            .call("GET", &format!("/api/v1/records/opportunity?{q}"), Some(&t.key), None)
            .await;
        assert_eq!(r.status, 400, "{q}");
        assert!(r.text.contains(needle), "{q}: {}", r.text);
    }

    // Sort by amount descending (nulls last), then id; page through with cursors while
    // new records are being inserted: no record is skipped or repeated.
    let mut expected: Vec<(Option<f64>, String)> = all
        .iter()
        .map(|r| {
            (
                r["fields"]["amount"]["value"].as_f64(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    expected.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => y.partial_cmp(&x).unwrap().then(a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/records/opportunity?sort=-amount&limit=25&fields=name,amount&cursor={c}"),
            None => "/api/v1/records/opportunity?sort=-amount&limit=25&fields=name,amount".to_string(),
        };
        let page = s.call("GET", &q, Some(&t.key), None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for r in page.body["data"].as_array().unwrap() {
            assert!(r["fields"].get("stage").is_none(), "field selection ignored");
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        // A concurrent insert with no amount sorts last: the walk must still end.
        create(&s, &t.key, "opportunity", opp("Late", "proposal", None, "2027-01-01")).await;
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let original: Vec<String> = expected.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(&seen[..120], &original[..], "the first 120 in sort order, none skipped");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no record repeated across pages");
    s.stop().await;
}

#[tokio::test]
async fn bulk_is_all_or_nothing_with_indexed_errors_and_capped() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let mut items: Vec<Value> = (0..10)
        .map(|i| json!({ "fields": { "name": format!("A{i}") } }))
        .collect();
    items[7] = json!({ "fields": { "name": "" } });
    let r = s
        .call(
            "POST",
            "/api/v1/records/account/bulk",
            Some(&t.key),
            Some(json!({ "create": items })),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "records[7].fields.name");
    let r = s.call("GET", "/api/v1/records/account", Some(&t.key), None).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0, "nothing was created");

    let thousand: Vec<Value> = (0..1000)
        .map(|i| json!({ "fields": { "name": format!("A{i}") } }))
        .collect();
    let r = s
        .call(
            "POST",
            "/api/v1/records/account/bulk",
            Some(&t.key),
            Some(json!({ "create": thousand })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ids: Vec<String> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({ "fields": { "name": format!("B{i}") } }))
        .collect();
    let r = s
        .call(
            "POST",
            "/api/v1/records/account/bulk",
            Some(&t.key),
            Some(json!({ "create": too_many })),
        )
        .await;
    assert_eq!(r.status, 400);

    let updates: Vec<Value> = ids[..3]
        .iter()
        .map(|id| json!({ "id": id, "version": 1, "fields": { "city": "Berlin" } }))
        .collect();
    let r = s
        .call(
            "POST",
            "/api/v1/records/account/bulk",
            Some(&t.key),
            Some(json!({ "update": updates })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["version"] == 2 && r["fields"]["city"] == "Berlin")
    );
    s.stop().await;
}

#[tokio::test]
async fn aggregates_match_a_brute_force_computation() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let u2 = s.user(&t, "Second", "member").await;
    let stages = ["proposal", "negotiation", "closed_won"];
    let mut items = Vec::new();
    for i in 0..90 {
        let mut body = opp(
            &format!("D{i}"),
            stages[i % 3],
            Some(f64::from(i as u32) * 10.5),
            &format!("2027-{:02}-01", i % 6 + 1),
        );
        if i % 2 == 1 {
            body["owner_id"] = json!(u2.id);
        }
        items.push(body);
    }
    let r = s
        .call(
            "POST",
            "/api/v1/records/opportunity/bulk",
            Some(&t.key),
            Some(json!({ "create": items.clone() })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let req = json!({
        "group_by": ["stage", "owner_id"],
        "measures": [{"fn": "count"}, {"fn": "sum", "field": "amount"}, {"fn": "max", "field": "amount", "as": "biggest"}],
        "filters": [{"field": "close_date", "op": "lt", "value": "2027-06-01"}]
    });
    let agg = s
        .call("POST", "/api/v1/records/opportunity/aggregate", Some(&t.key), Some(req))
        .await;
    assert_eq!(agg.status, 200, "{}", agg.text);
    let mut brute: BTreeMap<(String, String), (i64, f64, f64)> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if item["fields"]["close_date"].as_str().unwrap() >= "2027-06-01" {
            continue;
        }
        let owner = if i % 2 == 1 { u2.id.clone() } else { t.owner_id.clone() };
        let e = brute
            .entry((item["fields"]["stage"].as_str().unwrap().to_string(), owner))
            .or_default();
        let amount = item["fields"]["amount"]["value"].as_f64().unwrap();
        e.0 += 1;
        e.1 += amount;
        e.2 = e.2.max(amount);
    }
    let rows = agg.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), brute.len());
    for row in rows {
        let key = (
            row["stage"].as_str().unwrap().to_string(),
            row["owner_id"].as_str().unwrap().to_string(),
        );
        let (count, sum, max) = brute[&key];
        assert_eq!(row["count"].as_i64(), Some(count));
        assert!((row["sum_amount"].as_f64().unwrap() - sum).abs() < 1e-6);
        assert!((row["biggest"].as_f64().unwrap() - max).abs() < 1e-9);
    }
    // Time buckets.
    let req = json!({ "group_by": ["close_date:quarter"], "measures": [{"fn": "count"}] });
    let agg = s
        .call("POST", "/api/v1/records/opportunity/aggregate", Some(&t.key), Some(req))
        .await;
    let rows = agg.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", agg.text);
    assert_eq!(
        (rows[0]["close_date:quarter"].as_str(), rows[0]["count"].as_i64()),
        (Some("2027-Q1"), Some(45))
    );
    // Measures with their own filters (`where`), one pass: per owner, the amount won
    // before June next to the open count, against the same brute force.
    let req = json!({
        "group_by": ["owner_id"],
        "measures": [
            {"fn": "sum", "field": "amount", "as": "won_early", "where": [
                {"field": "stage", "op": "eq", "value": "closed_won"},
                {"field": "close_date", "op": "lt", "value": "2027-06-01"}]},
            {"fn": "count", "as": "open", "where": [{"field": "stage", "op": "in", "value": ["proposal", "negotiation"]}]},
            {"fn": "count"}
        ]
    });
    let agg = s
        .call("POST", "/api/v1/records/opportunity/aggregate", Some(&t.key), Some(req))
        .await;
    assert_eq!(agg.status, 200, "{}", agg.text);
    let rows = agg.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", agg.text);
    for row in rows {
        let owner = row["owner_id"].as_str().unwrap();
        let mine = items.iter().enumerate().filter(|(i, _)| {
            let o = if i % 2 == 1 { &u2.id } else { &t.owner_id };
            o == owner
        });
        let (mut won_early, mut open, mut all) = (None::<f64>, 0, 0);
        for (_, item) in mine {
            let f = &item["fields"];
            all += 1;
            match f["stage"].as_str().unwrap() {
                "closed_won" if f["close_date"].as_str().unwrap() < "2027-06-01" => {
                    *won_early.get_or_insert(0.0) += f["amount"]["value"].as_f64().unwrap();
                }
                "proposal" | "negotiation" => open += 1,
                _ => {}
            }
        }
        // As in SQL, a sum over no rows is null (one owner won nothing before June).
        match won_early {
            Some(sum) => assert!((row["won_early"].as_f64().unwrap() - sum).abs() < 1e-6, "{row}"),
            None => assert!(row["won_early"].is_null(), "{row}"),
        }
        assert_eq!(
            (row["open"].as_i64(), row["count"].as_i64()),
            (Some(open), Some(all)),
            "{row}"
        );
    }
    // A bad field inside a measure's `where` is named by its path.
    let bad = json!({ "measures": [{"fn": "count", "where": [{"field": "nope", "op": "eq", "value": 1}]}] });
    let r = s
        .call("POST", "/api/v1/records/opportunity/aggregate", Some(&t.key), Some(bad))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("measures[0].where[0]"), "{}", r.text);

    // Invalid aggregates are 422 with every problem.
    let bad = json!({ "group_by": ["stage:month", "nope"], "measures": [{"fn": "sum", "field": "stage"}] });
    let r = s
        .call("POST", "/api/v1/records/opportunity/aggregate", Some(&t.key), Some(bad))
        .await;
    assert_eq!(
        (r.status, r.body["errors"].as_array().map(Vec::len)),
        (422, Some(3)),
        "{}",
        r.text
    );
    s.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_if_match_updates_have_one_winner() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let r = create(&s, &t.key, "account", json!({ "fields": { "name": "Contested" } })).await;
    let path = format!("{}/api/v1/records/account/{}", s.url, r.body["id"].as_str().unwrap());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (http, path, key) = (s.http.clone(), path.clone(), t.key.clone());
        tasks.push(tokio::spawn(async move {
            let res = http
                .patch(&path)
                .bearer_auth(key)
                .header("If-Match", "\"1\"")
                .json(&json!({ "fields": { "city": format!("City {i}") } }))
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), 19, "{statuses:?}");
    s.stop().await;
}

#[tokio::test]
async fn roles_limit_writes() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let reader = s.user(&t, "Reader", "read-only").await;
    let member = s.user(&t, "Member", "member").await;
    let other = s.user(&t, "Other", "member").await;
    let r = create(&s, &reader.key, "account", json!({ "fields": { "name": "Nope" } })).await;
    assert_eq!(r.status, 403);
    // A member may not hand records to someone else; a manager may.
    let r = create(
        &s,
        &member.key,
        "account",
        json!({ "fields": { "name": "Mine" }, "owner_id": other.id }),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = create(&s, &member.key, "account", json!({ "fields": { "name": "Mine" } })).await;
    let path = format!("/api/v1/records/account/{}", r.body["id"].as_str().unwrap());
    // Another member cannot see it (404, not 403); the owner role sees all.
    assert_eq!(s.call("GET", &path, Some(&other.key), None).await.status, 404);
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&other.key),
            Some(json!({ "fields": { "city": "X" } })),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(s.call("GET", &path, Some(&t.key), None).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn custom_objects_are_described_and_usable() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let def = json!({ "name": "project", "label": "Project", "fields": [
        {"name": "title", "type": "text", "required": true, "max_length": 80},
        {"name": "budget", "type": "money"},
        {"name": "phase", "type": "enum", "values": ["plan", "build", "run"]},
        {"name": "account_id", "type": "reference", "reference": "account"}
    ]});
    let r = s.call("POST", "/api/v1/objects", Some(&t.key), Some(def)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = s
        .call(
            "POST",
            "/api/v1/objects",
            Some(&t.key),
            Some(json!({ "name": "account", "label": "x", "fields": [] })),
        )
        .await;
    assert_eq!(r.status, 422);
    let objects = s.call("GET", "/api/v1/objects", Some(&t.key), None).await;
    let names: Vec<&str> = objects.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["account", "contact", "lead", "opportunity", "activity", "project"]
    );
    let opp_schema = s.call("GET", "/api/v1/objects/opportunity", Some(&t.key), None).await;
    let stage = opp_schema.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "stage")
        .unwrap();
    assert_eq!(
        (stage["type"].as_str(), stage["required"].as_bool()),
        (Some("enum"), Some(true))
    );

    let r = create(
        &s,
        &t.key,
        "project",
        json!({ "fields": { "title": "Rollout", "phase": "plan" } }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = create(
        &s,
        &t.key,
        "project",
        json!({ "fields": { "title": "x".repeat(81), "phase": "done" } }),
    )
    .await;
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(2), "{}", r.text);
    // An object with records cannot be deleted; other tenants do not see it.
    assert_eq!(
        s.call("DELETE", "/api/v1/objects/project", Some(&t.key), None)
            .await
            .status,
        409
    );
    let other: TestTenant = s.tenant("Other").await;
    assert_eq!(
        s.call("GET", "/api/v1/objects/project", Some(&other.key), None)
            .await
            .status,
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn history_and_as_of_reconstruction_respect_visibility() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let other = s.user(&t, "Other", "member").await;
    let r = create(
        &s,
        &t.key,
        "account",
        json!({ "fields": { "name": "Before", "city": "Bonn" } }),
    )
    .await;
    let path = format!("/api/v1/records/account/{}", r.body["id"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = plinth_core::store::time::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&t.key),
            Some(json!({ "fields": { "name": "After", "city": null } })),
        )
        .await;
    assert_eq!(r.status, 200);

    let then = s
        .call("GET", &format!("{path}?as_of={between}"), Some(&t.key), None)
        .await;
    assert_eq!(then.status, 200, "{}", then.text);
    assert_eq!(then.body["fields"], json!({ "name": "Before", "city": "Bonn" }));
    assert_eq!(then.body["owner_id"], t.owner_id.as_str());
    let now = s
        .call(
            "GET",
            &format!("{path}?as_of={}", plinth_core::store::time::now()),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(now.body["fields"], json!({ "name": "After" }));
    let before_creation = s
        .call("GET", &format!("{path}?as_of=2000-01-01T00:00:00Z"), Some(&t.key), None)
        .await;
    assert_eq!(before_creation.status, 404);
    assert_eq!(
        s.call("GET", &format!("{path}?as_of=yesterday"), Some(&t.key), None)
            .await
            .status,
        400
    );

    let history = s.call("GET", &format!("{path}/history"), Some(&t.key), None).await;
    let actions: Vec<&str> = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["record.create", "record.update"], "{}", history.text);
    // Someone who cannot see the record sees neither its history nor its past.
    assert_eq!(
        s.call("GET", &format!("{path}/history"), Some(&other.key), None)
            .await
            .status,
        404
    );
    assert_eq!(
        s.call("GET", &format!("{path}?as_of={between}"), Some(&other.key), None)
            .await
            .status,
        404
    );
    s.stop().await;
}
