//! What moves a request, with the host: submitting (lock the record, resolve the first
//! step's approvers), deciding, recalling, reassigning, timeouts, and the one commit
//! that writes a request with its indexes (and, when it ends, the record's outcome
//! fields) in one atomic batch — so two approvers deciding at once cannot both win.

use std::collections::BTreeSet;
use std::time::Duration;

use plinth_sdk::batch::Batch;
use plinth_sdk::notify::Notification;
use plinth_sdk::records;
use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::storage::Collection;
use plinth_sdk::{Error, ErrorKind, audit, directory, events, schedule};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::model::{Approver, TimeoutAction};
use crate::request::{Assignee, BranchState, Outcome, Request, Status};

/// A user's standing delegation: while `from <= now < until`, requests reaching them
/// go to `delegate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// Who stands in.
    pub delegate: String,
    /// From (RFC 3339).
    pub from: String,
    /// Until (RFC 3339, exclusive).
    pub until: String,
}

impl Delegation {
    /// Whether it applies at `now`.
    pub fn active(&self, now: &str) -> bool {
        self.from.as_str() <= now && now < self.until.as_str()
    }
}

pub(crate) fn requests() -> Collection<Request> {
    Collection::new("requests")
}

pub(crate) fn delegations() -> Collection<Delegation> {
    Collection::new("delegations")
}

/// Index key of a user's part in a request.
fn index_key(user: &str, request: &str) -> String {
    format!("{user}:{request}")
}

fn open_key(object: &str, record: &str) -> String {
    format!("{object}:{record}")
}

/// The request and its stored version.
pub fn load(id: &str) -> Result<(Request, u64), Error> {
    let doc = requests()
        .get(id)?
        .ok_or_else(|| Error::not_found(format!("no approval request {id}")))?;
    Ok((doc.value, doc.version))
}

/// Follow `user`'s delegations at `now` (at most 5 hops; a loop stops where it closes).
pub fn delegate_of(user: &str, now: &str) -> Result<Assignee, Error> {
    let mut current = user.to_string();
    let mut seen = vec![current.clone()];
    for _ in 0..5 {
        match delegations().get(&current)? {
            Some(d) if d.value.active(now) && !seen.contains(&d.value.delegate) => {
                current = d.value.delegate.clone();
                seen.push(current.clone());
            }
            _ => break,
        }
    }
    Ok(Assignee {
        on_behalf_of: (current != user).then(|| user.to_string()),
        user: current,
    })
}

fn active_person(id: &str) -> Result<Option<directory::Person>, Error> {
    match directory::get(id) {
        Ok(p) if p.active => Ok(Some(p)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn manager_of(id: &str) -> Result<Option<String>, Error> {
    Ok(active_person(id)?.and_then(|p| p.manager_id))
}

/// The users an approver names, active ones only.
fn resolve(a: &Approver, req: &Request) -> Result<Vec<String>, Error> {
    let mut users = Vec::new();
    let page = |f: &dyn Fn(Option<&str>) -> Result<directory::Page, Error>,
                keep: &dyn Fn(&directory::Person) -> bool|
     -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = f(cursor.as_deref())?;
            out.extend(p.people.into_iter().filter(|p| p.active && keep(p)).map(|p| p.id));
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    };
    match a {
        Approver::User { id } => users.extend(active_person(id)?.map(|p| p.id)),
        Approver::Group { id } => users = page(&|c| directory::group_members(id, c, 500), &|_| true)?,
        Approver::Role { role } => users = page(&|c| directory::list(c, 500), &|p| p.roles.contains(role))?,
        Approver::SubmitterManager => users.extend(manager_of(&req.submitter)?),
        Approver::OwnerManager => users.extend(manager_of(&req.owner_id)?),
        Approver::ManagerChain { levels } => {
            let chain = directory::manager_chain(&req.submitter, *levels)?;
            if chain.len() == *levels as usize {
                users.extend(chain.last().filter(|p| p.active).map(|p| p.id.clone()));
            }
        }
        Approver::Field { field } => {
            if let Some(id) = req.record.get(field).and_then(Value::as_str) {
                users.extend(active_person(id)?.map(|p| p.id));
            }
        }
    }
    Ok(users)
}

/// Start the step at `req.step` or the first later one whose criteria match the record
/// (as it was submitted: it stays locked while pending); finish the request approved
/// when none is left. Fails (422) when a step resolves to nobody.
pub fn start_step(req: &mut Request, now: &str) -> Result<(), Error> {
    let steps = req.process.def.steps.clone();
    while req.step < steps.len() {
        let def = &steps[req.step];
        if !crate::model::all_hold(&def.criteria, &req.record) {
            let step = req.step;
            req.log(now, "step_skipped", None, Some(step), None, json!({ "name": def.name }));
            req.step += 1;
            continue;
        }
        let mut branches = Vec::new();
        for (i, b) in def.branches().into_iter().enumerate() {
            let mut users: Vec<String> = Vec::new();
            for a in &b.approvers {
                users.extend(resolve(a, req)?);
            }
            let mut seen = BTreeSet::new();
            users.retain(|u| seen.insert(u.clone()));
            if users.is_empty() {
                return Err(Error::invalid(format!(
                    "step `{}` has no active approver to ask (branch {i})",
                    def.name
                ))
                .with_field(
                    format!("steps[{}].branches[{i}].approvers", req.step),
                    "resolve to nobody",
                ));
            }
            let mut assignees = Vec::new();
            for u in &users {
                let a = delegate_of(u, now)?;
                if !assignees.iter().any(|x: &Assignee| x.user == a.user) {
                    assignees.push(a);
                }
            }
            branches.push(BranchState {
                name: b.name.clone(),
                rule: b.rule,
                quorum: b.quorum,
                assignees,
                decisions: Vec::new(),
                outcome: Outcome::Pending,
                timeout: b.timeout.clone(),
            });
        }
        req.branches = branches;
        req.note_participants();
        req.round += 1;
        let step = req.step;
        let detail = json!({
            "name": def.name,
            "assignees": req.branches.iter().map(|b| &b.assignees).collect::<Vec<_>>(),
        });
        req.log(now, "step_started", None, Some(step), None, detail);
        return Ok(());
    }
    finish(req, Status::Approved, now);
    Ok(())
}

/// End the request.
pub fn finish(req: &mut Request, status: Status, now: &str) {
    req.status = status;
    req.finished_at = Some(now.to_string());
    req.branches
        .iter_mut()
        .filter(|b| b.outcome == Outcome::Pending)
        .for_each(|b| {
            b.outcome = if status == Status::Approved {
                Outcome::Approved
            } else {
                Outcome::Rejected
            }
        });
    req.log(now, "finished", None, None, None, json!({ "status": status.as_str() }));
}

/// After decisions: if the step is done, go to the next (or finish).
pub fn advance(req: &mut Request, now: &str) -> Result<(), Error> {
    match req.step_outcome() {
        Outcome::Pending => Ok(()),
        Outcome::Rejected => {
            finish(req, Status::Rejected, now);
            Ok(())
        }
        Outcome::Approved => {
            req.step += 1;
            start_step(req, now)
        }
    }
}

/// Write `after` (created when `before` is `None`) with its indexes, and the record's
/// outcome fields when it just ended, in one batch. A concurrent change of the request
/// answers 409.
pub fn commit(before: Option<(&Request, u64)>, after: &Request) -> Result<(), Error> {
    let mut b = Batch::new();
    match before {
        Some((_, version)) => b.put_at("requests", &after.id, after, Some(version))?,
        None => b.put_new("requests", &after.id, after)?,
    };
    let old: BTreeSet<String> = before
        .map(|(r, _)| r.waiting_for())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let new: BTreeSet<String> = after.waiting_for().into_iter().collect();
    for u in old.difference(&new) {
        b.remove("assigned", &index_key(u, &after.id));
    }
    for u in new.difference(&old) {
        b.put("assigned", &index_key(u, &after.id), &json!({ "request": after.id }))?;
    }
    if before.is_none() {
        b.put(
            "submitted",
            &index_key(&after.submitter, &after.id),
            &json!({ "request": after.id }),
        )?;
        b.put_new(
            "open",
            &open_key(&after.object, &after.record_id),
            &json!({ "request": after.id }),
        )?;
    }
    let ended = after.status != Status::Pending && before.is_none_or(|(r, _)| r.status == Status::Pending);
    if ended {
        if before.is_some() {
            b.remove("open", &open_key(&after.object, &after.record_id));
        }
        let outcome = match after.status {
            Status::Approved => &after.process.def.on_approved,
            Status::Rejected => &after.process.def.on_rejected,
            _ => &after.process.def.on_recalled,
        };
        let mut fields = outcome.field_updates.clone();
        fields.insert("approval_status".into(), json!(after.status.as_str()));
        b.update(&after.object, &after.record_id, Value::Object(fields), None);
    } else if before.is_none() {
        b.update(
            &after.object,
            &after.record_id,
            json!({ "approval_status": "pending" }),
            None,
        );
    }
    b.apply().map(|_| ()).map_err(|e| match e.kind() {
        ErrorKind::Conflict if before.is_none() => Error::conflict(format!(
            "{} {} already has a pending approval request",
            after.object, after.record_id
        )),
        ErrorKind::Conflict => Error::conflict(
            "the request changed meanwhile (another decision came first); reload it to see where it stands",
        ),
        _ => e,
    })
}

/// What to do once a change is committed: release the record when the request ended,
/// tell people, emit the outcome event, audit, and set the current round's timers.
pub fn after_commit(before: Option<&Request>, after: &Request) -> Result<(), Error> {
    // The host names them under the plugin: `approvals.request.approved` (event),
    // `plugin.approvals.request.approved` (audit).
    let action = |kind: &str| format!("request.{kind}");
    if after.status != Status::Pending && before.is_none_or(|r| r.status == Status::Pending) {
        records::unlock(&after.object, &after.record_id)?;
        let status = after.status.as_str();
        events::emit(
            &action(status),
            &json!({ "request_id": after.id, "object": after.object, "record_id": after.record_id,
                     "process_id": after.process.id, "submitter": after.submitter, "status": status }),
        )?;
        Notification::new(
            &after.submitter,
            &format!("{}:{status}", after.id),
            "approvals.outcome",
            &format!("Approval {status}: {} {}", after.process.def.name, after.record_id),
        )
        .link(&format!("/api/v1/plugins/approvals/requests/{}", after.id))
        .send()?;
    }
    // New waiting users of this round are notified once per round.
    let old: BTreeSet<String> = before
        .map(Request::waiting_for)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for user in after.waiting_for() {
        if old.contains(&user) {
            continue;
        }
        Notification::new(
            &user,
            &format!("{}:{}:{user}", after.id, after.round),
            "approvals.request",
            &format!(
                "Approve {}: {} {}",
                after.process.def.name, after.object, after.record_id
            ),
        )
        .body(after.comment.as_deref().unwrap_or(""))
        .link(&format!("/api/v1/plugins/approvals/requests/{}", after.id))
        .send()?;
    }
    // Every new history line goes to the host's audit chain, so it is tamper-evident.
    let from = before.map_or(0, |r| r.timeline.len());
    for entry in &after.timeline[from.min(after.timeline.len())..] {
        audit::append::<Value, _>(
            &action(&entry.kind),
            "approval_request",
            Some(&after.id),
            None,
            Some(entry),
        )?;
    }
    if before.is_none_or(|r| r.round != after.round) && after.status == Status::Pending {
        for (i, b) in after.branches.iter().enumerate() {
            let Some(t) = &b.timeout else { continue };
            let payload = json!({ "request": after.id, "round": after.round, "branch": i }).to_string();
            schedule::after(
                Duration::from_secs(t.after_seconds),
                &timer_key("timeout", after, i),
                &payload,
            )?;
            if let Some(before) = t.remind_before_seconds {
                let at = Duration::from_secs(t.after_seconds.saturating_sub(before));
                schedule::after(at, &timer_key("remind", after, i), &payload)?;
            }
        }
    }
    Ok(())
}

fn timer_key(kind: &str, req: &Request, branch: usize) -> String {
    format!("{kind}:{}:{}:{branch}", req.id, req.round)
}

/// A timer of a request's round fired: remind, escalate or decide, unless the request
/// moved on since.
pub fn on_timer(key: &str, payload: &str) -> Result<(), Error> {
    #[derive(Deserialize)]
    struct Due {
        request: String,
        round: u32,
        branch: usize,
    }
    let due: Due =
        plinth_sdk::serde_json::from_str(payload).map_err(|e| Error::invalid(format!("timer payload: {e}")))?;
    let (req, version) = match load(&due.request) {
        Ok(x) => x,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let stale = req.status != Status::Pending
        || req.round != due.round
        || req
            .branches
            .get(due.branch)
            .is_none_or(|b| b.outcome != Outcome::Pending);
    if stale {
        return Ok(());
    }
    let now = clock::now();
    let mut after = req.clone();
    let waiting: Vec<Assignee> = after.branches[due.branch].waiting().cloned().collect();
    if key.starts_with("remind:") {
        for a in &waiting {
            Notification::new(
                &a.user,
                &format!("{}:{}:remind:{}", req.id, req.round, a.user),
                "approvals.reminder",
                &format!("Reminder: approve {} {}", req.object, req.record_id),
            )
            .link(&format!("/api/v1/plugins/approvals/requests/{}", req.id))
            .send()?;
        }
        let users: Vec<&str> = waiting.iter().map(|a| a.user.as_str()).collect();
        let step = after.step;
        after.log(
            &now,
            "reminded",
            Some("system"),
            Some(step),
            Some(due.branch),
            json!({ "users": users }),
        );
        commit(Some((&req, version)), &after)?;
        return after_commit(Some(&req), &after);
    }
    let Some(action) = after.branches[due.branch].timeout.as_ref().map(|t| t.action.clone()) else {
        return Ok(());
    };
    let step = after.step;
    match action {
        TimeoutAction::Approve | TimeoutAction::Reject => {
            let approve = action == TimeoutAction::Approve;
            let b = &mut after.branches[due.branch];
            b.decisions.push(crate::request::Decision {
                user: "system".into(),
                on_behalf_of: None,
                approve,
                comment: Some("timed out".into()),
                at: now.clone(),
            });
            b.outcome = if approve { Outcome::Approved } else { Outcome::Rejected };
            let kind = if approve { "approved" } else { "rejected" };
            after.log(
                &now,
                kind,
                Some("system"),
                Some(step),
                Some(due.branch),
                json!({ "comment": "timed out" }),
            );
            advance(&mut after, &now)?;
        }
        TimeoutAction::EscalateToManager | TimeoutAction::EscalateToUser { .. } => {
            let mut moves = Vec::new();
            let b = &mut after.branches[due.branch];
            for a in waiting {
                let target = match &action {
                    TimeoutAction::EscalateToUser { id } => Some(id.clone()),
                    _ => manager_of(a.on_behalf_of.as_deref().unwrap_or(&a.user))?,
                };
                let Some(target) = target.filter(|t| *t != a.user) else {
                    continue;
                };
                let to = delegate_of(&target, &now)?;
                b.assignees.retain(|x| x.user != a.user);
                if !b.assignees.iter().any(|x| x.user == to.user) {
                    b.assignees.push(Assignee {
                        user: to.user.clone(),
                        on_behalf_of: Some(a.on_behalf_of.clone().unwrap_or(a.user.clone())),
                    });
                }
                moves.push(json!({ "from": a.user, "to": to.user }));
            }
            after.note_participants();
            after.round += 1;
            after.log(
                &now,
                "escalated",
                Some("system"),
                Some(step),
                Some(due.branch),
                json!({ "moves": moves }),
            );
        }
    }
    commit(Some((&req, version)), &after)?;
    after_commit(Some(&req), &after)
}
