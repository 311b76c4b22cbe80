//! Hierarchical groups end to end, over HTTP on a real server (SQLite, or PostgreSQL
//! with `PLINTH_TEST_DATABASE_URL`): a 5-level tree, subtree moves checked against
//! the closure table row by row, cycles, delete rules, traversal and pagination,
//! memberships, record shares, plugin-managed groups — and the one audit event of
//! every mutation.

mod support;

use plinth_core::store::audit::Actor;
use plinth_core::tenancy::groups::{GroupOwner, create_group};
use plinth_tests::{TestServer, TestTenant};
use serde_json::{Value, json};
use support::{assert_closure_consistent, audit_seq, closure, one_event, record, user};

async fn group(s: &TestServer, t: &TestTenant, name: &str, parent: Option<&str>) -> String {
    let r = s
        .call(
            "POST",
            "/api/v1/groups",
            Some(&t.key),
            Some(json!({ "name": name, "parent_id": parent })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect()
}

async fn ancestors(s: &TestServer, t: &TestTenant, id: &str) -> Vec<(String, i64)> {
    let r = s
        .call("GET", &format!("/api/v1/groups/{id}/ancestors"), Some(&t.key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["id"].as_str().unwrap().to_string(), g["depth"].as_i64().unwrap()))
        .collect()
}

async fn descendants(s: &TestServer, t: &TestTenant, id: &str, query: &str) -> Vec<(String, i64)> {
    let r = s
        .call(
            "GET",
            &format!("/api/v1/groups/{id}/descendants?{query}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["id"].as_str().unwrap().to_string(), g["depth"].as_i64().unwrap()))
        .collect()
}

fn sorted(mut v: Vec<(String, i64)>) -> Vec<(String, i64)> {
    v.sort();
    v
}

#[tokio::test]
async fn a_five_level_tree_moves_whole_subtrees_and_refuses_cycles() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    // World ─ EMEA ─ DACH ─ Germany ─ Berlin      (5 levels)
    //       └ Americas ─ US
    let seq = audit_seq(&s, &t.id).await;
    let world = group(&s, &t, "World", None).await;
    let e = one_event(&s, &t.id, seq, "group.create", "group").await;
    assert_eq!(
        (e.after["name"].as_str(), e.before.clone()),
        (Some("World"), Value::Null)
    );
    let emea = group(&s, &t, "EMEA", Some(&world)).await;
    let dach = group(&s, &t, "DACH", Some(&emea)).await;
    let germany = group(&s, &t, "Germany", Some(&dach)).await;
    let berlin = group(&s, &t, "Berlin", Some(&germany)).await;
    let americas = group(&s, &t, "Americas", Some(&world)).await;
    let us = group(&s, &t, "US", Some(&americas)).await;
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(closure(&s, &t.id).await.len(), 5 + 4 + 3 + 2 + 1 + 2 + 3);

    assert_eq!(
        ancestors(&s, &t, &berlin).await,
        [
            (world.clone(), 4),
            (emea.clone(), 3),
            (dach.clone(), 2),
            (germany.clone(), 1)
        ]
    );
    assert_eq!(
        sorted(descendants(&s, &t, &world, "max_depth=2").await),
        sorted(vec![
            (emea.clone(), 1),
            (americas.clone(), 1),
            (dach.clone(), 2),
            (us.clone(), 2)
        ])
    );
    assert_eq!(descendants(&s, &t, &world, "").await.len(), 6);
    // Breadth first: depths never decrease along the list.
    let depths: Vec<i64> = descendants(&s, &t, &world, "").await.into_iter().map(|d| d.1).collect();
    assert!(depths.windows(2).all(|w| w[0] <= w[1]), "{depths:?}");

    // Move DACH (with Germany and Berlin) under Americas/US.
    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/groups/{dach}"),
            Some(&t.key),
            Some(json!({ "parent_id": us })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["parent_id"].as_str(), r.header("etag")),
        (Some(us.as_str()), Some("\"2\""))
    );
    let e = one_event(&s, &t.id, seq, "group.move", "group").await;
    assert_eq!(
        (e.before["parent_id"].as_str(), e.after["parent_id"].as_str()),
        (Some(emea.as_str()), Some(us.as_str()))
    );
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(
        ancestors(&s, &t, &berlin).await,
        [
            (world.clone(), 5),
            (americas.clone(), 4),
            (us.clone(), 3),
            (dach.clone(), 2),
            (germany.clone(), 1)
        ]
    );
    assert!(descendants(&s, &t, &emea, "").await.is_empty());
    assert_eq!(
        sorted(descendants(&s, &t, &americas, "").await),
        sorted(vec![
            (us.clone(), 1),
            (dach.clone(), 2),
            (germany.clone(), 3),
            (berlin.clone(), 4)
        ])
    );
    // Exactly the rows expected: every pair on every root path, nothing else.
    let rows = closure(&s, &t.id).await;
    assert!(rows.contains(&(americas.clone(), berlin.clone(), 4)));
    assert!(!rows.iter().any(|(a, d, _)| *a == emea && *d != emea));

    // Cycles: under itself, under its own descendant — refused, naming the path.
    let before = closure(&s, &t.id).await;
    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/groups/{americas}"),
            Some(&t.key),
            Some(json!({ "parent_id": berlin })),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["type"], "https://plinth.dev/problems/group-cycle");
    assert_eq!(
        r.body["cycle"],
        json!([americas, us, dach, germany, berlin]),
        "{}",
        r.text
    );
    assert!(r.body["detail"].as_str().unwrap().contains("descendants"));
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/groups/{dach}"),
            Some(&t.key),
            Some(json!({ "parent_id": dach })),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["cycle"], json!([dach]));
    assert_eq!(closure(&s, &t.id).await, before);
    assert_eq!(audit_seq(&s, &t.id).await, seq);

    // To the root level and back, renaming on the way (one event, one version bump).
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/groups/{dach}"),
            Some(&t.key),
            Some(json!({ "parent_id": null, "name": "D-A-CH" })),
        )
        .await;
    assert_eq!(
        (r.status, r.body["parent_id"].clone()),
        (200, Value::Null),
        "{}",
        r.text
    );
    assert_eq!(r.header("etag"), Some("\"3\""));
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(
        ancestors(&s, &t, &berlin).await,
        [(dach.clone(), 2), (germany.clone(), 1)]
    );
    let r = s.call("GET", "/api/v1/groups?root=true", Some(&t.key), None).await;
    assert_eq!(
        sorted_ids(&r.body["data"]),
        sorted_strings(vec![world.clone(), dach.clone()])
    );

    // If-Match: stale refused, current accepted.
    let r = s
        .http
        .patch(format!("{}/api/v1/groups/{dach}", s.url))
        .bearer_auth(&t.key)
        .header("If-Match", "\"2\"")
        .json(&json!({ "parent_id": emea }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = s
        .http
        .patch(format!("{}/api/v1/groups/{dach}", s.url))
        .bearer_auth(&t.key)
        .header("If-Match", "\"3\"")
        .json(&json!({ "parent_id": emea }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(ancestors(&s, &t, &berlin).await.len(), 4);

    // The nested tree.
    let r = s
        .call("GET", &format!("/api/v1/groups/{world}/tree"), Some(&t.key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let emea_node = r.body["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == emea.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        emea_node["children"][0]["children"][0]["children"][0]["id"],
        berlin.as_str()
    );
    let r = s
        .call(
            "GET",
            &format!("/api/v1/groups/{world}/tree?max_depth=1"),
            Some(&t.key),
            None,
        )
        .await;
    assert!(
        r.body["children"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["children"] == json!([]))
    );
    let r = s
        .call(
            "GET",
            &format!("/api/v1/groups/{world}/tree?max_depth=101"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 422);
    s.stop().await;
}

fn sorted_ids(v: &Value) -> Vec<String> {
    sorted_strings(ids(v))
}

fn sorted_strings(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn lists_and_descendants_page_with_cursors() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let root = group(&s, &t, "Root", None).await;
    let mut expected = Vec::new();
    for i in 0..4 {
        let child = group(&s, &t, &format!("C{i}"), Some(&root)).await;
        expected.push((child.clone(), 1));
        for j in 0..2 {
            expected.push((group(&s, &t, &format!("C{i}G{j}"), Some(&child)).await, 2));
        }
    }
    // Follow the cursor through 12 descendants in pages of 5.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = s
            .call(
                "GET",
                &format!("/api/v1/groups/{root}/descendants?limit=5&cursor={cursor}"),
                Some(&t.key),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for g in r.body["data"].as_array().unwrap() {
            seen.push((g["id"].as_str().unwrap().to_string(), g["depth"].as_i64().unwrap()));
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert_eq!(sorted(seen.clone()), sorted(expected));
    assert!(seen[..4].iter().all(|(_, d)| *d == 1));

    // Children of one group, roots, everything; bad combinations refused.
    let r = s
        .call(
            "GET",
            &format!("/api/v1/groups?parent_id={root}&limit=3"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 3);
    assert!(r.body["next_cursor"].is_string());
    let r = s.call("GET", "/api/v1/groups?limit=500", Some(&t.key), None).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 13);
    let r = s
        .call(
            "GET",
            &format!("/api/v1/groups?parent_id={root}&root=true"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 422);
    for bad in ["cursor=nodash", "cursor=x-y", "max_depth=0", "limit=501"] {
        let r = s
            .call(
                "GET",
                &format!("/api/v1/groups/{root}/descendants?{bad}"),
                Some(&t.key),
                None,
            )
            .await;
        assert!(matches!(r.status, 400 | 422), "{bad}: {}", r.text);
    }
    s.stop().await;
}

#[tokio::test]
async fn groups_are_validated_and_deleted_only_when_unused() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let member = user(&s, &t, "member").await;
    for (body, status) in [
        (json!({ "name": "" }), 422),
        (json!({ "name": "   " }), 422),
        (json!({ "name": "x".repeat(201) }), 422),
        (json!({ "name": "ok", "colour": "red" }), 400),
        (json!({ "name": "ok", "parent_id": "01NOSUCHGROUP" }), 404),
        (json!({ "name": 7 }), 400),
    ] {
        let r = s.call("POST", "/api/v1/groups", Some(&t.key), Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    // Members may not create groups; managers may.
    let r = s
        .call(
            "POST",
            "/api/v1/groups",
            Some(&member.key),
            Some(json!({ "name": "M" })),
        )
        .await;
    assert_eq!(r.status, 403);

    let parent = group(&s, &t, "Parent", None).await;
    let child = group(&s, &t, "Child", Some(&parent)).await;
    let r = s
        .call("DELETE", &format!("/api/v1/groups/{parent}"), Some(&t.key), None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.body["detail"].as_str().unwrap().contains("child"));

    let rec = record(&s, &t.id, "account", &t.owner_id).await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/records/account/{rec}/shares"),
            Some(&t.key),
            Some(json!({ "group_id": child, "access": "read" })),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = s
        .call("DELETE", &format!("/api/v1/groups/{child}"), Some(&t.key), None)
        .await;
    assert_eq!(r.status, 409);
    assert!(r.body["detail"].as_str().unwrap().contains("share"));
    let r = s
        .call(
            "DELETE",
            &format!("/api/v1/records/account/{rec}/shares/{child}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 204);

    // A leaf with members: deleted with its memberships; the event keeps who they were.
    let r = s
        .call(
            "POST",
            &format!("/api/v1/groups/{child}/members"),
            Some(&t.key),
            Some(json!({ "user_id": member.id })),
        )
        .await;
    assert_eq!(r.status, 201);
    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call("DELETE", &format!("/api/v1/groups/{child}"), Some(&t.key), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = one_event(&s, &t.id, seq, "group.delete", "group").await;
    assert_eq!(e.before["members"][0]["user_id"], member.id.as_str());
    assert_eq!(e.after, Value::Null);
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(closure(&s, &t.id).await.len(), 1);
    let r = s
        .call(
            "GET",
            &format!("/api/v1/users/{}/groups", member.id),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"], json!([]));
    assert_eq!(
        s.call("GET", &format!("/api/v1/groups/{child}"), Some(&t.key), None)
            .await
            .status,
        404
    );
    let r = s
        .call("DELETE", &format!("/api/v1/groups/{parent}"), Some(&t.key), None)
        .await;
    assert_eq!(r.status, 204);
    assert!(closure(&s, &t.id).await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn memberships_are_added_listed_and_removed() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let other = s.tenant("Other").await;
    let manager = user(&s, &t, "manager").await;
    let m1 = user(&s, &t, "member").await;
    let m2 = user(&s, &t, "member").await;
    let g = group(&s, &t, "Sales", None).await;
    let members = format!("/api/v1/groups/{g}/members");

    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call(
            "POST",
            &members,
            Some(&manager.key),
            Some(json!({ "user_id": m1.id, "role": "forecast-manager" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["role"], "forecast-manager");
    let e = one_event(&s, &t.id, seq, "group_member.add", "group_member").await;
    assert_eq!(e.entity_id, Some(format!("{g}:{}", m1.id)));
    assert_eq!(e.after["user_id"], m1.id.as_str());
    let r = s
        .call("POST", &members, Some(&manager.key), Some(json!({ "user_id": m2.id })))
        .await;
    assert_eq!((r.status, r.body["role"].as_str()), (201, Some("member")));

    for (body, status) in [
        (json!({ "user_id": m1.id }), 409),
        (json!({ "user_id": "01NOSUCHUSER" }), 404),
        (json!({ "user_id": other.owner_id }), 404),
        (json!({ "user_id": m1.id, "role": "Boss Person" }), 422),
        (json!({ "user": m1.id }), 400),
    ] {
        let r = s.call("POST", &members, Some(&manager.key), Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let r = s
        .call("POST", &members, Some(&m1.key), Some(json!({ "user_id": m1.id })))
        .await;
    assert_eq!(r.status, 403, "members cannot manage memberships");

    let r = s.call("GET", &format!("{members}?limit=1"), Some(&m1.key), None).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    let r2 = s
        .call(
            "GET",
            &format!("{members}?limit=1&cursor={cursor}"),
            Some(&m1.key),
            None,
        )
        .await;
    let mut both = vec![
        r.body["data"][0]["user_id"].as_str().unwrap().to_string(),
        r2.body["data"][0]["user_id"].as_str().unwrap().to_string(),
    ];
    both.sort();
    assert_eq!(both, sorted_strings(vec![m1.id.clone(), m2.id.clone()]));

    let r = s
        .call("GET", &format!("/api/v1/users/{}/groups", m1.id), Some(&m2.key), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"][0]["group"]["id"], g.as_str());
    assert_eq!(r.body["data"][0]["role"], "forecast-manager");

    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call("DELETE", &format!("{members}/{}", m1.id), Some(&manager.key), None)
        .await;
    assert_eq!(r.status, 204);
    let e = one_event(&s, &t.id, seq, "group_member.remove", "group_member").await;
    assert_eq!(
        (e.before["role"].as_str(), e.after.clone()),
        (Some("forecast-manager"), Value::Null)
    );
    let r = s
        .call("DELETE", &format!("{members}/{}", m1.id), Some(&manager.key), None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call("GET", &format!("/api/v1/users/{}/groups", m1.id), Some(&m2.key), None)
        .await;
    assert_eq!(r.body["data"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn records_are_shared_by_their_owner_or_an_admin() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let owner = user(&s, &t, "member").await;
    let stranger = user(&s, &t, "member").await;
    let admin = user(&s, &t, "admin").await;
    let g = group(&s, &t, "Sales", None).await;
    let g2 = group(&s, &t, "Support", None).await;
    let rec = record(&s, &t.id, "opportunity", &owner.id).await;
    let shares = format!("/api/v1/records/opportunity/{rec}/shares");

    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call(
            "POST",
            &shares,
            Some(&owner.key),
            Some(json!({ "group_id": g, "access": "read-write" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (r.body["access"].as_str(), r.body["created_by"].as_str()),
        (Some("read-write"), Some(owner.id.as_str()))
    );
    let e = one_event(&s, &t.id, seq, "record_share.add", "record_share").await;
    assert_eq!(e.entity_id, Some(format!("{rec}:{g}")));
    assert_eq!(
        (e.after["object"].as_str(), e.after["group_id"].as_str()),
        (Some("opportunity"), Some(g.as_str()))
    );

    for (body, status) in [
        (json!({ "group_id": g, "access": "read" }), 409),
        (json!({ "group_id": g2, "access": "write" }), 422),
        (json!({ "group_id": "01NOSUCHGROUP", "access": "read" }), 404),
        (json!({ "group_id": g2 }), 400),
    ] {
        let r = s.call("POST", &shares, Some(&owner.key), Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    // Wrong object, missing record, someone else's record: not found.
    let r = s
        .call(
            "POST",
            &format!("/api/v1/records/account/{rec}/shares"),
            Some(&owner.key),
            Some(json!({ "group_id": g2, "access": "read" })),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call(
            "GET",
            "/api/v1/records/opportunity/01NOSUCHRECORD/shares",
            Some(&owner.key),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call(
            "POST",
            &shares,
            Some(&stranger.key),
            Some(json!({ "group_id": g2, "access": "read" })),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s.call("GET", &shares, Some(&stranger.key), None).await;
    assert_eq!(r.status, 404);
    // Soft-deleted records cannot be shared.
    let gone = record(&s, &t.id, "opportunity", &owner.id).await;
    sqlx::query("UPDATE records SET deleted_at = '2026-01-02T00:00:00.000Z' WHERE tenant_id = $1 AND id = $2")
        .bind(&t.id)
        .bind(&gone)
        .execute(s.db().writer())
        .await
        .unwrap();
    let r = s
        .call(
            "POST",
            &format!("/api/v1/records/opportunity/{gone}/shares"),
            Some(&owner.key),
            Some(json!({ "group_id": g, "access": "read" })),
        )
        .await;
    assert_eq!(r.status, 404);

    // Admins manage anyone's shares.
    let r = s
        .call(
            "POST",
            &shares,
            Some(&admin.key),
            Some(json!({ "group_id": g2, "access": "read" })),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = s.call("GET", &shares, Some(&owner.key), None).await;
    assert_eq!(
        sorted_strings(
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["group_id"].as_str().unwrap().to_string())
                .collect()
        ),
        sorted_strings(vec![g.clone(), g2.clone()])
    );

    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call("DELETE", &format!("{shares}/{g2}"), Some(&admin.key), None)
        .await;
    assert_eq!(r.status, 204);
    let e = one_event(&s, &t.id, seq, "record_share.remove", "record_share").await;
    assert_eq!(
        (e.before["access"].as_str(), e.after.clone()),
        (Some("read"), Value::Null)
    );
    let r = s
        .call("DELETE", &format!("{shares}/{g2}"), Some(&admin.key), None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call("DELETE", &format!("{shares}/{g}"), Some(&stranger.key), None)
        .await;
    assert_eq!(r.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn plugin_groups_are_readable_but_not_changed_through_rest() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let member = user(&s, &t, "member").await;
    let actor = Actor::system();
    let plugin = GroupOwner::Plugin("territories");
    let region = create_group(s.db(), &t.id, &actor, plugin, "EMEA", None).await.unwrap();
    let country = create_group(s.db(), &t.id, &actor, plugin, "DE", Some(&region.id))
        .await
        .unwrap();
    let rest = group(&s, &t, "Tenant group", None).await;

    let r = s
        .call("GET", &format!("/api/v1/groups/{}", country.id), Some(&t.key), None)
        .await;
    assert_eq!((r.status, r.body["owner_plugin"].as_str()), (200, Some("territories")));
    let r = s
        .call(
            "GET",
            &format!("/api/v1/groups/{}/ancestors", country.id),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"][0]["id"], region.id.as_str());

    let before = closure(&s, &t.id).await;
    let seq = audit_seq(&s, &t.id).await;
    let writes = [
        (
            "PATCH",
            format!("/api/v1/groups/{}", country.id),
            Some(json!({ "name": "X" })),
        ),
        (
            "PATCH",
            format!("/api/v1/groups/{}", country.id),
            Some(json!({ "parent_id": null })),
        ),
        ("DELETE", format!("/api/v1/groups/{}", country.id), None),
        (
            "POST",
            "/api/v1/groups".into(),
            Some(json!({ "name": "Sneaky", "parent_id": region.id })),
        ),
        (
            "PATCH",
            format!("/api/v1/groups/{rest}"),
            Some(json!({ "parent_id": region.id })),
        ),
        (
            "POST",
            format!("/api/v1/groups/{}/members", region.id),
            Some(json!({ "user_id": member.id })),
        ),
    ];
    for (method, path, body) in writes {
        let r = s.call(method, &path, Some(&t.key), body).await;
        assert_eq!(r.status, 409, "{method} {path}: {}", r.text);
        assert_eq!(r.body["type"], "https://plinth.dev/problems/managed-by-plugin");
    }
    assert_eq!(closure(&s, &t.id).await, before);
    assert_eq!(audit_seq(&s, &t.id).await, seq);

    // …and the plugin cannot re-arrange REST groups either.
    let moved = plinth_core::tenancy::groups::update_group(
        s.db(),
        &t.id,
        &actor,
        plugin,
        &rest,
        None,
        plinth_core::tenancy::groups::GroupPatch {
            name: None,
            parent_id: Some(Some(region.id.clone())),
        },
    )
    .await;
    assert!(
        matches!(moved, Err(plinth_core::tenancy::TenancyError::ManagedElsewhere { .. })),
        "{moved:?}"
    );
    s.stop().await;
}

/// A tiny deterministic PRNG (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

#[tokio::test]
async fn random_moves_keep_the_closure_exact() {
    use plinth_core::tenancy::TenancyError;
    use plinth_core::tenancy::groups::{GroupPatch, update_group};
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let actor = Actor::system();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    // 3 roots and 45 groups, each under a random earlier group: deep and bushy parts.
    let mut ids: Vec<String> = Vec::new();
    for i in 0..48 {
        let parent = if i < 3 {
            None
        } else {
            Some(ids[rng.below(ids.len())].clone())
        };
        let g = create_group(
            s.db(),
            &t.id,
            &actor,
            GroupOwner::Rest,
            &format!("G{i}"),
            parent.as_deref(),
        )
        .await
        .unwrap();
        ids.push(g.id);
    }
    assert_closure_consistent(&s, &t.id).await;
    let (mut moved, mut refused) = (0, 0);
    for _ in 0..150 {
        let x = ids[rng.below(ids.len())].clone();
        let target = if rng.below(10) == 0 {
            None
        } else {
            Some(ids[rng.below(ids.len())].clone())
        };
        let patch = GroupPatch {
            name: None,
            parent_id: Some(target.clone()),
        };
        match update_group(s.db(), &t.id, &actor, GroupOwner::Rest, &x, None, patch).await {
            Ok(_) => moved += 1,
            Err(TenancyError::Cycle { path, .. }) => {
                refused += 1;
                assert_eq!(path.first(), Some(&x));
                assert_eq!(path.last(), target.as_ref());
            }
            Err(e) => panic!("move {x} under {target:?}: {e:?}"),
        }
        assert_closure_consistent(&s, &t.id).await;
    }
    assert!(moved > 50 && refused > 5, "moved {moved}, refused {refused}");
    s.stop().await;
}

/// The labels of group `id` as stored.
async fn labels(s: &TestServer, tenant: &str, id: &str) -> (i64, i64) {
    let row = sqlx::query("SELECT lft, rgt FROM groups WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_one(s.db().reader())
        .await
        .expect("labels");
    use sqlx::Row;
    (row.get("lft"), row.get("rgt"))
}

/// Deep chains, hundreds of children of one group and subtrees moved into narrow
/// gaps use up the free labels where they land, so labels must be spread again
/// (store::groups::labels::make_room) — and the hierarchy stays exact throughout.
#[tokio::test]
async fn labels_are_spread_again_where_the_free_ones_run_out() {
    use plinth_core::tenancy::groups::{GroupPatch, update_group};
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let actor = Actor::system();
    let make = |name: String, parent: Option<String>| {
        let (s, t, actor) = (&s, &t, &actor);
        async move {
            create_group(s.db(), &t.id, actor, GroupOwner::Rest, &name, parent.as_deref())
                .await
                .unwrap()
                .id
        }
    };

    // A 150-deep chain: each new group halves (at best) the room of the one above.
    let root = make("Root".into(), None).await;
    let mut chain = vec![root.clone()];
    for i in 0..150 {
        chain.push(make(format!("C{i}"), chain.last().cloned()).await);
    }
    assert_closure_consistent(&s, &t.id).await;
    let deepest = chain.last().unwrap().clone();
    let mut conn = s.db().reader().acquire().await.unwrap();
    assert_eq!(
        plinth_core::store::groups::depth_of(&mut conn, &t.id, &deepest)
            .await
            .unwrap(),
        150
    );
    drop(conn);

    // 600 children of one chain group take labels from the same gap.
    let host = chain[100].clone();
    let (before, _) = labels(&s, &t.id, &chain[120]).await;
    let mut kids = Vec::new();
    for i in 0..600 {
        kids.push(make(format!("K{i}"), Some(host.clone())).await);
    }
    let (after, _) = labels(&s, &t.id, &chain[120]).await;
    assert_ne!(before, after, "the appends must have spread labels around the chain");
    assert_closure_consistent(&s, &t.id).await;

    // A 40-group subtree moved back and forth between the deepest group (a narrow
    // gap) and the root: fresh labels each way, or a shift where there is room.
    let branch = make("Branch".into(), Some(root.clone())).await;
    let mut inner = vec![branch.clone()];
    for i in 0..39 {
        let parent = inner[i / 3].clone();
        inner.push(make(format!("B{i}"), Some(parent)).await);
    }
    for round in 0..6 {
        for to in [deepest.clone(), kids[round * 7].clone(), root.clone()] {
            let patch = GroupPatch {
                name: None,
                parent_id: Some(Some(to.clone())),
            };
            update_group(s.db(), &t.id, &actor, GroupOwner::Rest, &branch, None, patch)
                .await
                .unwrap();
            // Well-formed labels (cheap); the full closure once at the end.
            let mut conn = s.db().reader().acquire().await.unwrap();
            plinth_core::store::groups::verify_labels(&mut conn, &t.id)
                .await
                .unwrap();
        }
    }
    assert_closure_consistent(&s, &t.id).await;
    // The branch ends under the root, at depth 1, its leaves at depth ≤ 4.
    let mut conn = s.db().reader().acquire().await.unwrap();
    assert_eq!(
        plinth_core::store::groups::depth_of(&mut conn, &t.id, &branch)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        plinth_core::store::groups::subtree_size(&mut conn, &t.id, &branch)
            .await
            .unwrap(),
        40
    );
    drop(conn);
    s.stop().await;
}
