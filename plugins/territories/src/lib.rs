//! Territory hierarchy plugin: territories of unlimited depth, each backed 1:1 by a host
//! group (capability `sharing`), so the host enforces recursive visibility on every
//! REST read, list and aggregate. See `docs/territories.md`.

mod assign;
mod follow;
mod model;
mod realign;
mod rollup;
mod rules;

use std::collections::HashMap;

use plinth_sdk::sharing::{self, Group, Share};
use plinth_sdk::{Caller, Error, Event, Plugin, Request, Response, Router, audit, serde_json};
use serde::Deserialize;
use serde_json::{Value, json};

use model::{AccessLevels, Model, Territory};

struct Territories;

fn limit(req: &Request) -> Result<u32, Error> {
    let l = req.query_parse::<u32>("limit")?.unwrap_or(100);
    if !(1..=1000).contains(&l) {
        return Err(Error::invalid("limit is 1–1000").with_field("limit", "1–1000"));
    }
    Ok(l)
}

fn view(t: &Territory, depth: Option<u32>) -> Value {
    let mut v = json!({
        "id": t.id, "name": t.name, "type": t.kind, "parent_id": t.parent_id,
        "archived": t.archived, "access": t.access, "members": t.members.len(),
        "rules": t.rules.len(),
    });
    if let Some(d) = depth {
        v["depth"] = json!(d);
    }
    v
}

/// Host groups joined with their territory documents.
fn views(groups: &[Group]) -> Result<Vec<Value>, Error> {
    groups
        .iter()
        .map(|g| {
            let t = model::load(&g.id)?.value;
            Ok(view(&t, Some(g.depth)))
        })
        .collect()
}

fn page(groups: &[Group], next: Option<String>) -> Result<Response, Error> {
    Ok(Response::json(&json!({ "data": views(groups)?, "next_cursor": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTerritory {
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    access: Option<AccessLevels>,
}

fn create(req: &Request) -> Result<Response, Error> {
    let body: NewTerritory = req.json()?;
    let name = model::valid_name(&body.name)?;
    let kind = model::valid_type(body.kind.as_deref().unwrap_or("territory"))?;
    if let Some(p) = &body.parent_id {
        let parent = model::load(p).map_err(|e| e.with_field("parent_id", "unknown territory"))?;
        if parent.value.archived {
            return Err(Error::conflict(format!("parent `{p}` is archived")));
        }
    }
    let g = sharing::create_group(&name, body.parent_id.as_deref())?;
    let mut t = Territory {
        id: g.id.clone(),
        name,
        kind,
        parent_id: body.parent_id,
        archived: false,
        access: body.access.unwrap_or_default(),
        members: Default::default(),
        rules: vec![],
        ruled: false,
    };
    model::insert(&mut t)?;
    audit::append("territory.created", "territory", Some(&t.id), None::<&Value>, Some(&t))?;
    model::bump()?;
    Ok(Response::created(&view(&t, Some(g.depth))))
}

fn path_of(id: &str) -> Result<(String, Vec<String>), Error> {
    let chain = sharing::ancestors(id)?;
    let names: Vec<String> = chain.iter().map(|g| g.name.clone()).collect();
    Ok((
        format!("/{}", names.join("/")),
        chain.into_iter().map(|g| g.id).collect(),
    ))
}

fn get(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let t = model::load(id)?.value;
    let (path, ids) = path_of(id)?;
    let mut v = view(&t, Some(ids.len().saturating_sub(1) as u32));
    v["path"] = json!(path);
    v["path_ids"] = json!(ids);
    v["access"] = json!(t.access);
    v["members"] = json!(t.members);
    v["rules"] = json!(t.rules);
    Ok(Response::json(&v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    access: Option<AccessLevels>,
}

/// Re-make every share of a territory's group at its (new) access levels.
fn reshare(t: &Territory) -> Result<(), Error> {
    let mut cursor = None;
    loop {
        let p = sharing::group_shares(&t.id, cursor.as_deref(), 1000)?;
        let shares: Vec<Share> = p
            .shares
            .iter()
            .map(|s| Share::new(&s.object, &s.record_id, &t.id, t.access.for_object(&s.object).access()))
            .collect();
        sharing::add_shares(&shares)?;
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

fn patch(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let body: Patch = req.json()?;
    let doc = model::load(id)?;
    let before = doc.value.clone();
    let mut t = doc.value;
    if let Some(n) = &body.name {
        t.name = model::valid_name(n)?;
    }
    if let Some(k) = &body.kind {
        t.kind = model::valid_type(k)?;
    }
    if t.name != before.name {
        sharing::rename_group(id, &t.name)?;
    }
    if let Some(a) = body.access {
        t.access = a;
    }
    model::replace(&mut t, doc.version)?;
    if t.access != before.access {
        reshare(&t)?;
    }
    audit::append("territory.updated", "territory", Some(id), Some(&before), Some(&t))?;
    model::bump()?;
    Ok(Response::json(&view(&t, None)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    parent_id: Option<String>,
}

fn move_territory(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let body: Move = req.json()?;
    let doc = model::load(id)?;
    if doc.value.archived {
        return Err(Error::conflict(format!("territory `{id}` is archived")));
    }
    if let Some(p) = &body.parent_id {
        let parent = model::load(p).map_err(|e| e.with_field("parent_id", "unknown territory"))?;
        if parent.value.archived {
            return Err(Error::conflict(format!("parent `{p}` is archived")));
        }
        let chain = sharing::ancestors(p)?;
        if chain.iter().any(|g| g.id == id) {
            let path: Vec<String> = chain.iter().map(|g| g.name.clone()).collect();
            return Err(Error::conflict(format!(
                "cannot move territory `{id}` under itself or its own descendant `{p}` (/{}): that would make a cycle",
                path.join("/")
            ))
            .with_field("parent_id", "is the territory itself or one of its descendants"));
        }
    }
    let g = sharing::move_group(id, body.parent_id.as_deref())?;
    let mut t = doc.value.clone();
    t.parent_id = body.parent_id.clone();
    model::replace(&mut t, doc.version)?;
    audit::append(
        "territory.moved",
        "territory",
        Some(id),
        Some(&json!({"parent_id": doc.value.parent_id})),
        Some(&json!({"parent_id": t.parent_id})),
    )?;
    model::bump()?;
    Ok(Response::json(&view(&t, Some(g.depth))))
}

fn archive(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let doc = model::load(id)?;
    let mut t = doc.value.clone();
    if t.archived {
        return Ok(Response::json(&view(&t, None)));
    }
    let kids = sharing::children(Some(id), None, 1000)?;
    for k in &kids.groups {
        if !model::load(&k.id)?.value.archived {
            return Err(Error::conflict(format!(
                "territory `{id}` has active child `{}`; archive or move its children first",
                k.id
            )));
        }
    }
    // Unassign its accounts: their shares with this group go, and the stored assignment.
    let model = Model::load()?;
    let mut changes = Vec::new();
    let mut cursor = None;
    loop {
        let p = sharing::group_shares(id, cursor.as_deref(), 1000)?;
        for s in p.shares.iter().filter(|s| s.object == "account") {
            let from = model::assignments()
                .get(&s.record_id)?
                .map(|a| a.value.territories)
                .unwrap_or_else(|| vec![id.to_string()]);
            let to = from.iter().filter(|x| *x != id).cloned().collect();
            changes.push(assign::Change {
                account_id: s.record_id.clone(),
                from,
                to,
            });
        }
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assign::apply(&model, &changes, false)?;
    t.archived = true;
    model::replace(&mut t, doc.version)?;
    audit::append("territory.archived", "territory", Some(id), Some(&doc.value), Some(&t))?;
    model::bump()?;
    Ok(Response::json(
        &json!({"territory": view(&t, None), "unassigned_accounts": changes.len()}),
    ))
}

fn roots(req: &Request) -> Result<Response, Error> {
    let p = sharing::children(None, req.query("cursor"), limit(req)?)?;
    page(&p.groups, p.next_cursor)
}

fn children(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    model::load(id)?;
    let p = sharing::children(Some(id), req.query("cursor"), limit(req)?)?;
    page(&p.groups, p.next_cursor)
}

fn max_depth(req: &Request) -> Result<Option<u32>, Error> {
    let d = req.query_parse::<u32>("max_depth")?;
    if d == Some(0) {
        return Err(Error::invalid("max_depth is at least 1").with_field("max_depth", "at least 1"));
    }
    Ok(d)
}

fn descendants(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    model::load(id)?;
    let p = sharing::descendants(id, max_depth(req)?, req.query("cursor"), limit(req)?)?;
    page(&p.groups, p.next_cursor)
}

fn ancestors(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    model::load(id)?;
    let mut chain = sharing::ancestors(id)?;
    chain.pop();
    Ok(Response::json(&json!({ "data": views(&chain)? })))
}

fn path(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    model::load(id)?;
    let (path, ids) = path_of(id)?;
    Ok(Response::json(&json!({ "path": path, "ids": ids })))
}

fn siblings(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let t = model::load(id)?.value;
    let p = sharing::children(t.parent_id.as_deref(), req.query("cursor"), limit(req)?)?;
    let others: Vec<Group> = p.groups.into_iter().filter(|g| g.id != id).collect();
    page(&others, p.next_cursor)
}

/// The subtree as nested nodes. A page holds up to `limit` descendants, nearest first;
/// the first page is rooted at the territory, later pages (with `cursor`) return the
/// fragments whose parents were on earlier pages, each naming its `parent_id`.
fn subtree(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let root = model::load(id)?.value;
    let cursor = req.query("cursor");
    let p = sharing::descendants(id, max_depth(req)?, cursor, limit(req)?)?;
    let mut nodes: Vec<Value> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut parents: Vec<Option<String>> = Vec::new();
    if cursor.is_none() {
        index.insert(id.to_string(), 0);
        nodes.push(view(&root, Some(0)));
        parents.push(None);
    }
    for (g, v) in p.groups.iter().zip(views(&p.groups)?) {
        index.insert(g.id.clone(), nodes.len());
        nodes.push(v);
        parents.push(g.parent_id.clone());
    }
    // Attach children to parents from the deepest up (descendants come nearest first).
    let mut children: Vec<Vec<Value>> = vec![Vec::new(); nodes.len()];
    let mut tops = Vec::new();
    for i in (0..nodes.len()).rev() {
        let mut node = std::mem::take(&mut nodes[i]);
        let mut kids = std::mem::take(&mut children[i]);
        kids.reverse();
        node["children"] = Value::Array(kids);
        match parents[i].as_ref().and_then(|p| index.get(p)) {
            Some(&pi) => children[pi].push(node),
            None => tops.push(node),
        }
    }
    tops.reverse();
    if cursor.is_none() {
        Ok(Response::json(
            &json!({ "tree": tops.pop(), "next_cursor": p.next_cursor }),
        ))
    } else {
        Ok(Response::json(
            &json!({ "fragments": tops, "next_cursor": p.next_cursor }),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Role {
    role: String,
}

fn put_member(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let user = req.param("user_id")?;
    let body: Role = req.json()?;
    if !model::ROLES.contains(&body.role.as_str()) {
        return Err(Error::invalid("role is owner, member or forecast-manager")
            .with_field("role", "owner, member or forecast-manager"));
    }
    let doc = model::load(id)?;
    sharing::add_member(id, user, &body.role)?;
    let mut t = doc.value.clone();
    t.members.insert(user.to_string(), body.role.clone());
    model::replace(&mut t, doc.version)?;
    audit::append(
        "territory.member_set",
        "territory",
        Some(id),
        Some(&json!({"user_id": user, "role": doc.value.members.get(user)})),
        Some(&json!({"user_id": user, "role": body.role})),
    )?;
    model::bump()?;
    Ok(Response::json(
        &json!({"territory_id": id, "user_id": user, "role": body.role}),
    ))
}

fn delete_member(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let user = req.param("user_id")?;
    let doc = model::load(id)?;
    let mut t = doc.value.clone();
    let Some(role) = t.members.remove(user) else {
        return Err(Error::not_found(format!(
            "`{user}` is not a member of territory `{id}`"
        )));
    };
    sharing::remove_member(id, user)?;
    model::replace(&mut t, doc.version)?;
    audit::append(
        "territory.member_removed",
        "territory",
        Some(id),
        Some(&json!({"user_id": user, "role": role})),
        None::<&Value>,
    )?;
    model::bump()?;
    Ok(Response::no_content())
}

fn members(req: &Request) -> Result<Response, Error> {
    let t = model::load(req.param("id")?)?.value;
    let data: Vec<Value> = t
        .members
        .iter()
        .map(|(u, r)| json!({"user_id": u, "role": r}))
        .collect();
    Ok(Response::json(&json!({ "data": data })))
}

fn get_rules(req: &Request) -> Result<Response, Error> {
    let t = model::load(req.param("id")?)?.value;
    Ok(Response::json(&json!({ "rules": t.rules })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    rules: Vec<rules::Rule>,
}

fn put_rules(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let body: Rules = req.json()?;
    rules::validate(&body.rules)?;
    let doc = model::load(id)?;
    let mut t = doc.value.clone();
    t.rules = body.rules;
    model::replace(&mut t, doc.version)?;
    audit::append(
        "territory.rules_set",
        "territory",
        Some(id),
        Some(&json!({ "rules": doc.value.rules })),
        Some(&json!({ "rules": t.rules })),
    )?;
    model::bump()?;
    Ok(Response::json(&json!({ "rules": t.rules })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    batch_size: Option<u32>,
}

fn run(req: &Request) -> Result<Response, Error> {
    let body: RunBody = if req.body.is_empty() {
        RunBody::default()
    } else {
        req.json()?
    };
    let batch_size = body.batch_size.unwrap_or(1000);
    if !(1..=5000).contains(&batch_size) {
        return Err(Error::invalid("batch_size is 1–5000").with_field("batch_size", "1–5000"));
    }
    let mut r = assign::Run {
        id: req.caller.request_id.clone(),
        status: "running".into(),
        total: assign::account_count()?,
        processed: 0,
        changed: 0,
        batch_size,
        cursor: None,
        started_by: req.caller.user_id.clone(),
    };
    assign::runs().insert(&r.id, &r)?;
    assign::step(&mut r)?;
    audit::append(
        "assignment.run",
        "assignment_run",
        Some(&r.id),
        None::<&Value>,
        Some(&r),
    )?;
    Ok(Response::created(&r))
}

fn load_run(req: &Request) -> Result<assign::Run, Error> {
    let id = req.param("id")?;
    Ok(assign::runs()
        .get(id)?
        .ok_or_else(|| Error::not_found(format!("no assignment run `{id}`")))?
        .value)
}

fn run_continue(req: &Request) -> Result<Response, Error> {
    let mut r = load_run(req)?;
    assign::step(&mut r)?;
    Ok(Response::json(&r))
}

fn run_get(req: &Request) -> Result<Response, Error> {
    Ok(Response::json(&load_run(req)?))
}

fn account_territories(req: &Request) -> Result<Response, Error> {
    let id = req.param("account_id")?;
    let ids = model::assignments()
        .get(id)?
        .map(|a| a.value.territories)
        .unwrap_or_default();
    Ok(Response::json(&json!({ "account_id": id, "territories": ids })))
}

fn rollup(req: &Request) -> Result<Response, Error> {
    let id = req.param("id")?;
    let t = model::load(id)?.value;
    let period = rollup::Period::from_query(req.query("from"), req.query("to"))?;
    let s = rollup::subtree(id, &period)?;
    Ok(Response::json(&json!({
        "territory_id": t.id, "name": t.name, "period": period, "metrics": s.report(),
    })))
}

#[derive(Deserialize)]
struct ProposalBody {
    #[serde(flatten)]
    proposal: realign::Proposal,
}

fn propose(req: &Request) -> Result<Response, Error> {
    let body: ProposalBody = req.json()?;
    let period = rollup::Period::from_query(req.query("from"), req.query("to"))?;
    let r = realign::preview(&req.caller.request_id, body.proposal, period)?;
    realign::store().insert(&r.id, &r)?;
    Ok(Response::created(&realignment_view(&r)))
}

fn realignment_view(r: &realign::Realignment) -> Value {
    json!({
        "id": r.id, "status": r.status, "proposal": r.proposal, "period": r.period,
        "diff": r.diff, "interrupted": r.interrupted,
    })
}

fn load_realignment(req: &Request) -> Result<(realign::Realignment, u64), Error> {
    let id = req.param("id")?;
    let doc = realign::store()
        .get(id)?
        .ok_or_else(|| Error::not_found(format!("no realignment `{id}`")))?;
    Ok((doc.value, doc.version))
}

fn realignment_get(req: &Request) -> Result<Response, Error> {
    Ok(Response::json(&realignment_view(&load_realignment(req)?.0)))
}

fn realignment_diff(req: &Request) -> Result<Response, Error> {
    let (r, _) = load_realignment(req)?;
    let list = req.query("list").ok_or_else(|| {
        Error::invalid("say which list: ?list=account_moves or access/<user id>/gained|lost")
            .with_field("list", "required")
    })?;
    let page = req.query_parse::<usize>("page")?.unwrap_or(0);
    Ok(Response::json(&realign::diff_page(&r, list, page)?))
}

fn realignment_apply(req: &Request) -> Result<Response, Error> {
    let (mut r, version) = load_realignment(req)?;
    realign::apply(&mut r, version)?;
    Ok(Response::json(&realignment_view(&r)))
}

fn realignment_discard(req: &Request) -> Result<Response, Error> {
    let (mut r, version) = load_realignment(req)?;
    realign::discard(&mut r, version)?;
    Ok(Response::json(&realignment_view(&r)))
}

fn realignment_rollback(req: &Request) -> Result<Response, Error> {
    let (mut r, version) = load_realignment(req)?;
    realign::rollback(&mut r, version)?;
    Ok(Response::json(&realignment_view(&r)))
}

impl Plugin for Territories {
    fn router() -> Router {
        Router::new()
            .post("/territories", create)
            .get("/territories", roots)
            .get("/territories/{id}", get)
            .patch("/territories/{id}", patch)
            .post("/territories/{id}/move", move_territory)
            .post("/territories/{id}/archive", archive)
            .get("/territories/{id}/children", children)
            .get("/territories/{id}/descendants", descendants)
            .get("/territories/{id}/ancestors", ancestors)
            .get("/territories/{id}/path", path)
            .get("/territories/{id}/siblings", siblings)
            .get("/territories/{id}/subtree", subtree)
            .get("/territories/{id}/members", members)
            .put("/territories/{id}/members/{user_id}", put_member)
            .delete("/territories/{id}/members/{user_id}", delete_member)
            .get("/territories/{id}/rules", get_rules)
            .put("/territories/{id}/rules", put_rules)
            .get("/territories/{id}/rollup", rollup)
            .post("/assignment/run", run)
            .get("/assignment/runs/{id}", run_get)
            .post("/assignment/runs/{id}/continue", run_continue)
            .get("/accounts/{account_id}/territories", account_territories)
            .post("/realignments", propose)
            .get("/realignments/{id}", realignment_get)
            .get("/realignments/{id}/diff", realignment_diff)
            .post("/realignments/{id}/apply", realignment_apply)
            .post("/realignments/{id}/discard", realignment_discard)
            .post("/realignments/{id}/rollback", realignment_rollback)
    }

    /// `record.account.created|updated`: (re)assign that one account. Live once the
    /// host delivers record events; the manifest subscribes already.
    fn on_event(_caller: &Caller, event: Event) -> Result<(), Error> {
        follow::on_event(&event)
    }

    /// A first install starts with the `ruled` flags complete (there are no
    /// territories); an upgrade from 0.2 sets them on the stored territories.
    fn on_install(_caller: &Caller, _previous: Option<&str>) -> Result<(), Error> {
        model::backfill_ruled()
    }
}

plinth_sdk::export_plugin!(Territories);

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes above and `plugin.toml`'s `[[endpoints]]` name the same endpoints.
    #[test]
    fn every_declared_endpoint_has_a_route_and_every_route_is_declared() {
        Territories::router()
            .check_against_manifest(include_str!("../plugin.toml"))
            .unwrap_or_else(|problems| panic!("{problems:#?}"));
    }
}
