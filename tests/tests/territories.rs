//! The territories plugin end to end: installed from the marketplace on a real server,
//! driven through its REST endpoints, and checked through the *core* REST records API
//! (what each user sees), not through the plugin: traversal, rules and assignment (by
//! runs and by events), roll-ups against a brute force, realignments previewed, applied,
//! interrupted, rolled back and paged, upgrades from an older stored state, and records
//! that change accounts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use plinth_tests::{Call, Client, Guest, TestPublisher, TestServer, TestTenant, TestUser};
use serde_json::{Value, json};

const P: &str = "/api/v1/plugins/territories";

/// A tenant (its owner's client) on a server with the first-party catalog.
struct Ctx {
    s: TestServer,
    t: TestTenant,
}

impl Ctx {
    /// A server with the first-party catalog and tenant `name`, without territories.
    async fn new(name: &str) -> Ctx {
        let s = TestServer::start_with_first_party().await;
        let t = s.tenant(name).await;
        Ctx { s, t }
    }

    /// [`Ctx::new`] with territories installed with every grant; also the
    /// installation's answer.
    async fn installed(name: &str) -> (Ctx, Value) {
        let c = Ctx::new(name).await;
        let installed = c.install().await;
        (c, installed)
    }

    /// Install territories with every grant; the installation's answer.
    async fn install(&self) -> Value {
        self.s
            .install(&self.t, "territories", json!("all"))
            .await
            .expect(201)
            .json()
    }

    /// A request to the plugin's endpoint `path`, as the owner, without a body.
    fn plugin(&self, method: &str, path: &str) -> Call {
        self.t.request(method, &format!("{P}{path}"))
    }

    /// `GET` the plugin's `path` as the owner.
    fn get(&self, path: &str) -> Call {
        self.plugin("GET", path)
    }

    /// What `GET` of the plugin's `path` answers the owner, which must be 200.
    async fn read(&self, path: &str) -> Value {
        self.get(path).await.expect(200).json()
    }

    /// `POST` to the plugin's `path` as the owner (add a body with `.json(…)`).
    fn post(&self, path: &str) -> Call {
        self.plugin("POST", path)
    }

    /// `PUT` `body` to the plugin's `path` as the owner.
    fn put(&self, path: &str, body: Value) -> Call {
        self.plugin("PUT", path).json(body)
    }

    async fn territory(&self, name: &str, kind: &str, parent: Option<&str>) -> String {
        let b = self
            .post("/territories")
            .json(json!({"name": name, "type": kind, "parent_id": parent}))
            .await
            .expect(201)
            .json();
        b["id"].as_str().unwrap().to_string()
    }

    async fn rules(&self, id: &str, rules: Value) {
        self.put(&format!("/territories/{id}/rules"), json!({ "rules": rules }))
            .await
            .expect(200);
    }

    /// Make `user` a member of territory `id` with `role`.
    async fn member(&self, id: &str, user: &TestUser, role: &str) {
        self.put(
            &format!("/territories/{id}/members/{}", user.id),
            json!({ "role": role }),
        )
        .await
        .expect(200);
    }

    /// Propose a realignment; the proposal with its diff.
    async fn propose(&self, proposal: Value) -> Value {
        let prop = self.post("/realignments").json(proposal).await.expect(201).json();
        assert_eq!(prop["status"], "proposed", "{prop}");
        prop
    }

    /// `apply`, `discard` or `rollback` realignment `rid`.
    fn realignment(&self, rid: &str, action: &str) -> Call {
        self.post(&format!("/realignments/{rid}/{action}"))
    }

    /// The path of names from the root to territory `id`.
    async fn path(&self, id: &str) -> Value {
        self.read(&format!("/territories/{id}/path")).await["path"].clone()
    }

    async fn create(&self, object: &str, fields: Value) -> String {
        let r = self
            .t
            .post(&format!("/api/v1/records/{object}"), json!({ "fields": fields }))
            .await
            .expect(201)
            .json();
        r["id"].as_str().unwrap().to_string()
    }

    /// Create an account in `country` and `city`; its id.
    async fn account(&self, name: &str, country: &str, city: &str) -> String {
        self.create("account", json!({"name": name, "country": country, "city": city}))
            .await
    }

    /// Record ids of `object` that `who` sees through the core REST API.
    async fn visible(&self, who: &Client, object: &str, filter: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/records/{object}?limit=100{filter}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = who.get(&path).await.expect(200).json();
            for rec in page["data"].as_array().unwrap() {
                out.insert(rec["id"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    async fn update(&self, object: &str, id: &str, fields: Value) {
        self.t
            .patch(&format!("/api/v1/records/{object}/{id}"), json!({ "fields": fields }))
            .await
            .expect(200);
    }

    /// Wait until the plugin has handled every event in the tenant's log (the core
    /// subscriptions endpoint says `caught_up`), with no failures; fail after a minute.
    async fn caught_up(&self) {
        let started = Instant::now();
        loop {
            let r = self.t.get("/api/v1/events/subscriptions").await.expect(200);
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
        self.read(&format!("/accounts/{account}/territories")).await["territories"].clone()
    }

    async fn run_assignment(&self) -> Value {
        let mut run = self
            .post("/assignment/run")
            .json(json!({"batch_size": 3}))
            .await
            .expect(201)
            .json();
        let mut steps = 1;
        while run["status"] == "running" {
            assert!(run["processed"].as_u64().unwrap() < run["total"].as_u64().unwrap());
            let id = run["id"].as_str().unwrap().to_string();
            let progress = self.read(&format!("/assignment/runs/{id}")).await;
            assert_eq!(progress, run, "progress is stored and readable");
            run = self
                .post(&format!("/assignment/runs/{id}/continue"))
                .await
                .expect(200)
                .json();
            steps += 1;
        }
        assert_eq!(run["processed"], run["total"]);
        assert!(steps > 1, "batches of 3 need several steps");
        run
    }

    /// The tenant's audit events with `action`.
    async fn audit_events(&self, action: &str) -> Vec<Value> {
        self.t.audit_events(&[("action", action)]).await
    }

    /// The plugin's stored document `key` in `collection`, if there is one. (Its
    /// documents are its own storage, which only SQL sees, like the rest of these.)
    async fn document(&self, collection: &str, key: &str) -> Option<Value> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT value FROM plugin_documents WHERE tenant_id = $1 AND plugin_id = 'territories' \
             AND collection = $2 AND doc_key = $3",
        )
        .bind(&self.t.id)
        .bind(collection)
        .bind(key)
        .fetch_optional(self.s.db().reader())
        .await
        .unwrap();
        text.map(|t| serde_json::from_str(&t).unwrap())
    }

    /// Delete the plugin's document `key` in `collection` behind its back.
    async fn remove_document(&self, collection: &str, key: &str) {
        self.s
            .sql(
                "DELETE FROM plugin_documents WHERE tenant_id = $1 AND plugin_id = 'territories' \
                 AND collection = $2 AND doc_key = $3",
                &[&self.t.id, collection, key],
            )
            .await;
    }

    /// Change a document the plugin stored, behind its back (the tests use it to put
    /// state in place that only a crash or an older version leaves).
    async fn edit_document(&self, collection: &str, key: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
        let mut doc = self
            .document(collection, key)
            .await
            .unwrap_or_else(|| panic!("no document {collection}/{key}"));
        edit(doc.as_object_mut().unwrap());
        self.s
            .sql(
                "UPDATE plugin_documents SET value = $4 WHERE tenant_id = $1 AND plugin_id = 'territories' \
                 AND collection = $2 AND doc_key = $3",
                &[&self.t.id, collection, key, &doc.to_string()],
            )
            .await;
    }

    /// Overwrite top-level members of stored realignment `rid`: how the tests make it
    /// look as an apply leaves it when it dies part-way.
    async fn patch_realignment(&self, rid: &str, patch: Value) {
        self.edit_document("realignments", rid, |doc| {
            for (k, v) in patch.as_object().unwrap() {
                doc.insert(k.clone(), v.clone());
            }
        })
        .await;
    }
}

/// The names of the territories in a listing's `data`.
fn names(listing: &Value) -> Vec<&str> {
    listing["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {listing}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

/// Per user id: (name, every account, opportunity and contact id they see).
async fn snapshot(c: &Ctx, users: &BTreeMap<&str, TestUser>) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for (u, user) in users {
        let mut seen = c.visible(user, "account", "").await;
        seen.extend(c.visible(user, "opportunity", "").await);
        seen.extend(c.visible(user, "contact", "").await);
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
        c.member(tid[u], &users[u], role).await;
    }

    // Traversal.
    let b = c.read(&format!("/territories/{mitte}/path")).await;
    assert_eq!(b["path"], "/Global/EMEA/DACH/Germany/Berlin/Mitte");
    assert_eq!(b["ids"], json!([global, emea, dach, germany, berlin, mitte]));
    let b = c.read(&format!("/territories/{mitte}/ancestors")).await;
    assert_eq!(names(&b), ["Global", "EMEA", "DACH", "Germany", "Berlin"]);
    let b = c.read(&format!("/territories/{global}/children")).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 3);
    let b = c.read(&format!("/territories/{global}/descendants?max_depth=2")).await;
    assert_eq!(
        BTreeSet::from_iter(names(&b)),
        BTreeSet::from(["EMEA", "Americas", "Strategic", "DACH", "France"])
    );
    // Paginated: 8 descendants in pages of 3.
    let mut all = Vec::new();
    let mut path = format!("/territories/{global}/descendants?limit=3");
    loop {
        let b = c.read(&path).await;
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
    let b = c.read(&format!("/territories/{dach}/siblings")).await;
    assert_eq!(b["data"][0]["name"], "France");
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let b = c.read(&format!("/territories/{emea}/subtree")).await;
    assert_eq!(b["tree"]["name"], "EMEA");
    assert_eq!(b["tree"]["children"][0]["name"], "DACH");
    assert_eq!(
        b["tree"]["children"][0]["children"][0]["children"][0]["children"][0]["name"],
        "Mitte"
    );
    assert_eq!(b["tree"]["children"][1]["name"], "France");

    // Bad input: clear problems (the status, and what the detail names where given).
    let rules = format!("/territories/{dach}/rules");
    let move_dach = format!("/territories/{dach}/move");
    for (method, path, body, status, detail) in [
        ("GET", "/territories/nope", Value::Null, 404, ""),
        ("POST", "/territories", json!({"name": "  "}), 400, "empty"),
        ("POST", "/territories", json!({"name": "x".repeat(201)}), 400, ""),
        ("POST", "/territories", json!({"name": "A/B"}), 400, ""),
        (
            "POST",
            "/territories",
            json!({"name": "X", "parent_id": "nope"}),
            404,
            "",
        ),
        (
            "PUT",
            &rules,
            json!({"rules": [{"criteria": [{"op": "range", "field": "country", "min": 1}]}]}),
            400,
            "numeric",
        ),
        (
            "PUT",
            &rules,
            json!({"rules": [{"criteria": [{"op": "equals", "field": "nope", "value": "x"}]}]}),
            400,
            "",
        ),
        ("POST", &move_dach, json!({"parent_id": mitte}), 409, "own descendant"),
        ("POST", &move_dach, json!({"parent_id": dach}), 409, ""),
        ("POST", &move_dach, json!({"parent_id": "nope"}), 404, ""),
    ] {
        let call = c.plugin(method, path);
        let call = if body.is_null() { call } else { call.json(body) };
        let r = call.await.expect(status);
        if !detail.is_empty() {
            let said = r.body["detail"]
                .as_str()
                .unwrap_or_else(|| panic!("no detail: {}", r.text));
            assert!(said.contains(detail), "{method} {path}: {}", r.text);
        }
    }

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
    let equals = |field: &str, value: &str| json!([{"criteria": [{"op": "equals", "field": field, "value": value}]}]);
    c.rules(&emea, json!([{"criteria": [{"op": "in", "field": "country", "values": ["DE", "AT", "CH", "FR"]}], "apply_to_children": true}])).await;
    c.rules(
        &dach,
        json!([{"criteria": [{"op": "in", "field": "country", "values": ["DE", "AT", "CH"]}]}]),
    )
    .await;
    c.rules(&germany, equals("country", "DE")).await;
    c.rules(
        &berlin,
        json!([{"criteria": [{"op": "prefix", "field": "city", "value": "Berl"}]}]),
    )
    .await;
    c.rules(&mitte, json!([{"criteria": [{"op": "equals", "field": "city", "value": "Berlin"}, {"op": "range", "field": "annual_revenue", "min": 10_000_000}]}])).await;
    c.rules(&france, equals("country", "FR")).await;
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
    for (a, id) in &acc {
        assert_eq!(c.territories_of(id).await, json!(expect_terr(a)), "{a}");
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
        assert_eq!(&c.visible(&users[u], "account", "").await, want, "accounts seen by {u}");
        assert_eq!(
            c.visible(&users[u], "opportunity", "").await,
            opps_of(want),
            "opportunities seen by {u}"
        );
    }
    assert_eq!(
        c.visible(&users["mitte"], "contact", "").await,
        BTreeSet::from([contact.clone()])
    );
    assert!(c.visible(&users["americas"], "contact", "").await.is_empty());

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
    assert_eq!(c.visible(&users["france"], "account", "").await, france_sees);
    let mut france_opps = opps_of(&expected_accounts["france"]);
    france_opps.insert(o9.clone());
    assert_eq!(c.visible(&users["france"], "opportunity", "").await, france_opps);
    assert!(c.visible(&users["emea"], "opportunity", "").await.contains(&o9));
    assert!(!c.visible(&users["dach"], "account", "").await.contains(&a9));
    for (u, user) in &users {
        assert!(!c.visible(user, "contact", "").await.contains(&c2), "{u}");
    }
    c.update("contact", &c2, json!({"account_id": a9})).await;
    c.caught_up().await;
    assert!(c.visible(&users["france"], "contact", "").await.contains(&c2));
    assert!(c.visible(&users["emea"], "contact", "").await.contains(&c2));
    c.update("contact", &c2, json!({"account_id": acc["a4"]})).await;
    c.caught_up().await;
    assert!(!c.visible(&users["france"], "contact", "").await.contains(&c2));
    assert!(c.visible(&users["dach"], "contact", "").await.contains(&c2));
    assert!(c.visible(&users["emea"], "contact", "").await.contains(&c2));
    // A change to a field no rule looks at leaves the assignment alone.
    c.update("account", &a9, json!({"name": "a9 renamed"})).await;
    c.caught_up().await;
    assert_eq!(c.territories_of(&a9).await, json!([france]));
    c.update("account", &a9, json!({"country": "JP"})).await;
    c.caught_up().await;
    assert_eq!(c.territories_of(&a9).await, json!([]));
    assert_eq!(
        c.visible(&users["france"], "account", "").await,
        expected_accounts["france"]
    );
    assert_eq!(
        c.visible(&users["france"], "opportunity", "").await,
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
    assert!(
        c.document("meta", "ruled-index").await.is_some(),
        "on-install marked the `ruled` flags complete"
    );
    c.remove_document("meta", "ruled-index").await;
    for (country, assigned) in [("FR", json!([france])), ("JP", json!([]))] {
        c.update("account", &a9, json!({"country": country})).await;
        c.caught_up().await;
        assert_eq!(c.territories_of(&a9).await, assigned, "{country}");
    }
    let run = c.run_assignment().await;
    assert_eq!(run["changed"].as_u64(), Some(0), "{run}");

    // The host filter roll-ups stand on, through the REST API too.
    let f = format!("&filter[shared_within]={dach}");
    assert_eq!(c.visible(&c.t, "account", &f).await, expected_accounts["dach"]);

    // Roll-ups equal a brute-force computation over the same data.
    for u in ["global", "emea", "dach", "berlin", "mitte", "strategic"] {
        let b = c.read(&format!("/territories/{}/rollup", tid[u])).await;
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
        let b = users[u]
            .get(&format!("{P}/territories/{dach}/rollup"))
            .await
            .expect(200)
            .json();
        let visible = expected_accounts.get(sees).cloned().unwrap_or_default();
        assert_eq!(
            norm(&b["metrics"]),
            norm(&brute(&visible, &opps, &from, &to)),
            "DACH's roll-up as {u} sees it"
        );
    }
    let b = c
        .read(&format!("/territories/{dach}/rollup?from={before}&to={to}"))
        .await;
    assert_eq!(b["metrics"]["closed_won_count"], 4, "{b}");
    c.get(&format!("/territories/{dach}/rollup?from=2027-13"))
        .await
        .expect(400);

    // Move a subtree (Berlin with Mitte) under Americas: access follows.
    let move_berlin = |to: &str| {
        c.post(&format!("/territories/{berlin}/move"))
            .json(json!({"parent_id": to}))
    };
    move_berlin(&americas).await.expect(200);
    assert_eq!(c.path(&mitte).await, "/Global/Americas/Berlin/Mitte");
    for (u, want) in [
        ("americas", sees(&["a1", "a2", "a6"])),
        ("dach", sees(&["a3", "a4", "a8"])),
        ("emea", sees(&["a3", "a4", "a5", "a8"])),
        ("global", expected_accounts["global"].clone()),
    ] {
        assert_eq!(c.visible(&users[u], "account", "").await, want, "after the move, {u}");
    }
    move_berlin(&germany).await.expect(200);
    for (u, want) in &expected_accounts {
        assert_eq!(
            &c.visible(&users[u], "account", "").await,
            want,
            "after moving back, {u}"
        );
    }

    // Realignment 1: move Berlin under France. Preview, then apply, then roll back.
    let before_access = snapshot(&c, &users).await;
    let berlin_to_france = json!({"kind": "move", "territory_id": berlin, "parent_id": france});
    let prop = c.propose(berlin_to_france.clone()).await;
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
    c.realignment(&rid, "apply").await.expect(200);
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
        let territory = r["territory_id"].as_str().unwrap();
        let now = c.read(&format!("/territories/{territory}/rollup")).await;
        assert_eq!(norm(&now["metrics"]), norm(&r["after"]), "{r}");
        assert_ne!(r["before"], r["after"]);
    }
    // Applied once only; rollback restores access exactly.
    c.realignment(&rid, "apply").await.expect(409);
    c.realignment(&rid, "rollback").await.expect(200);
    assert_eq!(snapshot(&c, &users).await, before_access);
    assert_eq!(c.path(&mitte).await, "/Global/EMEA/DACH/Germany/Berlin/Mitte");

    // An apply that died part-way: journalled as `applying` (what apply writes before
    // changing anything), then only the structural step done — Berlin moved by hand
    // (a plain move re-parents without re-assigning). Applying again finishes it;
    // discarding instead undoes it. Both end exactly where a clean run would.
    for finish in [true, false] {
        let prop = c.propose(berlin_to_france.clone()).await;
        let rid = prop["id"].as_str().unwrap().to_string();
        // Journalled a moment ago and not interrupted: another call may still be at
        // it, so neither finishing nor undoing it is allowed yet.
        c.patch_realignment(
            &rid,
            json!({"status": "applying", "started_at": unix_now(),
                   "undo": {"kind": "move", "territory_id": berlin, "parent_id": germany}}),
        )
        .await;
        move_berlin(&france).await.expect(200);
        for action in ["apply", "discard"] {
            let r = c.realignment(&rid, action).await.expect(409);
            assert!(
                r.body["detail"].as_str().unwrap_or("").contains("being applied"),
                "{action}: {}",
                r.text
            );
        }
        // It is dead once no call can still be running (a timeout leaves no word), or
        // once it said why it stopped.
        let dead = if finish {
            json!({"started_at": unix_now() - 300})
        } else {
            json!({"interrupted": "killed"})
        };
        c.patch_realignment(&rid, dead).await;
        let b = c.read(&format!("/realignments/{rid}")).await;
        assert_eq!(b["status"], "applying", "{b}");
        assert_eq!(b["interrupted"].as_str(), (!finish).then_some("killed"), "{b}");
        if finish {
            let b = c.realignment(&rid, "apply").await.expect(200).json();
            assert_eq!(b["status"], "applied");
            assert_eq!(snapshot(&c, &users).await, after_access);
            assert_eq!(c.territories_of(&acc["a2"]).await, json!([germany]));
            c.realignment(&rid, "rollback").await.expect(200);
        } else {
            let b = c.realignment(&rid, "discard").await.expect(200).json();
            assert_eq!(b["status"], "discarded");
        }
        assert_eq!(snapshot(&c, &users).await, before_access, "finish: {finish}");
        assert_eq!(c.territories_of(&acc["a2"]).await, json!([berlin]));
        assert_eq!(c.path(&mitte).await, "/Global/EMEA/DACH/Germany/Berlin/Mitte");
    }

    // Realignment 2: raise the Strategic threshold; a5 (60M) leaves it.
    let raise = json!({"kind": "rules", "territory_id": strategic,
                       "rules": [{"criteria": [{"op": "range", "field": "annual_revenue", "min": 65_000_000}], "mode": "keep-all"}]});
    let prop = c.propose(raise.clone()).await;
    let moves = prop["diff"]["account_moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{prop}");
    assert_eq!(moves[0]["account_id"], acc["a5"]);
    assert_eq!(moves[0]["to"], json!([{"id": france, "name": "France"}]));
    let rid2 = prop["id"].as_str().unwrap().to_string();
    // A stale preview is refused: discard this one, preview again after a change.
    c.member(&mitte, &users["mitte"], "member").await;
    c.realignment(&rid2, "apply").await.expect(409);
    c.realignment(&rid2, "discard").await.expect(200);
    let prop = c.propose(raise).await;
    let rid3 = prop["id"].as_str().unwrap().to_string();
    let before_access = snapshot(&c, &users).await;
    c.realignment(&rid3, "apply").await.expect(200);
    assert_eq!(c.visible(&users["strategic"], "account", "").await, sees(&["a8"]));
    assert_eq!(c.territories_of(&acc["a5"]).await, json!([france]));
    c.realignment(&rid3, "rollback").await.expect(200);
    assert_eq!(snapshot(&c, &users).await, before_access);
    let b = c.read(&format!("/territories/{strategic}/rules")).await;
    assert_eq!(b["rules"][0]["criteria"][0]["min"], 50_000_000.0);

    // Applied realignments are in the audit ledger.
    for action in ["realignment.applied", "realignment.rolled_back"] {
        let events = c.audit_events(&format!("plugin.territories.{action}")).await;
        assert!(!events.is_empty(), "no {action} audited");
    }

    // Disable: endpoints answer the disabled problem; enable: as before.
    let roots = c.read("/territories").await;
    c.t.request("POST", "/api/v1/installations/territories/disable")
        .await
        .expect(200);
    let r = c.get("/territories").await.expect_problem(404, "plugin-disabled");
    assert_eq!(r.body["type"], "https://plinth.dev/problems/plugin-disabled");
    c.t.request("POST", "/api/v1/installations/territories/enable")
        .await
        .expect(200);
    assert_eq!(c.read("/territories").await, roots);
    let b = c.read(&format!("/territories/{dach}/rollup")).await;
    assert_eq!(
        norm(&b["metrics"]),
        norm(&brute(&expected_accounts["dach"], &opps, &from, &to))
    );

    // Archive: refused with active children; a leaf's accounts are unassigned.
    c.post(&format!("/territories/{berlin}/archive")).await.expect(409);
    c.post(&format!("/territories/{mitte}/archive")).await.expect(200);
    assert!(c.visible(&users["mitte"], "account", "").await.is_empty());
    assert_eq!(c.territories_of(&acc["a1"]).await, json!([]));
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

    // The stored state of 0.2: no `ruled` on any territory, no marker. (The plugin's
    // documents, read and written with SQL behind its back.)
    let territories = "SELECT doc_key, value FROM plugin_documents WHERE tenant_id = $1 \
                       AND plugin_id = 'territories' AND collection = 'territories'";
    let stored = || async {
        sqlx::query_as::<_, (String, String)>(territories)
            .bind(&c.t.id)
            .fetch_all(c.s.db().reader())
            .await
            .unwrap()
    };
    let before = stored().await;
    assert_eq!(before.len(), 4);
    for (key, _) in before {
        c.edit_document("territories", &key, |t| {
            t.remove("ruled");
        })
        .await;
    }
    c.remove_document("meta", "ruled-index").await;

    // A newer build of the plugin, signed with the first-party key and uploaded with a
    // token of the first-party publisher.
    let current = Guest::bundled("territories");
    let mut next = current.manifest().plugin.version.clone();
    next.patch += 1;
    let next = next.to_string();
    let token =
        c.s.operator()
            .await
            .request("POST", "/api/v1/operator/publishers/plinth/tokens")
            .await
            .expect(201)
            .json();
    let plinth = TestPublisher {
        id: "plinth".into(),
        key: plinth_core::package::SecretKey::read(&c.s.data_dir().join(plinth_host::bundled::bootstrap::KEY_FILE))
            .unwrap(),
        token: token["token"].as_str().unwrap().to_string(),
    };
    plinth
        .publish(&c.s, &current.set("plugin.version", next.as_str()))
        .await
        .expect(201);
    c.t.post("/api/v1/installations/territories/upgrade", json!({"version": next}))
        .await
        .expect(200);

    // on-install set every flag from the rules, then wrote the marker.
    for (key, value) in stored().await {
        let v: Value = serde_json::from_str(&value).unwrap();
        // Absent means false (what 0.2 documents without rules keep).
        let ruled = key == germany || key == berlin;
        assert_eq!(v["ruled"].as_bool().unwrap_or(false), ruled, "{key}: {v}");
    }
    assert!(c.document("meta", "ruled-index").await.is_some(), "the marker is back");

    // And assignment, now reading only ruled territories, finds both rules.
    let a = c.account("Spree GmbH", "DE", "Berlin").await;
    let b = c.account("Isar AG", "DE", "Munich").await;
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
        c.member(t, u, "member").await;
    }
    let de = json!([{"criteria": [{"op": "equals", "field": "country", "value": "DE"}]}]);
    c.rules(&north, de).await;
    let items: Vec<Value> = (0..N)
        .map(|i| json!({"fields": {"name": format!("acc{i:03}"), "country": "DE"}}))
        .collect();
    c.t.post("/api/v1/records/account/bulk", json!({ "create": items }))
        .await
        .expect(201);
    c.caught_up().await;
    let all = c.visible(&north_member, "account", "").await;
    assert_eq!(all.len(), N);

    // Moving North under South: South's member would gain every account.
    let prop = c
        .propose(json!({"kind": "move", "territory_id": north, "parent_id": south}))
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
    let diff = |query: String| c.get(&format!("/realignments/{rid}/diff?{query}"));
    let list = format!("list=access/{}/gained", south_member.id);
    let page = diff(format!("{list}&page=0")).await.expect(200).json();
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
    diff(format!("{list}&page=1")).await.expect(404);
    diff("list=everything".into()).await.expect(400);
    // A short list is one page, served from the document itself.
    let moves = diff("list=account_moves".into()).await.expect(200).json();
    assert_eq!(
        (moves["pages"].as_u64(), moves["total"].as_u64()),
        (Some(1), Some(0)),
        "{moves}"
    );
    c.realignment(&rid, "discard").await.expect(200);

    // Dropping North's rules unassigns all 230: more moves than a document keeps.
    let prop = c
        .propose(json!({"kind": "rules", "territory_id": north, "rules": []}))
        .await;
    let rid = prop["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            prop["diff"]["account_moves_total"].as_u64(),
            prop["diff"]["account_moves_pages"].as_u64()
        ),
        (Some(N as u64), Some(1)),
    );
    assert!(
        c.document("realignment-pages", &format!("{rid}/changes/0"))
            .await
            .is_some(),
        "the account moves are stored apart"
    );
    c.realignment(&rid, "apply").await.expect(200);
    assert!(c.visible(&north_member, "account", "").await.is_empty());
    let any = all.iter().next().unwrap();
    assert_eq!(c.territories_of(any).await, json!([]));
    c.realignment(&rid, "rollback").await.expect(200);
    assert_eq!(c.visible(&north_member, "account", "").await, all);
    assert_eq!(c.territories_of(any).await, json!([north]));
    // Each call audits its hundreds of share changes with one chain append, in
    // statements of 50 rows: the chain still verifies, one event per change.
    let removed = c.audit_events("record_share.remove").await.len();
    assert!(removed >= N, "{removed} share removals audited");
    let v = c.t.get("/api/v1/audit/verify").await.expect(200);
    assert_eq!(v.body["ok"], true, "{}", v.text);
    c.s.stop().await;
}

/// Records made before the install are shared only by a run, so the plugin never
/// recorded which account they were shared for. When one moves to another account, the
/// event's `previous.account_id` names the account it left, and its shares through that
/// account's territories go (before the host sent `previous`, they stayed: a leak).
#[tokio::test]
async fn a_record_made_before_the_install_leaves_its_old_territories_when_it_moves() {
    let c = Ctx::new("Before").await;
    let berlin_acc = c.account("Berlin GmbH", "DE", "Berlin").await;
    let paris_acc = c.account("Paris SA", "FR", "Paris").await;
    // Two more, so the run takes more than one batch of three.
    c.account("München AG", "DE", "München").await;
    c.account("Tokyo KK", "JP", "Tokyo").await;
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
    c.install().await;

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
        c.member(territory, user, "member").await;
    }
    let run = c.run_assignment().await;
    assert_eq!(run["total"], 4, "{run}");
    c.caught_up().await;
    for (object, id) in [("opportunity", &opp), ("contact", &contact)] {
        assert!(c.visible(&de, object, "").await.contains(id), "{object}");
        assert!(!c.visible(&fr, object, "").await.contains(id), "{object}");
    }

    c.update("opportunity", &opp, json!({"account_id": paris_acc})).await;
    c.update("contact", &contact, json!({"account_id": paris_acc})).await;
    c.caught_up().await;
    for (object, id) in [("opportunity", &opp), ("contact", &contact)] {
        assert!(!c.visible(&de, object, "").await.contains(id), "{object} left Germany");
        assert!(c.visible(&fr, object, "").await.contains(id), "{object} came to France");
    }
    // Moving back (the handler now knows the account) converges the same way.
    c.update("opportunity", &opp, json!({"account_id": berlin_acc})).await;
    c.caught_up().await;
    assert!(c.visible(&de, "opportunity", "").await.contains(&opp));
    assert!(!c.visible(&fr, "opportunity", "").await.contains(&opp));
    c.s.stop().await;
}
