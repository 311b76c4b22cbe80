//! Realignment: propose a change (move a subtree, replace a territory's rules), see
//! its effect before it happens — which accounts change territory, which users gain or
//! lose access to which records, how the roll-ups move — then apply or discard it.
//! An applied realignment is audited and can be rolled back to the alignment before it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use plinth_sdk::records::{self, Find};
use plinth_sdk::storage::Collection;
use plinth_sdk::{Error, audit, serde_json, sharing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::assign::{self, Change};
use crate::model::{self, Model, REALIGNMENTS};
use crate::rollup::{self, Period, Sums};
use crate::rules::{self, Rule};

/// What a realignment changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Proposal {
    /// Re-parent a territory with its subtree (`parent_id: null`: make it a root).
    Move {
        territory_id: String,
        parent_id: Option<String>,
    },
    /// Replace a territory's rules.
    Rules { territory_id: String, rules: Vec<Rule> },
}

/// A stored realignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Realignment {
    pub id: String,
    /// `proposed`, `applied`, `discarded` or `rolled-back`.
    pub status: String,
    pub proposal: Proposal,
    /// Generation the preview was computed at; apply needs it unchanged.
    pub generation: u64,
    pub period: Period,
    pub diff: Value,
    pub changes: Vec<Change>,
    /// What to restore on rollback: the previous parent or rules.
    #[serde(default)]
    pub undo: Option<Proposal>,
    /// Generation right after apply; rollback needs it unchanged.
    #[serde(default)]
    pub applied_generation: Option<u64>,
}

pub fn store() -> Collection<Realignment> {
    Collection::new(REALIGNMENTS)
}

fn territory_of(p: &Proposal) -> &str {
    match p {
        Proposal::Move { territory_id, .. } | Proposal::Rules { territory_id, .. } => territory_id,
    }
}

/// Check `p` against `model` and return the model with it applied.
pub fn simulate(model: &Model, p: &Proposal) -> Result<Model, Error> {
    let id = territory_of(p);
    let Some(t) = model.by_id.get(id) else {
        return Err(Error::not_found(format!("no territory `{id}`")));
    };
    if t.archived {
        return Err(Error::conflict(format!("territory `{id}` is archived")));
    }
    let mut next = model.clone();
    match p {
        Proposal::Move { parent_id, .. } => {
            if let Some(parent) = parent_id {
                check_move(model, id, parent)?;
            }
            if let Some(t) = next.by_id.get_mut(id) {
                t.parent_id = parent_id.clone();
            }
        }
        Proposal::Rules { rules: r, .. } => {
            rules::validate(r)?;
            if let Some(t) = next.by_id.get_mut(id) {
                t.rules = r.clone();
            }
        }
    }
    Ok(next)
}

/// Refuse a move under a missing or archived parent, or under the territory itself or
/// one of its descendants (a cycle), naming the path.
pub fn check_move(model: &Model, id: &str, parent: &str) -> Result<(), Error> {
    let Some(p) = model.by_id.get(parent) else {
        return Err(Error::not_found(format!("no territory `{parent}`")).with_field("parent_id", "unknown territory"));
    };
    if p.archived {
        return Err(Error::conflict(format!("territory `{parent}` is archived")));
    }
    let chain = model.ancestors_or_self(parent);
    if chain.contains(&id) {
        let path: Vec<&str> = chain
            .iter()
            .rev()
            .map(|i| model.by_id.get(*i).map_or(*i, |t| t.name.as_str()))
            .collect();
        return Err(Error::conflict(format!(
            "cannot move territory `{id}` under itself or its own descendant `{parent}` (/{}): that would make a cycle",
            path.join("/")
        ))
        .with_field("parent_id", "is the territory itself or one of its descendants"));
    }
    Ok(())
}

fn closure<'a>(model: &'a Model, set: &[String]) -> BTreeSet<&'a str> {
    set.iter().flat_map(|t| model.ancestors_or_self(t)).collect()
}

fn users(model: &Model, closure: &BTreeSet<&str>) -> BTreeSet<String> {
    closure
        .iter()
        .filter_map(|t| model.by_id.get(*t))
        .flat_map(|t| t.members.keys().cloned())
        .collect()
}

/// Compute the diff of `p` without changing anything.
pub fn preview(id: &str, p: Proposal, period: Period) -> Result<Realignment, Error> {
    let before = Model::load()?;
    let after = simulate(&before, &p)?;
    let generation = model::generation()?;
    let stored = model::all_assignments()?;
    let fields = assign::rule_fields();

    let mut changes: Vec<Change> = Vec::new();
    // Accounts whose set of territories-with-ancestors changes, with that set before/after.
    let mut affected: Vec<(String, BTreeSet<String>, BTreeSet<String>)> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    records::for_each("account", Find::new().fields(&fields).limit(500), |r| {
        let from = stored.get(&r.id).cloned().unwrap_or_default();
        let to = rules::assign(&after, &r.fields);
        let cb: BTreeSet<String> = closure(&before, &from).into_iter().map(String::from).collect();
        let ca: BTreeSet<String> = closure(&after, &to).into_iter().map(String::from).collect();
        if cb != ca || from != to {
            names.insert(r.id.clone(), r.field::<String>("name").unwrap_or_default());
            affected.push((r.id.clone(), cb, ca));
        }
        if from != to {
            changes.push(Change {
                account_id: r.id,
                from,
                to,
            });
        }
        Ok(())
    })?;

    // Who gains and loses which accounts (and, below, their opportunities and contacts).
    let mut gained: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut lost: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (account, cb, ca) in &affected {
        let ub = users(&before, &cb.iter().map(String::as_str).collect());
        let ua = users(&after, &ca.iter().map(String::as_str).collect());
        for u in ua.difference(&ub) {
            gained.entry(u.clone()).or_default().insert(account.clone());
        }
        for u in ub.difference(&ua) {
            lost.entry(u.clone()).or_default().insert(account.clone());
        }
    }
    let touched: Vec<String> = gained
        .values()
        .chain(lost.values())
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let kids = assign::children_of(&touched)?;
    let expand = |accounts: &BTreeSet<String>| -> Vec<Value> {
        let mut out = Vec::new();
        for a in accounts {
            out.push(json!({"object": "account", "id": a, "name": names.get(a)}));
            for (o, id) in kids.get(a).into_iter().flatten() {
                out.push(json!({"object": o, "id": id, "account_id": a}));
            }
        }
        out
    };
    let all_users: BTreeSet<&String> = gained.keys().chain(lost.keys()).collect();
    let access: Vec<Value> = all_users
        .into_iter()
        .map(|u| {
            json!({
                "user_id": u,
                "gained": expand(gained.get(u).unwrap_or(&BTreeSet::new())),
                "lost": expand(lost.get(u).unwrap_or(&BTreeSet::new())),
            })
        })
        .collect();

    // Roll-ups: before from the host; after = before ± the accounts that enter or leave.
    let moving: Vec<String> = affected
        .iter()
        .filter(|(_, cb, ca)| cb != ca)
        .map(|(a, _, _)| a.clone())
        .collect();
    let per = rollup::per_account(&moving, &period)?;
    let mut delta: BTreeMap<String, Sums> = BTreeMap::new();
    for (a, cb, ca) in &affected {
        let Some(m) = per.get(a) else { continue };
        for t in cb.difference(ca) {
            delta.entry(t.clone()).or_default().add(m, -1.0);
        }
        for t in ca.difference(cb) {
            delta.entry(t.clone()).or_default().add(m, 1.0);
        }
    }
    let mut rollups = Vec::new();
    for (t, d) in &delta {
        let b = rollup::subtree(t, &period)?;
        let mut a = b;
        a.add(d, 1.0);
        rollups.push(json!({
            "territory_id": t,
            "name": before.by_id.get(t).map(|t| t.name.clone()),
            "before": b.report(),
            "after": a.report(),
        }));
    }
    let tname = |m: &Model, ids: &[String]| -> Vec<Value> {
        ids.iter()
            .map(|i| json!({"id": i, "name": m.by_id.get(i).map(|t| t.name.clone())}))
            .collect()
    };
    let moves: Vec<Value> = changes
        .iter()
        .map(|c| {
            json!({
                "account_id": c.account_id,
                "name": names.get(&c.account_id),
                "from": tname(&before, &c.from),
                "to": tname(&after, &c.to),
            })
        })
        .collect();
    Ok(Realignment {
        id: id.to_string(),
        status: "proposed".into(),
        proposal: p,
        generation,
        period,
        diff: json!({ "account_moves": moves, "access": access, "rollups": rollups }),
        changes,
        undo: None,
        applied_generation: None,
    })
}

/// Make the structural part of a proposal happen (host group and stored territory);
/// returns the proposal that undoes it.
fn execute(p: &Proposal) -> Result<Proposal, Error> {
    let id = territory_of(p);
    let doc = model::load(id)?;
    let mut t = doc.value.clone();
    let undo = match p {
        Proposal::Move { parent_id, .. } => {
            sharing::move_group(id, parent_id.as_deref())?;
            let undo = Proposal::Move {
                territory_id: id.into(),
                parent_id: t.parent_id.clone(),
            };
            t.parent_id = parent_id.clone();
            undo
        }
        Proposal::Rules { rules, .. } => {
            let undo = Proposal::Rules {
                territory_id: id.into(),
                rules: t.rules.clone(),
            };
            t.rules = rules.clone();
            undo
        }
    };
    if let Err(e) = model::replace(&mut t, doc.version) {
        if let Proposal::Move { .. } = p {
            let _ = sharing::move_group(id, doc.value.parent_id.as_deref());
        }
        return Err(e);
    }
    Ok(undo)
}

fn reversed(changes: &[Change]) -> Vec<Change> {
    changes
        .iter()
        .map(|c| Change {
            account_id: c.account_id.clone(),
            from: c.to.clone(),
            to: c.from.clone(),
        })
        .collect()
}

/// Apply a proposed realignment: the structural change, then the account moves. If
/// a step fails, the steps already taken are undone before the error is returned.
pub fn apply(r: &mut Realignment) -> Result<(), Error> {
    if r.status != "proposed" {
        return Err(Error::conflict(format!(
            "realignment `{}` is {}, not proposed",
            r.id, r.status
        )));
    }
    if model::generation()? != r.generation {
        return Err(Error::conflict(
            "territories, rules, members or assignments changed since this preview; preview again",
        ));
    }
    let undo = execute(&r.proposal)?;
    let model = Model::load()?;
    if let Err(e) = assign::apply(&model, &r.changes, false) {
        let _ = assign::apply(&model, &reversed(&r.changes), false);
        let _ = execute(&undo);
        return Err(e);
    }
    r.applied_generation = Some(model::bump()?);
    r.status = "applied".into();
    r.undo = Some(undo);
    store().put(&r.id, r)?;
    audit::append(
        "realignment.applied",
        "realignment",
        Some(&r.id),
        Some(&json!({"generation": r.generation})),
        Some(&json!({"proposal": r.proposal, "account_moves": r.changes.len()})),
    )?;
    Ok(())
}

/// Restore the alignment before an applied realignment.
pub fn rollback(r: &mut Realignment) -> Result<(), Error> {
    if r.status != "applied" {
        return Err(Error::conflict(format!(
            "realignment `{}` is {}, not applied",
            r.id, r.status
        )));
    }
    if Some(model::generation()?) != r.applied_generation {
        return Err(Error::conflict(
            "the alignment changed after this realignment was applied; rolling back would undo those changes too",
        ));
    }
    let Some(undo) = r.undo.clone() else {
        return Err(Error::internal("applied realignment without undo information"));
    };
    let redo = execute(&undo)?;
    let model = Model::load()?;
    if let Err(e) = assign::apply(&model, &reversed(&r.changes), false) {
        let _ = assign::apply(&model, &r.changes, false);
        let _ = execute(&redo);
        return Err(e);
    }
    model::bump()?;
    r.status = "rolled-back".into();
    store().put(&r.id, r)?;
    audit::append(
        "realignment.rolled_back",
        "realignment",
        Some(&r.id),
        Some(&json!({"proposal": r.proposal})),
        Some(&json!({"restored": undo})),
    )?;
    Ok(())
}
