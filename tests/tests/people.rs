//! The people directory end to end (docs/people.md): who reports to whom on
//! `/api/v1/users` — set, changed, cleared, audited, cycles and strangers refused —
//! and the locale and time zone of a user.

use plinth_tests::{TestServer, TestTenant};
use serde_json::{Value, json};

/// Create a user through the API, reporting to `manager`; returns their id.
async fn person(t: &TestTenant, name: &str, manager: Option<&str>) -> String {
    let email = format!("{}@acme.test", name.to_lowercase());
    let body = json!({ "email": email, "name": name, "role": "member", "manager_id": manager });
    let created = t.post("/api/v1/users", body).await.expect(201).json();
    assert_eq!(created["manager_id"], json!(manager), "{created}");
    created["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn users_report_to_managers_and_cycles_are_refused() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let vp = person(&t, "Vera", None).await;
    let director = person(&t, "Dan", Some(&vp)).await;
    let rep = person(&t, "Rob", Some(&director)).await;

    // Closing the loop, directly or through the chain, names the cycle.
    for (user, manager, cycle) in [
        (&vp, &rep, vec![&rep, &director, &vp]),
        (&vp, &director, vec![&director, &vp]),
        (&rep, &rep, vec![&rep]),
    ] {
        let r = t
            .patch(&format!("/api/v1/users/{user}"), json!({ "manager_id": manager }))
            .await
            .expect_problem(409, "manager-cycle");
        assert_eq!(r.body["cycle"], json!(cycle), "{}", r.text);
    }

    // A manager must be a user of this tenant.
    let other = s.tenant("Other").await;
    let stranger = person(&other, "Sam", None).await;
    let r = t
        .patch(&format!("/api/v1/users/{rep}"), json!({ "manager_id": stranger }))
        .await
        .expect_problem(422, "validation");
    assert_eq!(r.problem_fields(), ["manager_id"]);

    // Moving a rep to another manager, and clearing it, are audited changes.
    let moved = t
        .patch(&format!("/api/v1/users/{rep}"), json!({ "manager_id": vp }))
        .await
        .expect(200)
        .json();
    assert_eq!(moved["manager_id"], vp.as_str());
    let cleared = t
        .patch(&format!("/api/v1/users/{rep}"), json!({ "manager_id": null }))
        .await
        .expect(200)
        .json();
    assert_eq!(cleared["manager_id"], Value::Null);
    let changes: Vec<(Value, Value)> = t
        .audit_events(&[("action", "user.update"), ("entity_id", &rep)])
        .await
        .iter()
        .map(|e| (e["before"]["manager_id"].clone(), e["after"]["manager_id"].clone()))
        .collect();
    assert_eq!(
        changes,
        [(json!(director), json!(vp)), (json!(vp), Value::Null)],
        "each change is audited with before and after"
    );

    // A patch that leaves the manager alone keeps it.
    let renamed = t
        .patch(&format!("/api/v1/users/{director}"), json!({ "name": "Daniel" }))
        .await
        .expect(200)
        .json();
    assert_eq!(renamed["manager_id"], vp.as_str());
    s.stop().await;
}

#[tokio::test]
async fn locale_and_time_zone_are_checked_and_kept() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let ana = person(&t, "Ana", None).await;
    let path = format!("/api/v1/users/{ana}");

    let r = t
        .patch(&path, json!({ "locale": "deutsch", "time_zone": "Mars/Olympus" }))
        .await
        .expect_problem(422, "validation");
    let mut fields = r.problem_fields();
    fields.sort();
    assert_eq!(fields, ["locale", "time_zone"], "every problem at once");

    let set = t
        .patch(&path, json!({ "locale": "de-AT", "time_zone": "Europe/Vienna" }))
        .await
        .expect(200)
        .json();
    assert_eq!(
        (set["locale"].as_str(), set["time_zone"].as_str()),
        (Some("de-AT"), Some("Europe/Vienna"))
    );
    let read = t.get(&path).await.expect(200).json();
    assert_eq!(read["time_zone"], "Europe/Vienna");
    let cleared = t.patch(&path, json!({ "time_zone": null })).await.expect(200).json();
    assert_eq!(
        (cleared["locale"].as_str(), cleared["time_zone"].clone()),
        (Some("de-AT"), Value::Null)
    );
    s.stop().await;
}
