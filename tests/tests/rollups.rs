//! Roll-ups (`[[rollups]]`): the subtree totals the host keeps equal a brute force
//! over the same tree, records and shares — after building them from existing data
//! at install, and after every kind of change made through the REST API on a real
//! server (groups created and moved, records created, changed, deleted and restored,
//! shares added and removed, records shared with several groups of one subtree).
//! Callers who see the whole subtree are answered from the kept totals, others live
//! over what they may see; both must match the brute force for that caller.

use std::collections::{BTreeMap, BTreeSet};

use plinth_core::manifest::Role;
use plinth_core::records::Who;
use plinth_core::records::query::{Filter, Op};
use plinth_core::records::rollup::{self, RollupQuery};
use plinth_core::store::audit::Actor;
use plinth_tests::{Guest, TestServer, TestTenant, TestUser};
use serde_json::{Value, json};

const STAGES: [&str; 6] = [
    "prospecting",
    "qualification",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
];
const MONTHS: [&str; 4] = ["2026-10", "2026-11", "2026-12", "2027-01"];
const PLUGIN: &str = "crm-probe";

/// The crm-probe guest reading the opportunity fields the roll-ups need, declaring two
/// roll-ups over opportunities: `pipeline`, by stage, probability and close month,
/// summing `sums`; and `count`, without dimensions.
fn crm_probe(sums: &[&str]) -> Guest {
    Guest::named(PLUGIN)
        .set(
            "capabilities.records.opportunity.fields",
            json!(["stage", "amount", "probability", "close_date"]),
        )
        .push(
            "rollups",
            json!({
                "name": "pipeline",
                "object": "opportunity",
                "dimensions": ["stage", "probability", "close_date:month"],
                "sums": sums,
            }),
        )
        .push("rollups", json!({ "name": "count", "object": "opportunity" }))
}

/// Publish [`crm_probe`] (summing amounts) and install it in `t` with every grant.
async fn install_crm_probe(s: &TestServer, t: &TestTenant) {
    let publisher = s.publisher("plinth-tests").await;
    publisher.publish(s, &crm_probe(&["amount"])).await.expect(201);
    s.install(t, PLUGIN, json!("all")).await.expect(201);
}

/// A deterministic pseudo-random sequence (so a failure reproduces).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[derive(Debug, Clone)]
struct Opp {
    stage: &'static str,
    probability: Option<f64>,
    amount: Option<f64>,
    close: String,
    owner: String,
    deleted: bool,
}

/// What the test did, kept independently of the server: the brute force's input.
#[derive(Default)]
struct Model {
    parent: BTreeMap<String, Option<String>>,
    opps: BTreeMap<String, Opp>,
    shares: BTreeMap<String, BTreeSet<String>>,
    members: BTreeMap<String, BTreeSet<String>>,
}

impl Model {
    fn ancestors(&self, g: &str) -> Vec<String> {
        let mut out = vec![g.to_string()];
        let mut at = self.parent.get(g).cloned().flatten();
        while let Some(p) = at {
            at = self.parent.get(&p).cloned().flatten();
            out.push(p);
        }
        out
    }

    fn sees(&self, user: Option<&str>, id: &str, o: &Opp) -> bool {
        let Some(user) = user else { return true };
        o.owner == user
            || self.shares.get(id).into_iter().flatten().any(|g| {
                self.ancestors(g)
                    .iter()
                    .any(|a| self.members.get(a).is_some_and(|m| m.contains(user)))
            })
    }

    /// Expected `pipeline` totals below `group` for `user` (`None`: sees all), by key.
    fn expected(&self, group: &str, user: Option<&str>) -> BTreeMap<String, (i64, f64)> {
        let mut out: BTreeMap<String, (i64, f64)> = BTreeMap::new();
        for (id, o) in &self.opps {
            let within = self
                .shares
                .get(id)
                .into_iter()
                .flatten()
                .any(|g| self.ancestors(g).iter().any(|a| a == group));
            if o.deleted || !within || !self.sees(user, id, o) {
                continue;
            }
            let p = o
                .probability
                .map_or(Value::Null, plinth_core::store::rollups::number_json);
            let key = json!([o.stage, p, &o.close[..7]]).to_string();
            let slot = out.entry(key).or_default();
            slot.0 += 1;
            slot.1 += o.amount.unwrap_or(0.0);
        }
        out
    }
}

struct World {
    s: TestServer,
    t: TestTenant,
    model: Model,
    rng: Lcg,
    outsider: TestUser,
    member: TestUser,
    /// Groups the random steps deleted.
    deleted_groups: usize,
    /// Share batches the random steps made.
    batches: usize,
}

impl World {
    /// A server (its background roll-up folder on when `fold`), a tenant with an
    /// outsider and a member, an empty model, the random steps seeded with `seed`.
    async fn start(seed: u64, fold: bool) -> World {
        let s = TestServer::start_configured(|c| c.fold_rollups = fold).await;
        let t = s.tenant("Acme").await;
        let outsider = s.user(&t, "Olga", "member").await;
        let member = s.user(&t, "Max", "member").await;
        World {
            s,
            t,
            model: Model::default(),
            rng: Lcg(seed),
            outsider,
            member,
            deleted_groups: 0,
            batches: 0,
        }
    }

    /// Rows of the tenant in `table` (of `group` only, when given): the kept totals and
    /// deltas are storage, which no API shows.
    async fn count(&self, table: &str, group: Option<&str>) -> i64 {
        let of_group = if group.is_some() { " AND group_id = $2" } else { "" };
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1{of_group}");
        let mut q = sqlx::query_scalar(&sql).bind(&self.t.id);
        if let Some(g) = group {
            q = q.bind(g);
        }
        q.fetch_one(self.s.db().reader()).await.unwrap()
    }

    /// Move group `g` under `to` (`None`: to the root level) through the REST API.
    async fn move_to(&mut self, g: &str, to: Option<String>) {
        self.t
            .patch(&format!("/api/v1/groups/{g}"), json!({ "parent_id": to }))
            .await
            .expect(200);
        self.model.parent.insert(g.to_string(), to);
    }

    fn who(&self, user: Option<&TestUser>) -> Who {
        Who {
            tenant: self.t.id.clone(),
            user_id: user.map_or(self.t.owner_id.clone(), |u| u.id.clone()),
            role: if user.is_some() { Role::Member } else { Role::Owner },
            actor: Actor::default(),
            override_lock: false,
        }
    }

    async fn create_group(&mut self, parent: Option<String>) -> String {
        let n = self.model.parent.len();
        let group = self
            .t
            .post(
                "/api/v1/groups",
                json!({ "name": format!("G{n}"), "parent_id": parent }),
            )
            .await
            .expect(201)
            .json();
        let id = group["id"].as_str().unwrap().to_string();
        self.model.parent.insert(id.clone(), parent);
        id
    }

    fn pick_group(&mut self) -> String {
        let all: Vec<&String> = self.model.parent.keys().collect();
        all[self.rng.next(all.len())].clone()
    }

    fn pick_opp(&mut self) -> Option<String> {
        let all: Vec<&String> = self.model.opps.keys().collect();
        (!all.is_empty()).then(|| all[self.rng.next(all.len())].clone())
    }

    async fn create_opp(&mut self) {
        let owner_is_outsider = self.rng.next(4) == 0;
        let o = Opp {
            stage: STAGES[self.rng.next(STAGES.len())],
            probability: [None, Some(10.0), Some(50.0), Some(75.5)][self.rng.next(4)],
            amount: [None, Some(1000.0), Some(2500.25), Some(40.5)][self.rng.next(4)],
            close: format!("{}-{:02}", MONTHS[self.rng.next(MONTHS.len())], 1 + self.rng.next(28)),
            owner: if owner_is_outsider {
                self.outsider.id.clone()
            } else {
                self.t.owner_id.clone()
            },
            deleted: false,
        };
        let mut fields = json!({ "name": "Deal", "stage": o.stage, "close_date": o.close });
        if let Some(p) = o.probability {
            fields["probability"] = json!(p);
        }
        if let Some(a) = o.amount {
            fields["amount"] = json!({ "value": a, "currency": "EUR" });
        }
        let creator = if owner_is_outsider {
            &self.outsider.api
        } else {
            &self.t.api
        };
        let created = creator
            .post("/api/v1/records/opportunity", json!({ "fields": fields }))
            .await
            .expect(201)
            .json();
        let id = created["id"].as_str().unwrap().to_string();
        self.model.opps.insert(id, o);
    }

    async fn update_opp(&mut self, id: &str) {
        let mut o = self.model.opps[id].clone();
        let mut fields = json!({});
        match self.rng.next(3) {
            0 => {
                o.stage = STAGES[self.rng.next(STAGES.len())];
                fields["stage"] = json!(o.stage);
            }
            1 => {
                o.amount = [None, Some(99.0), Some(12_345.5)][self.rng.next(3)];
                fields["amount"] = o
                    .amount
                    .map_or(Value::Null, |a| json!({ "value": a, "currency": "EUR" }));
            }
            _ => {
                o.close = format!("{}-15", MONTHS[self.rng.next(MONTHS.len())]);
                o.probability = [None, Some(50.0)][self.rng.next(2)];
                fields["close_date"] = json!(o.close);
                fields["probability"] = o.probability.map_or(Value::Null, |p| json!(p));
            }
        }
        self.patch_opp(id, o, fields).await;
    }

    /// Store `o` (already changed as `fields` says) for opportunity `id`.
    async fn patch_opp(&mut self, id: &str, o: Opp, fields: Value) {
        let path = format!("/api/v1/records/opportunity/{id}");
        self.t.patch(&path, json!({ "fields": fields })).await.expect(200);
        self.model.opps.insert(id.to_string(), o);
    }

    /// Give opportunity `id` this stage, probability, close date and amount.
    async fn set_opp(&mut self, id: &str, stage: &'static str, probability: f64, close: &str, amount: f64) {
        let o = Opp {
            stage,
            probability: Some(probability),
            amount: Some(amount),
            close: close.to_string(),
            ..self.model.opps[id].clone()
        };
        let fields = json!({
            "stage": stage,
            "probability": probability,
            "close_date": close,
            "amount": { "value": amount, "currency": "EUR" },
        });
        self.patch_opp(id, o, fields).await;
    }

    async fn toggle_deleted(&mut self, id: &str) {
        let path = format!("/api/v1/records/opportunity/{id}");
        let deleted = self.model.opps[id].deleted;
        if deleted {
            self.t.request("POST", &format!("{path}/restore")).await.expect(200);
        } else {
            self.t.delete(&path).await.expect(200);
        }
        self.model.opps.get_mut(id).unwrap().deleted = !deleted;
    }

    async fn share(&mut self, id: &str, group: &str) {
        let shared = self.model.shares.get(id).is_some_and(|s| s.contains(group));
        let path = format!("/api/v1/records/opportunity/{id}/shares");
        if shared {
            self.t.delete(&format!("{path}/{group}")).await.expect(204);
        } else {
            let share = json!({ "group_id": group, "access": "read" });
            self.t.post(&path, share).await.expect(201);
        }
        let set = self.model.shares.entry(id.to_string()).or_default();
        if shared {
            set.remove(group);
        } else {
            set.insert(group.to_string());
        }
    }

    /// Several share changes in one transaction, as the sharing capability makes them
    /// (`ShareBatch`, one set-based roll-up pass at the end): a few records each gain
    /// and lose shares, some shares are added and removed again within the batch.
    async fn share_batch(&mut self) {
        use plinth_core::store::shares::{Access, ShareBatch};
        let live: Vec<String> = self
            .model
            .opps
            .iter()
            .filter(|(_, o)| !o.deleted)
            .map(|(id, _)| id.clone())
            .collect();
        if live.is_empty() {
            return;
        }
        let mut tx = self.s.db().writer().begin().await.unwrap();
        let mut batch = ShareBatch::default();
        for _ in 0..3 {
            let id = live[self.rng.next(live.len())].clone();
            for _ in 0..3 {
                let g = self.pick_group();
                let set = self.model.shares.entry(id.clone()).or_default();
                if set.contains(&g) {
                    batch.remove(&mut tx, &self.t.id, &id, &g).await.unwrap().unwrap();
                    set.remove(&g);
                } else {
                    batch
                        .upsert(&mut tx, &self.t.id, &id, &g, Access::Read, None)
                        .await
                        .unwrap();
                    set.insert(g.clone());
                    if self.rng.next(3) == 0 {
                        // Added and removed again in the same batch: no net change.
                        batch.remove(&mut tx, &self.t.id, &id, &g).await.unwrap().unwrap();
                        set.remove(&g);
                    }
                }
            }
        }
        batch.finish(&mut tx, &self.t.id).await.unwrap();
        tx.commit().await.unwrap();
        self.batches += 1;
    }

    async fn move_group(&mut self, g: &str) {
        // A new parent outside the group's own subtree, or the root level.
        let candidates: Vec<String> = self
            .model
            .parent
            .keys()
            .filter(|c| !self.model.ancestors(c).iter().any(|a| a == g))
            .cloned()
            .collect();
        let to = match self.rng.next(candidates.len() + 1) {
            i if i == candidates.len() => None,
            i => Some(candidates[i].clone()),
        };
        self.move_to(g, to).await;
    }

    /// Delete a group without children or shares, if there is one: its totals are zero,
    /// so its kept rows and any pending deltas it references (which cancel out) go.
    async fn delete_leaf_group(&mut self) {
        let shared: BTreeSet<&String> = self.model.shares.values().flatten().collect();
        let leaves: Vec<String> = self
            .model
            .parent
            .keys()
            .filter(|g| !shared.contains(g) && !self.model.parent.values().any(|p| p.as_ref() == Some(*g)))
            .cloned()
            .collect();
        if leaves.is_empty() {
            return;
        }
        let g = leaves[self.rng.next(leaves.len())].clone();
        self.t.delete(&format!("/api/v1/groups/{g}")).await.expect(204);
        self.model.parent.remove(&g);
        self.model.members.remove(&g);
        self.deleted_groups += 1;
        for table in ["rollup_totals", "rollup_pending"] {
            let left = self.count(table, Some(&g)).await;
            assert_eq!(left, 0, "{table} rows of deleted group {g}");
        }
    }

    async fn random_step(&mut self) {
        match self.rng.next(20) {
            0 => {
                let parent = Some(self.pick_group());
                self.create_group(parent).await;
            }
            1 | 2 => {
                let g = self.pick_group();
                self.move_group(&g).await;
            }
            3..=6 => self.create_opp().await,
            7..=9 => {
                if let Some(id) = self.pick_opp().filter(|id| !self.model.opps[id].deleted) {
                    self.update_opp(&id).await;
                }
            }
            10 => {
                if let Some(id) = self.pick_opp() {
                    self.toggle_deleted(&id).await;
                }
            }
            11 => self.delete_leaf_group().await,
            12 | 13 => self.share_batch().await,
            _ => {
                // Deleted records cannot be shared or unshared (404), so only live ones.
                if let Some(id) = self.pick_opp().filter(|id| !self.model.opps[id].deleted) {
                    let g = self.pick_group();
                    self.share(&id, &g).await;
                }
            }
        }
    }

    /// The `pipeline` roll-up grouped by every dimension, as key → (count, sum).
    async fn actual(&self, group: &str, user: Option<&TestUser>) -> (BTreeMap<String, (i64, f64)>, bool) {
        let q = RollupQuery {
            group_by: vec!["stage".into(), "probability".into(), "close_date:month".into()],
            filters: vec![],
        };
        let r = rollup::query(self.s.db(), &self.who(user), PLUGIN, "pipeline", group, &q)
            .await
            .unwrap();
        let rows = r
            .rows
            .iter()
            .map(|row| {
                let key = json!([row["stage"], row["probability"], row["close_date:month"]]).to_string();
                let n = row["count"].as_i64().unwrap();
                (key, (n, row["sum_amount"].as_f64().unwrap()))
            })
            .collect();
        (rows, r.kept)
    }

    /// How many references to moves' deltas wait to be folded into the kept rows.
    async fn pending(&self) -> i64 {
        self.count("rollup_pending", None).await
    }

    /// [`Self::check_now`] as things are — moves' deltas perhaps pending (the server's
    /// background folder is off here) — and, when some were, again after folding
    /// them, which must leave no reference and no delta behind.
    async fn check(&self, when: &str) {
        self.check_now(when).await;
        if self.pending().await > 0 {
            let report = plinth_core::store::rollups::fold_pending(self.s.db()).await.unwrap();
            assert!(report.references > 0, "{when}: {report:?}");
            assert_eq!(self.pending().await, 0, "{when}: folded");
            let deltas = self.count("rollup_deltas", None).await;
            assert_eq!(deltas, 0, "{when}: no delta is left once every reference is folded");
            self.check_now(&format!("{when}, deltas folded")).await;
        }
    }

    /// Every group, for the owner (kept totals), an outsider (live) and a member of
    /// one group (kept inside its subtree, live elsewhere), against the brute force.
    async fn check_now(&self, when: &str) {
        for g in self.model.parent.keys() {
            let viewers = [
                (None, None),
                (Some(&self.outsider), Some(self.outsider.id.as_str())),
                (Some(&self.member), Some(self.member.id.as_str())),
            ];
            for (user, id) in viewers {
                let (got, kept) = self.actual(g, user).await;
                let want = self.model.expected(g, id);
                let same = got.len() == want.len()
                    && got
                        .iter()
                        .zip(&want)
                        .all(|((k1, (n1, s1)), (k2, (n2, s2)))| k1 == k2 && n1 == n2 && (s1 - s2).abs() < 1e-6);
                assert!(
                    same,
                    "{when}: group {g}, viewer {id:?} (kept: {kept})\n got  {got:?}\n want {want:?}"
                );
                let sees_all = match id {
                    None => true,
                    Some(u) => self
                        .model
                        .ancestors(g)
                        .iter()
                        .any(|a| self.model.members.get(a).is_some_and(|m| m.contains(u))),
                };
                assert_eq!(kept, sees_all, "{when}: group {g}, viewer {id:?}");
            }
            // The second roll-up has no dimensions: one row, the distinct records.
            let r = rollup::query(
                self.s.db(),
                &self.who(None),
                PLUGIN,
                "count",
                g,
                &RollupQuery::default(),
            )
            .await
            .unwrap();
            let want: i64 = self.model.expected(g, None).values().map(|v| v.0).sum();
            assert_eq!(
                r.rows,
                vec![json!({ "count": want }).as_object().unwrap().clone()],
                "{when}: {g}"
            );
        }
    }
}

#[tokio::test]
async fn kept_totals_equal_a_brute_force_through_every_kind_of_change() {
    // Moves' deltas are folded by hand, so the checks see them pending and folded.
    let mut w = World::start(20_261_203, false).await;

    // A tree, records and shares before the plugin is installed: the build.
    let root = w.create_group(None).await;
    let a = w.create_group(Some(root.clone())).await;
    let b = w.create_group(Some(root.clone())).await;
    let a1 = w.create_group(Some(a.clone())).await;
    let a2 = w.create_group(Some(a.clone())).await;
    let a11 = w.create_group(Some(a1.clone())).await;
    w.create_group(Some(b.clone())).await;
    w.create_group(None).await;
    w.t.post(
        &format!("/api/v1/groups/{a1}/members"),
        json!({ "user_id": w.member.id }),
    )
    .await
    .expect(201);
    w.model
        .members
        .entry(a1.clone())
        .or_default()
        .insert(w.member.id.clone());
    for _ in 0..12 {
        w.create_opp().await;
    }
    let ids: Vec<String> = w.model.opps.keys().cloned().collect();
    // Shared within one subtree twice (a11 and a2 both below a), and across subtrees.
    for (i, id) in ids.iter().enumerate() {
        let g = [&a11, &a2, &b, &a1][i % 4].clone();
        w.share(id, &g).await;
    }
    w.share(&ids[0], &a2).await;
    w.share(&ids[1], &a11).await;
    w.share(&ids[2], &root).await;
    w.toggle_deleted(&ids[3]).await;

    install_crm_probe(&w.s, &w.t).await;
    let r = w.t.get(&format!("/api/v1/installations/{PLUGIN}")).await.expect(200);
    let kept: Vec<(&str, &Value)> = r.body["rollups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["name"].as_str().unwrap(), &x["dimensions"]))
        .collect();
    assert_eq!(
        kept,
        [
            ("count", &json!([])),
            ("pipeline", &json!(["stage", "probability", "close_date:month"]))
        ],
        "{}",
        r.text
    );
    w.check("after the build").await;

    // Moves of subtrees holding records shared inside and outside them. The totals
    // the move takes from or adds to ancestors wait, as deltas, to be folded.
    w.move_to(&a1, Some(b.clone())).await;
    assert!(w.pending().await > 0, "a move of a subtree with totals defers them");
    w.check("after a move").await;
    w.move_to(&a, Some(b.clone())).await;
    w.check("after moving a subtree under a sibling").await;

    for step in 0..150 {
        w.random_step().await;
        if step % 15 == 14 {
            w.check(&format!("after step {step}")).await;
        }
    }
    w.check("at the end").await;
    assert!(w.deleted_groups > 0, "the random steps deleted no group");
    assert!(w.batches > 0, "the random steps made no share batch");

    // Uninstall drops the totals; installing again rebuilds them from the data.
    w.t.delete(&format!("/api/v1/installations/{PLUGIN}")).await.expect(204);
    let left = w.count("rollup_totals", None).await;
    assert_eq!(left, 0, "uninstall drops the totals");
    let err = rollup::query(
        w.s.db(),
        &w.who(None),
        PLUGIN,
        "pipeline",
        &root,
        &RollupQuery::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no roll-up `pipeline`"), "{err}");
    w.s.install(&w.t, PLUGIN, json!("all")).await.expect(201);
    w.check("after re-installing").await;
}

#[tokio::test]
async fn queries_filter_and_group_by_dimensions_with_clear_problems() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    install_crm_probe(&s, &t).await;
    let root = t
        .post("/api/v1/groups", json!({ "name": "Root" }))
        .await
        .expect(201)
        .json();
    let root = root["id"].as_str().unwrap().to_string();
    for (stage, amount, close) in [
        ("proposal", 100.0, "2026-10-05"),
        ("proposal", 50.0, "2026-11-30"),
        ("closed_won", 70.0, "2026-11-01"),
    ] {
        let body = json!({ "fields": { "name": "D", "stage": stage, "close_date": close,
            "amount": { "value": amount, "currency": "EUR" } } });
        let opp = t.post("/api/v1/records/opportunity", body).await.expect(201).json();
        let id = opp["id"].as_str().unwrap();
        t.post(
            &format!("/api/v1/records/opportunity/{id}/shares"),
            json!({ "group_id": root, "access": "read" }),
        )
        .await
        .expect(201);
    }
    let who = Who {
        tenant: t.id.clone(),
        user_id: t.owner_id.clone(),
        role: Role::Owner,
        actor: Actor::default(),
        override_lock: false,
    };
    // Grouped by one dimension, filtered by another.
    let query = |group_by: &str, field: &str, op: Op, value: Value| RollupQuery {
        group_by: vec![group_by.into()],
        filters: vec![Filter {
            field: field.into(),
            op,
            value,
        }],
    };
    let q = query("stage", "close_date:month", Op::Gte, json!("2026-11"));
    let r = rollup::query(s.db(), &who, PLUGIN, "pipeline", &root, &q)
        .await
        .unwrap();
    assert!(r.kept);
    assert_eq!(
        Value::Array(r.rows.into_iter().map(Value::Object).collect()),
        json!([
            { "stage": "closed_won", "count": 1, "sum_amount": 70 },
            { "stage": "proposal", "count": 1, "sum_amount": 50 },
        ])
    );

    let bad = query("region", "probability", Op::Lt, json!("high"));
    let err = rollup::query(s.db(), &who, PLUGIN, "pipeline", &root, &bad)
        .await
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("group_by[0]") && text.contains("filters[0].value"),
        "{text}"
    );
    let err = rollup::query(
        s.db(),
        &who,
        PLUGIN,
        "pipeline",
        "no-such-group",
        &RollupQuery::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("group no-such-group not found"), "{err}");
}

#[tokio::test]
async fn rollups_that_do_not_fit_the_schema_are_refused_at_publish_or_install() {
    let s = TestServer::start().await;
    let publisher = s.publisher("plinth-tests").await;
    // Standard objects are the same everywhere: `stage` is declared (the manifest is
    // valid) but it is not a number to sum, which publishing already knows.
    let r = publisher.publish(&s, &crm_probe(&["stage"])).await.expect(422);
    assert!(
        r.text.contains("rollups[0].sums[0]") && r.text.contains("numeric"),
        "{}",
        r.text
    );

    // A custom object's schema is the tenant's: checked when installing there.
    let projects = crm_probe(&["amount"])
        .set(
            "capabilities.records.project",
            json!({ "access": "read", "fields": ["title", "phase"] }),
        )
        .push(
            "rollups",
            json!({ "name": "projects", "object": "project", "dimensions": ["phase:month"], "sums": ["title"] }),
        );
    publisher.publish(&s, &projects).await.expect(201);
    let t = s.tenant("Acme").await;
    let def = json!({ "name": "project", "label": "Project", "fields": [
        {"name": "title", "type": "text", "required": true},
        {"name": "phase", "type": "enum", "values": ["plan", "build", "run"]}
    ]});
    t.post("/api/v1/objects", def).await.expect(201);
    let r = s
        .install(&t, PLUGIN, json!("all"))
        .await
        .expect_problem(422, "rollups-invalid");
    assert!(
        r.text.contains("rollups[2].dimensions[0]") && r.text.contains("not a date"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("rollups[2].sums[0]") && r.text.contains("numeric"),
        "{}",
        r.text
    );
    // Nothing was installed.
    t.get(&format!("/api/v1/installations/{PLUGIN}")).await.expect(404);
}

#[tokio::test]
async fn the_server_folds_the_deltas_of_moves_in_the_background() {
    // The default server: its folder runs every second.
    let mut w = World::start(7, true).await;
    let root = w.create_group(None).await;
    let mut chain = vec![w.create_group(Some(root.clone())).await];
    for _ in 0..5 {
        let last = chain.last().cloned();
        chain.push(w.create_group(last).await);
    }
    let leaf = w.create_group(Some(root.clone())).await;
    for _ in 0..8 {
        w.create_opp().await;
    }
    for id in w.model.opps.keys().cloned().collect::<Vec<_>>() {
        w.share(&id, &leaf).await;
    }
    install_crm_probe(&w.s, &w.t).await;

    // The leaf with its records moves to the end of the chain and back, twice.
    for to in [chain[5].clone(), root.clone(), chain[3].clone()] {
        w.move_to(&leaf, Some(to)).await;
    }
    w.check_now("right after the moves").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let deltas = w.count("rollup_deltas", None).await;
        if w.pending().await == 0 && deltas == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the folder left {deltas} deltas after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Folded into the rows: the chain's groups above the leaf hold its totals.
    let rows = w.count("rollup_totals", Some(&chain[3])).await;
    assert!(rows > 0, "the leaf's totals are folded into its new ancestors' rows");
    w.check_now("after the background fold").await;
}

#[tokio::test]
async fn a_zero_count_is_kept_while_a_group_has_deltas_pending() {
    // A group's rows plus its pending deltas are its totals; its rows alone may reach
    // a count of zero with sums the deltas still need.
    let mut w = World::start(11, false).await;
    let root = w.create_group(None).await;
    let a = w.create_group(Some(root.clone())).await;
    let b = w.create_group(Some(root.clone())).await;
    w.create_opp().await;
    w.create_opp().await;
    let ids: Vec<String> = w.model.opps.keys().cloned().collect();
    let (first, second) = (ids[0].clone(), ids[1].clone());
    // The same roll-up key, different amounts.
    w.set_opp(&first, "proposal", 50.0, "2026-11-10", 1000.0).await;
    w.set_opp(&second, "proposal", 50.0, "2026-11-20", 2500.25).await;
    w.share(&first, &a).await;
    install_crm_probe(&w.s, &w.t).await;

    // `a` moves under `b`: b gains a's totals (the first opportunity) as a delta.
    w.move_to(&a, Some(b.clone())).await;
    assert!(w.pending().await > 0);
    // The first leaves b's rows (count -1), the second joins them (count 0, the sum
    // the difference of the amounts): b's totals are the second alone.
    w.toggle_deleted(&first).await;
    w.share(&second, &b).await;
    w.check("a count of zero with deltas pending").await;
}
