//! Hierarchical groups end to end, over HTTP on a real server (SQLite, or PostgreSQL
//! with `PLINTH_TEST_DATABASE_URL`): a 5-level tree, subtree moves checked against
//! the closure the stored labels imply, row by row, cycles, delete rules, traversal
//! and pagination, memberships, record shares, plugin-managed groups — and the one
//! audit event of every mutation, read through the audit API.

mod support;

use plinth_core::store::audit::Actor;
use plinth_core::tenancy::groups::{GroupOwner, create_group};
use plinth_tests::{Client, TestServer};
use serde_json::{Value, json};
use sqlx::Row;
use support::{audit_mark, id, nothing_recorded_since, one_event, record, request};

/// Create a group as `by`; its id.
async fn group(by: &Client, name: &str, parent: Option<&str>) -> String {
    id(&by
        .post("/api/v1/groups", json!({ "name": name, "parent_id": parent }))
        .await
        .expect(201)
        .json())
}

/// The `data` of a list answer.
fn data(page: &Value) -> &Vec<Value> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data list in {page}"))
}

/// The ids in a list of groups, sorted.
fn sorted_ids(list: &Value) -> Vec<String> {
    sorted_strings(list.as_array().unwrap().iter().map(id).collect())
}

fn sorted_strings(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// (id, depth) of each group in a list answer, in its order.
fn id_depths(page: &Value) -> Vec<(String, i64)> {
    data(page)
        .iter()
        .map(|g| (id(g), g["depth"].as_i64().unwrap()))
        .collect()
}

async fn ancestors(t: &Client, group: &str) -> Vec<(String, i64)> {
    id_depths(
        &t.get(&format!("/api/v1/groups/{group}/ancestors"))
            .await
            .expect(200)
            .json(),
    )
}

async fn descendants(t: &Client, group: &str, query: &str) -> Vec<(String, i64)> {
    id_depths(
        &t.get(&format!("/api/v1/groups/{group}/descendants?{query}"))
            .await
            .expect(200)
            .json(),
    )
}

fn sorted(mut v: Vec<(String, i64)>) -> Vec<(String, i64)> {
    v.sort();
    v
}

/// Every (ancestor, descendant, distance) pair of a tenant's groups — the closure —
/// as the stored labels imply it (a is d or an ancestor when d's `lft` lies in a's
/// interval), sorted. (Read from storage: the labels are what is under test.)
async fn closure(s: &TestServer, tenant: &str) -> Vec<(String, String, i64)> {
    let rows = sqlx::query(
        "SELECT a.id AS ancestor_id, d.id AS descendant_id, d.depth - a.depth AS depth \
         FROM groups a JOIN groups d ON d.tenant_id = a.tenant_id AND d.lft >= a.lft AND d.lft <= a.rgt \
         WHERE a.tenant_id = $1 ORDER BY a.id, d.id",
    )
    .bind(tenant)
    .fetch_all(s.db().reader())
    .await
    .expect("closure");
    rows.iter()
        .map(|r| (r.get("ancestor_id"), r.get("descendant_id"), r.get("depth")))
        .collect()
}

/// The closure rows implied by the groups' parent links, computed the slow way.
async fn expected_closure(s: &TestServer, tenant: &str) -> Vec<(String, String, i64)> {
    let rows = sqlx::query("SELECT id, parent_id FROM groups WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(s.db().reader())
        .await
        .expect("groups");
    let parent: std::collections::HashMap<String, Option<String>> = rows
        .iter()
        .map(|r| (r.get::<String, _>("id"), r.get::<Option<String>, _>("parent_id")))
        .collect();
    let mut out = Vec::new();
    for id in parent.keys() {
        let (mut at, mut depth) = (Some(id.clone()), 0);
        while let Some(a) = at {
            out.push((a.clone(), id.clone(), depth));
            at = parent.get(&a).cloned().flatten();
            depth += 1;
            assert!(depth < 10_000, "cycle in parent links");
        }
    }
    out.sort();
    out
}

/// Assert the hierarchy labels are well formed and imply exactly the closure the
/// parent links do.
async fn assert_closure_consistent(s: &TestServer, tenant: &str) {
    let mut conn = s.db().reader().acquire().await.expect("connection");
    plinth_core::store::groups::verify_labels(&mut conn, tenant)
        .await
        .expect("well-formed labels");
    drop(conn);
    assert_eq!(closure(s, tenant).await, expected_closure(s, tenant).await);
}

#[tokio::test]
async fn a_five_level_tree_moves_whole_subtrees_and_refuses_cycles() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    // World ─ EMEA ─ DACH ─ Germany ─ Berlin      (5 levels)
    //       └ Americas ─ US
    let mark = audit_mark(&t).await;
    let world = group(&t, "World", None).await;
    let e = one_event(&t, mark, "group.create", "group").await;
    assert_eq!(
        (e["after"]["name"].as_str(), e["before"].clone()),
        (Some("World"), Value::Null)
    );
    let emea = group(&t, "EMEA", Some(&world)).await;
    let dach = group(&t, "DACH", Some(&emea)).await;
    let germany = group(&t, "Germany", Some(&dach)).await;
    let berlin = group(&t, "Berlin", Some(&germany)).await;
    let americas = group(&t, "Americas", Some(&world)).await;
    let us = group(&t, "US", Some(&americas)).await;
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(closure(&s, &t.id).await.len(), 5 + 4 + 3 + 2 + 1 + 2 + 3);

    assert_eq!(
        ancestors(&t, &berlin).await,
        [
            (world.clone(), 4),
            (emea.clone(), 3),
            (dach.clone(), 2),
            (germany.clone(), 1)
        ]
    );
    assert_eq!(
        sorted(descendants(&t, &world, "max_depth=2").await),
        sorted(vec![
            (emea.clone(), 1),
            (americas.clone(), 1),
            (dach.clone(), 2),
            (us.clone(), 2)
        ])
    );
    assert_eq!(descendants(&t, &world, "").await.len(), 6);
    // Breadth first: depths never decrease along the list.
    let depths: Vec<i64> = descendants(&t, &world, "").await.into_iter().map(|d| d.1).collect();
    assert!(depths.windows(2).all(|w| w[0] <= w[1]), "{depths:?}");

    // Move DACH (with Germany and Berlin) under Americas/US.
    let dach_path = format!("/api/v1/groups/{dach}");
    let mark = audit_mark(&t).await;
    let r = t.patch(&dach_path, json!({ "parent_id": us })).await.expect(200);
    assert_eq!(
        (r.body["parent_id"].as_str(), r.header("etag")),
        (Some(us.as_str()), Some("\"2\""))
    );
    let e = one_event(&t, mark, "group.move", "group").await;
    assert_eq!(
        (e["before"]["parent_id"].as_str(), e["after"]["parent_id"].as_str()),
        (Some(emea.as_str()), Some(us.as_str()))
    );
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(
        ancestors(&t, &berlin).await,
        [
            (world.clone(), 5),
            (americas.clone(), 4),
            (us.clone(), 3),
            (dach.clone(), 2),
            (germany.clone(), 1)
        ]
    );
    assert!(descendants(&t, &emea, "").await.is_empty());
    assert_eq!(
        sorted(descendants(&t, &americas, "").await),
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
    let mark = audit_mark(&t).await;
    let r = t
        .patch(&format!("/api/v1/groups/{americas}"), json!({ "parent_id": berlin }))
        .await
        .expect_problem(409, "group-cycle");
    assert_eq!(
        r.body["cycle"],
        json!([americas, us, dach, germany, berlin]),
        "{}",
        r.text
    );
    assert!(r.body["detail"].as_str().unwrap().contains("descendants"));
    let r = t
        .patch(&dach_path, json!({ "parent_id": dach }))
        .await
        .expect_problem(409, "group-cycle");
    assert_eq!(r.body["cycle"], json!([dach]));
    assert_eq!(closure(&s, &t.id).await, before);
    nothing_recorded_since(&t, mark).await;

    // To the root level and back, renaming on the way (one event, one version bump).
    let r = t
        .patch(&dach_path, json!({ "parent_id": null, "name": "D-A-CH" }))
        .await
        .expect(200);
    assert_eq!(r.body["parent_id"], Value::Null, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"3\""));
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(ancestors(&t, &berlin).await, [(dach.clone(), 2), (germany.clone(), 1)]);
    let roots = t.get("/api/v1/groups?root=true").await.expect(200).json();
    assert_eq!(
        sorted_ids(&roots["data"]),
        sorted_strings(vec![world.clone(), dach.clone()])
    );

    // If-Match: stale refused, current accepted.
    t.patch(&dach_path, json!({ "parent_id": emea }))
        .if_match(2)
        .await
        .expect(412);
    t.patch(&dach_path, json!({ "parent_id": emea }))
        .if_match(3)
        .await
        .expect(200);
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(ancestors(&t, &berlin).await.len(), 4);

    // The nested tree.
    let tree = t.get(&format!("/api/v1/groups/{world}/tree")).await.expect(200).json();
    let emea_node = tree["children"]
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
    let tree = t
        .get(&format!("/api/v1/groups/{world}/tree?max_depth=1"))
        .await
        .expect(200)
        .json();
    assert!(
        tree["children"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["children"] == json!([]))
    );
    t.get(&format!("/api/v1/groups/{world}/tree?max_depth=101"))
        .await
        .expect(422);
    s.stop().await;
}

#[tokio::test]
async fn lists_and_descendants_page_with_cursors() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let root = group(&t, "Root", None).await;
    let mut expected = Vec::new();
    for i in 0..4 {
        let child = group(&t, &format!("C{i}"), Some(&root)).await;
        expected.push((child.clone(), 1));
        for j in 0..2 {
            expected.push((group(&t, &format!("C{i}G{j}"), Some(&child)).await, 2));
        }
    }
    // Follow the cursor through 12 descendants in pages of 5.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = t
            .get(&format!("/api/v1/groups/{root}/descendants?limit=5&cursor={cursor}"))
            .await
            .expect(200)
            .json();
        seen.extend(id_depths(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert_eq!(sorted(seen.clone()), sorted(expected));
    assert!(seen[..4].iter().all(|(_, d)| *d == 1));

    // Children of one group, roots, everything; bad combinations refused.
    let page = t
        .get(&format!("/api/v1/groups?parent_id={root}&limit=3"))
        .await
        .expect(200)
        .json();
    assert_eq!(data(&page).len(), 3);
    assert!(page["next_cursor"].is_string());
    let page = t.get("/api/v1/groups?limit=500").await.expect(200).json();
    assert_eq!(data(&page).len(), 13);
    t.get(&format!("/api/v1/groups?parent_id={root}&root=true"))
        .await
        .expect(422);
    for bad in ["cursor=nodash", "cursor=x-y", "max_depth=0", "limit=501"] {
        let r = t.get(&format!("/api/v1/groups/{root}/descendants?{bad}")).await;
        assert!(matches!(r.status, 400 | 422), "{bad}: {}", r.text);
    }
    s.stop().await;
}

#[tokio::test]
async fn groups_are_validated_and_deleted_only_when_unused() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let member = s.user(&t, "Member", "member").await;
    for (body, status) in [
        (json!({ "name": "" }), 422),
        (json!({ "name": "   " }), 422),
        (json!({ "name": "x".repeat(201) }), 422),
        (json!({ "name": "ok", "colour": "red" }), 400),
        (json!({ "name": "ok", "parent_id": "01NOSUCHGROUP" }), 404),
        (json!({ "name": 7 }), 400),
    ] {
        let r = t.post("/api/v1/groups", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    // Members may not create groups.
    member.post("/api/v1/groups", json!({ "name": "M" })).await.expect(403);

    let parent = group(&t, "Parent", None).await;
    let child = group(&t, "Child", Some(&parent)).await;
    let (parent_path, child_path) = (format!("/api/v1/groups/{parent}"), format!("/api/v1/groups/{child}"));
    let r = t.delete(&parent_path).await.expect(409);
    assert!(r.body["detail"].as_str().unwrap().contains("child"), "{}", r.text);

    let rec = record(&t, "account", json!({ "fields": { "name": "Acme" } })).await;
    let shares = format!("/api/v1/records/account/{rec}/shares");
    t.post(&shares, json!({ "group_id": child, "access": "read" }))
        .await
        .expect(201);
    let r = t.delete(&child_path).await.expect(409);
    assert!(r.body["detail"].as_str().unwrap().contains("share"), "{}", r.text);
    t.delete(&format!("{shares}/{child}")).await.expect(204);

    // A leaf with members: deleted with its memberships; the event keeps who they were.
    t.post(&format!("{child_path}/members"), json!({ "user_id": member.id }))
        .await
        .expect(201);
    let mark = audit_mark(&t).await;
    t.delete(&child_path).await.expect(204);
    let e = one_event(&t, mark, "group.delete", "group").await;
    assert_eq!(e["before"]["members"][0]["user_id"], member.id.as_str());
    assert_eq!(e["after"], Value::Null);
    assert_closure_consistent(&s, &t.id).await;
    assert_eq!(closure(&s, &t.id).await.len(), 1);
    let memberships = t
        .get(&format!("/api/v1/users/{}/groups", member.id))
        .await
        .expect(200)
        .json();
    assert_eq!(memberships["data"], json!([]));
    t.get(&child_path).await.expect(404);
    t.delete(&parent_path).await.expect(204);
    assert!(closure(&s, &t.id).await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn memberships_are_added_listed_and_removed() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let other = s.tenant("Other").await;
    let manager = s.user(&t, "Manager", "manager").await;
    let m1 = s.user(&t, "Member One", "member").await;
    let m2 = s.user(&t, "Member Two", "member").await;
    let g = group(&t, "Sales", None).await;
    let members = format!("/api/v1/groups/{g}/members");

    let mark = audit_mark(&t).await;
    let added = manager
        .post(&members, json!({ "user_id": m1.id, "role": "forecast-manager" }))
        .await
        .expect(201)
        .json();
    assert_eq!(added["role"], "forecast-manager");
    let e = one_event(&t, mark, "group_member.add", "group_member").await;
    assert_eq!(e["entity_id"], format!("{g}:{}", m1.id));
    assert_eq!(e["after"]["user_id"], m1.id.as_str());
    let added = manager
        .post(&members, json!({ "user_id": m2.id }))
        .await
        .expect(201)
        .json();
    assert_eq!(added["role"], "member");

    for (body, status) in [
        (json!({ "user_id": m1.id }), 409),
        (json!({ "user_id": "01NOSUCHUSER" }), 404),
        (json!({ "user_id": other.owner_id }), 404),
        (json!({ "user_id": m1.id, "role": "Boss Person" }), 422),
        (json!({ "user": m1.id }), 400),
    ] {
        let r = manager.post(&members, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let r = m1.post(&members, json!({ "user_id": m1.id })).await;
    assert_eq!(r.status, 403, "members cannot manage memberships");

    let first = m1.get(&format!("{members}?limit=1")).await.expect(200).json();
    assert_eq!(data(&first).len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = m1
        .get(&format!("{members}?limit=1&cursor={cursor}"))
        .await
        .expect(200)
        .json();
    let both = sorted_strings(
        [&first, &second]
            .map(|page| page["data"][0]["user_id"].as_str().unwrap().to_string())
            .to_vec(),
    );
    assert_eq!(both, sorted_strings(vec![m1.id.clone(), m2.id.clone()]));

    let m1_groups = format!("/api/v1/users/{}/groups", m1.id);
    let page = m2.get(&m1_groups).await.expect(200).json();
    assert_eq!(page["data"][0]["group"]["id"], g.as_str());
    assert_eq!(page["data"][0]["role"], "forecast-manager");

    let mark = audit_mark(&t).await;
    let m1_membership = format!("{members}/{}", m1.id);
    manager.delete(&m1_membership).await.expect(204);
    let e = one_event(&t, mark, "group_member.remove", "group_member").await;
    assert_eq!(
        (e["before"]["role"].as_str(), e["after"].clone()),
        (Some("forecast-manager"), Value::Null)
    );
    manager.delete(&m1_membership).await.expect(404);
    let page = m2.get(&m1_groups).await.expect(200).json();
    assert_eq!(page["data"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn records_are_shared_by_their_owner_or_an_admin() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let owner = s.user(&t, "Owner", "member").await;
    let stranger = s.user(&t, "Stranger", "member").await;
    let admin = s.user(&t, "Admin", "admin").await;
    let g = group(&t, "Sales", None).await;
    let g2 = group(&t, "Support", None).await;
    let deal = json!({ "fields": { "name": "Deal", "stage": "prospecting", "close_date": "2026-12-31" } });
    let rec = record(&owner, "opportunity", deal.clone()).await;
    let shares = format!("/api/v1/records/opportunity/{rec}/shares");

    let mark = audit_mark(&t).await;
    let share = owner
        .post(&shares, json!({ "group_id": g, "access": "read-write" }))
        .await
        .expect(201)
        .json();
    assert_eq!(
        (share["access"].as_str(), share["created_by"].as_str()),
        (Some("read-write"), Some(owner.id.as_str()))
    );
    let e = one_event(&t, mark, "record_share.add", "record_share").await;
    assert_eq!(e["entity_id"], format!("{rec}:{g}"));
    assert_eq!(
        (e["after"]["object"].as_str(), e["after"]["group_id"].as_str()),
        (Some("opportunity"), Some(g.as_str()))
    );

    for (body, status) in [
        (json!({ "group_id": g, "access": "read" }), 409),
        (json!({ "group_id": g2, "access": "write" }), 422),
        (json!({ "group_id": "01NOSUCHGROUP", "access": "read" }), 404),
        (json!({ "group_id": g2 }), 400),
    ] {
        let r = owner.post(&shares, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    // Wrong object, missing record, someone else's record: not found.
    let read_g2 = json!({ "group_id": g2, "access": "read" });
    owner
        .post(&format!("/api/v1/records/account/{rec}/shares"), read_g2.clone())
        .await
        .expect(404);
    owner
        .get("/api/v1/records/opportunity/01NOSUCHRECORD/shares")
        .await
        .expect(404);
    stranger.post(&shares, read_g2.clone()).await.expect(404);
    stranger.get(&shares).await.expect(404);
    // Soft-deleted records cannot be shared.
    let gone = record(&owner, "opportunity", deal).await;
    let gone = format!("/api/v1/records/opportunity/{gone}");
    owner.delete(&gone).await.expect(200);
    owner
        .post(&format!("{gone}/shares"), json!({ "group_id": g, "access": "read" }))
        .await
        .expect(404);

    // Admins manage anyone's shares.
    admin.post(&shares, read_g2).await.expect(201);
    let list = owner.get(&shares).await.expect(200).json();
    assert_eq!(
        sorted_strings(
            data(&list)
                .iter()
                .map(|s| s["group_id"].as_str().unwrap().to_string())
                .collect()
        ),
        sorted_strings(vec![g.clone(), g2.clone()])
    );

    let mark = audit_mark(&t).await;
    admin.delete(&format!("{shares}/{g2}")).await.expect(204);
    let e = one_event(&t, mark, "record_share.remove", "record_share").await;
    assert_eq!(
        (e["before"]["access"].as_str(), e["after"].clone()),
        (Some("read"), Value::Null)
    );
    admin.delete(&format!("{shares}/{g2}")).await.expect(404);
    stranger.delete(&format!("{shares}/{g}")).await.expect(404);
    s.stop().await;
}

#[tokio::test]
async fn plugin_groups_are_readable_but_not_changed_through_rest() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let member = s.user(&t, "Member", "member").await;
    // Groups a plugin manages are made through the groups service: REST cannot.
    let actor = Actor::system();
    let plugin = GroupOwner::Plugin("territories");
    let region = create_group(s.db(), &t.id, &actor, plugin, "EMEA", None).await.unwrap();
    let country = create_group(s.db(), &t.id, &actor, plugin, "DE", Some(&region.id))
        .await
        .unwrap();
    let rest = group(&t, "Tenant group", None).await;

    let country_path = format!("/api/v1/groups/{}", country.id);
    let read = t.get(&country_path).await.expect(200).json();
    assert_eq!(read["owner_plugin"], "territories");
    let up = t.get(&format!("{country_path}/ancestors")).await.expect(200).json();
    assert_eq!(up["data"][0]["id"], region.id.as_str());

    let before = closure(&s, &t.id).await;
    let mark = audit_mark(&t).await;
    let writes = [
        ("PATCH", country_path.clone(), Some(json!({ "name": "X" }))),
        ("PATCH", country_path.clone(), Some(json!({ "parent_id": null }))),
        ("DELETE", country_path.clone(), None),
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
        request(&t, method, &path, body)
            .await
            .expect_problem(409, "managed-by-plugin");
    }
    assert_eq!(closure(&s, &t.id).await, before);
    nothing_recorded_since(&t, mark).await;

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
