//! Territory roll-ups and moves at scale (issue 6): ~100k territories (host groups,
//! as the territories plugin creates them through `sharing`), accounts with two
//! opportunities each shared with random leaf territories, then
//!
//! - the subtree roll-up of a 10,111-territory region: the two aggregates the plugin
//!   runs (`shared_within` = the region: account count; one pass over opportunities
//!   by probability with per-measure filters for open, won and lost in the period),
//!   through `Db::aggregate_records`, the function `records.aggregate-where` calls;
//! - the same roll-up read from the totals the host keeps for the plugin's
//!   `[[rollups]]` (`records::rollup::query`, what `records.rollup` calls), after
//!   building them from the data; what keeping them costs an opportunity update;
//! - moving that region (with its shares: access follows the group, nothing is
//!   re-shared; its roll-up totals leave and join the ancestors that change, as one
//!   delta they reference) through `tenancy::groups::update_group`, what
//!   `sharing.move-group` calls — beside a sibling, and under a 200-deep chain — and
//!   folding the deltas those moves leave (`store::rollups::fold_pending`, what the
//!   server runs in the background).
//!
//! Run: `cargo bench -p plinth-host --bench territories` (SQLite in a temp dir);
//! PostgreSQL: `PLINTH_BENCH_DATABASE_URL=postgres://…/empty_db`.
//! Sizes: `PLINTH_BENCH_REGIONS` (default 10 → 101,111 territories),
//! `PLINTH_BENCH_ACCOUNTS` (default 200,000; opportunities = 2 × accounts),
//! `PLINTH_BENCH_CHAIN` (default 200: the depth of the chain for the deep move; 0 skips it).
//! `PLINTH_BENCH_KEEP=DIR` writes the SQLite database to `DIR/bench.db` and leaves it
//! there, for looking at query plans afterwards (`sqlite3 DIR/bench.db`).

use std::time::{Duration, Instant};

use plinth_core::manifest::Role;
use plinth_core::records::Who;
use plinth_core::records::query::{self, AggregateRequest, Filter, Func, Measure, Op};
use plinth_core::records::rollup::{self, RollupQuery};
use plinth_core::records::schema::standard_objects;
use plinth_core::store::audit::Actor;
use plinth_core::store::records::{Access, Record, RecordRef, SPARSE_SHARES, Viewer};
use plinth_core::store::{Db, groups};
use plinth_core::tenancy::groups::{GroupOwner, GroupPatch};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The `p` quantile (nearest rank) of `v`.
fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn median(v: Vec<Duration>) -> Duration {
    pct(v, 0.5)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Deterministic pseudo-random numbers (no dependency, same data every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

fn measure(func: Func, field: Option<&str>) -> Measure {
    Measure {
        func,
        field: field.map(str::to_string),
        alias: None,
        filters: vec![],
    }
}

fn filter(field: &str, op: Op, value: serde_json::Value) -> Filter {
    Filter {
        field: field.into(),
        op,
        value,
    }
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keep = std::env::var_os("PLINTH_BENCH_KEEP").map(std::path::PathBuf::from);
    let db = match std::env::var("PLINTH_BENCH_DATABASE_URL") {
        Ok(url) => Db::connect(&url).await?,
        Err(_) => {
            let dir = keep.as_deref().unwrap_or(dir.path());
            std::fs::create_dir_all(dir)?;
            Db::open_sqlite(&dir.join("bench.db")).await?
        }
    };
    let regions = env("PLINTH_BENCH_REGIONS", 10).max(2);
    let accounts = env("PLINTH_BENCH_ACCOUNTS", 200_000);
    let created = plinth_core::tenancy::create_tenant(
        &db,
        "bench",
        "owner@bench.test",
        "Owner",
        "2026-11-01",
        &Actor::system(),
    )
    .await?;
    let tenant = created.tenant.id;
    let owner = created.owner.id;

    // Territories: root → regions → 10 countries → 10 districts → 10 areas → 9 leaves.
    let started = Instant::now();
    let mut tx = db.writer().begin().await?;
    let root = groups::create_group(&mut tx, &tenant, "Global", None, None).await?.id;
    let mut region_ids = Vec::new();
    let mut leaves: Vec<(usize, String)> = Vec::new();
    for r in 0..regions {
        let region = groups::create_group(&mut tx, &tenant, &format!("R{r}"), Some(&root), None)
            .await?
            .id;
        for c in 0..10 {
            let cid = groups::create_group(&mut tx, &tenant, &format!("C{c}"), Some(&region), None)
                .await?
                .id;
            for d in 0..10 {
                let did = groups::create_group(&mut tx, &tenant, &format!("D{d}"), Some(&cid), None)
                    .await?
                    .id;
                for a in 0..10 {
                    let aid = groups::create_group(&mut tx, &tenant, &format!("A{a}"), Some(&did), None)
                        .await?
                        .id;
                    for l in 0..9 {
                        let lid = groups::create_group(&mut tx, &tenant, &format!("L{l}"), Some(&aid), None)
                            .await?
                            .id;
                        leaves.push((r, lid));
                    }
                }
            }
        }
        region_ids.push(region);
        tx.commit().await?;
        tx = db.writer().begin().await?;
    }
    tx.commit().await?;
    let built_tree = started.elapsed();

    // Accounts and opportunities, each shared with one random leaf (as an assignment does).
    let started = Instant::now();
    let mut rng = Lcg(42);
    let stages = [
        "prospecting",
        "qualification",
        "proposal",
        "negotiation",
        "closed_won",
        "closed_lost",
    ];
    let now = plinth_core::store::time::now();
    let mut expected_region0 = 0usize;
    let mut tx = db.writer().begin().await?;
    for i in 0..accounts {
        let (region, leaf) = &leaves[rng.next(leaves.len())];
        if *region == 0 {
            expected_region0 += 1;
        }
        let mut ids = Vec::new();
        let acc_id = ulid::Ulid::new().to_string();
        let rec = |id: &str, object: &str, data: serde_json::Value| Record {
            tenant_id: tenant.clone(),
            id: id.to_string(),
            object: object.into(),
            owner_id: owner.clone(),
            data,
            version: 1,
            created_at: now.clone(),
            updated_at: now.clone(),
            created_by: Some(owner.clone()),
            updated_by: Some(owner.clone()),
            deleted_at: None,
        };
        db.insert_record(
            &mut tx,
            &rec(&acc_id, "account", json!({"name": format!("acc{i}"), "country": "DE"})),
        )
        .await?;
        ids.push(acc_id.clone());
        for _ in 0..2 {
            let id = ulid::Ulid::new().to_string();
            let data = json!({
                "name": "opp", "account_id": acc_id, "stage": stages[rng.next(stages.len())],
                "amount": {"value": (rng.next(100_000) + 1) as f64, "currency": "EUR"},
                "probability": (rng.next(10) * 10) as f64,
                "close_date": format!("2026-{:02}-15", rng.next(12) + 1),
            });
            db.insert_record(&mut tx, &rec(&id, "opportunity", data)).await?;
            ids.push(id);
        }
        for (n, id) in ids.into_iter().enumerate() {
            let object = if n == 0 { "account" } else { "opportunity" };
            sqlx::query(
                "INSERT INTO record_shares (tenant_id, record_id, group_id, access, created_by, created_at, object) \
                 VALUES ($1, $2, $3, 'read', NULL, $4, $5)",
            )
            .bind(&tenant)
            .bind(&id)
            .bind(leaf)
            .bind(&now)
            .bind(object)
            .execute(&mut *tx)
            .await?;
        }
        if i % 10_000 == 9_999 {
            tx.commit().await?;
            tx = db.writer().begin().await?;
        }
    }
    tx.commit().await?;
    let built_records = started.elapsed();
    if db.dialect() == plinth_core::store::Dialect::Postgres {
        sqlx::query("ANALYZE").execute(db.writer()).await?;
    }
    let mut conn = db.reader().acquire().await?;
    let region = region_ids[0].clone();
    let subtree = groups::subtree_size(&mut conn, &tenant, &region).await?;
    drop(conn);
    println!(
        "database: {:?}; {} territories in {:.1} s; {accounts} accounts + {} opportunities shared in {:.1} s",
        db.dialect(),
        1 + regions * 10_111,
        built_tree.as_secs_f64(),
        2 * accounts,
        built_records.as_secs_f64()
    );
    println!("roll-up territory: a region with {subtree} territories in its subtree, {expected_region0} accounts");
    println!();

    // The plugin's three roll-up aggregates.
    let objects = standard_objects();
    let schema = |name: &str| {
        objects
            .iter()
            .find(|o| o.name == name)
            .expect("standard object")
            .clone()
    };
    let (acc_schema, opp_schema) = (schema("account"), schema("opportunity"));
    let within = filter(query::SHARED_WITHIN, Op::Eq, json!(region));
    let within_json = json!({"field": query::SHARED_WITHIN, "op": "eq", "value": region});
    let q_accounts = query::resolve_aggregate(
        &acc_schema,
        &AggregateRequest {
            group_by: vec![],
            measures: vec![measure(Func::Count, None)],
            filters: vec![within.clone()],
        },
    )
    .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    // One pass over the opportunities, as the plugin's `opportunity_query`: open ones
    // by count and amount, those closed won or lost in the period, by probability.
    let closed_in = |stage: &str| {
        json!([
            {"field": "stage", "op": "eq", "value": stage},
            {"field": "close_date", "op": "gte", "value": "2026-10-01"},
            {"field": "close_date", "op": "lt", "value": "2027-01-01"},
        ])
    };
    let open =
        json!([{"field": "stage", "op": "in", "value": ["prospecting", "qualification", "proposal", "negotiation"]}]);
    let opps_request: AggregateRequest = serde_json::from_value(json!({
        "group_by": ["probability"],
        "measures": [
            {"fn": "count", "as": "open_count", "where": open},
            {"fn": "sum", "field": "amount", "as": "open_amount", "where": open},
            {"fn": "count", "as": "won_count", "where": closed_in("closed_won")},
            {"fn": "sum", "field": "amount", "as": "won_amount", "where": closed_in("closed_won")},
            {"fn": "count", "as": "lost_count", "where": closed_in("closed_lost")},
        ],
        "filters": [within_json],
    }))?;
    let q_opps = query::resolve_aggregate(&opp_schema, &opps_request).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let admin = Viewer {
        user_id: owner.clone(),
        all: true,
    };
    let mut times = Vec::new();
    let mut count = serde_json::Value::Null;
    for _ in 0..11 {
        let t = Instant::now();
        let (rows, _) = db
            .aggregate_records(&tenant, "account", &admin, &q_accounts, 10_000)
            .await?;
        let (opps, _) = db
            .aggregate_records(&tenant, "opportunity", &admin, &q_opps, 10_000)
            .await?;
        times.push(t.elapsed());
        count = rows[0]["count"].clone();
        let counted: f64 = opps
            .iter()
            .map(|r| {
                ["open_count", "won_count", "lost_count"]
                    .iter()
                    .map(|k| r[*k].as_f64().unwrap_or(0.0))
                    .sum::<f64>()
            })
            .sum();
        assert!(counted > 0.0, "roll-up measures the region's opportunities");
    }
    assert_eq!(
        count.as_f64(),
        Some(expected_region0 as f64),
        "roll-up counts the region's accounts"
    );
    println!("| operation | median ms | runs |");
    println!("|---|---:|---:|");
    println!(
        "| roll-up of a {subtree}-territory subtree ({expected_region0} accounts, {} opportunities): 2 aggregates (accounts; opportunities with per-measure filters) | {} | 11 |",
        2 * expected_region0,
        ms(median(times))
    );

    // Move the region (10,111 territories, its shares riding along) and back.
    let mv = |to: String| {
        let (db, tenant, region) = (db.clone(), tenant.clone(), region.clone());
        async move {
            let t = Instant::now();
            plinth_core::tenancy::groups::update_group(
                &db,
                &tenant,
                &Actor::system(),
                GroupOwner::Rest,
                &region,
                None,
                GroupPatch {
                    name: None,
                    parent_id: Some(Some(to)),
                },
            )
            .await?;
            anyhow::Ok(t.elapsed())
        }
    };
    let mut bare = Vec::new();
    for _ in 0..3 {
        bare.push(mv(region_ids[1].clone()).await?);
        bare.push(mv(root.clone()).await?);
    }
    println!(
        "| move that subtree root → under a sibling region and back, no roll-ups kept yet | {} | 6 |",
        ms(median(bare))
    );

    // The same roll-up from the totals the host keeps (the plugin's `[[rollups]]`),
    // built once from the data above, then read as the plugin reads them.
    let manifest = plinth_core::manifest::Manifest::parse(include_str!("../../../plugins/territories/plugin.toml"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut tx = db.writer().begin().await?;
    let mut rows_written = 0;
    for (i, spec) in manifest.rollups.iter().enumerate() {
        let def = plinth_core::records::rollup::resolve(&db, &tenant, i, spec)
            .await
            .map_err(|p| anyhow::anyhow!("{p:?}"))?;
        let (_, rows) =
            plinth_core::store::rollups::create_rollup(&mut tx, &tenant, "territories", &spec.name, &spec.object, &def)
                .await?;
        rows_written += rows;
    }
    tx.commit().await?;
    let built = started.elapsed();
    let owner_who = Who {
        tenant: tenant.clone(),
        user_id: owner.clone(),
        role: Role::Owner,
        actor: Actor::system(),
        override_lock: false,
    };
    let kept_rollup_of = |region: String| {
        let (db, who) = (db.clone(), owner_who.clone());
        async move {
            let read = |name: &'static str, q: RollupQuery| {
                let (db, who, region) = (db.clone(), who.clone(), region.clone());
                async move {
                    let r = rollup::query(&db, &who, "territories", name, &region, &q).await?;
                    assert!(r.kept, "an owner is answered from the kept totals");
                    anyhow::Ok(r.rows)
                }
            };
            let accounts = read("accounts", RollupQuery::default()).await?;
            let open = read(
                "pipeline",
                RollupQuery {
                    group_by: vec!["probability".into()],
                    filters: vec![filter(
                        "stage",
                        Op::In,
                        json!(["prospecting", "qualification", "proposal", "negotiation"]),
                    )],
                },
            )
            .await?;
            let closed = read(
                "pipeline",
                RollupQuery {
                    group_by: vec!["stage".into()],
                    filters: vec![
                        filter("stage", Op::In, json!(["closed_won", "closed_lost"])),
                        filter("close_date:month", Op::Gte, json!("2026-10")),
                        filter("close_date:month", Op::Lt, json!("2027-01")),
                    ],
                },
            )
            .await?;
            anyhow::Ok((accounts, open, closed))
        }
    };
    let kept_rollup = || kept_rollup_of(region.clone());
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..31 {
        let t = Instant::now();
        let out = kept_rollup().await?;
        times.push(t.elapsed());
        last = Some(out);
    }
    let (accounts_kept, open_kept, closed_kept) = last.expect("ran");
    assert_eq!(
        accounts_kept[0]["count"].as_f64(),
        count.as_f64(),
        "kept totals count what the live aggregate counts"
    );
    let open_live: f64 = open_kept.iter().map(|r| r["count"].as_f64().unwrap_or(0.0)).sum();
    let closed_live: f64 = closed_kept.iter().map(|r| r["count"].as_f64().unwrap_or(0.0)).sum();
    assert!(
        open_live + closed_live > 0.0,
        "kept totals measure the region's opportunities"
    );
    println!(
        "| same roll-up from the kept totals (`records.rollup`: accounts; open by probability; closed in the quarter by stage) | {} | 31 |",
        ms(median(times))
    );
    println!(
        "| building both roll-ups from the data above ({rows_written} total rows) | {} | 1 |",
        ms(built)
    );

    // What keeping the totals costs a write: an opportunity's stage changed through
    // the records service (validation, audit, events, roll-ups in one transaction).
    let region_opps: Vec<String> = sqlx::query_scalar(
        "SELECT s.record_id FROM groups a CROSS JOIN groups d CROSS JOIN record_shares s \
         WHERE a.tenant_id = $1 AND a.id = $2 AND d.tenant_id = $1 AND d.lft >= a.lft AND d.lft <= a.rgt \
         AND s.tenant_id = $1 AND s.group_id = d.id \
         AND s.object = 'opportunity' ORDER BY s.record_id LIMIT 200",
    )
    .bind(&tenant)
    .bind(&region)
    .fetch_all(db.reader())
    .await?;
    let mut writes = Vec::new();
    for (i, id) in region_opps.iter().enumerate() {
        let stage = ["proposal", "negotiation"][i % 2];
        let t = Instant::now();
        plinth_core::records::update(
            &db,
            &owner_who,
            "opportunity",
            vec![plinth_core::records::Change {
                id: id.clone(),
                fields: json!({ "stage": stage }),
                expected_version: None,
                owner_id: None,
            }],
            false,
        )
        .await?;
        writes.push(t.elapsed());
    }
    println!(
        "| opportunity stage update in that region through the records service, roll-ups kept (p50 / p95) | {} / {} | {} |",
        ms(pct(writes.clone(), 0.5)),
        ms(pct(writes.clone(), 0.95)),
        writes.len()
    );
    let (_, open_after, _) = kept_rollup().await?;
    let (live_after, _) = db
        .aggregate_records(&tenant, "opportunity", &admin, &q_opps, 10_000)
        .await?;
    let kept_open: f64 = open_after.iter().map(|r| r["count"].as_f64().unwrap_or(0.0)).sum();
    let live_open: f64 = live_after.iter().map(|r| r["open_count"].as_f64().unwrap_or(0.0)).sum();
    assert_eq!(
        kept_open, live_open,
        "after the updates, kept and live open counts agree"
    );

    let mut sideways = Vec::new();
    for _ in 0..3 {
        sideways.push(mv(region_ids[1].clone()).await?);
        sideways.push(mv(root.clone()).await?);
    }
    println!(
        "| move that subtree root → under a sibling region and back (depth +1/−1, no re-sharing needed), its roll-up totals moving with it | {} | 6 |",
        ms(median(sideways))
    );
    // Deep: under the end of a chain of `PLINTH_BENCH_CHAIN` groups (default 200)
    // hanging below another region, and back. The groups move for the cost of the
    // subtree's own rows at any depth; the kept totals are written once, as a delta
    // that every ancestor gained or lost references.
    let chain_len: usize = std::env::var("PLINTH_BENCH_CHAIN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut chain_end = None;
    if chain_len > 0 {
        let mut tx = db.writer().begin().await?;
        let mut end = region_ids[1].clone();
        for i in 0..chain_len {
            end = groups::create_group(&mut tx, &tenant, &format!("chain{i}"), Some(&end), None)
                .await?
                .id;
        }
        tx.commit().await?;
        let mut deep = Vec::new();
        for _ in 0..3 {
            deep.push(mv(end.clone()).await?);
            deep.push(mv(root.clone()).await?);
        }
        chain_end = Some(end);
        println!(
            "| move that subtree under a {chain_len}-deep chain and back ({chain_len} ancestors gained and lost), its roll-up totals moving with it | {} | 6 |",
            ms(median(deep))
        );
    }

    // The moves above left their totals as deltas that the changed ancestors reference
    // (the server folds them in the background). Reading the roll-up of the sibling
    // region, an ancestor every move changed, adds them up; then the fold, as the
    // server's folder runs it, and the same read without them.
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollup_pending WHERE tenant_id = $1")
        .bind(&tenant)
        .fetch_one(db.reader())
        .await?;
    let sibling_pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM rollup_pending WHERE tenant_id = $1 AND group_id = $2")
            .bind(&tenant)
            .bind(&region_ids[1])
            .fetch_one(db.reader())
            .await?;
    let read_sibling = || async {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..31 {
            let t = Instant::now();
            last = Some(kept_rollup_of(region_ids[1].clone()).await?);
            times.push(t.elapsed());
        }
        anyhow::Ok((median(times), last.expect("ran")))
    };
    let (with_deltas, before) = read_sibling().await?;
    let started = Instant::now();
    let folded = plinth_core::store::rollups::fold_pending(&db).await?;
    let fold_time = started.elapsed();
    let (without, after) = read_sibling().await?;
    assert_eq!(before, after, "folding the deltas changes no total");
    assert_eq!(folded.references as i64, pending, "every pending reference folded");
    println!(
        "| same roll-up of the sibling region (an ancestor all {} moves changed) with its {sibling_pending} deltas pending / after folding | {} / {} | 31 |",
        if chain_len > 0 { 12 } else { 6 },
        ms(with_deltas),
        ms(without)
    );
    println!(
        "| folding the deltas all those moves left ({} references, {} rows written: there and back cancels), in the background, off the moves' path | {} | 1 |",
        folded.references,
        folded.rows,
        ms(fold_time)
    );
    // A one-way move leaves deltas that do not cancel: folding writes the region's
    // totals into every ancestor it gained and out of every one it lost.
    if let Some(end) = chain_end {
        let one_way = mv(end).await?;
        let started = Instant::now();
        let there = plinth_core::store::rollups::fold_pending(&db).await?;
        let fold_there = started.elapsed();
        mv(root.clone()).await?;
        plinth_core::store::rollups::fold_pending(&db).await?;
        println!(
            "| one move under the {chain_len}-deep chain / folding its deltas afterwards ({} references, {} rows written) | {} / {} | 1 |",
            there.references,
            there.rows,
            ms(one_way),
            ms(fold_there)
        );
    }

    // Record visibility at this scale, as the records benchmark measures it (a member
    // of one group at each level; territory members see everything shared below them):
    // the first page of accounts through the REST handler's function, and one record
    // read, a single visibility check.
    println!();
    println!(
        "| member of | visible accounts | first page (50): p50 | p95 | same, plan not yet chosen: p50 | p95 | one record read: p50 | p95 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut chain = vec![("the root", root.clone()), ("a region", region.clone())];
    for level in ["a country", "a district", "an area", "a leaf"] {
        let parent = chain.last().map(|(_, g)| g.clone()).unwrap_or_default();
        let child: String =
            sqlx::query_scalar("SELECT id FROM groups WHERE tenant_id = $1 AND parent_id = $2 ORDER BY id LIMIT 1")
                .bind(&tenant)
                .bind(&parent)
                .fetch_one(db.reader())
                .await?;
        chain.push((level, child));
    }
    let account_schema = acc_schema.clone();
    let count_all = query::resolve_aggregate(
        &account_schema,
        &AggregateRequest {
            group_by: vec![],
            measures: vec![measure(Func::Count, None)],
            filters: vec![],
        },
    )
    .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    for (i, (level, group)) in chain.iter().enumerate() {
        let user = format!("01KBENCHUSER{i:014}");
        sqlx::query(
            "INSERT INTO users (tenant_id, id, email, name, role, status, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'member', 'active', 1, $5, $5)",
        )
        .bind(&tenant)
        .bind(&user)
        .bind(format!("member{i}@bench.test"))
        .bind(format!("Member {i}"))
        .bind(&now)
        .execute(db.writer())
        .await?;
        sqlx::query("INSERT INTO group_members (tenant_id, group_id, user_id, role, added_at) VALUES ($1, $2, $3, 'member', $4)")
            .bind(&tenant)
            .bind(group)
            .bind(&user)
            .bind(&now)
            .execute(db.writer())
            .await?;
        let viewer = Viewer {
            user_id: user.clone(),
            all: false,
        };
        let (rows, _) = db
            .aggregate_records(&tenant, "account", &viewer, &count_all, 10)
            .await?;
        let visible = rows[0]["count"].as_f64().unwrap_or(0.0) as u64;
        let page_query = plinth_core::records::query::ListQuery {
            limit: 50,
            ..Default::default()
        };
        let (mut pages, mut cold, mut reads) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..60 {
            // A handle with no remembered visibility plans pays for choosing one.
            let fresh = db.clone().with_visibility_threshold(SPARSE_SHARES);
            let t = Instant::now();
            fresh.list_records(&tenant, "account", &viewer, &page_query).await?;
            cold.push(t.elapsed());
            let t = Instant::now();
            let (page, _) = db.list_records(&tenant, "account", &viewer, &page_query).await?;
            pages.push(t.elapsed());
            let Some(first) = page.first() else { break };
            let t = Instant::now();
            let one = db
                .record_for(
                    None,
                    RecordRef {
                        tenant: &tenant,
                        object: "account",
                        id: &first.id,
                    },
                    &viewer,
                    Access::Read,
                    false,
                )
                .await?;
            reads.push(t.elapsed());
            assert!(one.is_some(), "a listed record is readable");
        }
        if pages.len() < 60 {
            println!("| {level} | {visible} | (nothing visible) | | | | | |");
            continue;
        }
        println!(
            "| {level} | {visible} | {} | {} | {} | {} | {} | {} |",
            ms(pct(pages.clone(), 0.5)),
            ms(pct(pages, 0.95)),
            ms(pct(cold.clone(), 0.5)),
            ms(pct(cold, 0.95)),
            ms(pct(reads.clone(), 0.5)),
            ms(pct(reads, 0.95)),
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
