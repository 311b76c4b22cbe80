//! Records through the REST API on a real server: CRUD with ETags and If-Match,
//! validation, soft delete and restore, listings (filters, sort, fields, cursors),
//! bulk writes, aggregates, custom objects, roles, concurrency and audit.

use std::collections::BTreeMap;

use plinth_tests::TestServer;
use serde_json::{Value, json};

const OPPORTUNITIES: &str = "/api/v1/records/opportunity";
const AGGREGATE: &str = "/api/v1/records/opportunity/aggregate";

/// A create body for an opportunity (`amount` in EUR, or none).
fn opp(name: &str, stage: &str, amount: Option<f64>, close: &str) -> Value {
    let mut fields = json!({ "name": name, "stage": stage, "close_date": close });
    if let Some(a) = amount {
        fields["amount"] = json!({ "value": a, "currency": "EUR" });
    }
    json!({ "fields": fields })
}

/// A create body for an account named `name`.
fn account(name: &str) -> Value {
    json!({ "fields": { "name": name } })
}

/// The ids of a list of records.
fn ids(records: &Value) -> Vec<String> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn crud_with_etags_soft_delete_restore_and_audit() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let r = t
        .post(
            OPPORTUNITIES,
            opp("Big deal", "proposal", Some(125_000.5), "2027-03-31"),
        )
        .await
        .expect(201);
    assert_eq!(r.header("etag"), Some("\"1\""));
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("{OPPORTUNITIES}/{id}");
    assert_eq!(r.header("location"), Some(path.as_str()));
    assert_eq!(
        r.body["fields"]["amount"],
        json!({ "value": 125000.5, "currency": "EUR" })
    );
    assert_eq!(r.body["owner_id"], t.owner_id.as_str());

    let got = t.get(&path).await.expect(200).json();
    assert_eq!(got["fields"]["name"], "Big deal");

    // PATCH with the right If-Match wins, a stale one gets 412 with the current version.
    let patch = |stage: &str| {
        t.patch(&path, json!({ "fields": { "stage": stage, "probability": null } }))
            .if_match(1)
    };
    let ok = patch("negotiation").await.expect(200);
    assert_eq!(ok.header("etag"), Some("\"2\""));
    let stale = patch("closed_won").await.expect_problem(412, "precondition-failed");
    assert_eq!(stale.body["current_version"], 2);

    let del = t.delete(&path).await.expect(200).json();
    assert_eq!(del["version"], 3);
    assert!(del["deleted_at"].is_string());
    t.get(&path).await.expect_problem(404, "not-found");
    let bin = t.get(&format!("{OPPORTUNITIES}?deleted=only")).await.expect(200).json();
    assert_eq!(bin["data"].as_array().unwrap().len(), 1);
    t.get(&format!("{path}?include_deleted=true")).await.expect(200);
    let restore = format!("{path}/restore");
    let restored = t.request("POST", &restore).await.expect(200).json();
    assert_eq!(restored["deleted_at"], Value::Null);
    t.request("POST", &restore).await.expect(400);

    // Exactly one audit event per mutation, with before and after.
    for action in ["record.create", "record.update", "record.delete", "record.restore"] {
        let events = t.audit_events(&[("action", action), ("entity_id", &id)]).await;
        assert_eq!(events.len(), 1, "{action}: {events:?}");
    }
    let updates = t.audit_events(&[("action", "record.update")]).await;
    assert_eq!(updates.len(), 1, "{updates:?}");
    let update = &updates[0];
    assert_eq!(
        (update["before"]["stage"].as_str(), update["after"]["stage"].as_str()),
        (Some("proposal"), Some("negotiation"))
    );
    assert_eq!(update["changed_fields"], json!(["stage"]));
    s.stop().await;
}

#[tokio::test]
async fn validation_reports_every_field_problem() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let r = t
        .post(
            OPPORTUNITIES,
            json!({ "fields": { "stage": "won", "close_date": "31.03.2027", "amount": 5, "stgae": 1,
                                "account_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV" } }),
        )
        .await
        .expect_problem(422, "validation");
    let fields = r.problem_fields();
    for f in [
        "fields.stage",
        "fields.close_date",
        "fields.amount",
        "fields.stgae",
        "fields.name",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
    }
    // References are checked once the syntax is right.
    let r = t
        .post(
            OPPORTUNITIES,
            json!({ "fields": { "name": "x", "stage": "proposal", "close_date": "2027-01-01",
                                "account_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV" } }),
        )
        .await
        .expect_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "fields.account_id");
    // Unknown top-level members, malformed JSON, unknown objects.
    let r = t
        .post(
            "/api/v1/records/account",
            json!({ "fields": { "name": "A" }, "colour": "red" }),
        )
        .await
        .expect(400);
    assert!(r.body["detail"].as_str().unwrap().contains("colour"), "{}", r.text);
    let raw = t
        .request("POST", "/api/v1/records/account")
        .bytes("application/json", b"{\"fields\": {\"name\": }".to_vec())
        .await
        .expect_problem(400, "malformed-json");
    assert_eq!(raw.body["line"].as_u64(), Some(1), "{}", raw.text);
    t.post("/api/v1/records/spaceship", json!({ "fields": {} }))
        .await
        .expect_problem(404, "not-found");
    s.stop().await;
}

#[tokio::test]
async fn listing_filters_sorts_and_pages_stably() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let stages = ["prospecting", "proposal", "negotiation", "closed_won"];
    let items: Vec<Value> = (0..120)
        .map(|i| {
            let amount = (i % 10 != 0).then_some((i % 37) as f64 * 1000.0);
            opp(
                &format!("Deal {i:03}"),
                stages[i % 4],
                amount,
                &format!("2027-{:02}-15", i % 12 + 1),
            )
        })
        .collect();
    let r = t
        .post(&format!("{OPPORTUNITIES}/bulk"), json!({ "create": items }))
        .await
        .expect(201);
    let all: Vec<Value> = r.body["records"].as_array().unwrap().clone();
    assert_eq!(all.len(), 120);

    // Filters.
    let count = |q: &str| {
        let list = t.get(&format!("{OPPORTUNITIES}?limit=500&{q}"));
        async move { list.await.expect(200).json()["data"].as_array().unwrap().len() }
    };
    let early_not_prospecting = all
        .iter()
        .filter(|r| r["fields"]["close_date"].as_str().unwrap() < "2027-04-01" && r["fields"]["stage"] != "prospecting")
        .count();
    assert!(early_not_prospecting > 0);
    let big = all
        .iter()
        .filter(|r| r["fields"]["amount"]["value"].as_f64().is_some_and(|a| a >= 30000.0))
        .count();
    for (q, expected) in [
        ("filter[stage]=proposal", 30),
        ("filter[stage][in]=proposal,closed_won", 60),
        ("filter[amount][is_null]=true", 12),
        ("filter[amount][gte]=30000", big),
        ("filter[name][contains]=deal 11", 10),
        (
            "filter[close_date][lt]=2027-04-01&filter[stage][ne]=prospecting",
            early_not_prospecting,
        ),
        ("filter[amount.currency]=EUR", 108),
    ] {
        assert_eq!(count(q).await, expected, "{q}");
    }

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
        let r = t.get(&format!("{OPPORTUNITIES}?{q}")).await.expect(400);
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
    let mut cursor = String::new();
    loop {
        let page = t
            .get(&format!(
                "{OPPORTUNITIES}?sort=-amount&limit=25&fields=name,amount{cursor}"
            ))
            .await
            .expect(200)
            .json();
        for r in page["data"].as_array().unwrap() {
            assert!(r["fields"].get("stage").is_none(), "field selection ignored");
        }
        seen.extend(ids(&page["data"]));
        // A concurrent insert with no amount sorts last: the walk must still end.
        t.post(OPPORTUNITIES, opp("Late", "proposal", None, "2027-01-01"))
            .await
            .expect(201);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
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
    let bulk = "/api/v1/records/account/bulk";
    let accounts =
        |prefix: &str, n: usize| -> Vec<Value> { (0..n).map(|i| account(&format!("{prefix}{i}"))).collect() };
    let mut items = accounts("A", 10);
    items[7] = account("");
    let r = t
        .post(bulk, json!({ "create": items }))
        .await
        .expect_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "records[7].fields.name");
    let r = t.get("/api/v1/records/account").await.expect(200).json();
    assert_eq!(r["data"].as_array().unwrap().len(), 0, "nothing was created");

    let r = t
        .post(bulk, json!({ "create": accounts("A", 1000) }))
        .await
        .expect(201)
        .json();
    let created = ids(&r["records"]);
    t.post(bulk, json!({ "create": accounts("B", 1001) })).await.expect(400);

    let updates: Vec<Value> = created[..3]
        .iter()
        .map(|id| json!({ "id": id, "version": 1, "fields": { "city": "Berlin" } }))
        .collect();
    let r = t.post(bulk, json!({ "update": updates })).await.expect(200).json();
    let updated = r["records"].as_array().unwrap();
    assert_eq!(updated.len(), 3, "{r}");
    assert!(
        updated
            .iter()
            .all(|r| r["version"] == 2 && r["fields"]["city"] == "Berlin"),
        "{r}"
    );
    s.stop().await;
}

#[tokio::test]
async fn aggregates_match_a_brute_force_computation() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let u2 = s.user(&t, "Second", "member").await;
    let stages = ["proposal", "negotiation", "closed_won"];
    let owner_of = |i: usize| if i % 2 == 1 { &u2.id } else { &t.owner_id };
    let items: Vec<Value> = (0..90)
        .map(|i| {
            let mut body = opp(
                &format!("D{i}"),
                stages[i % 3],
                Some(f64::from(i as u32) * 10.5),
                &format!("2027-{:02}-01", i % 6 + 1),
            );
            if i % 2 == 1 {
                body["owner_id"] = json!(u2.id);
            }
            body
        })
        .collect();
    t.post(&format!("{OPPORTUNITIES}/bulk"), json!({ "create": items.clone() }))
        .await
        .expect(201);
    let req = json!({
        "group_by": ["stage", "owner_id"],
        "measures": [{"fn": "count"}, {"fn": "sum", "field": "amount"}, {"fn": "max", "field": "amount", "as": "biggest"}],
        "filters": [{"field": "close_date", "op": "lt", "value": "2027-06-01"}]
    });
    let agg = t.post(AGGREGATE, req).await.expect(200).json();
    let mut brute: BTreeMap<(String, String), (i64, f64, f64)> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if item["fields"]["close_date"].as_str().unwrap() >= "2027-06-01" {
            continue;
        }
        let e = brute
            .entry((
                item["fields"]["stage"].as_str().unwrap().to_string(),
                owner_of(i).clone(),
            ))
            .or_default();
        let amount = item["fields"]["amount"]["value"].as_f64().unwrap();
        e.0 += 1;
        e.1 += amount;
        e.2 = e.2.max(amount);
    }
    let rows = agg["rows"].as_array().unwrap();
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
    let agg = t.post(AGGREGATE, req).await.expect(200).json();
    let rows = agg["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{agg}");
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
    let agg = t.post(AGGREGATE, req).await.expect(200).json();
    let rows = agg["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{agg}");
    for row in rows {
        let owner = row["owner_id"].as_str().unwrap();
        let mine = items.iter().enumerate().filter(|(i, _)| owner_of(*i) == owner);
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
    let r = t.post(AGGREGATE, bad).await.expect_problem(422, "validation");
    assert!(r.text.contains("measures[0].where[0]"), "{}", r.text);

    // Invalid aggregates are 422 with every problem.
    let bad = json!({ "group_by": ["stage:month", "nope"], "measures": [{"fn": "sum", "field": "stage"}] });
    let r = t.post(AGGREGATE, bad).await.expect_problem(422, "validation");
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(3), "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_if_match_updates_have_one_winner() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let r = t
        .post("/api/v1/records/account", account("Contested"))
        .await
        .expect(201);
    let path = format!("/api/v1/records/account/{}", r.body["id"].as_str().unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let update = t
                .patch(&path, json!({ "fields": { "city": format!("City {i}") } }))
                .if_match(1);
            tokio::spawn(async move { update.await.status })
        })
        .collect();
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
    let accounts = "/api/v1/records/account";
    reader
        .post(accounts, account("Nope"))
        .await
        .expect_problem(403, "forbidden");
    // A member may not hand records to someone else; a manager may.
    member
        .post(accounts, json!({ "fields": { "name": "Mine" }, "owner_id": other.id }))
        .await
        .expect_problem(403, "forbidden");
    let r = member.post(accounts, account("Mine")).await.expect(201);
    let path = format!("{accounts}/{}", r.body["id"].as_str().unwrap());
    // Another member cannot see it (404, not 403); the owner role sees all.
    other.get(&path).await.expect_problem(404, "not-found");
    other
        .patch(&path, json!({ "fields": { "city": "X" } }))
        .await
        .expect_problem(404, "not-found");
    t.get(&path).await.expect(200);
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
    t.post("/api/v1/objects", def).await.expect(201);
    t.post(
        "/api/v1/objects",
        json!({ "name": "account", "label": "x", "fields": [] }),
    )
    .await
    .expect(422);
    let objects = t.get("/api/v1/objects").await.expect(200).json();
    let names: Vec<&str> = objects["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["account", "contact", "lead", "opportunity", "activity", "project"]
    );
    let opp_schema = t.get("/api/v1/objects/opportunity").await.expect(200).json();
    let stage = opp_schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "stage")
        .unwrap();
    assert_eq!(
        (stage["type"].as_str(), stage["required"].as_bool()),
        (Some("enum"), Some(true))
    );

    t.post(
        "/api/v1/records/project",
        json!({ "fields": { "title": "Rollout", "phase": "plan" } }),
    )
    .await
    .expect(201);
    let r = t
        .post(
            "/api/v1/records/project",
            json!({ "fields": { "title": "x".repeat(81), "phase": "done" } }),
        )
        .await
        .expect_problem(422, "validation");
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(2), "{}", r.text);
    // An object with records cannot be deleted; other tenants do not see it.
    t.delete("/api/v1/objects/project").await.expect(409);
    let other = s.tenant("Other").await;
    other
        .get("/api/v1/objects/project")
        .await
        .expect_problem(404, "not-found");
    s.stop().await;
}

#[tokio::test]
async fn history_and_as_of_reconstruction_respect_visibility() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let other = s.user(&t, "Other", "member").await;
    let r = t
        .post(
            "/api/v1/records/account",
            json!({ "fields": { "name": "Before", "city": "Bonn" } }),
        )
        .await
        .expect(201);
    let path = format!("/api/v1/records/account/{}", r.body["id"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = plinth_core::store::time::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    t.patch(&path, json!({ "fields": { "name": "After", "city": null } }))
        .await
        .expect(200);

    let then = t.get(&format!("{path}?as_of={between}")).await.expect(200).json();
    assert_eq!(then["fields"], json!({ "name": "Before", "city": "Bonn" }));
    assert_eq!(then["owner_id"], t.owner_id.as_str());
    let now = t
        .get(&format!("{path}?as_of={}", plinth_core::store::time::now()))
        .await
        .expect(200)
        .json();
    assert_eq!(now["fields"], json!({ "name": "After" }));
    t.get(&format!("{path}?as_of=2000-01-01T00:00:00Z"))
        .await
        .expect_problem(404, "not-found");
    t.get(&format!("{path}?as_of=yesterday")).await.expect(400);

    let history = t.get(&format!("{path}/history")).await.expect(200).json();
    let actions: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["record.create", "record.update"], "{history}");
    // Someone who cannot see the record sees neither its history nor its past.
    for seen_by_other in [format!("{path}/history"), format!("{path}?as_of={between}")] {
        other.get(&seen_by_other).await.expect_problem(404, "not-found");
    }
    s.stop().await;
}
