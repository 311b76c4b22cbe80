//! The territories plugin end to end: installed from the marketplace on a real server,
//! driven through its REST endpoints, and checked through the *core* REST records API
//! (what each user sees), not through the plugin.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use plinth_tests::{TestServer, TestTenant, TestUser};
use serde_json::{Value, json};

const P: &str = "/api/v1/plugins/territories";

struct Ctx {
    s: TestServer,
    t: TestTenant,
}

impl Ctx {
    /// A server with the first-party catalog, tenant `name`, and territories installed
    /// with every grant; also the installation response.
    async fn installed(name: &str) -> (Ctx, Value) {
        let s = TestServer::start_with_first_party().await;
        let t = s.tenant(name).await;
        let r = s.install(&t, "territories", json!("all")).await;
        assert_eq!(r.status, 201, "{}", r.text);
        (Ctx { s, t }, r.body)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self
            .s
            .call(method, &format!("{P}{path}"), Some(&self.t.key), body)
            .await;
        (r.status, r.body)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, b) = self.call(method, path, body.clone()).await;
        assert!((200..300).contains(&status), "{method} {path} {body:?}: {status} {b}");
        b
    }

    async fn territory(&self, name: &str, kind: &str, parent: Option<&str>) -> String {
        let b = self
            .ok(
                "POST",
                "/territories",
                Some(json!({"name": name, "type": kind, "parent_id": parent})),
            )
            .await;
        b["id"].as_str().unwrap().to_string()
    }

    async fn rules(&self, id: &str, rules: Value) {
        self.ok(
            "PUT",
            &format!("/territories/{id}/rules"),
            Some(json!({ "rules": rules })),
        )
        .await;
    }

    async fn create(&self, object: &str, fields: Value) -> String {
        let r = self
            .s
            .call(
                "POST",
                &format!("/api/v1/records/{object}"),
                Some(&self.t.key),
                Some(json!({ "fields": fields })),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// Record ids of `object` that `key` sees through the core REST API.
    async fn visible(&self, key: &str, object: &str, filter: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/records/{object}?limit=100{filter}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let r = self.s.call("GET", &path, Some(key), None).await;
            assert_eq!(r.status, 200, "{}", r.text);
            for rec in r.body["data"].as_array().unwrap() {
                out.insert(rec["id"].as_str().unwrap().to_string());
            }
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    async fn update(&self, object: &str, id: &str, fields: Value) {
        let r = self
            .s
            .call(
                "PATCH",
                &format!("/api/v1/records/{object}/{id}"),
                Some(&self.t.key),
                Some(json!({ "fields": fields })),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    /// Wait until the plugin has handled every event in the tenant's log (the core
    /// subscriptions endpoint says `caught_up`), with no failures; fail after a minute.
    async fn caught_up(&self) {
        let started = Instant::now();
        loop {
            let r = self
                .s
                .call("GET", "/api/v1/events/subscriptions", Some(&self.t.key), None)
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let sub = r.body["data"]
                .as_array()
                .and_then(|subs| subs.iter().find(|x| x["plugin"] == "territories").cloned())
                .unwrap_or_else(|| panic!("no territories subscription: {}", r.text));
            assert!(sub["last_error"].is_null() && sub["dead_letters"] == 0, "{sub}");
            if sub["caught_up"] == true {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "not caught up: {sub}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn territories_of(&self, account: &str) -> Value {
        self.ok("GET", &format!("/accounts/{account}/territories"), None).await["territories"].clone()
    }

    async fn run_assignment(&self) -> Value {
        let mut run = self.ok("POST", "/assignment/run", Some(json!({"batch_size": 3}))).await;
        let mut steps = 1;
        while run["status"] == "running" {
            assert!(run["processed"].as_u64().unwrap() < run["total"].as_u64().unwrap());
            let progress = self
                .ok(
                    "GET",
                    &format!("/assignment/runs/{}", run["id"].as_str().unwrap()),
                    None,
                )
                .await;
            assert_eq!(progress, run, "progress is stored and readable");
            run = self
                .ok(
                    "POST",
                    &format!("/assignment/runs/{}/continue", run["id"].as_str().unwrap()),
                    None,
                )
                .await;
            steps += 1;
        }
        assert_eq!(run["processed"], run["total"]);
        assert!(steps > 1, "batches of 3 need several steps");
        run
    }
}

/// Per user id: (name, every account, opportunity and contact id they see).
async fn snapshot(c: &Ctx, users: &BTreeMap<&str, TestUser>) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for (u, user) in users {
        let mut seen = c.visible(&user.key, "account", "").await;
        seen.extend(c.visible(&user.key, "opportunity", "").await);
        seen.extend(c.visible(&user.key, "contact", "").await);
        out.insert(user.id.clone(), (u.to_string(), seen));
    }
    out
}

#[derive(Clone)]
struct Opp {
    id: String,
    account: String,
    stage: &'static str,
    amount: f64,
    probability: f64,
    close: String,
}

fn quarter_bounds() -> (String, String, String, String) {
    let today = time::OffsetDateTime::now_utc().date();
    let y = today.year();
    let q0 = (u8::from(today.month()) - 1) / 3 * 3 + 1;
    let from = format!("{y:04}-{q0:02}-01");
    let (ny, nm) = if q0 == 10 { (y + 1, 1) } else { (y, q0 + 3) };
    let to = format!("{ny:04}-{nm:02}-01");
    let inside = format!("{y:04}-{q0:02}-15");
    let before = format!("{:04}-{q0:02}-15", y - 1);
    (from, to, inside, before)
}

/// The roll-up computed the slow way, from the test's own data.
fn brute(accounts: &BTreeSet<String>, opps: &[Opp], from: &str, to: &str) -> Value {
    let mine: Vec<&Opp> = opps.iter().filter(|o| accounts.contains(&o.account)).collect();
    let open: Vec<&&Opp> = mine.iter().filter(|o| !o.stage.starts_with("closed")).collect();
    let in_period = |o: &&&Opp| o.close.as_str() >= from && o.close.as_str() < to;
    let won: Vec<&&Opp> = mine
        .iter()
        .filter(|o| o.stage == "closed_won")
        .filter(in_period)
        .collect();
    let lost = mine
        .iter()
        .filter(|o| o.stage == "closed_lost")
        .filter(in_period)
        .count();
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let closed = won.len() + lost;
    json!({
        "account_count": accounts.len(),
        "open_opportunities": open.len(),
        "open_pipeline": round(open.iter().map(|o| o.amount).sum()),
        "weighted_pipeline": round(open.iter().map(|o| o.amount * o.probability / 100.0).sum()),
        "closed_won_count": won.len(),
        "closed_won_amount": round(won.iter().map(|o| o.amount).sum()),
        "closed_lost_count": lost,
        "win_rate": if closed == 0 { Value::Null } else { json!(((won.len() as f64 / closed as f64) * 10_000.0).round() / 10_000.0) },
    })
}

fn norm(v: &Value) -> Value {
    // JSON numbers from the plugin may be floats (3.0) where the test has integers (3).
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
        Value::Number(n) => json!(n.as_f64().unwrap()),
        other => other.clone(),
    }
}

/// Change a document the plugin stored, behind its back (the tests use it to put
/// state in place that only a crash or an older version leaves).
async fn edit_document(c: &Ctx, collection: &str, key: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let doc: String = sqlx::query_scalar(
        "SELECT value FROM plugin_documents WHERE tenant_id = $1 AND plugin_id = 'territories' \
         AND collection = $2 AND doc_key = $3",
    )
    .bind(&c.t.id)
    .bind(collection)
    .bind(key)
    .fetch_one(c.s.db().reader())
    .await
    .unwrap();
    let mut doc: Value = serde_json::from_str(&doc).unwrap();
    edit(doc.as_object_mut().unwrap());
    c.s.sql(
        "UPDATE plugin_documents SET value = $4 WHERE tenant_id = $1 AND plugin_id = 'territories' \
         AND collection = $2 AND doc_key = $3",
        &[&c.t.id, collection, key, &doc.to_string()],
    )
    .await;
}

/// Overwrite top-level members of stored realignment `rid`: how the tests make it look
/// as an apply leaves it when it dies part-way.
async fn patch_realignment(c: &Ctx, rid: &str, patch: Value) {
    edit_document(c, "realignments", rid, |doc| {
        for (k, v) in patch.as_object().unwrap() {
            doc.insert(k.clone(), v.clone());
        }
    })
    .await;
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn territories_end_to_end() {
    let (c, installed) = Ctx::installed("Terra").await;
    // "all" grants the manifest's event subscriptions too, one key per pattern.
    let grants: BTreeSet<&str> = installed["installed"][0]["granted"]
        .as_array()
        .unwrap_or_else(|| panic!("{installed}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for object in ["account", "opportunity", "contact"] {
        for verb in ["created", "updated"] {
            let key = format!("events:record.{object}.{verb}");
            assert!(grants.contains(key.as_str()), "{key} in {grants:?}");
        }
    }

    // Users at several levels (tenant role `member`: they see only what is shared).
    let mut users = BTreeMap::new();
    for name in [
        "global",
        "emea",
        "dach",
        "berlin",
        "mitte",
        "americas",
        "strategic",
        "france",
    ] {
        users.insert(name, c.s.user(&c.t, name, "member").await);
    }

    // A 6-level tree: Global / EMEA / DACH / Germany / Berlin / Mitte, plus siblings.
    let global = c.territory("Global", "global", None).await;
    let emea = c.territory("EMEA", "region", Some(&global)).await;
    let dach = c.territory("DACH", "sub-region", Some(&emea)).await;
    let germany = c.territory("Germany", "country", Some(&dach)).await;
    let berlin = c.territory("Berlin", "city", Some(&germany)).await;
    let mitte = c.territory("Mitte", "district", Some(&berlin)).await;
    let france = c.territory("France", "country", Some(&emea)).await;
    let americas = c.territory("Americas", "region", Some(&global)).await;
    let strategic = c.territory("Strategic", "overlay", Some(&global)).await;
    let tid: BTreeMap<&str, &String> = [
        ("global", &global),
        ("emea", &emea),
        ("dach", &dach),
        ("berlin", &berlin),
        ("mitte", &mitte),
        ("americas", &americas),
        ("strategic", &strategic),
        ("france", &france),
    ]
    .into_iter()
    .collect();
    for (u, role) in [
        ("global", "owner"),
        ("emea", "forecast-manager"),
        ("dach", "member"),
        ("berlin", "member"),
        ("mitte", "owner"),
        ("americas", "member"),
        ("strategic", "member"),
        ("france", "member"),
    ] {
        c.ok(
            "PUT",
            &format!("/territories/{}/members/{}", tid[u], users[u].id),
            Some(json!({ "role": role })),
        )
        .await;
    }

    // Traversal.
    let b = c.ok("GET", &format!("/territories/{mitte}/path"), None).await;
    assert_eq!(b["path"], "/Global/EMEA/DACH/Germany/Berlin/Mitte");
    assert_eq!(b["ids"], json!([global, emea, dach, germany, berlin, mitte]));
    let b = c.ok("GET", &format!("/territories/{mitte}/ancestors"), None).await;
    let names: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Global", "EMEA", "DACH", "Germany", "Berlin"]);
    let b = c.ok("GET", &format!("/territories/{global}/children"), None).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 3);
    let b = c
        .ok("GET", &format!("/territories/{global}/descendants?max_depth=2"), None)
        .await;
    let names: BTreeSet<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["EMEA", "Americas", "Strategic", "DACH", "France"])
    );
    // Paginated: 8 descendants in pages of 3.
    let mut all = Vec::new();
    let mut path = format!("/territories/{global}/descendants?limit=3");
    loop {
        let b = c.ok("GET", &path, None).await;
        all.extend(
            b["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string()),
        );
        match b["next_cursor"].as_str() {
            Some(cur) => path = format!("/territories/{global}/descendants?limit=3&cursor={cur}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 8);
    let b = c.ok("GET", &format!("/territories/{dach}/siblings"), None).await;
    assert_eq!(b["data"][0]["name"], "France");
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let b = c.ok("GET", &format!("/territories/{emea}/subtree"), None).await;
    assert_eq!(b["tree"]["name"], "EMEA");
    assert_eq!(b["tree"]["children"][0]["name"], "DACH");
    assert_eq!(
        b["tree"]["children"][0]["children"][0]["children"][0]["children"][0]["name"],
        "Mitte"
    );
    assert_eq!(b["tree"]["children"][1]["name"], "France");

    // Bad input: clear problems.
    let (st, _) = c.call("GET", "/territories/nope", None).await;
    assert_eq!(st, 404);
    let (st, b) = c.call("POST", "/territories", Some(json!({"name": "  "}))).await;
    assert_eq!(st, 400, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("empty"), "{b}");
    let (st, _) = c
        .call("POST", "/territories", Some(json!({"name": "x".repeat(201)})))
        .await;
    assert_eq!(st, 400);
    let (st, _) = c.call("POST", "/territories", Some(json!({"name": "A/B"}))).await;
    assert_eq!(st, 400);
    let (st, _) = c
        .call("POST", "/territories", Some(json!({"name": "X", "parent_id": "nope"})))
        .await;
    assert_eq!(st, 404);
    let (st, b) = c
        .call(
            "PUT",
            &format!("/territories/{dach}/rules"),
            Some(json!({"rules": [{"criteria": [{"op": "range", "field": "country", "min": 1}]}]})),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("numeric"), "{b}");
    let (st, _) = c
        .call(
            "PUT",
            &format!("/territories/{dach}/rules"),
            Some(json!({"rules": [{"criteria": [{"op": "equals", "field": "nope", "value": "x"}]}]})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, b) = c
        .call(
            "POST",
            &format!("/territories/{dach}/move"),
            Some(json!({"parent_id": mitte})),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("own descendant"), "{b}");
    let (st, _) = c
        .call(
            "POST",
            &format!("/territories/{dach}/move"),
            Some(json!({"parent_id": dach})),
        )
        .await;
    assert_eq!(st, 409);
    let (st, _) = c
        .call(
            "POST",
            &format!("/territories/{dach}/move"),
            Some(json!({"parent_id": "nope"})),
        )
        .await;
    assert_eq!(st, 404);

    // Accounts, opportunities, contacts (created by the tenant owner) before any rule
    // exists: their events are handled and assign nothing.
    let (from, to, inside, before) = quarter_bounds();
    let mut acc = BTreeMap::new();
    for (key, country, city, revenue) in [
        ("a1", "DE", "Berlin", 20e6),
        ("a2", "DE", "Berlin", 1e6),
        ("a3", "DE", "Munich", 5e6),
        ("a4", "AT", "Vienna", 3e6),
        ("a5", "FR", "Paris", 60e6),
        ("a6", "US", "New York", 2e6),
        ("a7", "JP", "Tokyo", 1e6),
        ("a8", "DE", "Hamburg", 70e6),
    ] {
        let id = c
            .create(
                "account",
                json!({"name": key, "country": country, "city": city, "annual_revenue": revenue}),
            )
            .await;
        acc.insert(key, id);
    }
    let mut opps: Vec<Opp> = Vec::new();
    let plan: [(&str, &'static str, f64, f64, &str); 12] = [
        ("a1", "proposal", 100_000.0, 50.0, inside.as_str()),
        ("a1", "closed_won", 40_000.0, 100.0, inside.as_str()),
        ("a2", "negotiation", 30_000.0, 70.0, inside.as_str()),
        ("a2", "closed_lost", 10_000.0, 0.0, inside.as_str()),
        ("a3", "prospecting", 5_000.0, 10.0, inside.as_str()),
        ("a3", "closed_won", 25_000.0, 100.0, before.as_str()),
        ("a4", "closed_won", 12_500.0, 100.0, inside.as_str()),
        ("a5", "qualification", 80_000.0, 20.0, inside.as_str()),
        ("a5", "closed_lost", 9_000.0, 0.0, inside.as_str()),
        ("a6", "proposal", 7_000.0, 40.0, inside.as_str()),
        ("a7", "proposal", 1_000.0, 40.0, inside.as_str()),
        ("a8", "closed_won", 33_000.0, 100.0, inside.as_str()),
    ];
    for (i, (a, stage, amount, probability, close)) in plan.into_iter().enumerate() {
        let id = c
            .create(
                "opportunity",
                json!({"name": format!("o{i}"), "account_id": acc[a], "stage": stage,
                       "amount": {"value": amount, "currency": "EUR"}, "probability": probability, "close_date": close}),
            )
            .await;
        opps.push(Opp {
            id,
            account: acc[a].clone(),
            stage,
            amount,
            probability,
            close: close.to_string(),
        });
    }
    let contact = c
        .create("contact", json!({"last_name": "Kontakt", "account_id": acc["a1"]}))
        .await;

    c.caught_up().await;
    for a in acc.values() {
        assert_eq!(c.territories_of(a).await, json!([]));
    }

    // Rules.
    c.rules(&emea, json!([{"criteria": [{"op": "in", "field": "country", "values": ["DE", "AT", "CH", "FR"]}], "apply_to_children": true}])).await;
    c.rules(
        &dach,
        json!([{"criteria": [{"op": "in", "field": "country", "values": ["DE", "AT", "CH"]}]}]),
    )
    .await;
    c.rules(
        &germany,
        json!([{"criteria": [{"op": "equals", "field": "country", "value": "DE"}]}]),
    )
    .await;
    c.rules(
        &berlin,
        json!([{"criteria": [{"op": "prefix", "field": "city", "value": "Berl"}]}]),
    )
    .await;
    c.rules(&mitte, json!([{"criteria": [{"op": "equals", "field": "city", "value": "Berlin"}, {"op": "range", "field": "annual_revenue", "min": 10_000_000}]}])).await;
    c.rules(
        &france,
        json!([{"criteria": [{"op": "equals", "field": "country", "value": "FR"}]}]),
    )
    .await;
    c.rules(
        &americas,
        json!([{"criteria": [{"op": "in", "field": "country", "values": ["US", "CA", "DE"]}], "priority": 5}]),
    )
    .await;
    c.rules(
        &strategic,
        json!([{"criteria": [{"op": "range", "field": "annual_revenue", "min": 50_000_000}], "mode": "keep-all"}]),
    )
    .await;

    // Assignment by an on-demand run over the existing accounts, in batches, with
    // progress (nothing else writes meanwhile, so its counts are exact).
    let run = c.run_assignment().await;
    assert_eq!(run["total"], 8);
    assert_eq!(run["changed"], 7, "{run}");
    let expect_terr = |a: &str| -> Vec<&String> {
        let mut v: Vec<&String> = match a {
            "a1" => vec![&mitte],
            "a2" => vec![&berlin],
            "a3" => vec![&germany],
            "a4" => vec![&dach],
            "a5" => vec![&france, &strategic],
            "a6" => vec![&americas],
            "a7" => vec![],
            _ => vec![&germany, &strategic],
        };
        v.sort();
        v
    };
    for a in acc.keys() {
        let b = c.ok("GET", &format!("/accounts/{}/territories", acc[a]), None).await;
        assert_eq!(b["territories"], json!(expect_terr(a)), "{a}");
    }

    // Who sees what, through the core records API.
    let sees = |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| acc[n].clone()).collect() };
    let expected_accounts: BTreeMap<&str, BTreeSet<String>> = [
        ("global", sees(&["a1", "a2", "a3", "a4", "a5", "a6", "a8"])),
        ("emea", sees(&["a1", "a2", "a3", "a4", "a5", "a8"])),
        ("dach", sees(&["a1", "a2", "a3", "a4", "a8"])),
        ("berlin", sees(&["a1", "a2"])),
        ("mitte", sees(&["a1"])),
        ("americas", sees(&["a6"])),
        ("strategic", sees(&["a5", "a8"])),
        ("france", sees(&["a5"])),
    ]
    .into_iter()
    .collect();
    let opps_of = |accounts: &BTreeSet<String>| -> BTreeSet<String> {
        opps.iter()
            .filter(|o| accounts.contains(&o.account))
            .map(|o| o.id.clone())
            .collect()
    };
    for (u, want) in &expected_accounts {
        assert_eq!(
            &c.visible(&users[u].key, "account", "").await,
            want,
            "accounts seen by {u}"
        );
        assert_eq!(
            c.visible(&users[u].key, "opportunity", "").await,
            opps_of(want),
            "opportunities seen by {u}"
        );
    }
    assert_eq!(
        c.visible(&users["mitte"].key, "contact", "").await,
        BTreeSet::from([contact.clone()])
    );
    assert!(c.visible(&users["americas"].key, "contact", "").await.is_empty());

    // Assignment through events, now that rules exist. A new account is assigned when
    // created; its opportunity follows it; a contact follows its account_id from an
    // unassigned account to it and on to another; an update of a field the rules test
    // moves the account (and what hangs off it) out again. After each step the plugin
    // has caught up with the tenant's event log, so what users see is settled.
    let a9 = c
        .create(
            "account",
            json!({"name": "a9", "country": "FR", "city": "Lyon", "annual_revenue": 2e6}),
        )
        .await;
    let o9 = c
        .create(
            "opportunity",
            json!({"name": "o9", "account_id": a9, "stage": "proposal",
                   "amount": {"value": 4_000.0, "currency": "EUR"}, "probability": 50.0, "close_date": inside}),
        )
        .await;
    let c2 = c
        .create("contact", json!({"last_name": "Wanderer", "account_id": acc["a7"]}))
        .await;
    c.caught_up().await;
    assert_eq!(c.territories_of(&a9).await, json!([france]));
    let mut france_sees = expected_accounts["france"].clone();
    france_sees.insert(a9.clone());
    assert_eq!(c.visible(&users["france"].key, "account", "").await, france_sees);
    let mut france_opps = opps_of(&expected_accounts["france"]);
    france_opps.insert(o9.clone());
    assert_eq!(c.visible(&users["france"].key, "opportunity", "").await, france_opps);
    assert!(c.visible(&users["emea"].key, "opportunity", "").await.contains(&o9));
    assert!(!c.visible(&users["dach"].key, "account", "").await.contains(&a9));
    for u in users.keys() {
        assert!(!c.visible(&users[u].key, "contact", "").await.contains(&c2), "{u}");
    }
    c.update("contact", &c2, json!({"account_id": a9})).await;
    c.caught_up().await;
    assert!(c.visible(&users["france"].key, "contact", "").await.contains(&c2));
    assert!(c.visible(&users["emea"].key, "contact", "").await.contains(&c2));
    c.update("contact", &c2, json!({"account_id": acc["a4"]})).await;
    c.caught_up().await;
    assert!(!c.visible(&users["france"].key, "contact", "").await.contains(&c2));
    assert!(c.visible(&users["dach"].key, "contact", "").await.contains(&c2));
    assert!(c.visible(&users["emea"].key, "contact", "").await.contains(&c2));
    // A change to a field no rule looks at leaves the assignment alone.
    c.update("account", &a9, json!({"name": "a9 renamed"})).await;
    c.caught_up().await;
    assert_eq!(c.territories_of(&a9).await, json!([france]));
    c.update("account", &a9, json!({"country": "JP"})).await;
    c.caught_up().await;
    assert_eq!(c.territories_of(&a9).await, json!([]));
    assert_eq!(
        c.visible(&users["france"].key, "account", "").await,
        expected_accounts["france"]
    );
    assert_eq!(
        c.visible(&users["france"].key, "opportunity", "").await,
        opps_of(&expected_accounts["france"])
    );
    // Events left exactly what a run computes: a run over all accounts changes nothing.
    let run = c.run_assignment().await;
    assert_eq!(
        (run["total"].as_u64(), run["changed"].as_u64()),
        (Some(9), Some(0)),
        "{run}"
    );
    // Assignment reads only the territories with rules (and their ancestors) once the
    // plugin knows its `ruled` flags are complete; as after an interrupted upgrade
    // from 0.2, without that marker it loads the whole tree, and decides the same.
    let marker = "FROM plugin_documents WHERE tenant_id = $1 AND plugin_id = 'territories' \
                  AND collection = 'meta' AND doc_key = 'ruled-index'";
    let markers: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {marker}"))
        .bind(&c.t.id)
        .fetch_one(c.s.db().reader())
        .await
        .unwrap();
    assert_eq!(markers, 1, "on-install marked the `ruled` flags complete");
    c.s.sql(&format!("DELETE {marker}"), &[&c.t.id]).await;
    c.update("account", &a9, json!({"country": "FR"})).await;
    c.caught_up().await;
    assert_eq!(c.territories_of(&a9).await, json!([france]));
    c.update("account", &a9, json!({"country": "JP"})).await;
    c.caught_up().await;
    assert_eq!(c.territories_of(&a9).await, json!([]));
    let run = c.run_assignment().await;
    assert_eq!(run["changed"].as_u64(), Some(0), "{run}");

    // The host filter roll-ups stand on, through the REST API too.
    let f = format!("&filter[shared_within]={dach}");
    assert_eq!(c.visible(&c.t.key, "account", &f).await, expected_accounts["dach"]);

    // Roll-ups equal a brute-force computation over the same data.
    for u in ["global", "emea", "dach", "berlin", "mitte", "strategic"] {
        let b = c.ok("GET", &format!("/territories/{}/rollup", tid[u]), None).await;
        assert_eq!(b["period"], json!({"from": from, "to": to}));
        assert_eq!(
            norm(&b["metrics"]),
            norm(&brute(&expected_accounts[u], &opps, &from, &to)),
            "roll-up of {u}"
        );
    }
    // As members see them: DACH's own member (and the global one, above it) are
    // answered from the host's kept totals and see all of it; France's member sees
    // none of DACH's records, so the same roll-up computed over what they may see is
    // empty — never the kept totals.
    for (u, sees) in [("dach", "dach"), ("global", "dach"), ("france", "")] {
        let r =
            c.s.call(
                "GET",
                &format!("{P}/territories/{dach}/rollup"),
                Some(&users[u].key),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let visible = expected_accounts.get(sees).cloned().unwrap_or_default();
        assert_eq!(
            norm(&r.body["metrics"]),
            norm(&brute(&visible, &opps, &from, &to)),
            "DACH's roll-up as {u} sees it"
        );
    }
    let b = c
        .ok(
            "GET",
            &format!("/territories/{dach}/rollup?from={}&to={to}", before),
            None,
        )
        .await;
    assert_eq!(b["metrics"]["closed_won_count"], 4, "{b}");
    let (st, _) = c
        .call("GET", &format!("/territories/{dach}/rollup?from=2027-13"), None)
        .await;
    assert_eq!(st, 400);

    // Move a subtree (Berlin with Mitte) under Americas: access follows.
    c.ok(
        "POST",
        &format!("/territories/{berlin}/move"),
        Some(json!({"parent_id": americas})),
    )
    .await;
    let b = c.ok("GET", &format!("/territories/{mitte}/path"), None).await;
    assert_eq!(b["path"], "/Global/Americas/Berlin/Mitte");
    assert_eq!(
        c.visible(&users["americas"].key, "account", "").await,
        sees(&["a1", "a2", "a6"])
    );
    assert_eq!(
        c.visible(&users["dach"].key, "account", "").await,
        sees(&["a3", "a4", "a8"])
    );
    assert_eq!(
        c.visible(&users["emea"].key, "account", "").await,
        sees(&["a3", "a4", "a5", "a8"])
    );
    assert_eq!(
        c.visible(&users["global"].key, "account", "").await,
        expected_accounts["global"]
    );
    c.ok(
        "POST",
        &format!("/territories/{berlin}/move"),
        Some(json!({"parent_id": germany})),
    )
    .await;
    for (u, want) in &expected_accounts {
        assert_eq!(
            &c.visible(&users[u].key, "account", "").await,
            want,
            "after moving back, {u}"
        );
    }

    // Realignment 1: move Berlin under France. Preview, then apply, then roll back.
    let before_access = snapshot(&c, &users).await;
    let prop = c
        .ok(
            "POST",
            "/realignments",
            Some(json!({"kind": "move", "territory_id": berlin, "parent_id": france})),
        )
        .await;
    assert_eq!(prop["status"], "proposed");
    // Berlin no longer sits below Germany, so for a2 (DE, Berlin: matches Germany and
    // Berlin, now both at depth 4) neither is the more specific: equal priority and
    // depth, the smaller id (Germany, created first) wins. a1 stays in Mitte (deeper).
    assert_eq!(
        prop["diff"]["account_moves"],
        json!([{"account_id": acc["a2"], "name": "a2", "from": [{"id": berlin, "name": "Berlin"}],
                "to": [{"id": germany, "name": "Germany"}]}]),
        "{prop}"
    );
    let rid = prop["id"].as_str().unwrap().to_string();
    // Nothing changed yet.
    assert_eq!(snapshot(&c, &users).await, before_access);
    let rollups_preview = prop["diff"]["rollups"].clone();
    c.ok("POST", &format!("/realignments/{rid}/apply"), None).await;
    let after_access = snapshot(&c, &users).await;
    // Preview's access diff is exactly what happened.
    let mut diffs = BTreeMap::new();
    for (uid, (_, b)) in &before_access {
        let a = &after_access[uid].1;
        let gained: BTreeSet<String> = a.difference(b).cloned().collect();
        let lost: BTreeSet<String> = b.difference(a).cloned().collect();
        if !gained.is_empty() || !lost.is_empty() {
            diffs.insert(uid.clone(), (gained, lost));
        }
    }
    let mut previewed = BTreeMap::new();
    for u in prop["diff"]["access"].as_array().unwrap() {
        let ids = |k: &str| -> BTreeSet<String> {
            u[k].as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect()
        };
        previewed.insert(u["user_id"].as_str().unwrap().to_string(), (ids("gained"), ids("lost")));
    }
    assert_eq!(previewed, diffs, "{prop}");
    assert!(diffs.contains_key(&users["france"].id) && diffs.contains_key(&users["dach"].id));
    // Previewed roll-ups are what the roll-up endpoint now says.
    assert!(!rollups_preview.as_array().unwrap().is_empty());
    for r in rollups_preview.as_array().unwrap() {
        let now = c
            .ok(
                "GET",
                &format!("/territories/{}/rollup", r["territory_id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(norm(&now["metrics"]), norm(&r["after"]), "{r}");
        assert_ne!(r["before"], r["after"]);
    }
    // Applied once only; rollback restores access exactly.
    let (st, _) = c.call("POST", &format!("/realignments/{rid}/apply"), None).await;
    assert_eq!(st, 409);
    c.ok("POST", &format!("/realignments/{rid}/rollback"), None).await;
    assert_eq!(snapshot(&c, &users).await, before_access);
    let b = c.ok("GET", &format!("/territories/{mitte}/path"), None).await;
    assert_eq!(b["path"], "/Global/EMEA/DACH/Germany/Berlin/Mitte");

    // An apply that died part-way: journalled as `applying` (what apply writes before
    // changing anything), then only the structural step done — Berlin moved by hand
    // (a plain move re-parents without re-assigning). Applying again finishes it;
    // discarding instead undoes it. Both end exactly where a clean run would.
    for finish in [true, false] {
        let prop = c
            .ok(
                "POST",
                "/realignments",
                Some(json!({"kind": "move", "territory_id": berlin, "parent_id": france})),
            )
            .await;
        let rid = prop["id"].as_str().unwrap().to_string();
        // Journalled a moment ago and not interrupted: another call may still be at
        // it, so neither finishing nor undoing it is allowed yet.
        patch_realignment(
            &c,
            &rid,
            json!({"status": "applying", "started_at": unix_now(),
                   "undo": {"kind": "move", "territory_id": berlin, "parent_id": germany}}),
        )
        .await;
        c.ok(
            "POST",
            &format!("/territories/{berlin}/move"),
            Some(json!({"parent_id": france})),
        )
        .await;
        for action in ["apply", "discard"] {
            let (st, b) = c.call("POST", &format!("/realignments/{rid}/{action}"), None).await;
            assert_eq!(st, 409, "{action}: {b}");
            assert!(b["detail"].as_str().unwrap_or("").contains("being applied"), "{b}");
        }
        // It is dead once no call can still be running (a timeout leaves no word), or
        // once it said why it stopped.
        let dead = if finish {
            json!({"started_at": unix_now() - 300})
        } else {
            json!({"interrupted": "killed"})
        };
        patch_realignment(&c, &rid, dead).await;
        let b = c.ok("GET", &format!("/realignments/{rid}"), None).await;
        assert_eq!(b["status"], "applying", "{b}");
        assert_eq!(b["interrupted"].as_str(), (!finish).then_some("killed"), "{b}");
        if finish {
            let b = c.ok("POST", &format!("/realignments/{rid}/apply"), None).await;
            assert_eq!(b["status"], "applied");
            assert_eq!(snapshot(&c, &users).await, after_access);
            assert_eq!(c.territories_of(&acc["a2"]).await, json!([germany]));
            c.ok("POST", &format!("/realignments/{rid}/rollback"), None).await;
        } else {
            let b = c.ok("POST", &format!("/realignments/{rid}/discard"), None).await;
            assert_eq!(b["status"], "discarded");
        }
        assert_eq!(snapshot(&c, &users).await, before_access, "finish: {finish}");
        assert_eq!(c.territories_of(&acc["a2"]).await, json!([berlin]));
        let b = c.ok("GET", &format!("/territories/{mitte}/path"), None).await;
        assert_eq!(b["path"], "/Global/EMEA/DACH/Germany/Berlin/Mitte");
    }

    // Realignment 2: raise the Strategic threshold; a5 (60M) leaves it.
    let prop = c
        .ok(
            "POST",
            "/realignments",
            Some(json!({"kind": "rules", "territory_id": strategic,
                        "rules": [{"criteria": [{"op": "range", "field": "annual_revenue", "min": 65_000_000}], "mode": "keep-all"}]})),
        )
        .await;
    let moves = prop["diff"]["account_moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{prop}");
    assert_eq!(moves[0]["account_id"], acc["a5"]);
    assert_eq!(moves[0]["to"], json!([{"id": france, "name": "France"}]));
    let rid2 = prop["id"].as_str().unwrap().to_string();
    // A stale preview is refused: discard this one, preview again after a change.
    c.ok(
        "PUT",
        &format!("/territories/{mitte}/members/{}", users["mitte"].id),
        Some(json!({"role": "member"})),
    )
    .await;
    let (st, b) = c.call("POST", &format!("/realignments/{rid2}/apply"), None).await;
    assert_eq!(st, 409, "{b}");
    c.ok("POST", &format!("/realignments/{rid2}/discard"), None).await;
    let prop = c
        .ok(
            "POST",
            "/realignments",
            Some(json!({"kind": "rules", "territory_id": strategic,
                        "rules": [{"criteria": [{"op": "range", "field": "annual_revenue", "min": 65_000_000}], "mode": "keep-all"}]})),
        )
        .await;
    let rid3 = prop["id"].as_str().unwrap().to_string();
    let before_access = snapshot(&c, &users).await;
    c.ok("POST", &format!("/realignments/{rid3}/apply"), None).await;
    assert_eq!(c.visible(&users["strategic"].key, "account", "").await, sees(&["a8"]));
    let b = c.ok("GET", &format!("/accounts/{}/territories", acc["a5"]), None).await;
    assert_eq!(b["territories"], json!([france]));
    c.ok("POST", &format!("/realignments/{rid3}/rollback"), None).await;
    assert_eq!(snapshot(&c, &users).await, before_access);
    let b = c.ok("GET", &format!("/territories/{strategic}/rules"), None).await;
    assert_eq!(b["rules"][0]["criteria"][0]["min"], 50_000_000.0);

    // Applied realignments are in the audit ledger.
    let r =
        c.s.call("GET", "/api/v1/audit/events?limit=200", Some(&c.t.key), None)
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let actions: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.iter().any(|a| a.ends_with("realignment.applied")),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a.ends_with("realignment.rolled_back")),
        "{actions:?}"
    );

    // Disable: endpoints answer the disabled problem; enable: as before.
    let roots = c.ok("GET", "/territories", None).await;
    let r =
        c.s.call(
            "POST",
            "/api/v1/installations/territories/disable",
            Some(&c.t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (st, b) = c.call("GET", "/territories", None).await;
    assert_eq!(
        (st, b["type"].as_str()),
        (404, Some("https://plinth.dev/problems/plugin-disabled"))
    );
    let r =
        c.s.call("POST", "/api/v1/installations/territories/enable", Some(&c.t.key), None)
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.ok("GET", "/territories", None).await, roots);
    let b = c.ok("GET", &format!("/territories/{dach}/rollup"), None).await;
    assert_eq!(
        norm(&b["metrics"]),
        norm(&brute(&expected_accounts["dach"], &opps, &from, &to))
    );

    // Archive: refused with active children; a leaf's accounts are unassigned.
    let (st, _) = c.call("POST", &format!("/territories/{berlin}/archive"), None).await;
    assert_eq!(st, 409);
    c.ok("POST", &format!("/territories/{mitte}/archive"), None).await;
    assert!(c.visible(&users["mitte"].key, "account", "").await.is_empty());
    let b = c.ok("GET", &format!("/accounts/{}/territories", acc["a1"]), None).await;
    assert_eq!(b["territories"], json!([]));
}

/// Upgrading from a version whose territory documents have no `ruled` flag (0.2) must
/// set the flags and then mark them complete, or assignment (which reads only ruled
/// territories once the marker exists) would miss rules. Simulated here: the flags and
/// the marker are stripped from the stored documents, then the plugin is upgraded to a
/// newer build of itself, whose `on-install` backfills them.
#[tokio::test]
async fn upgrading_indexes_the_rules_an_older_version_stored() {
    let (c, _) = Ctx::installed("Upgrade").await;
    let global = c.territory("Global", "global", None).await;
    let emea = c.territory("EMEA", "region", Some(&global)).await;
    let germany = c.territory("Germany", "country", Some(&emea)).await;
    let berlin = c.territory("Berlin", "city", Some(&germany)).await;
    c.rules(
        &germany,
        json!([{"criteria": [{"op": "equals", "field": "country", "value": "DE"}]}]),
    )
    .await;
    c.rules(
        &berlin,
        json!([{"criteria": [{"op": "equals", "field": "city", "value": "Berlin"}]}]),
    )
    .await;

    // The stored state of 0.2: no `ruled` on any territory, no marker.
    let docs = "FROM plugin_documents WHERE tenant_id = $1 AND plugin_id = 'territories'";
    let keys: Vec<String> = sqlx::query_scalar(&format!("SELECT doc_key {docs} AND collection = 'territories'"))
        .bind(&c.t.id)
        .fetch_all(c.s.db().reader())
        .await
        .unwrap();
    assert_eq!(keys.len(), 4);
    for key in keys {
        edit_document(&c, "territories", &key, |t| {
            t.remove("ruled");
        })
        .await;
    }
    c.s.sql(
        &format!("DELETE {docs} AND collection = 'meta' AND doc_key = 'ruled-index'"),
        &[&c.t.id],
    )
    .await;

    // A newer build of the plugin, published by the first-party publisher.
    let (manifest, component) = plinth_tests::bundled("territories");
    let current = manifest.plugin.version.to_string();
    let mut next = manifest.plugin.version.clone();
    next.patch += 1;
    let next = next.to_string();
    let text = plinth_host::bundled::find("territories").unwrap().manifest;
    let line = format!("version = \"{current}\"");
    assert_eq!(text.matches(&line).count(), 1, "one version line in the manifest");
    let text = text.replace(&line, &format!("version = \"{next}\""));
    let key =
        plinth_core::package::SecretKey::read(&c.s.data_dir().join(plinth_host::bundled::bootstrap::KEY_FILE)).unwrap();
    let package = plinth_core::package::Package::sign(text.into_bytes(), component, &key)
        .unwrap()
        .encode();
    let op = c.s.operator_token().await;
    let r =
        c.s.call("POST", "/api/v1/operator/publishers/plinth/tokens", Some(&op), None)
            .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = c.s.publish(r.body["token"].as_str().unwrap(), package).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r =
        c.s.call(
            "POST",
            "/api/v1/installations/territories/upgrade",
            Some(&c.t.key),
            Some(json!({"version": next})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // on-install set every flag from the rules, then wrote the marker.
    let rows: Vec<(String, String)> =
        sqlx::query_as(&format!("SELECT doc_key, value {docs} AND collection = 'territories'"))
            .bind(&c.t.id)
            .fetch_all(c.s.db().reader())
            .await
            .unwrap();
    for (key, value) in rows {
        let v: Value = serde_json::from_str(&value).unwrap();
        // Absent means false (what 0.2 documents without rules keep).
        let ruled = key == germany || key == berlin;
        assert_eq!(v["ruled"].as_bool().unwrap_or(false), ruled, "{key}: {v}");
    }
    let markers: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) {docs} AND collection = 'meta' AND doc_key = 'ruled-index'"
    ))
    .bind(&c.t.id)
    .fetch_one(c.s.db().reader())
    .await
    .unwrap();
    assert_eq!(markers, 1);

    // And assignment, now reading only ruled territories, finds both rules.
    let a = c
        .create(
            "account",
            json!({"name": "Spree GmbH", "country": "DE", "city": "Berlin"}),
        )
        .await;
    let b = c
        .create("account", json!({"name": "Isar AG", "country": "DE", "city": "Munich"}))
        .await;
    c.caught_up().await;
    assert_eq!(c.territories_of(&a).await, json!([berlin]));
    assert_eq!(c.territories_of(&b).await, json!([germany]));
    c.s.stop().await;
}

/// A realignment larger than fits in one document: its diff lists keep their first
/// entries inline and every entry in pages, and its account moves (more than 200) are
/// stored apart and still applied and rolled back exactly.
#[tokio::test]
async fn a_large_realignment_pages_its_diff_and_account_moves() {
    const N: usize = 230;
    let (c, _) = Ctx::installed("Paging").await;
    let north_member = c.s.user(&c.t, "n", "member").await;
    let south_member = c.s.user(&c.t, "s", "member").await;
    let world = c.territory("World", "global", None).await;
    let north = c.territory("North", "region", Some(&world)).await;
    let south = c.territory("South", "region", Some(&world)).await;
    for (t, u) in [(&north, &north_member), (&south, &south_member)] {
        c.ok(
            "PUT",
            &format!("/territories/{t}/members/{}", u.id),
            Some(json!({"role": "member"})),
        )
        .await;
    }
    let de = json!([{"criteria": [{"op": "equals", "field": "country", "value": "DE"}]}]);
    c.rules(&north, de).await;
    let items: Vec<Value> = (0..N)
        .map(|i| json!({"fields": {"name": format!("acc{i:03}"), "country": "DE"}}))
        .collect();
    let r =
        c.s.call(
            "POST",
            "/api/v1/records/account/bulk",
            Some(&c.t.key),
            Some(json!({ "create": items })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    c.caught_up().await;
    let all = c.visible(&north_member.key, "account", "").await;
    assert_eq!(all.len(), N);

    // Moving North under South: South's member would gain every account.
    let prop = c
        .ok(
            "POST",
            "/realignments",
            Some(json!({"kind": "move", "territory_id": north, "parent_id": south})),
        )
        .await;
    let rid = prop["id"].as_str().unwrap().to_string();
    let access = prop["diff"]["access"].as_array().unwrap();
    let entry = access
        .iter()
        .find(|u| u["user_id"] == south_member.id.as_str())
        .unwrap_or_else(|| panic!("{prop}"));
    assert_eq!(
        (
            entry["gained_total"].as_u64(),
            entry["gained_pages"].as_u64(),
            entry["gained"].as_array().map(Vec::len)
        ),
        (Some(N as u64), Some(1), Some(50)),
        "{entry}"
    );
    let list = format!("access/{}/gained", south_member.id);
    let page = c
        .ok("GET", &format!("/realignments/{rid}/diff?list={list}&page=0"), None)
        .await;
    assert_eq!(
        (page["pages"].as_u64(), page["total"].as_u64()),
        (Some(1), Some(N as u64))
    );
    let paged: BTreeSet<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paged, all, "the pages hold every account gained");
    let (st, _) = c
        .call("GET", &format!("/realignments/{rid}/diff?list={list}&page=1"), None)
        .await;
    assert_eq!(st, 404);
    let (st, b) = c
        .call("GET", &format!("/realignments/{rid}/diff?list=everything"), None)
        .await;
    assert_eq!(st, 400, "{b}");
    // A short list is one page, served from the document itself.
    let moves = c
        .ok("GET", &format!("/realignments/{rid}/diff?list=account_moves"), None)
        .await;
    assert_eq!(
        (moves["pages"].as_u64(), moves["total"].as_u64()),
        (Some(1), Some(0)),
        "{moves}"
    );
    c.ok("POST", &format!("/realignments/{rid}/discard"), None).await;

    // Dropping North's rules unassigns all 230: more moves than a document keeps.
    let prop = c
        .ok(
            "POST",
            "/realignments",
            Some(json!({"kind": "rules", "territory_id": north, "rules": []})),
        )
        .await;
    let rid = prop["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            prop["diff"]["account_moves_total"].as_u64(),
            prop["diff"]["account_moves_pages"].as_u64()
        ),
        (Some(N as u64), Some(1)),
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM plugin_documents WHERE tenant_id = $1 AND plugin_id = 'territories' \
         AND collection = 'realignment-pages' AND doc_key = $2",
    )
    .bind(&c.t.id)
    .bind(format!("{rid}/changes/0"))
    .fetch_one(c.s.db().reader())
    .await
    .unwrap();
    assert_eq!(stored, 1, "the account moves are stored apart");
    c.ok("POST", &format!("/realignments/{rid}/apply"), None).await;
    assert!(c.visible(&north_member.key, "account", "").await.is_empty());
    let any = all.iter().next().unwrap();
    assert_eq!(c.territories_of(any).await, json!([]));
    c.ok("POST", &format!("/realignments/{rid}/rollback"), None).await;
    assert_eq!(c.visible(&north_member.key, "account", "").await, all);
    assert_eq!(c.territories_of(any).await, json!([north]));
    // Each call audits its hundreds of share changes with one chain append, in
    // statements of 50 rows: the chain still verifies, one event per change.
    let removed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE tenant_id = $1 AND action = 'record_share.remove'")
            .bind(&c.t.id)
            .fetch_one(c.s.db().reader())
            .await
            .unwrap();
    assert!(removed >= N as i64, "{removed} share removals audited");
    let v = c.s.call("GET", "/api/v1/audit/verify", Some(&c.t.key), None).await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["ok"], true, "{}", v.text);
    c.s.stop().await;
}

/// Records made before the install are shared only by a run, so the plugin never
/// recorded which account they were shared for. When one moves to another account, the
/// event's `previous.account_id` names the account it left, and its shares through that
/// account's territories go (before the host sent `previous`, they stayed: a leak).
#[tokio::test]
async fn a_record_made_before_the_install_leaves_its_old_territories_when_it_moves() {
    let s = TestServer::start_with_first_party().await;
    let t = s.tenant("Before").await;
    let c = Ctx { s, t };
    let berlin_acc = c
        .create(
            "account",
            json!({"name": "Berlin GmbH", "country": "DE", "city": "Berlin"}),
        )
        .await;
    let paris_acc = c
        .create("account", json!({"name": "Paris SA", "country": "FR", "city": "Paris"}))
        .await;
    // Two more, so the run takes more than one batch of three.
    c.create(
        "account",
        json!({"name": "München AG", "country": "DE", "city": "München"}),
    )
    .await;
    c.create("account", json!({"name": "Tokyo KK", "country": "JP", "city": "Tokyo"}))
        .await;
    let opp = c
        .create(
            "opportunity",
            json!({"name": "Moving deal", "account_id": berlin_acc, "stage": "proposal", "close_date": "2026-12-31",
                   "amount": {"value": 1_000.0, "currency": "EUR"}}),
        )
        .await;
    let contact = c
        .create("contact", json!({"last_name": "Umzug", "account_id": berlin_acc}))
        .await;
    let r = c.s.install(&c.t, "territories", json!("all")).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let global = c.territory("Global", "global", None).await;
    let germany = c.territory("Germany", "country", Some(&global)).await;
    let france = c.territory("France", "country", Some(&global)).await;
    for (id, country) in [(&germany, "DE"), (&france, "FR")] {
        c.rules(
            id,
            json!([{"criteria": [{"op": "equals", "field": "country", "value": country}]}]),
        )
        .await;
    }
    let de = c.s.user(&c.t, "de", "member").await;
    let fr = c.s.user(&c.t, "fr", "member").await;
    for (territory, user) in [(&germany, &de), (&france, &fr)] {
        c.ok(
            "PUT",
            &format!("/territories/{territory}/members/{}", user.id),
            Some(json!({ "role": "member" })),
        )
        .await;
    }
    let run = c.run_assignment().await;
    assert_eq!(run["total"], 4, "{run}");
    c.caught_up().await;
    for object in ["opportunity", "contact"] {
        let id = if object == "contact" { &contact } else { &opp };
        assert!(c.visible(&de.key, object, "").await.contains(id), "{object}");
        assert!(!c.visible(&fr.key, object, "").await.contains(id), "{object}");
    }

    c.update("opportunity", &opp, json!({"account_id": paris_acc})).await;
    c.update("contact", &contact, json!({"account_id": paris_acc})).await;
    c.caught_up().await;
    for (object, id) in [("opportunity", &opp), ("contact", &contact)] {
        assert!(
            !c.visible(&de.key, object, "").await.contains(id),
            "{object} left Germany"
        );
        assert!(
            c.visible(&fr.key, object, "").await.contains(id),
            "{object} came to France"
        );
    }
    // Moving back (the handler now knows the account) converges the same way.
    c.update("opportunity", &opp, json!({"account_id": berlin_acc})).await;
    c.caught_up().await;
    assert!(c.visible(&de.key, "opportunity", "").await.contains(&opp));
    assert!(!c.visible(&fr.key, "opportunity", "").await.contains(&opp));
    c.s.stop().await;
}
