//! Record locks end to end (docs/records.md, "Locks"): a plugin granted
//! `records:account:lock` freezes an account — core REST writes answer 423 naming the
//! plugin and its reason, the locking plugin still writes, an admin may override on
//! purpose (audited), and the lock goes with an unlock or the plugin's uninstallation.

use plinth_tests::{Guest, TestServer, TestTenant};
use serde_json::json;

/// A server with the lock probe published, a tenant with it installed (`grants`), and
/// one account; returns the account's id.
async fn locked_world(grants: serde_json::Value) -> (TestServer, TestTenant, String) {
    let s = TestServer::start().await;
    let publisher = s.publisher("plinth-tests").await;
    publisher.publish(&s, &Guest::named("lock-probe")).await.expect(201);
    let t = s.tenant("Acme").await;
    s.install(&t, "lock-probe", grants).await.expect(201);
    let account = t
        .post("/api/v1/records/account", json!({ "fields": { "name": "Globex" } }))
        .await
        .expect(201)
        .json();
    let id = account["id"].as_str().unwrap().to_string();
    (s, t, id)
}

#[tokio::test]
async fn a_locked_record_refuses_other_writers_until_released() {
    let (s, t, id) = locked_world(json!("all")).await;
    let probe = |path: &str| format!("/api/v1/plugins/lock-probe{path}");
    let record = format!("/api/v1/records/account/{id}");
    // Max owns the account, so only the lock stands between him and writing it.
    let member = s.user(&t, "Max", "member").await;
    t.patch(&record, json!({ "fields": {}, "owner_id": member.id }))
        .await
        .expect(200);

    t.post(
        &probe(&format!("/locks/{id}")),
        json!({ "reason": "awaiting approval #7" }),
    )
    .await
    .expect(204);
    let shown = t.get(&record).await.expect(200).json();
    assert_eq!(shown["locked_by"]["plugin"], "lock-probe");
    assert_eq!(shown["locked_by"]["reason"], "awaiting approval #7");

    // Core REST writes are refused with a problem that names the lock.
    let refused = t
        .patch(&record, json!({ "fields": { "name": "Globex AG" } }))
        .await
        .expect_problem(423, "locked");
    assert_eq!(refused.body["locked_by"]["plugin"], "lock-probe", "{}", refused.text);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("awaiting approval #7")
    );
    t.delete(&record).await.expect_problem(423, "locked");

    // The locking plugin's own write goes through.
    t.patch(
        &probe(&format!("/accounts/{id}")),
        json!({ "name": "Globex (approved)" }),
    )
    .await
    .expect(200);
    assert_eq!(
        t.get(&record).await.expect(200).json()["fields"]["name"],
        "Globex (approved)"
    );

    // Only an admin may override, and the override is audited.
    member
        .patch(
            &format!("{record}?override_lock=true"),
            json!({ "fields": { "name": "Max's" } }),
        )
        .await
        .expect(403);
    t.patch(
        &format!("{record}?override_lock=true"),
        json!({ "fields": { "name": "Globex SE" } }),
    )
    .await
    .expect(200);
    let overrides = t
        .audit_events(&[("action", "record.lock_override"), ("entity_id", &id)])
        .await;
    assert_eq!(overrides.len(), 1, "{overrides:?}");
    assert_eq!(overrides[0]["actor"]["user"], t.owner_id.as_str());
    assert_eq!(overrides[0]["before"]["plugin"], "lock-probe");

    // Unlocked: writes flow again; a second unlock finds nothing to release.
    let released = t.delete(&probe(&format!("/locks/{id}"))).await.expect(200).json();
    assert_eq!(released["released"], true);
    assert!(t.get(&record).await.expect(200).json().get("locked_by").is_none());
    t.patch(&record, json!({ "fields": { "name": "Globex" } }))
        .await
        .expect(200);
    let again = t.delete(&probe(&format!("/locks/{id}"))).await.expect(200).json();
    assert_eq!(again["released"], false);
    let actions: Vec<String> = t
        .audit_events(&[("entity_id", &id)])
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .filter(|a| a.starts_with("record.lock") || a == "record.unlock")
        .collect();
    assert_eq!(actions, ["record.lock", "record.lock_override", "record.unlock"]);
    s.stop().await;
}

#[tokio::test]
async fn locks_need_the_grant_and_go_with_the_plugin() {
    // Without `records:account:lock` the plugin reads and writes, but cannot lock.
    let (s, t, id) = locked_world(json!(["records:account:read", "records:account:write"])).await;
    let lock = format!("/api/v1/plugins/lock-probe/locks/{id}");
    let r = t.post(&lock, json!({ "reason": "x" })).await.expect(403);
    assert!(r.text.contains("records:account:lock"), "{}", r.text);
    s.stop().await;

    // With it, the lock stands until the plugin is uninstalled.
    let (s, t, id) = locked_world(json!("all")).await;
    let lock = format!("/api/v1/plugins/lock-probe/locks/{id}");
    t.post(&lock, json!({ "reason": "frozen" })).await.expect(204);
    let record = format!("/api/v1/records/account/{id}");
    t.patch(&record, json!({ "fields": { "name": "Initech" } }))
        .await
        .expect_problem(423, "locked");
    t.delete("/api/v1/installations/lock-probe").await.expect(204);
    t.patch(&record, json!({ "fields": { "name": "Initech" } }))
        .await
        .expect(200);
    assert!(t.get(&record).await.expect(200).json().get("locked_by").is_none());
    s.stop().await;
}

#[tokio::test]
async fn a_plugin_reads_as_another_user_only_with_the_grant_and_audited() {
    let (s, t, _) = locked_world(json!("all")).await;
    let max = s.user(&t, "Max", "member").await;
    let eve = s.user(&t, "Eve", "member").await;
    let mut ids = Vec::new();
    for (name, owner) in [("Max's", &max.id), ("Eve's", &eve.id)] {
        let created = t
            .post(
                "/api/v1/records/account",
                json!({ "fields": { "name": name }, "owner_id": owner }),
            )
            .await
            .expect(201)
            .json();
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    let visible_to = |user: &str| format!("/api/v1/plugins/lock-probe/visible-to/{user}");

    // Called by the owner, the plugin reads what Max — then Eve — may see.
    let as_max = t.get(&visible_to(&max.id)).await.expect(200).json();
    assert_eq!(as_max, json!([ids[0]]));
    let as_eve = t.get(&visible_to(&eve.id)).await.expect(200).json();
    assert_eq!(as_eve, json!([ids[1]]));
    let audited: Vec<String> = t
        .audit_events(&[("action", "record.read_as")])
        .await
        .iter()
        .map(|e| e["entity_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(audited, [max.id.clone(), eve.id.clone()], "each narrowing is audited");

    // A deactivated user cannot be read as.
    t.patch(&format!("/api/v1/users/{}", eve.id), json!({ "status": "disabled" }))
        .await
        .expect(200);
    t.get(&visible_to(&eve.id)).await.expect(404);
    s.stop().await;

    // Without `records:account:read-as` the plugin cannot narrow.
    let grants = json!(["records:account:read", "records:account:write", "records:account:lock"]);
    let (s, t, _) = locked_world(grants).await;
    let r = t.get(&visible_to(&t.owner_id)).await.expect(403);
    assert!(r.text.contains("read-as"), "{}", r.text);
    s.stop().await;
}
