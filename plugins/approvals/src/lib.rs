//! Approvals: approval processes for CRM records — sequential steps, parallel and
//! hybrid branches with any/all/quorum rules, step criteria, delegation, escalation
//! on timeouts, recall and reassignment — with the record locked while a request is
//! pending and every line of a request's history written to the host's audit chain.
//! See docs/approvals.md.

mod clock;
mod flow;
mod model;
mod request;

use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::storage::{Collection, Query};
use plinth_sdk::{
    Caller, Error, ErrorKind, Event, Plugin, Request as HttpRequest, Response, Router, export_plugin, records,
};
use serde::Deserialize;

use flow::{Delegation, after_commit, commit, delegations, load, requests};
use model::{Process, ProcessInput};
use request::{Request, Status};

struct Approvals;

fn processes() -> Collection<Process> {
    Collection::new("processes")
}

/// The next id of a kind (`p000001`, `r000001`): a counter in storage.
fn next_id(kind: &str, prefix: &str) -> Result<String, Error> {
    let seq: Collection<u64> = Collection::new("seq");
    let n = seq.update(kind, |n| n.unwrap_or(0) + 1)?;
    Ok(format!("{prefix}{:06}", n.value))
}

fn user_of(req: &HttpRequest) -> Result<String, Error> {
    req.caller
        .user_id
        .clone()
        .ok_or_else(|| Error::denied("approvals are made by users"))
}

fn is_admin(caller: &Caller) -> bool {
    caller.is_at_least("admin")
}

/// A definition problem list as a 422 problem.
fn unprocessable(problems: Vec<(String, String)>) -> Response {
    let mut e = Error::invalid("the process definition is not valid");
    for (field, message) in problems {
        e = e.with_field(field, message);
    }
    Response::from_error(&e).with_status(422)
}

/// Whether `user` may see `req`: its submitter, anyone it was ever assigned to, admins.
fn may_see(req: &Request, user: &str, caller: &Caller) -> bool {
    is_admin(caller) || req.submitter == user || req.participants.iter().any(|p| p == user)
}

fn summary(req: &Request) -> Value {
    json!({
        "id": req.id, "process_id": req.process.id, "process": req.process.def.name,
        "object": req.object, "record_id": req.record_id, "submitter": req.submitter,
        "status": req.status, "step": req.step,
        "step_name": req.process.def.steps.get(req.step).map(|s| s.name.clone()),
        "waiting_for": req.waiting_for(), "submitted_at": req.submitted_at, "finished_at": req.finished_at,
    })
}

fn view(req: &Request) -> Value {
    let mut v = summary(req);
    v["comment"] = json!(req.comment);
    v["process_version"] = json!(req.process.version);
    v["branches"] = json!(req.branches);
    v["timeline"] = json!(req.timeline);
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submit {
    object: String,
    record_id: String,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    process_id: Option<String>,
}

/// The active process for a record: the one named, or the first by order whose entry
/// criteria match.
fn choose(
    object: &str,
    fields: &plinth_sdk::serde_json::Map<String, Value>,
    named: Option<&str>,
) -> Result<Option<Process>, Error> {
    let mut all: Vec<Process> = Vec::new();
    let mut cursor = None;
    loop {
        let page = processes().list(Query::new().cursor(cursor).limit(500))?;
        all.extend(page.items.into_iter().map(|d| d.value));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    all.retain(|p| p.def.active && p.def.object == object && named.is_none_or(|n| n == p.id));
    all.sort_by(|a, b| a.def.order.cmp(&b.def.order).then_with(|| a.id.cmp(&b.id)));
    Ok(all.into_iter().find(|p| model::all_hold(&p.def.entry, fields)))
}

/// Submit `record_id` of `object` for approval as `submitter`.
fn submit(submitter: &str, body: Submit) -> Result<Request, Error> {
    if !model::OBJECTS.contains(&body.object.as_str()) {
        return Err(
            Error::invalid(format!("no approval processes for `{}`", body.object)).with_field("object", "unknown")
        );
    }
    // Anyone who can see the record may submit it: the read runs as them.
    let record = records::get(&body.object, &body.record_id)?;
    let mut fields = record.fields.clone();
    fields.insert("owner_id".into(), json!(record.owner_id));
    let process = choose(&body.object, &fields, body.process_id.as_deref())?.ok_or_else(|| {
        Error::invalid(format!(
            "no active process for {} {} matches it",
            body.object, body.record_id
        ))
    })?;
    if Collection::<Value>::new("open")
        .get(&format!("{}:{}", body.object, body.record_id))?
        .is_some()
    {
        return Err(Error::conflict(format!(
            "{} {} already has a pending approval request",
            body.object, body.record_id
        )));
    }
    let now = clock::now();
    let mut req = Request {
        id: next_id("request", "r")?,
        process,
        object: body.object.clone(),
        record_id: body.record_id.clone(),
        submitter: submitter.to_string(),
        owner_id: record.owner_id.clone(),
        record: fields,
        comment: body.comment.clone(),
        status: Status::Pending,
        step: 0,
        round: 0,
        branches: Vec::new(),
        participants: Vec::new(),
        timeline: Vec::new(),
        submitted_at: now.clone(),
        finished_at: None,
    };
    req.log(
        &now,
        "submitted",
        Some(submitter),
        None,
        None,
        json!({ "comment": body.comment, "process_version": req.process.version }),
    );
    flow::start_step(&mut req, &now)?;
    let reason = format!("approval request {} ({})", req.id, req.process.def.name);
    records::lock(&body.object, &body.record_id, &reason)?;
    if let Err(e) = commit(None, &req) {
        let _ = records::unlock(&body.object, &body.record_id);
        return Err(e);
    }
    after_commit(None, &req)?;
    Ok(req)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Comment {
    #[serde(default)]
    comment: Option<String>,
}

fn decide(req: &HttpRequest, approve: bool) -> Result<Response, Error> {
    let user = user_of(req)?;
    let body: Comment = if req.body.is_empty() {
        Comment::default()
    } else {
        req.json()?
    };
    let (before, version) = load(req.param("id")?)?;
    if !may_see(&before, &user, &req.caller) {
        return Err(Error::not_found(format!("no approval request {}", before.id)));
    }
    if before.status != Status::Pending {
        return Err(Error::conflict(format!(
            "the request is already {}",
            before.status.as_str()
        )));
    }
    let now = clock::now();
    let mut after = before.clone();
    if after.decide(&user, approve, body.comment.as_deref(), &now).is_none() {
        return Err(Error::denied("you are not an approver this request waits for"));
    }
    flow::advance(&mut after, &now)?;
    commit(Some((&before, version)), &after)?;
    after_commit(Some(&before), &after)?;
    Ok(Response::json(&view(&after)))
}

fn recall(req: &HttpRequest) -> Result<Response, Error> {
    let user = user_of(req)?;
    let body: Comment = if req.body.is_empty() {
        Comment::default()
    } else {
        req.json()?
    };
    let (before, version) = load(req.param("id")?)?;
    if !may_see(&before, &user, &req.caller) {
        return Err(Error::not_found(format!("no approval request {}", before.id)));
    }
    if before.submitter != user && !is_admin(&req.caller) {
        return Err(Error::denied("only the submitter (or an admin) may recall a request"));
    }
    if before.status != Status::Pending {
        return Err(Error::conflict(format!(
            "the request is already {}",
            before.status.as_str()
        )));
    }
    let now = clock::now();
    let mut after = before.clone();
    after.log(
        &now,
        "recalled",
        Some(&user),
        None,
        None,
        json!({ "comment": body.comment }),
    );
    flow::finish(&mut after, Status::Recalled, &now);
    commit(Some((&before, version)), &after)?;
    after_commit(Some(&before), &after)?;
    Ok(Response::json(&view(&after)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reassign {
    to: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

fn reassign(req: &HttpRequest) -> Result<Response, Error> {
    let user = user_of(req)?;
    let body: Reassign = req.json()?;
    let (before, version) = load(req.param("id")?)?;
    if !may_see(&before, &user, &req.caller) {
        return Err(Error::not_found(format!("no approval request {}", before.id)));
    }
    if before.status != Status::Pending {
        return Err(Error::conflict(format!(
            "the request is already {}",
            before.status.as_str()
        )));
    }
    // An approver hands their part on; an admin moves anyone's (`from`).
    let from = match (&body.from, is_admin(&req.caller)) {
        (Some(f), true) => f.clone(),
        (Some(f), false) if *f != user => return Err(Error::denied("only admins reassign someone else's approval")),
        _ => user.clone(),
    };
    if before.branches_of(&from).is_empty() {
        return Err(Error::invalid(format!("the request does not wait for {from}"))
            .with_field("from", "not an approver of the current step"));
    }
    let target = plinth_sdk::directory::get(&body.to).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            Error::invalid("no such user").with_field("to", "no such user")
        } else {
            e
        }
    })?;
    if !target.active {
        return Err(Error::invalid("the user is deactivated").with_field("to", "is deactivated"));
    }
    let now = clock::now();
    let mut after = before.clone();
    for i in after.branches_of(&from) {
        let b = &mut after.branches[i];
        let behalf = b
            .assignees
            .iter()
            .find(|a| a.user == from)
            .and_then(|a| a.on_behalf_of.clone());
        b.assignees.retain(|a| a.user != from);
        if !b.assignees.iter().any(|a| a.user == target.id) {
            b.assignees.push(request::Assignee {
                user: target.id.clone(),
                on_behalf_of: Some(behalf.unwrap_or(from.clone())),
            });
        }
        let step = after.step;
        after.log(
            &now,
            "reassigned",
            Some(&user),
            Some(step),
            Some(i),
            json!({ "from": from, "to": target.id, "comment": body.comment }),
        );
    }
    after.note_participants();
    commit(Some((&before, version)), &after)?;
    after_commit(Some(&before), &after)?;
    Ok(Response::json(&view(&after)))
}

fn list_requests(req: &HttpRequest) -> Result<Response, Error> {
    let user = user_of(req)?;
    let status = req.query("status");
    if let Some(s) = status
        && !["pending", "approved", "rejected", "recalled"].contains(&s)
    {
        return Err(
            Error::invalid("unknown status").with_field("status", "must be pending, approved, rejected or recalled")
        );
    }
    let index = match (req.query("assigned"), req.query("submitted")) {
        (Some("me"), None) => "assigned",
        (None, Some("me")) => "submitted",
        _ => {
            return Err(Error::invalid("say whose requests").with_field("assigned", "give assigned=me or submitted=me"));
        }
    };
    let limit: u32 = req.query_parse("limit")?.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::invalid("bad page size").with_field("limit", "must be between 1 and 200"));
    }
    // Oldest first (longest waiting), a page of the index at a time.
    let docs: Collection<Value> = Collection::new(index);
    let query = Query::new()
        .prefix(format!("{user}:"))
        .cursor(req.query("cursor").map(str::to_string))
        .limit(limit);
    let page = docs.list(query)?;
    let mut out = Vec::new();
    for doc in page.items {
        let id = doc.key.rsplit(':').next().unwrap_or_default();
        if let Some(r) = requests().get(id)?
            && status.is_none_or(|s| s == r.value.status.as_str())
        {
            out.push(summary(&r.value));
        }
    }
    Ok(Response::json(&json!({ "data": out, "next_cursor": page.next_cursor })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegationInput {
    delegate: String,
    from: String,
    until: String,
}

fn set_delegation(req: &HttpRequest) -> Result<Response, Error> {
    let user = user_of(req)?;
    let body: DelegationInput = req.json()?;
    let mut problems = Vec::new();
    if !clock::is_utc(&body.from) {
        problems.push(("from", "must be RFC 3339 UTC, like 2026-12-24T00:00:00Z"));
    }
    if !clock::is_utc(&body.until) {
        problems.push(("until", "must be RFC 3339 UTC, like 2027-01-02T00:00:00Z"));
    }
    if problems.is_empty() && body.until <= body.from {
        problems.push(("until", "must be after from"));
    }
    if body.delegate == user {
        problems.push(("delegate", "cannot be yourself"));
    }
    // A delegation whose chain leads back to this user while both apply is a cycle.
    let mut at = body.delegate.clone();
    for _ in 0..10 {
        match delegations().get(&at)? {
            Some(d) if d.value.from < body.until && body.from < d.value.until => {
                if d.value.delegate == user {
                    problems.push(("delegate", "would close a cycle of delegations"));
                    break;
                }
                at = d.value.delegate;
            }
            _ => break,
        }
    }
    if !problems.is_empty() {
        let mut e = Error::invalid("the delegation is not valid");
        for (f, m) in problems {
            e = e.with_field(f, m);
        }
        return Ok(Response::from_error(&e).with_status(422));
    }
    let delegate = plinth_sdk::directory::get(&body.delegate).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            Error::invalid("no such user").with_field("delegate", "no such user")
        } else {
            e
        }
    })?;
    let d = Delegation {
        delegate: delegate.id,
        from: body.from,
        until: body.until,
    };
    delegations().put(&user, &d)?;
    plinth_sdk::audit::append::<Value, _>("delegation.set", "user", Some(&user), None, Some(&d))?;
    Ok(Response::json(&d))
}

impl Plugin for Approvals {
    fn router() -> Router {
        Router::new()
            .post("/processes", |req| {
                let input: ProcessInput = req.json()?;
                let problems = model::check(&input);
                if !problems.is_empty() {
                    return Ok(unprocessable(problems));
                }
                let p = Process {
                    id: next_id("process", "p")?,
                    version: 1,
                    def: input,
                };
                processes().insert(&p.id, &p)?;
                plinth_sdk::audit::append::<Value, _>(
                    "process.create",
                    "approval_process",
                    Some(&p.id),
                    None,
                    Some(&p),
                )?;
                Ok(Response::created(&p))
            })
            .get("/processes", |_req| {
                let page = processes().list(Query::new().limit(500))?;
                let all: Vec<Process> = page.items.into_iter().map(|d| d.value).collect();
                Ok(Response::json(&json!({ "data": all })))
            })
            .get("/processes/{id}", |req| {
                let id = req.param("id")?;
                let p = processes()
                    .get(id)?
                    .ok_or_else(|| Error::not_found(format!("no process {id}")))?;
                Ok(Response::json(&p.value))
            })
            .put("/processes/{id}", |req| {
                let id = req.param("id")?;
                let input: ProcessInput = req.json()?;
                let problems = model::check(&input);
                if !problems.is_empty() {
                    return Ok(unprocessable(problems));
                }
                let current = processes()
                    .get(id)?
                    .ok_or_else(|| Error::not_found(format!("no process {id}")))?;
                let p = Process {
                    id: id.to_string(),
                    version: current.value.version + 1,
                    def: input,
                };
                processes().replace(id, &p, current.version)?;
                plinth_sdk::audit::append(
                    "process.update",
                    "approval_process",
                    Some(id),
                    Some(&current.value),
                    Some(&p),
                )?;
                Ok(Response::json(&p))
            })
            .delete("/processes/{id}", |req| {
                let id = req.param("id")?;
                let current = processes()
                    .get(id)?
                    .ok_or_else(|| Error::not_found(format!("no process {id}")))?;
                processes().delete(id, Some(current.version))?;
                plinth_sdk::audit::append::<_, Value>(
                    "process.delete",
                    "approval_process",
                    Some(id),
                    Some(&current.value),
                    None,
                )?;
                Ok(Response::no_content())
            })
            .post("/requests", |req| {
                let user = user_of(req)?;
                let body: Submit = req.json()?;
                let r = submit(&user, body)?;
                Ok(Response::created(&view(&r)))
            })
            .get("/requests", list_requests)
            .get("/requests/{id}", |req| {
                let user = user_of(req)?;
                let (r, _) = load(req.param("id")?)?;
                if !may_see(&r, &user, &req.caller) {
                    return Err(Error::not_found(format!("no approval request {}", r.id)));
                }
                Ok(Response::json(&view(&r)))
            })
            .post("/requests/{id}/approve", |req| decide(req, true))
            .post("/requests/{id}/reject", |req| decide(req, false))
            .post("/requests/{id}/recall", recall)
            .post("/requests/{id}/reassign", reassign)
            .get("/delegations/me", |req| {
                let user = user_of(req)?;
                let d = delegations().get(&user)?.map(|d| d.value);
                Ok(Response::json(&json!({ "delegation": d })))
            })
            .put("/delegations/me", set_delegation)
            .delete("/delegations/me", |req| {
                let user = user_of(req)?;
                let removed = delegations().delete(&user, None)?;
                Ok(Response::json(&json!({ "removed": removed })))
            })
    }

    fn on_timer(_caller: &Caller, key: &str, payload: &str) -> Result<(), Error> {
        flow::on_timer(key, payload)
    }

    /// Auto-submit: a record created or changed to match a process with
    /// `auto_submit` is submitted for its owner — unless it is pending or approved
    /// already, or the change was this plugin's own.
    fn on_event(caller: &Caller, event: Event) -> Result<(), Error> {
        if event.cause.as_deref() == Some("approvals") {
            return Ok(());
        }
        let payload: Value = event.payload_json()?;
        let (Some(object), Some(id)) = (payload["object"].as_str(), payload["id"].as_str()) else {
            return Ok(());
        };
        let record = &payload["record"];
        let status = record["fields"]["approval_status"].as_str();
        if matches!(status, Some("pending" | "approved")) {
            return Ok(());
        }
        let mut fields = record["fields"].as_object().cloned().unwrap_or_default();
        fields.insert("owner_id".into(), record["owner_id"].clone());
        let Some(process) = choose(object, &fields, None)? else {
            return Ok(());
        };
        if !process.def.auto_submit {
            return Ok(());
        }
        let submitter = caller
            .user_id
            .clone()
            .or_else(|| record["owner_id"].as_str().map(str::to_string))
            .ok_or_else(|| Error::invalid("the record has no owner to submit for"))?;
        let body = Submit {
            object: object.to_string(),
            record_id: id.to_string(),
            comment: Some("submitted automatically".into()),
            process_id: Some(process.id),
        };
        match submit(&submitter, body) {
            // Already pending (a retried event, or a race with a manual submit).
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

export_plugin!(Approvals);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_matches_the_manifest() {
        Approvals::router()
            .check_against_manifest(include_str!("../plugin.toml"))
            .unwrap();
    }
}
