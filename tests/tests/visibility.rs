//! Record visibility through a 5-level group tree: a record shared with a group is
//! visible to that group's members and to members of every ancestor group, never to
//! members of descendants or siblings; owners see their own; admins see all. Checked
//! through list (whole, filtered and sorted, paged), get, aggregate and update on the
//! REST API, under both of the SQL plans a listing may pick.

use std::collections::{BTreeMap, BTreeSet};

use plinth_tests::{Client, TestServer, TestTenant, TestUser};
use serde_json::{Value, json};

const LEVELS: usize = 5;
const ACCOUNTS: &str = "/api/v1/records/account";

/// Listings pick one of two equivalent SQL plans by how many shares the viewer
/// reaches; run the same expectations under each.
#[tokio::test]
async fn five_level_tree_when_listings_start_from_shares() {
    five_level_tree(i64::MAX).await;
}

#[tokio::test]
async fn five_level_tree_when_listings_start_from_the_records_index() {
    five_level_tree(0).await;
}

/// Insert group `id` under `parent` without hierarchy labels, as groups were stored
/// before migration 0015 (raw SQL: the API labels every group it makes).
async fn unlabelled_group(s: &TestServer, t: &TestTenant, id: &str, name: &str, parent: Option<&String>) {
    let now = "2026-11-24T00:00:00.000Z";
    match parent {
        Some(parent) => {
            s.sql(
                "INSERT INTO groups (tenant_id, id, name, parent_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                &[&t.id, id, name, parent, now],
            )
            .await
        }
        None => {
            s.sql(
                "INSERT INTO groups (tenant_id, id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                &[&t.id, id, name, now],
            )
            .await
        }
    }
}

/// Make `user` a member of `group`.
async fn join(t: &TestTenant, group: &str, user: &TestUser) {
    t.post(
        &format!("/api/v1/groups/{group}/members"),
        json!({ "user_id": user.id }),
    )
    .await
    .expect(201);
}

/// Share account `id` with `group` at `access`.
async fn share(t: &TestTenant, id: &str, group: &str, access: &str) {
    t.post(
        &format!("{ACCOUNTS}/{id}/shares"),
        json!({ "group_id": group, "access": access }),
    )
    .await
    .expect(201);
}

/// Create an account named `name` as `c`; its id.
async fn account(c: &Client, name: &str) -> String {
    let created = c
        .post(ACCOUNTS, json!({ "fields": { "name": name } }))
        .await
        .expect(201)
        .json();
    created["id"].as_str().unwrap().to_string()
}

/// The ids of a listing page's records.
fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The account ids `c` sees, in one listing.
async fn visible(c: &Client) -> BTreeSet<String> {
    let page = c.get(&format!("{ACCOUNTS}?limit=500")).await.expect(200).json();
    ids(&page).into_iter().collect()
}

/// The account ids `c` sees, following the cursor through pages of three.
async fn paged(c: &Client, everything: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut path = format!("{ACCOUNTS}?limit=3");
    loop {
        let page = c.get(&path).await.expect(200).json();
        out.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{ACCOUNTS}?limit=3&cursor={cursor}"),
            None => return out,
        }
        assert!(out.len() <= everything, "paging does not end");
    }
}

/// The names (but "Own") of the accounts `c` sees, sorted by name descending and
/// fetched two to a page.
async fn sorted_names(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .get(&format!("{ACCOUNTS}?filter[name][ne]=Own&sort=-name&limit=2{cursor}"))
            .await
            .expect(200)
            .json();
        for rec in page["data"].as_array().unwrap() {
            out.push(rec["fields"]["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

/// How many accounts `c` counts through the aggregate endpoint.
async fn count(c: &Client) -> usize {
    let r = c
        .post(
            &format!("{ACCOUNTS}/aggregate"),
            json!({ "measures": [{"fn": "count"}] }),
        )
        .await
        .expect(200)
        .json();
    r["rows"][0]["count"].as_u64().unwrap() as usize
}

async fn five_level_tree(threshold: i64) {
    let s = TestServer::start_with(|db| db.with_visibility_threshold(threshold)).await;
    if s.db().dialect() == plinth_core::store::Dialect::Postgres {
        // Every pooled session raises the JIT threshold (store::postgres_settings):
        // small visibility joins are overestimated and would otherwise be compiled.
        // (A session setting: only SQL can see it.)
        let jit: String = sqlx::query_scalar("SELECT current_setting('jit_above_cost')")
            .fetch_one(s.db().reader())
            .await
            .expect("setting");
        assert_eq!(jit, "1e+06");
    }
    let t = s.tenant("Acme").await;

    // Groups L0 > L1 > L2 > L3 > L4, plus a sibling S1 under L0, written without
    // hierarchy labels: the start-up pass labels them from the parent links.
    let mut groups: Vec<String> = Vec::new();
    for level in 0..LEVELS {
        let id = format!("G{level:0>25}");
        unlabelled_group(&s, &t, &id, &format!("Level {level}"), groups.last()).await;
        groups.push(id);
    }
    let sibling = format!("S{:0>25}", 1);
    unlabelled_group(&s, &t, &sibling, "Sibling", Some(&groups[0])).await;
    plinth_core::store::groups::label_unlabelled(s.db().writer())
        .await
        .expect("labels");
    let mut conn = s.db().reader().acquire().await.expect("connection");
    plinth_core::store::groups::verify_labels(&mut conn, &t.id)
        .await
        .expect("well-formed labels");
    let below = plinth_core::store::groups::subtree_size(&mut conn, &t.id, &groups[0])
        .await
        .expect("subtree");
    assert_eq!(
        below,
        LEVELS as i64 + 1,
        "L0's subtree: the five levels and the sibling"
    );
    drop(conn);

    // One member per level, one in the sibling group, one in no group.
    let mut members: Vec<TestUser> = Vec::new();
    for (level, g) in groups.iter().enumerate() {
        let u = s.user(&t, &format!("Level{level}"), "member").await;
        join(&t, g, &u).await;
        members.push(u);
    }
    let side = s.user(&t, "Side", "member").await;
    join(&t, &sibling, &side).await;
    let loner = s.user(&t, "Loner", "manager").await;
    let admin = s.user(&t, "Admin", "admin").await;

    // Two accounts shared at each level, one shared with the sibling, one unshared,
    // and one owned by the level-4 member.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut shared_at: Vec<Vec<String>> = vec![Vec::new(); LEVELS];
    for (level, g) in groups.iter().enumerate() {
        for n in 0..2 {
            let name = format!("L{level}-{n}");
            let id = account(&t, &name).await;
            share(&t, &id, g, "read").await;
            shared_at[level].push(id.clone());
            names.insert(id, name);
        }
    }
    let sibling_record = account(&t, "Sibling").await;
    share(&t, &sibling_record, &sibling, "read").await;
    let unshared = account(&t, "Private").await;
    let own4 = account(&members[4], "Own").await;
    names.insert(sibling_record.clone(), "Sibling".into());
    names.insert(unshared.clone(), "Private".into());
    names.insert(own4.clone(), "Own".into());
    let everything: BTreeSet<String> = names.keys().cloned().collect();

    for (level, member) in members.iter().enumerate() {
        // Shares at this level and every level below it (ancestors see their subtree).
        let mut expected: BTreeSet<String> = shared_at[level..].iter().flatten().cloned().collect();
        if level == 0 {
            expected.insert(sibling_record.clone());
        }
        if level == 4 {
            expected.insert(own4.clone());
        }
        assert_eq!(visible(member).await, expected, "level {level} list");
        // Filtered and sorted by a field, two to a page (on PostgreSQL, from the shares
        // this looks each record up by key): the same records, in name order.
        let mut want: Vec<String> = expected
            .iter()
            .map(|id| names[id].clone())
            .filter(|n| n != "Own")
            .collect();
        want.sort_by(|a, b| b.cmp(a));
        assert_eq!(sorted_names(member).await, want, "level {level} sorted list");
        assert_eq!(count(member).await, expected.len(), "level {level} aggregate");
        for id in &everything {
            let status = if expected.contains(id) { 200 } else { 404 };
            member.get(&format!("{ACCOUNTS}/{id}")).await.expect(status);
        }
        // Read shares do not allow writes: visible but not writable → 403.
        let target = &shared_at[level][0];
        member
            .patch(&format!("{ACCOUNTS}/{target}"), json!({ "fields": { "city": "X" } }))
            .await
            .expect(403);
    }
    // Paging in small pages gives the same records, each once, in id order.
    for (level, member) in members.iter().enumerate() {
        let in_order: Vec<String> = visible(member).await.into_iter().collect();
        assert_eq!(paged(member, everything.len()).await, in_order, "level {level} pages");
    }
    assert_eq!(visible(&side).await, BTreeSet::from([sibling_record.clone()]));
    assert!(visible(&loner).await.is_empty());
    assert_eq!(visible(&admin).await, everything);
    assert_eq!(count(&admin).await, everything.len());

    // A read-write share (replacing the read one) lets the level-3 member (and
    // ancestors) edit.
    let target = &shared_at[3][0];
    t.delete(&format!("{ACCOUNTS}/{target}/shares/{}", groups[3]))
        .await
        .expect(204);
    share(&t, target, &groups[3], "read-write").await;
    for (level, member) in members.iter().enumerate() {
        let status = if level <= 3 { 200 } else { 404 };
        member
            .patch(
                &format!("{ACCOUNTS}/{target}"),
                json!({ "fields": { "city": format!("C{level}") } }),
            )
            .await
            .expect(status);
    }
    s.stop().await;
}
