//! Policies: CRUD with validation and auditing, the per-tenant cap, and evaluation
//! raising exactly the expected alerts and outbox rows.

use plinth_core::audit::policy::evaluate_pending;

use super::*;

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
        &t,
        json!({"name": "Mass delete", "kind": "mass-delete", "threshold": 5, "window_minutes": 10,
               "notify": {"emails": ["sec@acme.example", "ops@acme.example"], "webhook": true}}),
    )
    .await;
    let field = create_policy(
        &t,
        json!({"name": "Amounts", "kind": "field-change", "object": "opportunity", "field": "amount"}),
    )
    .await;
    let grant = create_policy(
        &t,
        json!({"name": "Outbound HTTP", "kind": "capability-grant", "capability": "http:*", "notify": {"webhook": true}}),
    )
    .await;
    let off = create_policy(
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
    let by_bob = append_all(
        &s,
        &t.id,
        &user("bob"),
        json!([
            ["record.update", "record:opportunity", "o1", {"amount": 1, "stage": "a"}, {"amount": 2, "stage": "a"}],
            ["record.update", "record:opportunity", "o1", {"stage": "a"}, {"stage": "b"}],
            ["record.update", "record:account", "a1", {"amount": 1}, {"amount": 2}],
        ]),
    )
    .await;
    let amount = &by_bob[0];
    // Capability grant: newly granted http keys only.
    let (storage, http, email) = ("storage", "http:https://api.enrich.example", "email");
    let by_admin = append_all(
        &s,
        &t.id,
        &user("admin"),
        json!([
            ["plugin.grant", "plugin", "enrich", {"grants": [storage]}, {"grants": [storage, http]}],
            ["plugin.grant", "plugin", "enrich", {"grants": [storage, http]}, {"grants": [storage, http, email]}],
        ]),
    )
    .await;
    let granted = &by_admin[0];

    let report = evaluate_pending(s.db()).await.expect("evaluate");
    assert_eq!(report.alerts, 3, "{report:?}");
    let again = evaluate_pending(s.db()).await.expect("evaluate again");
    assert_eq!(again.alerts, 0, "idempotent");

    let all = alerts(&t, "").await;
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
        alerts(&t, &format!("policy={}", mass["id"].as_str().unwrap_or("")))
            .await
            .len(),
        1
    );

    // Re-enabling a disabled policy judges only what follows.
    t.patch(
        &format!("{POLICIES}/{}", off["id"].as_str().unwrap_or("")),
        json!({"enabled": true}),
    )
    .await
    .expect(200);
    evaluate_pending(s.db()).await.expect("evaluate");
    let off_query = format!("policy={}", off["id"].as_str().unwrap_or(""));
    assert!(
        alerts(&t, &off_query).await.is_empty(),
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
    let now_on = alerts(&t, &off_query).await;
    assert_eq!(
        now_on.iter().map(|a| a["event_seq"].as_i64()).collect::<Vec<_>>(),
        [Some(later.seq)]
    );

    // Acknowledging: filtered lists, idempotent, audited.
    let id = m[0]["id"].as_str().unwrap_or("").to_string();
    assert_eq!(alerts(&t, "acknowledged=true").await.len(), 0);
    let acknowledge = t.request("POST", &format!("/api/v1/audit/alerts/{id}/acknowledge"));
    let r = acknowledge.await.expect(200).json();
    assert_eq!(r["acknowledged_by"], t.owner_id.as_str());
    let at = r["acknowledged_at"].clone();
    assert!(at.is_string());
    let acknowledge = t.request("POST", &format!("/api/v1/audit/alerts/{id}/acknowledge"));
    assert_eq!(acknowledge.await.expect(200).json()["acknowledged_at"], at);
    let acked = alerts(&t, "acknowledged=true").await;
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0]["id"], id.as_str());
    assert_eq!(alerts(&t, "acknowledged=false").await.len(), 4);
    let events = all_pages(&t, "action=audit_alert.acknowledge", 500).await;
    assert_eq!(events.len(), 1, "acknowledging once is one event");
    t.request("POST", "/api/v1/audit/alerts/NOPE/acknowledge")
        .await
        .expect_problem(404, "not-found");

    // Alert pagination: 5 alerts in pages of 2, newest first, each once.
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = t
            .get(&format!("/api/v1/audit/alerts?limit=2{cursor}"))
            .await
            .expect(200)
            .json();
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
        &t,
        json!({"name": "Deletes", "kind": "mass-delete", "threshold": 10, "window_minutes": 5}),
    )
    .await;
    let id = p["id"].as_str().expect("id").to_string();
    assert_eq!(p["version"], 1);
    assert_eq!(p["notify"], json!({"emails": [], "webhook": false}));
    let path = format!("{POLICIES}/{id}");

    let r = t.get(&path).await.expect(200);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body, p);
    let list = t.get(POLICIES).await.expect(200).json();
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
        let r = t.post(POLICIES, body.clone()).await.expect_problem(422, "validation");
        let mut got = r.problem_fields();
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{body}");
    }
    let r = t
        .post(POLICIES, json!({"name": "x", "kind": "mass-delete", "colour": 1}))
        .await
        .expect(400);
    assert!(r.text.contains("colour"), "{}", r.text);
    t.post(POLICIES, json!({"name": "x", "threshold": "five"}))
        .await
        .expect(400);

    // PATCH: parameters merge into the rule; switching kind replaces it.
    let r = t.patch(&path, json!({"threshold": 20})).await.expect(200);
    assert_eq!(
        (
            r.body["threshold"].clone(),
            r.body["window_minutes"].clone(),
            r.body["version"].clone()
        ),
        (json!(20), json!(5), json!(2))
    );
    let r = t
        .patch(
            &path,
            json!({"kind": "field-change", "object": "lead", "field": "status"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["kind"], "field-change");
    assert!(r.body.get("threshold").is_none());
    // A field-change has no threshold.
    t.patch(&path, json!({"threshold": 3}))
        .await
        .expect_problem(422, "validation");
    // A change that changes nothing is not a new version (and not an event).
    let r = t.patch(&path, json!({"object": "lead"})).await.expect(200);
    assert_eq!(r.body["version"], 3, "{}", r.text);
    // If-Match: a stale version is refused.
    let rename = || t.patch(&path, json!({"name": "Renamed"}));
    rename().if_match(1).await.expect_problem(412, "precondition-failed");
    let r = rename().if_match(3).await.expect(200);
    assert_eq!(r.body["name"], "Renamed");

    t.delete(&path).await.expect(204);
    for after_delete in [t.get(&path), t.patch(&path, json!({"name": "x"})), t.delete(&path)] {
        after_delete.await.expect_problem(404, "not-found");
    }

    // Every change is in the ledger with before/after.
    let events = all_pages(&t, &format!("entity_type=audit_policy&entity_id={id}&order=asc"), 500).await;
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
            &t,
            json!({"name": format!("p{i}"), "kind": "capability-grant", "capability": "storage"}),
        )
        .await;
    }
    t.post(
        POLICIES,
        json!({"name": "one too many", "kind": "capability-grant", "capability": "storage"}),
    )
    .await
    .expect_problem(409, "conflict");
    assert_eq!(
        t.get(POLICIES).await.expect(200).json()["data"]
            .as_array()
            .map(Vec::len),
        Some(100)
    );
    // The refused creation left no event behind.
    let events = all_pages(&t, "action=audit_policy.create", 500).await;
    assert_eq!(events.len(), 100);
    s.stop().await;
}

#[tokio::test]
async fn the_background_evaluator_raises_alerts_as_events_are_written_and_stops() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let p = create_policy(
        &t,
        json!({"name": "Amounts", "kind": "field-change", "object": "opportunity", "field": "amount"}),
    )
    .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let evaluator = tokio::spawn(plinth_core::audit::policy::run_evaluator(s.db().clone(), async move {
        let _ = stopped.await;
    }));
    let e = append(
        &s,
        &t.id,
        &user("bob"),
        "record.update",
        ("record:opportunity", "o1"),
        Some(json!({"amount": 1})),
        Some(json!({"amount": 2})),
    )
    .await;
    let started = std::time::Instant::now();
    let raised = loop {
        let found = alerts(&t, "").await;
        if !found.is_empty() || started.elapsed() > std::time::Duration::from_secs(10) {
            break found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(raised.len(), 1, "an alert within the poll interval");
    assert_eq!(
        (raised[0]["policy_id"].clone(), raised[0]["event_seq"].clone()),
        (p["id"].clone(), json!(e.seq))
    );
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(5), evaluator)
        .await
        .expect("the evaluator stops on shutdown")
        .expect("no panic");
    s.stop().await;
}

#[tokio::test]
async fn capability_grants_are_judged_on_marketplace_shaped_events() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let http = create_policy(
        &t,
        json!({"name": "HTTP", "kind": "capability-grant", "capability": "http:*"}),
    )
    .await;
    let storage = create_policy(
        &t,
        json!({"name": "Storage", "kind": "capability-grant", "capability": "storage"}),
    )
    .await;
    // The marketplace's installation snapshots: grants before and after each step.
    let snap = |version: &str, state: &str, grants: &[&str]| json!({"plugin": "enrich", "version": version, "digest": "d", "state": state, "grants": grants});
    let v1_on = snap("1.0.0", "enabled", &["storage"]);
    let v1_off = snap("1.0.0", "disabled", &["storage"]);
    let v2_off = snap("2.0.0", "disabled", &["storage", "http:https://api.enrich.example"]);
    let steps = append_all(
        &s,
        &t.id,
        &user("admin"),
        json!([
            ["plugin.install", "plugin", "enrich", null, v1_on],
            ["plugin.disable", "plugin", "enrich", v1_on, v1_off],
            ["plugin.upgrade", "plugin", "enrich", v1_off, v2_off],
            ["plugin.rollback", "plugin", "enrich", v2_off, v1_off],
            ["plugin.upgrade", "plugin", "enrich", v1_off, v2_off],
        ]),
    )
    .await;
    let (installed, upgraded, upgraded_again) = (&steps[0], &steps[2], &steps[4]);
    evaluate_pending(s.db()).await.expect("evaluate");
    let seqs_of = |p: &Value| {
        let (t, q) = (&t, format!("policy={}", p["id"].as_str().unwrap_or("")));
        async move {
            let mut v: Vec<i64> = alerts(t, &q)
                .await
                .iter()
                .filter_map(|a| a["event_seq"].as_i64())
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(seqs_of(&storage).await, [installed.seq], "storage was granted once");
    assert_eq!(
        seqs_of(&http).await,
        [upgraded.seq, upgraded_again.seq],
        "each upgrade granted HTTP anew; disable and rollback granted nothing"
    );
    s.stop().await;
}
