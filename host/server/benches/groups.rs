//! Group hierarchy at territory scale (issue 6): ~100k groups, depth up to ~1,000,
//! and moves of a 10k-group subtree, including the label update, the audit event and
//! the commit — through the same service function the REST API and the `sharing`
//! capability use. Prints tables (see docs/benchmarks/groups.md).
//!
//! Run (SQLite in a temp dir):
//!   `cargo bench -p plinth-host --bench groups`
//! PostgreSQL: set `PLINTH_BENCH_DATABASE_URL=postgres://…/db` (an empty database).
//! Smaller/larger trees: `PLINTH_BENCH_REGIONS` (default 10; ×10,111 groups each).

use std::time::{Duration, Instant};

use plinth_core::store::audit::Actor;
use plinth_core::store::{Db, groups};
use plinth_core::tenancy::groups::{GroupOwner, GroupPatch};

const CHAIN: usize = 1_000;

struct Tree {
    root: String,
    regions: Vec<String>,
    /// A country in region 0: a shallow target (depth 2).
    country: String,
    /// A district in region 0 (depth 3) with 100 groups below it.
    district: String,
    /// The chain hanging under `district`; `chain[i]` is at depth 4 + i.
    chain: Vec<String>,
    /// Leaves of region 0 (depth 5).
    leaves: Vec<String>,
}

async fn build(db: &Db, tenant: &str, regions: usize) -> anyhow::Result<Tree> {
    let mut tx = db.writer().begin().await?;
    let root = groups::create_group(&mut tx, tenant, "World", None, None).await?.id;
    let mut region_ids = Vec::new();
    let mut country = String::new();
    let mut district = String::new();
    let mut leaves = Vec::new();
    for r in 0..regions {
        let region = groups::create_group(&mut tx, tenant, &format!("R{r}"), Some(&root), None)
            .await?
            .id;
        for c in 0..10 {
            let cid = groups::create_group(&mut tx, tenant, &format!("R{r}C{c}"), Some(&region), None)
                .await?
                .id;
            for d in 0..10 {
                let did = groups::create_group(&mut tx, tenant, &format!("R{r}C{c}D{d}"), Some(&cid), None)
                    .await?
                    .id;
                for a in 0..10 {
                    let aid = groups::create_group(&mut tx, tenant, &format!("A{a}"), Some(&did), None)
                        .await?
                        .id;
                    for l in 0..9 {
                        let leaf = groups::create_group(&mut tx, tenant, &format!("L{l}"), Some(&aid), None).await?;
                        if r == 0 {
                            leaves.push(leaf.id);
                        }
                    }
                }
                if r == 0 && c == 0 && d == 0 {
                    district = did.clone();
                }
            }
            if r == 0 && c == 1 {
                country = cid.clone();
            }
        }
        region_ids.push(region);
        // Commit per region so no single transaction grows huge.
        tx.commit().await?;
        tx = db.writer().begin().await?;
    }
    let mut chain = Vec::with_capacity(CHAIN);
    let mut parent = district.clone();
    for i in 0..CHAIN {
        let id = groups::create_group(&mut tx, tenant, &format!("deep{i}"), Some(&parent), None)
            .await?
            .id;
        parent = id.clone();
        chain.push(id);
    }
    tx.commit().await?;
    Ok(Tree {
        root,
        regions: region_ids,
        country,
        district,
        chain,
        leaves,
    })
}

async fn do_move(db: &Db, tenant: &str, id: &str, to: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    plinth_core::tenancy::groups::update_group(
        db,
        tenant,
        &Actor::system(),
        GroupOwner::Rest,
        id,
        None,
        GroupPatch {
            name: None,
            parent_id: Some(Some(to.to_string())),
        },
    )
    .await?;
    Ok(started.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = match std::env::var("PLINTH_BENCH_DATABASE_URL") {
        Ok(url) => Db::connect(&url).await?,
        Err(_) => Db::open_sqlite(&dir.path().join("bench.db")).await?,
    };
    let regions: usize = std::env::var("PLINTH_BENCH_REGIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
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
    let started = Instant::now();
    let tree = build(&db, &tenant, regions).await?;
    let mut conn = db.reader().acquire().await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM groups WHERE tenant_id = $1")
        .bind(&tenant)
        .fetch_one(&mut *conn)
        .await?;
    let moved = tree.regions.last().cloned().unwrap_or_default();
    let subtree = groups::subtree_size(&mut conn, &tenant, &moved).await?;
    drop(conn);
    println!(
        "database: {:?}; built {total} groups (max depth {}) in {:.1} s; moved subtree: {subtree} groups",
        db.dialect(),
        4 + CHAIN,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| operation | median ms | runs |");
    println!("|---|---:|---:|");

    // Moves of the 10k-group region from the root to deeper and deeper parents and
    // back: each rewrites the subtree's rows (labels and depths), whatever the depth.
    let (deep_a, deep_b, deep_b1) = {
        let mut tx = db.writer().begin().await?;
        let a = groups::create_group(&mut tx, &tenant, "A", Some(&tree.chain[100]), None)
            .await?
            .id;
        let b = groups::create_group(&mut tx, &tenant, "B", Some(&tree.chain[100]), None)
            .await?
            .id;
        let b1 = groups::create_group(&mut tx, &tenant, "B1", Some(&b), None).await?.id;
        tx.commit().await?;
        (a, b, b1)
    };
    let targets: Vec<(&str, &str)> = vec![
        ("under a country (depth 2)", tree.country.as_str()),
        ("under chain node at depth 12", tree.chain[8].as_str()),
        ("under chain node at depth 54", tree.chain[50].as_str()),
        ("under chain node at depth 104", tree.chain[100].as_str()),
        ("under the deepest group (depth 1,003)", tree.chain[CHAIN - 1].as_str()),
    ];
    for (label, target) in &targets {
        let mut times = Vec::new();
        for _ in 0..5 {
            times.push(do_move(&db, &tenant, &moved, target).await?);
            times.push(do_move(&db, &tenant, &moved, &tree.root).await?);
        }
        println!(
            "| move the {subtree}-group region {label} and back | {} | 10 |",
            ms(median(times))
        );
    }
    // Realignment deep in the tree: the region parked under group A at depth 105,
    // then moved to A's sibling B (same depth) and to B's child B1 (one level deeper).
    let (a, b, b1) = (&deep_a, &deep_b, &deep_b1);
    do_move(&db, &tenant, &moved, a).await?;
    for (label, to) in [
        ("between siblings at depth 105", b),
        ("from depth 105 to depth 106", b1),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            times.push(do_move(&db, &tenant, &moved, to).await?);
            times.push(do_move(&db, &tenant, &moved, a).await?);
        }
        println!(
            "| move the {subtree}-group region {label} and back | {} | 10 |",
            ms(median(times))
        );
    }
    do_move(&db, &tenant, &moved, &tree.root).await?;
    // The deep chain itself: 1,000 groups, each with up to 1,000 ancestors.
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(do_move(&db, &tenant, &tree.chain[0], &tree.country).await?);
        times.push(do_move(&db, &tenant, &tree.chain[0], &tree.district).await?);
    }
    println!(
        "| move the 1,000-deep chain between depth-2 and depth-3 parents | {} | 10 |",
        ms(median(times))
    );
    // Many small moves into one parent: each takes labels from the same gap, so this
    // is where spreading labels again (and what it costs) shows.
    let mut times = Vec::new();
    for leaf in tree.leaves.iter().take(2_000) {
        times.push(do_move(&db, &tenant, leaf, &tree.chain[CHAIN - 1]).await?);
    }
    let worst = times.iter().max().copied().unwrap_or_default();
    println!(
        "| move 2,000 leaves one by one under the deepest group (median; worst {} ms) | {} | 2000 |",
        ms(worst),
        ms(median(times))
    );
    let mut conn = db.reader().acquire().await?;
    groups::verify_labels(&mut conn, &tenant).await?;
    drop(conn);
    println!();
    println!("| query | median ms | runs |");
    println!("|---|---:|---:|");

    // Reads.
    let mut conn = db.reader().acquire().await?;
    let region0 = tree.regions[0].clone();
    let deepest = tree.chain[CHAIN - 1].clone();
    for (label, which) in [
        ("descendants, first page (50) of a 10k subtree", 0),
        ("descendants, a later page of a 10k subtree, max_depth=3", 1),
        ("ancestors of the deepest group (1,003 rows)", 2),
        ("is_ancestor(root, deepest)", 3),
        ("subtree_size of the root (102k)", 4),
        ("descendants, first page (50) of the root (102k), max_depth=2", 5),
    ] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            match which {
                0 => {
                    groups::descendants(&mut conn, &tenant, &region0, None, None, 50).await?;
                }
                1 => {
                    groups::descendants(&mut conn, &tenant, &region0, Some(3), Some((3, "~")), 50).await?;
                }
                2 => {
                    groups::ancestors(&mut conn, &tenant, &deepest).await?;
                }
                3 => {
                    groups::is_ancestor(&mut conn, &tenant, &tree.root, &deepest).await?;
                }
                5 => {
                    groups::descendants(&mut conn, &tenant, &tree.root, Some(2), None, 50).await?;
                }
                _ => {
                    groups::subtree_size(&mut conn, &tenant, &tree.root).await?;
                }
            }
            times.push(t.elapsed());
        }
        println!("| {label} | {} | 20 |", ms(median(times)));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
