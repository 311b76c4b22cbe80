//! The people directory end to end (docs/people.md): who reports to whom on
//! `/api/v1/users` — set, changed, cleared, audited, cycles and strangers refused —
//! and the locale and time zone of a user.

use plinth_tests::{Guest, TestServer, TestTenant};
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

/// The directory probe published and installed in `t` with `grants`.
async fn directory_probe(s: &TestServer, t: &TestTenant, grants: Value) {
    s.install(t, "directory-probe", grants).await.expect(201);
}

#[tokio::test]
async fn plugins_read_managers_reports_and_group_members_through_the_directory() {
    let s = TestServer::start().await;
    let publisher = s.publisher("plinth-tests").await;
    publisher
        .publish(&s, &Guest::named("directory-probe"))
        .await
        .expect(201);
    let t = s.tenant("Acme").await;
    let vp = person(&t, "Vera", None).await;
    let director = person(&t, "Dan", Some(&vp)).await;
    let rep = person(&t, "Rob", Some(&director)).await;
    let leaver = person(&t, "Lea", Some(&director)).await;
    t.patch(&format!("/api/v1/users/{leaver}"), json!({ "status": "disabled" }))
        .await
        .expect(200);
    let team = t
        .post("/api/v1/groups", json!({ "name": "Deal desk" }))
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.post(&format!("/api/v1/groups/{team}/members"), json!({ "user_id": rep }))
        .await
        .expect(201);
    directory_probe(&s, &t, json!("all")).await;
    let probe = |path: &str| t.get(&format!("/api/v1/plugins/directory-probe{path}"));
    let ids = |people: &Value| -> Vec<String> {
        people
            .as_array()
            .unwrap_or_else(|| panic!("a list of people: {people}"))
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    let me = probe(&format!("/people/{rep}")).await.expect(200).json();
    assert_eq!(me["manager_id"], director.as_str());
    assert_eq!(
        (me["active"].as_bool(), me["roles"].clone()),
        (Some(true), json!(["member"]))
    );

    let chain = probe(&format!("/people/{rep}/managers")).await.expect(200).json();
    assert_eq!(ids(&chain), [director.clone(), vp.clone()], "nearest manager first");
    let one = probe(&format!("/people/{rep}/managers?levels=1"))
        .await
        .expect(200)
        .json();
    assert_eq!(ids(&one), vec![director.clone()]);
    let top = probe(&format!("/people/{vp}/managers")).await.expect(200).json();
    assert_eq!(ids(&top), Vec::<String>::new(), "the top reports to nobody");

    let reports = probe(&format!("/people/{director}/reports")).await.expect(200).json();
    assert_eq!(ids(&reports["people"]), sorted(vec![rep.clone(), leaver.clone()]));
    let org = probe(&format!("/people/{vp}/organisation")).await.expect(200).json();
    assert_eq!(
        ids(&org["people"]),
        sorted(vec![director.clone(), rep.clone(), leaver.clone()])
    );
    let flagged: Vec<(String, bool)> = org["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p["active"].as_bool().unwrap()))
        .filter(|(_, active)| !active)
        .collect();
    assert_eq!(
        flagged,
        [(leaver.clone(), false)],
        "a deactivated user is flagged, not dropped"
    );

    let members = probe(&format!("/groups/{team}/members")).await.expect(200).json();
    assert_eq!(ids(&members["people"]), vec![rep.clone()]);
    probe("/groups/no-such-group/members").await.expect(404);

    // Pages: the tenant's owner and the four people, two at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/people?limit=2&cursor={c}"),
            None => "/people?limit=2".to_string(),
        };
        let page = probe(&path).await.expect(200).json();
        let got = ids(&page["people"]);
        assert!(got.len() <= 2, "{page}");
        seen.extend(got);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        sorted(vec![
            t.owner_id.clone(),
            vp.clone(),
            director.clone(),
            rep.clone(),
            leaver.clone()
        ])
    );

    // Bad arguments are refused by the host, and another tenant's people do not exist.
    probe(&format!("/people/{rep}/managers?levels=0")).await.expect(400);
    probe("/people?limit=501").await.expect(400);
    let other = s.tenant("Other").await;
    let stranger = person(&other, "Sam", None).await;
    probe(&format!("/people/{stranger}")).await.expect(404);
    probe(&format!("/people/{stranger}/reports")).await.expect(404);
    s.stop().await;
}

#[tokio::test]
async fn the_directory_is_denied_unless_granted() {
    let s = TestServer::start().await;
    let publisher = s.publisher("plinth-tests").await;
    publisher
        .publish(&s, &Guest::named("directory-probe"))
        .await
        .expect(201);
    let t = s.tenant("Acme").await;
    directory_probe(&s, &t, json!([])).await;
    let r = t
        .get(&format!("/api/v1/plugins/directory-probe/people/{}", t.owner_id))
        .await
        .expect(403);
    assert!(
        r.text.contains("directory"),
        "the refusal names the capability: {}",
        r.text
    );
    s.stop().await;
}
