//! Records benchmarks (issue 3), printed as a table:
//!
//! 1. Listing with visibility: 100k accounts shared across a 5-level group tree
//!    (1 → 5 → 25 → 125 → 625 groups); members at each level list the first page
//!    (and a filtered, sorted page). p50/p95 over repeated runs, through the same
//!    service the REST API calls.
//! 2. Aggregate over 1M opportunities (group by stage and owner; sum amount + count)
//!    through the records service, against the same GROUP BY run directly on the
//!    same database file in the same run.
//!
//! Run: `cargo bench -p plinth-host --bench records` (add `-- --quick` for 10k/100k rows).
//! PostgreSQL: `PLINTH_BENCH_DATABASE_URL=postgres://…/empty_db` (SQLite in a temp dir
//! otherwise).

use std::time::{Duration, Instant};

use plinth_core::manifest::Role;
use plinth_core::records::query::{self, AggregateRequest, ListQuery, Measure};
use plinth_core::records::{self, Who};
use plinth_core::store::Db;
use plinth_core::store::audit::Actor;

const NOW: &str = "2026-11-24T00:00:00.000Z";

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn exec(db: &Db, sql: &str) {
    sqlx::query(sql)
        .execute(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Insert rows with multi-row VALUES statements in large transactions (setup only).
async fn bulk_insert(db: &Db, table_cols: &str, rows: impl Iterator<Item = String>) {
    let mut tx = db.writer().begin().await.unwrap();
    let mut batch = Vec::with_capacity(500);
    for row in rows {
        batch.push(row);
        if batch.len() == 500 {
            sqlx::query(&format!("INSERT INTO {table_cols} VALUES {}", batch.join(",")))
                .execute(&mut *tx)
                .await
                .unwrap();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        sqlx::query(&format!("INSERT INTO {table_cols} VALUES {}", batch.join(",")))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

fn id(prefix: char, n: usize) -> String {
    format!("{prefix}{n:025}")
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n_accounts, n_opps) = if quick { (10_000, 100_000) } else { (100_000, 1_000_000) };
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var("PLINTH_BENCH_DATABASE_URL") {
        Ok(url) => Db::connect(&url).await.unwrap(),
        Err(_) => Db::open_sqlite(&dir.path().join("bench.db")).await.unwrap(),
    };
    let t = plinth_core::tenancy::create_tenant(&db, "Bench", "o@b.test", "Owner", "2026-11-01", &Actor::system())
        .await
        .unwrap();
    let tenant = t.tenant.id.clone();

    // Group tree: level sizes 1, 5, 25, 125, 625; each group has one member user.
    let mut levels: Vec<Vec<String>> = Vec::new();
    let mut n = 0;
    let mut groups = Vec::new();
    for level in 0..5 {
        let count = 5usize.pow(level);
        let mut ids = Vec::new();
        for i in 0..count {
            let g = id('G', n);
            n += 1;
            let parent = if level == 0 {
                None
            } else {
                Some(levels[level as usize - 1][i / 5].clone())
            };
            groups.push(format!(
                "('{tenant}', '{g}', 'g{n}', {}, 1, '{NOW}', '{NOW}')",
                parent.map_or("NULL".to_string(), |p| format!("'{p}'"))
            ));
            ids.push(g);
        }
        levels.push(ids);
    }
    bulk_insert(
        &db,
        "groups (tenant_id, id, name, parent_id, version, created_at, updated_at)",
        groups.into_iter(),
    )
    .await;
    // Labels for the hierarchy, as the server gives groups written without them.
    plinth_core::store::groups::label_unlabelled(db.writer()).await.unwrap();
    let all_groups: Vec<String> = levels.iter().flatten().cloned().collect();
    bulk_insert(
        &db,
        "users (tenant_id, id, email, name, role, status, version, created_at, updated_at)",
        all_groups.iter().enumerate().map(|(i, _)| {
            format!(
                "('{tenant}', '{}', 'u{i}@b.test', 'U{i}', 'member', 'active', 1, '{NOW}', '{NOW}')",
                id('U', i)
            )
        }),
    )
    .await;
    bulk_insert(
        &db,
        "group_members (tenant_id, group_id, user_id, role, added_at)",
        all_groups
            .iter()
            .enumerate()
            .map(|(i, g)| format!("('{tenant}', '{g}', '{}', 'member', '{NOW}')", id('U', i))),
    )
    .await;

    // Accounts, each owned by the tenant owner and shared with one leaf group.
    let leaves = &levels[4];
    let countries = ["DE", "AT", "CH", "FR", "GB", "US", "NL", "SE"];
    bulk_insert(
        &db,
        "records (tenant_id, id, object, owner_id, data, version, created_at, updated_at)",
        (0..n_accounts).map(|i| {
            format!(
                "('{tenant}', '{}', 'account', '{}', '{{\"name\":\"Account {i:06}\",\"country\":\"{}\"}}', 1, '{NOW}', '{NOW}')",
                id('A', i),
                t.owner.id,
                countries[i % countries.len()]
            )
        }),
    )
    .await;
    bulk_insert(
        &db,
        "record_shares (tenant_id, record_id, group_id, access, created_at, object)",
        (0..n_accounts).map(|i| {
            format!(
                "('{tenant}', '{}', '{}', 'read', '{NOW}', 'account')",
                id('A', i),
                leaves[i % leaves.len()]
            )
        }),
    )
    .await;
    exec(&db, "ANALYZE").await;

    println!("## Record list with visibility ({n_accounts} accounts, 5-level tree of 781 groups)\n");
    println!("| member at level | visible records | query | p50 | p95 |");
    println!("|---|---|---|---|---|");
    let schema = records::schema(&db, &tenant, "account").await.unwrap();
    for level in [0usize, 1, 2, 3, 4] {
        let group_index = all_groups.iter().position(|g| *g == levels[level][0]).unwrap();
        let who = Who {
            tenant: tenant.clone(),
            user_id: id('U', group_index),
            role: Role::Member,
            actor: Actor::system(),
            override_lock: false,
        };
        let visible = n_accounts / 5usize.pow(level as u32);
        // The member's group has every group below it in its interval, no more.
        let mut conn = db.reader().acquire().await.unwrap();
        let below = plinth_core::store::groups::subtree_size(&mut conn, &tenant, &levels[level][0])
            .await
            .unwrap();
        drop(conn);
        assert_eq!(
            below as usize,
            (0..5 - level as u32).map(|k| 5usize.pow(k)).sum::<usize>()
        );
        for (label, q) in [
            (
                "first page (50)",
                ListQuery {
                    limit: 50,
                    ..ListQuery::default()
                },
            ),
            (
                "country=DE, sort name desc (50)",
                ListQuery {
                    limit: 50,
                    filters: query::resolve_filters(
                        &schema,
                        &[query::Filter {
                            field: "country".into(),
                            op: query::Op::Eq,
                            value: "DE".into(),
                        }],
                        "f",
                    )
                    .unwrap(),
                    sort: query::parse_sort(&schema, "-name").unwrap(),
                    ..ListQuery::default()
                },
            ),
        ] {
            let mut times = Vec::new();
            for _ in 0..60 {
                let start = Instant::now();
                let (page, _) = records::list(&db, &who, "account", &q).await.unwrap();
                times.push(start.elapsed());
                assert!(!page.is_empty());
            }
            println!(
                "| {level} | {visible} | {label} | {:.2?} | {:.2?} |",
                pct(times.clone(), 0.5),
                pct(times, 0.95)
            );
        }
    }

    // Opportunities for the aggregate benchmark.
    let stages = records::schema::OPPORTUNITY_STAGES;
    bulk_insert(
        &db,
        "records (tenant_id, id, object, owner_id, data, version, created_at, updated_at)",
        (0..n_opps).map(|i| {
            format!(
                "('{tenant}', '{}', 'opportunity', '{}', '{{\"name\":\"Opp {i}\",\"stage\":\"{}\",\"close_date\":\"2027-{:02}-01\",\"amount\":{{\"value\":{},\"currency\":\"EUR\"}}}}', 1, '{NOW}', '{NOW}')",
                id('O', i),
                id('U', i % 50),
                stages[i % stages.len()],
                i % 12 + 1,
                (i % 997) * 100
            )
        }),
    )
    .await;
    exec(&db, "ANALYZE").await;

    let admin = Who {
        tenant: tenant.clone(),
        user_id: t.owner.id.clone(),
        role: Role::Owner,
        actor: Actor::system(),
        override_lock: false,
    };
    let opp_schema = records::schema(&db, &tenant, "opportunity").await.unwrap();
    let req = AggregateRequest {
        group_by: vec!["stage".into(), "owner_id".into()],
        measures: vec![
            Measure {
                func: query::Func::Sum,
                field: Some("amount".into()),
                alias: None,
                filters: vec![],
            },
            Measure {
                func: query::Func::Count,
                field: None,
                alias: None,
                filters: vec![],
            },
        ],
        filters: vec![],
    };
    let q = query::resolve_aggregate(&opp_schema, &req).unwrap();
    let direct = match db.dialect() {
        plinth_core::store::Dialect::Sqlite => {
            "SELECT json_extract(data, '$.stage') AS k0, owner_id AS k1, \
             SUM(json_extract(data, '$.amount.value')) AS m0, COUNT(*) AS m1 \
             FROM records WHERE tenant_id = $1 AND object = 'opportunity' AND deleted_at IS NULL \
             GROUP BY k0, k1 ORDER BY k0, k1"
        }
        plinth_core::store::Dialect::Postgres => {
            "SELECT data #>> '{stage}' AS k0, owner_id AS k1, \
             SUM((data #>> '{amount,value}')::float8) AS m0, COUNT(*) AS m1 \
             FROM records WHERE tenant_id = $1 AND object = 'opportunity' AND deleted_at IS NULL \
             GROUP BY k0, k1 ORDER BY k0, k1"
        }
    };
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let (rows, _) = records::aggregate(&db, &admin, "opportunity", &q).await.unwrap();
        ours.push(start.elapsed());
        let start = Instant::now();
        let direct_rows = sqlx::query(direct).bind(&tenant).fetch_all(db.reader()).await.unwrap();
        raw.push(start.elapsed());
        assert_eq!(rows.len(), direct_rows.len());
    }
    let (o, r) = (pct(ours, 0.5), pct(raw, 0.5));
    println!("\n## Aggregate over {n_opps} opportunities (group by stage, owner; sum amount, count)\n");
    println!("| path | median of 5 |");
    println!("|---|---|");
    println!("| records::aggregate (service: resolve, SQL, decode) | {o:.2?} |");
    println!("| the same GROUP BY, directly on the same database | {r:.2?} |");
    println!("| ratio | {:.2}× (goal ≤ 1.5×) |", o.as_secs_f64() / r.as_secs_f64());
}
