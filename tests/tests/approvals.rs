//! The approvals plugin end to end (docs/approvals.md), installed from the marketplace
//! on a real server: sequential steps, rejection, parallel any / all / 2-of-3 and
//! hybrid steps, steps skipped by criteria, concurrent decisions (one wins), recall,
//! reassignment, delegation (cycles refused), escalation on a timeout, the record
//! locked while pending (423 through core REST), auto-submit, and bad definitions
//! answered 422 by path.

use std::time::{Duration, Instant};

use plinth_tests::child::ChildServer;
use plinth_tests::{Client, TestServer, TestTenant, TestUser};
use serde_json::{Value, json};

const P: &str = "/api/v1/plugins/approvals";

#[tokio::test]
#[ignore = "the child server of the kill -9 test; run by it"]
async fn child_server() {
    plinth_tests::child::serve_if_child().await;
}

/// A tenant with approvals installed and a management chain: rep → manager →
/// director → vp, plus three finance people and two lawyers.
struct World {
    s: TestServer,
    t: TestTenant,
    rep: TestUser,
    manager: TestUser,
    director: TestUser,
    vp: TestUser,
    finance: Vec<TestUser>,
    legal: Vec<TestUser>,
}

async fn world() -> World {
    let s = TestServer::start_with_first_party().await;
    let t = s.tenant("Acme").await;
    s.install(&t, "approvals", json!("all")).await.expect(201);
    let vp = s.user(&t, "Vera VP", "manager").await;
    let director = s.user(&t, "Dan Director", "manager").await;
    let manager = s.user(&t, "Mia Manager", "manager").await;
    let rep = s.user(&t, "Ray Rep", "member").await;
    for (user, boss) in [(&director, &vp), (&manager, &director), (&rep, &manager)] {
        t.patch(&format!("/api/v1/users/{}", user.id), json!({ "manager_id": boss.id }))
            .await
            .expect(200);
    }
    let mut finance = Vec::new();
    for name in ["Fay", "Fred", "Flo"] {
        finance.push(s.user(&t, &format!("{name} Finance"), "member").await);
    }
    let mut legal = Vec::new();
    for name in ["Lea", "Lou"] {
        legal.push(s.user(&t, &format!("{name} Legal"), "member").await);
    }
    World {
        s,
        t,
        rep,
        manager,
        director,
        vp,
        finance,
        legal,
    }
}

impl World {
    async fn process(&self, def: Value) -> String {
        let p = self.t.post(&format!("{P}/processes"), def).await.expect(201).json();
        p["id"].as_str().unwrap().to_string()
    }

    /// An opportunity of the rep's.
    async fn deal(&self, amount: f64, discount: f64) -> String {
        let r = self
            .rep
            .post(
                "/api/v1/records/opportunity",
                json!({ "fields": { "name": "Globex renewal", "stage": "proposal", "close_date": "2027-03-31",
                                    "amount": { "value": amount, "currency": "EUR" }, "discount": discount } }),
            )
            .await
            .expect(201)
            .json();
        r["id"].as_str().unwrap().to_string()
    }

    async fn submit(&self, record: &str) -> Value {
        self.rep
            .post(
                &format!("{P}/requests"),
                json!({ "object": "opportunity", "record_id": record, "comment": "25% to close this quarter" }),
            )
            .await
            .expect(201)
            .json()
    }
}

fn ids(users: &[&TestUser]) -> Vec<String> {
    let mut v: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    v.sort();
    v
}

async fn act(c: &Client, request: &str, verb: &str) -> Value {
    c.post(
        &format!("{P}/requests/{request}/{verb}"),
        json!({ "comment": format!("{verb}d") }),
    )
    .await
    .expect(200)
    .json()
}

fn waiting(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = serde_json::from_value(r["waiting_for"].clone()).unwrap();
    v.sort();
    v
}

fn user(id: &str) -> Value {
    json!({ "type": "user", "id": id })
}

#[tokio::test]
async fn a_three_step_chain_is_approved_in_order_with_the_record_locked_meanwhile() {
    let w = world().await;
    w.process(json!({
        "name": "Discount", "object": "opportunity",
        "entry": [{ "field": "discount", "op": "gt", "value": 20 }],
        "steps": [
            { "name": "Manager", "approvers": [{ "type": "submitter_manager" }] },
            { "name": "Director", "approvers": [{ "type": "manager_chain", "levels": 2 }] },
            { "name": "VP", "approvers": [user(&w.vp.id)] }
        ],
        "on_approved": { "field_updates": { "probability": 80 } }
    }))
    .await;
    let deal = w.deal(100_000.0, 25.0).await;
    let r = w.submit(&deal).await;
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["status"], "pending");
    assert_eq!(waiting(&r), ids(&[&w.manager]));

    // Locked: core REST edits answer 423 naming the approval.
    let record = format!("/api/v1/records/opportunity/{deal}");
    let locked = w
        .rep
        .patch(&record, json!({ "fields": { "discount": 40 } }))
        .await
        .expect_problem(423, "locked");
    assert!(locked.text.contains(&id), "{}", locked.text);
    assert_eq!(
        w.t.get(&record).await.expect(200).json()["fields"]["approval_status"],
        "pending"
    );

    // The manager sees it in their inbox, and was notified.
    let inbox = w
        .manager
        .get(&format!("{P}/requests?assigned=me&status=pending"))
        .await
        .expect(200)
        .json();
    assert_eq!(inbox["data"][0]["id"], id.as_str());
    let notes = w.manager.get("/api/v1/me/notifications").await.expect(200).json();
    assert_eq!(notes["data"][0]["category"], "approvals.request");
    // The submitter may see it but not decide; others do not even see it.
    w.rep
        .post(&format!("{P}/requests/{id}/approve"), json!({}))
        .await
        .expect(403);
    w.vp.post(&format!("{P}/requests/{id}/approve"), json!({}))
        .await
        .expect(404);
    w.finance[0].get(&format!("{P}/requests/{id}")).await.expect(404);

    let r = act(&w.manager, &id, "approve").await;
    assert_eq!((r["step"].as_u64(), waiting(&r)), (Some(1), ids(&[&w.director])));
    let r = act(&w.director, &id, "approve").await;
    assert_eq!(waiting(&r), ids(&[&w.vp]));
    let r = act(&w.vp, &id, "approve").await;
    assert_eq!(r["status"], "approved");
    assert!(r["waiting_for"].as_array().unwrap().is_empty());

    // The outcome is on the record (written by the process), which is unlocked.
    let fields = w.t.get(&record).await.expect(200).json()["fields"].clone();
    assert_eq!(
        (fields["approval_status"].clone(), fields["probability"].clone()),
        (json!("approved"), json!(80))
    );
    w.rep
        .patch(&record, json!({ "fields": { "discount": 22 } }))
        .await
        .expect(200);

    // The timeline tells the story, and each line is in the audit chain.
    let full = w.rep.get(&format!("{P}/requests/{id}")).await.expect(200).json();
    let kinds: Vec<&str> = full["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "step_started",
            "approved",
            "step_started",
            "approved",
            "step_started",
            "approved",
            "finished"
        ]
    );
    let audited =
        w.t.audit_events(&[("entity_type", "plugin.approvals.approval_request"), ("entity_id", &id)])
            .await;
    assert_eq!(audited.len(), kinds.len());
    assert_eq!(
        w.rep
            .get(&format!("{P}/requests?submitted=me"))
            .await
            .expect(200)
            .json()["data"][0]["status"],
        "approved"
    );
    // Other plugins may subscribe to the outcome.
    let events = w.t.get("/api/v1/events?limit=200").await.expect(200);
    assert!(events.text.contains("approvals.request.approved"), "{}", events.text);
    // The submitter was told.
    let notes = w.rep.get("/api/v1/me/notifications").await.expect(200).json();
    assert_eq!(notes["data"][0]["category"], "approvals.outcome");
    w.s.stop().await;
}

#[tokio::test]
async fn a_rejection_at_step_two_ends_the_request_and_skipped_steps_are_not_asked() {
    let w = world().await;
    w.process(json!({
        "name": "Discount", "object": "opportunity",
        "steps": [
            { "name": "Manager", "approvers": [{ "type": "submitter_manager" }] },
            { "name": "Legal over 5M", "criteria": [{ "field": "amount", "op": "gt", "value": 5_000_000 }],
              "approvers": [user(&w.legal[0].id)] },
            { "name": "Director", "approvers": [user(&w.director.id)] },
            { "name": "VP", "approvers": [user(&w.vp.id)] }
        ]
    }))
    .await;
    let deal = w.deal(50_000.0, 30.0).await;
    let id = w.submit(&deal).await["id"].as_str().unwrap().to_string();
    let r = act(&w.manager, &id, "approve").await;
    // Legal is skipped for a small deal: the director is next.
    assert_eq!(waiting(&r), ids(&[&w.director]));
    let r = act(&w.director, &id, "reject").await;
    assert_eq!(r["status"], "rejected");
    let kinds: Vec<String> = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"step_skipped".to_string()), "{kinds:?}");
    assert!(
        w.vp.get(&format!("{P}/requests?assigned=me")).await.expect(200).json()["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let record =
        w.t.get(&format!("/api/v1/records/opportunity/{deal}"))
            .await
            .expect(200)
            .json();
    assert_eq!(record["fields"]["approval_status"], "rejected");
    assert!(record["locked_by"].is_null(), "{record}");
    // A decided request takes no more decisions.
    w.director
        .post(&format!("{P}/requests/{id}/approve"), json!({}))
        .await
        .expect(409);
    w.s.stop().await;
}

#[tokio::test]
async fn parallel_branches_decide_by_their_rules_then_the_next_step_starts() {
    let w = world().await;
    let f: Vec<Value> = w.finance.iter().map(|u| user(&u.id)).collect();
    let l: Vec<Value> = w.legal.iter().map(|u| user(&u.id)).collect();
    w.process(json!({
        "name": "Big deal", "object": "opportunity",
        "steps": [
            { "name": "Finance and legal", "branches": [
                { "name": "Finance", "approvers": f, "rule": "quorum", "quorum": 2 },
                { "name": "Legal", "approvers": l, "rule": "all" }
            ]},
            { "name": "Either executive", "approvers": [user(&w.director.id), user(&w.vp.id)], "rule": "any" }
        ]
    }))
    .await;
    let deal = w.deal(9_000_000.0, 10.0).await;
    let r = w.submit(&deal).await;
    let id = r["id"].as_str().unwrap().to_string();
    let everyone: Vec<&TestUser> = w.finance.iter().chain(w.legal.iter()).collect();
    assert_eq!(waiting(&r), ids(&everyone));

    // Finance: one rejection leaves 2 of 3 reachable; two approvals reach it.
    act(&w.finance[0], &id, "reject").await;
    let r = act(&w.finance[1], &id, "approve").await;
    assert_eq!(r["status"], "pending");
    let r = act(&w.finance[2], &id, "approve").await;
    assert_eq!(r["branches"][0]["outcome"], "approved");
    // Legal needs both; the step waits for the second lawyer.
    let r = act(&w.legal[0], &id, "approve").await;
    assert_eq!(waiting(&r), ids(&[&w.legal[1]]));
    let r = act(&w.legal[1], &id, "approve").await;
    assert_eq!(waiting(&r), ids(&[&w.director, &w.vp]));
    // Either executive decides alone.
    let r = act(&w.vp, &id, "approve").await;
    assert_eq!(r["status"], "approved");
    w.s.stop().await;
}

#[tokio::test]
async fn two_approvers_deciding_at_once_one_wins_the_other_gets_409() {
    let w = world().await;
    w.process(json!({
        "name": "Either", "object": "opportunity",
        "steps": [{ "name": "Any exec", "approvers": [user(&w.director.id), user(&w.vp.id)] }]
    }))
    .await;
    let deal = w.deal(10_000.0, 25.0).await;
    let id = w.submit(&deal).await["id"].as_str().unwrap().to_string();
    let path = format!("{P}/requests/{id}/approve");
    let (a, b) = tokio::join!(
        w.director.post(&path, json!({})).into_future(),
        w.vp.post(&path, json!({})).into_future()
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert!(
        statuses == [200, 409] || statuses == [200, 403],
        "{statuses:?}: {} / {}",
        a.text,
        b.text
    );
    let r = w.rep.get(&format!("{P}/requests/{id}")).await.expect(200).json();
    assert_eq!(r["status"], "approved");
    let decisions = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "approved")
        .count();
    assert_eq!(decisions, 1, "exactly one decision was recorded");
    w.s.stop().await;
}

#[tokio::test]
async fn the_submitter_recalls_and_an_approver_reassigns() {
    let w = world().await;
    w.process(json!({
        "name": "Manager", "object": "opportunity",
        "steps": [{ "name": "Manager", "approvers": [{ "type": "submitter_manager" }] }],
        "on_recalled": { "field_updates": { "probability": 10 } }
    }))
    .await;
    let deal = w.deal(10_000.0, 25.0).await;
    let id = w.submit(&deal).await["id"].as_str().unwrap().to_string();
    // One pending request per record.
    w.rep
        .post(
            &format!("{P}/requests"),
            json!({ "object": "opportunity", "record_id": deal }),
        )
        .await
        .expect(409);

    // The manager hands it to the director, on their behalf.
    let r = w
        .manager
        .post(&format!("{P}/requests/{id}/reassign"), json!({ "to": w.director.id }))
        .await
        .expect(200)
        .json();
    assert_eq!(waiting(&r), ids(&[&w.director]));
    assert_eq!(r["branches"][0]["assignees"][0]["on_behalf_of"], w.manager.id.as_str());
    // Only the submitter recalls.
    w.director
        .post(&format!("{P}/requests/{id}/recall"), json!({}))
        .await
        .expect(403);
    let r = act(&w.rep, &id, "recall").await;
    assert_eq!(r["status"], "recalled");
    let record =
        w.t.get(&format!("/api/v1/records/opportunity/{deal}"))
            .await
            .expect(200)
            .json();
    assert_eq!(record["fields"]["approval_status"], "recalled");
    assert_eq!(record["fields"]["probability"], 10);
    // Recalled: it can be submitted again.
    w.submit(&deal).await;
    w.s.stop().await;
}

#[tokio::test]
async fn a_delegate_decides_for_an_absent_approver_and_cycles_are_refused() {
    let w = world().await;
    w.process(json!({
        "name": "Manager", "object": "opportunity",
        "steps": [{ "name": "Manager", "approvers": [{ "type": "submitter_manager" }] }]
    }))
    .await;
    let range = json!({ "delegate": w.director.id, "from": "2020-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z" });
    w.manager.put(&format!("{P}/delegations/me"), range).await.expect(200);
    // The director delegating back to the manager would close a cycle.
    let cycle = w
        .director
        .put(
            &format!("{P}/delegations/me"),
            json!({ "delegate": w.manager.id, "from": "2021-01-01T00:00:00Z", "until": "2022-01-01T00:00:00Z" }),
        )
        .await
        .expect(422);
    assert!(cycle.text.contains("\"delegate\""), "{}", cycle.text);
    let bad = w
        .director
        .put(
            &format!("{P}/delegations/me"),
            json!({ "delegate": w.vp.id, "from": "tomorrow", "until": "2020-01-01T00:00:00Z" }),
        )
        .await
        .expect(422);
    assert!(bad.text.contains("\"from\""), "{}", bad.text);

    let deal = w.deal(10_000.0, 25.0).await;
    let r = w.submit(&deal).await;
    assert_eq!(waiting(&r), ids(&[&w.director]));
    assert_eq!(r["branches"][0]["assignees"][0]["on_behalf_of"], w.manager.id.as_str());
    let id = r["id"].as_str().unwrap();
    let r = act(&w.director, id, "approve").await;
    assert_eq!(r["status"], "approved");
    let decision = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "approved")
        .unwrap()
        .clone();
    assert_eq!(decision["detail"]["on_behalf_of"], w.manager.id.as_str());
    w.s.stop().await;
}

#[tokio::test]
async fn a_step_that_times_out_escalates_to_the_next_manager() {
    let w = world().await;
    w.process(json!({
        "name": "Fast", "object": "opportunity",
        "steps": [{ "name": "Manager", "approvers": [{ "type": "submitter_manager" }],
                    "timeout": { "after_seconds": 2, "remind_before_seconds": 1, "action": { "type": "escalate_to_manager" } } }]
    }))
    .await;
    let deal = w.deal(10_000.0, 25.0).await;
    let id = w.submit(&deal).await["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    let r = loop {
        let r = w.rep.get(&format!("{P}/requests/{id}")).await.expect(200).json();
        if waiting(&r) == ids(&[&w.director]) {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no escalation: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let kinds: Vec<&str> = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"reminded") && kinds.contains(&"escalated"), "{kinds:?}");
    let notes = w.manager.get("/api/v1/me/notifications").await.expect(200).json();
    assert!(
        notes["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["category"] == "approvals.reminder"),
        "{notes}"
    );
    // The escalated approver decides for the manager.
    let r = act(&w.director, &id, "approve").await;
    assert_eq!(r["status"], "approved");
    w.s.stop().await;
}

#[tokio::test]
async fn records_matching_an_auto_submit_process_are_submitted_when_saved() {
    let w = world().await;
    w.process(json!({
        "name": "Auto", "object": "opportunity", "auto_submit": true,
        "entry": [{ "field": "discount", "op": "gte", "value": 30 }],
        "steps": [{ "name": "Manager", "approvers": [{ "type": "submitter_manager" }] }]
    }))
    .await;
    let small = w.deal(10_000.0, 5.0).await;
    let big = w.deal(10_000.0, 35.0).await;
    let started = Instant::now();
    let inbox = loop {
        let inbox = w
            .manager
            .get(&format!("{P}/requests?assigned=me"))
            .await
            .expect(200)
            .json();
        if !inbox["data"].as_array().unwrap().is_empty() {
            break inbox;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not submitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(inbox["data"].as_array().unwrap().len(), 1);
    assert_eq!(inbox["data"][0]["record_id"], big.as_str());
    assert_eq!(inbox["data"][0]["submitter"], w.rep.id.as_str());
    let small =
        w.t.get(&format!("/api/v1/records/opportunity/{small}"))
            .await
            .expect(200)
            .json();
    assert!(small["fields"]["approval_status"].is_null());
    w.s.stop().await;
}

#[tokio::test]
async fn bad_definitions_are_answered_422_by_path() {
    let w = world().await;
    let r =
        w.t.post(
            &format!("{P}/processes"),
            json!({
                "name": "Broken", "object": "opportunity",
                "steps": [
                    { "name": "Nobody", "approvers": [] },
                    { "name": "Quorum", "approvers": [user("a"), user("b")], "rule": "quorum", "quorum": 3 }
                ]
            }),
        )
        .await
        .expect(422);
    let fields = r.problem_fields();
    assert_eq!(fields, ["steps[0].approvers", "steps[1].quorum"], "{}", r.text);
    let r =
        w.t.post(
            &format!("{P}/processes"),
            json!({ "name": "Empty", "object": "opportunity", "steps": [] }),
        )
        .await
        .expect(422);
    assert_eq!(r.problem_fields(), ["steps"]);
    // Members may not define processes.
    w.rep
        .post(
            &format!("{P}/processes"),
            json!({ "name": "x", "object": "opportunity", "steps": [] }),
        )
        .await
        .expect(403);
    w.s.stop().await;
}

#[tokio::test]
async fn an_approver_who_cannot_see_the_record_still_approves_it() {
    let w = world().await;
    let fay = &w.finance[0];
    w.process(json!({
        "name": "Finance only", "object": "opportunity",
        "steps": [{ "name": "Finance", "approvers": [user(&fay.id)] }],
        "on_approved": { "field_updates": { "forecast_category": "commit" } }
    }))
    .await;
    let deal = w.deal(10_000.0, 25.0).await;
    let record = format!("/api/v1/records/opportunity/{deal}");
    fay.get(&record).await.expect(404);
    let id = w.submit(&deal).await["id"].as_str().unwrap().to_string();
    let r = act(fay, &id, "approve").await;
    assert_eq!(r["status"], "approved");
    // The outcome was written by the process (system-write), in Fay's name in the audit.
    let fields = w.t.get(&record).await.expect(200).json()["fields"].clone();
    assert_eq!(fields["approval_status"], "approved");
    assert_eq!(fields["forecast_category"], "commit");
    let updates =
        w.t.audit_events(&[("action", "record.update"), ("entity_id", &deal)])
            .await;
    let last = updates.last().unwrap();
    assert_eq!(last["actor"]["user"], fay.id.as_str(), "{last}");
    assert!(
        last["actor"]["plugin"].as_str().unwrap().starts_with("approvals@"),
        "{last}"
    );
    w.s.stop().await;
}

#[tokio::test]
async fn pending_requests_and_their_timers_survive_kill_9_of_the_server() {
    let w = world().await;
    w.process(json!({
        "name": "Escalating", "object": "opportunity",
        "steps": [{ "name": "Manager", "approvers": [{ "type": "submitter_manager" }],
                    "timeout": { "after_seconds": 3, "action": { "type": "escalate_to_manager" } } }]
    }))
    .await;
    let first = w.deal(10_000.0, 25.0).await;
    let first = w.submit(&first).await["id"].as_str().unwrap().to_string();
    let World { s, rep, director, .. } = w;
    let stopped = s.stop_keeping_data().await;

    // A second request through a server in its own process, killed at once: its
    // timer is set but not due.
    let child = ChildServer::spawn(stopped.db_url(), Duration::from_secs(2));
    let second = rep
        .api
        .rebased(&child.url)
        .post(
            "/api/v1/records/opportunity",
            json!({ "fields": { "name": "Initech", "stage": "proposal", "close_date": "2027-03-31", "discount": 30 } }),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = rep
        .api
        .rebased(&child.url)
        .post(
            &format!("{P}/requests"),
            json!({ "object": "opportunity", "record_id": second }),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    child.kill9();

    // Restarted: both timers fire, both requests escalate, and they can be decided.
    let s = stopped.start().await;
    let rep = rep.api.rebased(&s.url);
    let director = director.api.rebased(&s.url);
    for id in [&first, &second] {
        let started = Instant::now();
        loop {
            let r = rep.get(&format!("{P}/requests/{id}")).await.expect(200).json();
            if r["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "escalated")
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no escalation after the restart: {r}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let r = act(&director, id, "approve").await;
        assert_eq!(r["status"], "approved", "{r}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_inbox_pages_oldest_first() {
    let w = world().await;
    w.process(json!({
        "name": "Manager", "object": "opportunity",
        "steps": [{ "name": "Manager", "approvers": [{ "type": "submitter_manager" }] }]
    }))
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let deal = w.deal(10_000.0, 25.0).await;
        ids.push(w.submit(&deal).await["id"].as_str().unwrap().to_string());
    }
    let first = w
        .manager
        .get(&format!("{P}/requests?assigned=me&limit=2"))
        .await
        .expect(200)
        .json();
    let seen: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, [ids[0].as_str(), ids[1].as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = w
        .manager
        .get(&format!("{P}/requests?assigned=me&limit=2&cursor={cursor}"))
        .await
        .expect(200)
        .json();
    assert_eq!(rest["data"][0]["id"], ids[2].as_str());
    assert!(rest["next_cursor"].is_null());
    w.manager
        .get(&format!("{P}/requests?assigned=me&limit=0"))
        .await
        .expect(400);
    w.manager.get(&format!("{P}/requests?status=pending")).await.expect(400);
    w.s.stop().await;
}
