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
use crate::model::{self, Model, REALIGNMENT_PAGES, REALIGNMENTS};
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
    /// `proposed`, `applying`, `applied`, `rolling-back`, `rolled-back` or
    /// `discarded`. `applying` and `rolling-back` are journal states: set before the
    /// change starts, left only when it is complete.
    pub status: String,
    pub proposal: Proposal,
    /// Generation the preview was computed at; apply needs it unchanged.
    pub generation: u64,
    pub period: Period,
    /// What the preview found. Lists longer than [`INLINE`] keep their first entries
    /// here, with `<list>_total` and `<list>_pages`; all of them are in pages
    /// ([`diff_page`]).
    pub diff: Value,
    /// The account moves to make; empty here when they are stored in pages
    /// (`changes_pages` > 0; see [`Realignment::changes`]).
    pub changes: Vec<Change>,
    /// How many pages of [`PAGE`] account moves are stored apart (0: all inline).
    #[serde(default)]
    pub changes_pages: usize,
    /// What to restore on rollback: the previous parent or rules.
    #[serde(default)]
    pub undo: Option<Proposal>,
    /// Generation right after apply; rollback needs it unchanged.
    #[serde(default)]
    pub applied_generation: Option<u64>,
    /// Why the last apply or rollback stopped part-way (while `applying` or
    /// `rolling-back`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// When (Unix seconds) the apply or rollback under way started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
}

/// A plugin call lasts at most a minute (the manifest's `timeout_ms`, which the host
/// may only lower), so an apply or rollback that started longer ago than this and
/// left no word is dead, not slow.
const IN_PROGRESS_FOR: u64 = 120;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Refuse to touch a realignment that another call may still be applying or rolling
/// back: finishing or undoing it at the same time would race with that call.
fn not_in_progress(r: &Realignment) -> Result<(), Error> {
    match r.started_at {
        Some(t) if r.interrupted.is_none() && now().saturating_sub(t) < IN_PROGRESS_FOR => {
            Err(Error::conflict(format!(
                "realignment `{}` is {} by another call (started {}s ago); try again in {}s",
                r.id,
                if r.status == "applying" {
                    "being applied"
                } else {
                    "being rolled back"
                },
                now().saturating_sub(t),
                IN_PROGRESS_FOR.saturating_sub(now().saturating_sub(t))
            )))
        }
        _ => Ok(()),
    }
}

pub fn store() -> Collection<Realignment> {
    Collection::new(REALIGNMENTS)
}

/// Entries of a diff list kept in the realignment document itself: the document stays
/// small (storage documents are at most 1 MiB) however large the realignment.
pub const INLINE: usize = 50;
/// Entries per stored page of a diff list or of the account moves.
pub const PAGE: usize = 1_000;
/// Account moves kept in the realignment document itself; more go to pages.
pub const INLINE_CHANGES: usize = 200;

fn pages<T: Serialize + serde::de::DeserializeOwned>() -> Collection<Vec<T>> {
    Collection::new(REALIGNMENT_PAGES)
}

fn page_key(id: &str, list: &str, n: usize) -> String {
    format!("{id}/{list}/{n}")
}

/// Store `items` in pages of [`PAGE`] under `list` when there are more than fit
/// inline; returns the inline part, the total and the number of stored pages (0 when
/// everything is inline).
fn paginate<T: Serialize + serde::de::DeserializeOwned + Clone>(
    id: &str,
    list: &str,
    items: Vec<T>,
    inline: usize,
) -> Result<(Vec<T>, usize, usize), Error> {
    let total = items.len();
    if total <= inline {
        return Ok((items, total, 0));
    }
    let store = pages::<T>();
    for (n, chunk) in items.chunks(PAGE).enumerate() {
        store.put(&page_key(id, list, n), &chunk.to_vec())?;
    }
    Ok((items[..inline].to_vec(), total, total.div_ceil(PAGE)))
}

/// Page `page` of a diff list: `account_moves`, or `access/<user id>/gained|lost`.
pub fn diff_page(r: &Realignment, list: &str, page: usize) -> Result<Value, Error> {
    let (inline, total, stored) = match list.split('/').collect::<Vec<_>>().as_slice() {
        ["account_moves"] => (
            &r.diff["account_moves"],
            &r.diff["account_moves_total"],
            &r.diff["account_moves_pages"],
        ),
        ["access", user, which @ ("gained" | "lost")] => {
            let entry = r.diff["access"]
                .as_array()
                .and_then(|a| a.iter().find(|u| u["user_id"] == *user))
                .ok_or_else(|| Error::not_found(format!("user {user} gains or loses nothing in this realignment")))?;
            (
                &entry[*which],
                &entry[format!("{which}_total")],
                &entry[format!("{which}_pages")],
            )
        }
        _ => {
            return Err(Error::invalid(
                "list is `account_moves`, `access/<user id>/gained` or `access/<user id>/lost`",
            )
            .with_field("list", "unknown list"));
        }
    };
    let stored = stored.as_u64().unwrap_or(0) as usize;
    let total = total.as_u64().unwrap_or(0);
    let pages_count = stored.max(1);
    if page >= pages_count {
        return Err(Error::not_found(format!(
            "page {page} of {list}: there are {pages_count}"
        )));
    }
    let items = if stored == 0 {
        inline.clone()
    } else {
        let doc = pages::<Value>()
            .get(&page_key(&r.id, list, page))?
            .ok_or_else(|| Error::internal(format!("page {page} of {list} is missing")))?;
        Value::Array(doc.value)
    };
    Ok(json!({ "list": list, "page": page, "pages": pages_count, "total": total, "items": items }))
}

impl Realignment {
    /// Every account move of the realignment, inline or from its pages.
    pub fn changes(&self) -> Result<Vec<Change>, Error> {
        if self.changes_pages == 0 {
            return Ok(self.changes.clone());
        }
        let store = pages::<Change>();
        let mut all = Vec::new();
        for n in 0..self.changes_pages {
            let doc = store
                .get(&page_key(&self.id, "changes", n))?
                .ok_or_else(|| Error::internal(format!("page {n} of the account moves is missing")))?;
            all.extend(doc.value);
        }
        Ok(all)
    }
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
    let mut access: Vec<Value> = Vec::new();
    for u in all_users {
        let mut entry = json!({ "user_id": u });
        for (which, map) in [("gained", &gained), ("lost", &lost)] {
            let items = expand(map.get(u).unwrap_or(&BTreeSet::new()));
            let (inline, total, stored) = paginate(id, &format!("access/{u}/{which}"), items, INLINE)?;
            entry[which] = json!(inline);
            entry[format!("{which}_total")] = json!(total);
            entry[format!("{which}_pages")] = json!(stored);
        }
        access.push(entry);
    }

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
    let (moves, moves_total, moves_pages) = paginate(id, "account_moves", moves, INLINE)?;
    // The moves apply needs: inline while there are few, else all in pages.
    let (changes, _, changes_pages) = paginate(id, "changes", changes, INLINE_CHANGES)?;
    let changes = if changes_pages == 0 { changes } else { Vec::new() };
    Ok(Realignment {
        id: id.to_string(),
        status: "proposed".into(),
        proposal: p,
        generation,
        period,
        diff: json!({
            "account_moves": moves,
            "account_moves_total": moves_total,
            "account_moves_pages": moves_pages,
            "access": access,
            "rollups": rollups,
        }),
        changes,
        changes_pages,
        undo: None,
        applied_generation: None,
        interrupted: None,
        started_at: None,
    })
}

/// The proposal that restores what `p` changes, read from the territory as it is now.
fn undo_of(p: &Proposal) -> Result<Proposal, Error> {
    let t = model::load(territory_of(p))?.value;
    Ok(match p {
        Proposal::Move { .. } => Proposal::Move {
            territory_id: t.id,
            parent_id: t.parent_id,
        },
        Proposal::Rules { .. } => Proposal::Rules {
            territory_id: t.id,
            rules: t.rules,
        },
    })
}

/// Bring the territory to what `p` describes: its host group and its stored document.
/// Running it again changes nothing, so an interrupted apply can simply run it again.
fn execute(p: &Proposal) -> Result<(), Error> {
    let id = territory_of(p);
    let doc = model::load(id)?;
    let mut t = doc.value.clone();
    match p {
        Proposal::Move { parent_id, .. } => {
            sharing::move_group(id, parent_id.as_deref())?;
            t.parent_id = parent_id.clone();
        }
        Proposal::Rules { rules, .. } => t.rules = rules.clone(),
    }
    if t != doc.value {
        model::replace(&mut t, doc.version)?;
    }
    Ok(())
}

/// Make the alignment `target` with the account moves `changes`: the structural
/// change, then the shares and stored assignments. Every step converges (re-running
/// it after a partial run finishes the job), which is what makes an apply resumable.
fn converge(target: &Proposal, changes: &[Change]) -> Result<(), Error> {
    execute(target)?;
    let model = Model::load()?;
    assign::apply(&model, changes, false)
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

/// Store `r` if nobody changed it since `version` (a concurrent apply, discard or
/// rollback of the same realignment loses here); returns the new version.
fn save(r: &Realignment, version: u64) -> Result<u64, Error> {
    store().replace(&r.id, r, version)
}

impl Realignment {
    /// Enter (or, resuming, re-enter) the journal state `status` and store it.
    fn start(&mut self, status: &str, version: u64) -> Result<u64, Error> {
        self.status = status.into();
        self.started_at = Some(now());
        self.interrupted = None;
        save(self, version)
    }

    /// Leave the journal for `status` (the caller stores it).
    fn finish(&mut self, status: &str) {
        self.status = status.into();
        self.started_at = None;
        self.interrupted = None;
    }

    /// What undoes the realignment, recorded when its apply started.
    fn undo_info(&self) -> Result<Proposal, Error> {
        self.undo
            .clone()
            .ok_or_else(|| Error::internal("realignment being applied or rolled back without undo information"))
    }

    /// A step failed and neither finished nor could be reverted: keep the journal
    /// state, with why, and tell the caller how to go on.
    fn stopped(&mut self, version: u64, e: &Error, what: &str, go_on: &str) -> Error {
        self.interrupted = Some(e.message().to_string());
        if let Err(saved) = save(self, version) {
            return saved;
        }
        Error::new(e.kind(), format!("{what} stopped part-way ({}); {go_on}", e.message()))
    }
}

fn not_in_state(r: &Realignment, expected: &str) -> Error {
    Error::conflict(format!("realignment `{}` is {}, not {expected}", r.id, r.status))
}

/// Apply a proposed realignment. It is journalled first: the realignment becomes
/// `applying` with what undoes it, and the generation moves on (so no other preview
/// can apply meanwhile); then the structure and the account moves converge, and it
/// becomes `applied`. If a step fails, what was done is undone and the realignment is
/// `proposed` again (its preview is stale by then). If even that fails — or the call
/// died part-way (a timeout, a crash) — it stays `applying`: applying again finishes
/// it, discarding undoes it. Either way no partial alignment is left unexplained.
pub fn apply(r: &mut Realignment, version: u64) -> Result<(), Error> {
    let version = match r.status.as_str() {
        "proposed" => {
            if model::generation()? != r.generation {
                return Err(Error::conflict(
                    "territories, rules, members or assignments changed since this preview; preview again",
                ));
            }
            r.undo = Some(undo_of(&r.proposal)?);
            let version = r.start("applying", version)?;
            model::bump()?;
            version
        }
        "applying" => {
            not_in_progress(r)?;
            r.start("applying", version)?
        }
        _ => return Err(not_in_state(r, "proposed")),
    };
    let undo = r.undo_info()?;
    let changes = r.changes()?;
    if let Err(e) = converge(&r.proposal, &changes) {
        if converge(&undo, &reversed(&changes)).is_err() {
            return Err(r.stopped(
                version,
                &e,
                "apply",
                "apply again to finish it or discard it to undo it",
            ));
        }
        r.finish("proposed");
        r.undo = None;
        save(r, version)?;
        model::bump()?;
        return Err(Error::new(
            e.kind(),
            format!("apply failed, and what it had changed was undone: {}", e.message()),
        ));
    }
    r.applied_generation = Some(model::bump()?);
    r.finish("applied");
    save(r, version)?;
    audit::append(
        "realignment.applied",
        "realignment",
        Some(&r.id),
        Some(&json!({"generation": r.generation})),
        Some(&json!({"proposal": r.proposal, "account_moves": changes.len()})),
    )?;
    Ok(())
}

/// Discard a proposed realignment, or undo what an interrupted apply (`applying`)
/// had done and then discard it.
pub fn discard(r: &mut Realignment, version: u64) -> Result<(), Error> {
    match r.status.as_str() {
        "proposed" => {}
        "applying" => {
            not_in_progress(r)?;
            let undo = r.undo_info()?;
            converge(&undo, &reversed(&r.changes()?)).map_err(|e| {
                Error::new(
                    e.kind(),
                    format!("could not undo the interrupted apply ({}); discard again", e.message()),
                )
            })?;
            model::bump()?;
            audit::append(
                "realignment.apply_undone",
                "realignment",
                Some(&r.id),
                Some(&json!({"proposal": r.proposal, "interrupted": r.interrupted})),
                Some(&json!({"restored": undo})),
            )?;
        }
        _ => return Err(not_in_state(r, "proposed")),
    }
    r.finish("discarded");
    save(r, version)?;
    Ok(())
}

/// Restore the alignment before an applied realignment, journalled like [`apply`]:
/// `rolling-back` first; on a failure the realignment is re-applied and stays
/// `applied`, or, if that fails too, stays `rolling-back` for a rollback to finish.
pub fn rollback(r: &mut Realignment, version: u64) -> Result<(), Error> {
    let version = match r.status.as_str() {
        "applied" => {
            if Some(model::generation()?) != r.applied_generation {
                return Err(Error::conflict(
                    "the alignment changed after this realignment was applied; rolling back would undo those changes too",
                ));
            }
            let version = r.start("rolling-back", version)?;
            model::bump()?;
            version
        }
        "rolling-back" => {
            not_in_progress(r)?;
            r.start("rolling-back", version)?
        }
        _ => return Err(not_in_state(r, "applied")),
    };
    let undo = r.undo_info()?;
    let changes = r.changes()?;
    if let Err(e) = converge(&undo, &reversed(&changes)) {
        if converge(&r.proposal, &changes).is_err() {
            return Err(r.stopped(version, &e, "rollback", "roll back again to finish it"));
        }
        r.finish("applied");
        r.applied_generation = Some(model::bump()?);
        save(r, version)?;
        return Err(Error::new(
            e.kind(),
            format!("rollback failed; the realignment is still applied: {}", e.message()),
        ));
    }
    model::bump()?;
    r.finish("rolled-back");
    save(r, version)?;
    audit::append(
        "realignment.rolled_back",
        "realignment",
        Some(&r.id),
        Some(&json!({"proposal": r.proposal})),
        Some(&json!({"restored": undo})),
    )?;
    Ok(())
}
