//! Applying assignments: shares with the territories' host groups, and the stored
//! assignment per account. Runs over all accounts go page by page and keep their
//! progress in storage, so a run survives across calls and is readable while it goes.

use std::collections::{BTreeSet, HashMap};

use plinth_sdk::records::{self, Find, Op};
use plinth_sdk::sharing::{self, MAX_SHARES_PER_CALL, Share};
use plinth_sdk::storage::{Batch, Collection};
use plinth_sdk::{Error, serde_json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{self, ASSIGNMENTS, Assignment, Model, RUNS};
use crate::rules::{self, NUMBER_FIELDS, TEXT_FIELDS};

/// Objects that follow their account into its territories.
pub const CHILD_OBJECTS: [&str; 2] = ["opportunity", "contact"];

/// Account fields a rule can test.
pub fn rule_fields() -> Vec<&'static str> {
    TEXT_FIELDS.iter().chain(NUMBER_FIELDS.iter()).copied().collect()
}

/// Account id → `(object, id)` of its opportunities and contacts.
pub type Children = HashMap<String, Vec<(&'static str, String)>>;

/// The opportunities and contacts of each account.
pub fn children_of(accounts: &[String]) -> Result<Children, Error> {
    let mut out: Children = HashMap::new();
    for object in CHILD_OBJECTS {
        for chunk in accounts.chunks(200) {
            let q = Find::new()
                .filter("account_id", Op::In, chunk)
                .fields(&["account_id"])
                .limit(500);
            records::for_each(object, q, |r| {
                if let Some(a) = r.field::<String>("account_id") {
                    out.entry(a).or_default().push((object, r.id));
                }
                Ok(())
            })?;
        }
    }
    Ok(out)
}

/// One account's change of territories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub account_id: String,
    pub from: Vec<String>,
    pub to: Vec<String>,
}

/// Make shares and stored assignments follow `changes`. With `reshare`, accounts that
/// keep territories get their shares re-made too (new opportunities and contacts, or
/// changed access levels). Each share call is atomic; on an error, what was done stays
/// done and the caller reports it (a re-run converges).
pub fn apply(model: &Model, changes: &[Change], reshare: bool) -> Result<(), Error> {
    let accounts: Vec<String> = changes.iter().map(|c| c.account_id.clone()).collect();
    let children = children_of(&accounts)?;
    let mut add: Vec<Share> = Vec::new();
    let mut remove: Vec<(String, String, String)> = Vec::new();
    for c in changes {
        let from: BTreeSet<&String> = c.from.iter().collect();
        let to: BTreeSet<&String> = c.to.iter().collect();
        let mut records: Vec<(&str, &str)> = vec![("account", c.account_id.as_str())];
        if let Some(kids) = children.get(&c.account_id) {
            records.extend(kids.iter().map(|(o, id)| (*o, id.as_str())));
        }
        for t in from.difference(&to) {
            for (o, id) in &records {
                remove.push((o.to_string(), id.to_string(), t.to_string()));
            }
        }
        for t in &to {
            if from.contains(t) && !reshare {
                continue;
            }
            let Some(terr) = model.by_id.get(*t) else { continue };
            for (o, id) in &records {
                add.push(Share::new(o, id, t, terr.access.for_object(o).access()));
            }
        }
    }
    for chunk in remove.chunks(MAX_SHARES_PER_CALL) {
        let list: Vec<(&str, &str, &str)> = chunk
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        sharing::remove_shares(&list)?;
    }
    for chunk in add.chunks(MAX_SHARES_PER_CALL) {
        sharing::add_shares(chunk)?;
    }
    let moved: Vec<&Change> = changes.iter().filter(|c| c.from != c.to).collect();
    for chunk in moved.chunks(200) {
        let mut batch = Batch::new();
        for c in chunk {
            batch = if c.to.is_empty() {
                batch.delete(ASSIGNMENTS, &c.account_id, None)
            } else {
                batch.put(
                    ASSIGNMENTS,
                    &c.account_id,
                    &Assignment {
                        territories: c.to.clone(),
                    },
                    None,
                )?
            };
        }
        batch.commit()?;
    }
    Ok(())
}

/// Evaluate accounts against the model and apply what changed. Returns the changes.
pub fn evaluate_and_apply(
    model: &Model,
    accounts: &[(String, Map<String, Value>)],
    reshare: bool,
) -> Result<Vec<Change>, Error> {
    let store = model::assignments();
    let mut changes = Vec::new();
    for (id, fields) in accounts {
        let from = store.get(id)?.map(|a| a.value.territories).unwrap_or_default();
        let to = rules::assign(model, fields);
        if from != to || (reshare && !to.is_empty()) {
            changes.push(Change {
                account_id: id.clone(),
                from,
                to,
            });
        }
    }
    apply(model, &changes, reshare)?;
    let moved: Vec<Change> = changes.into_iter().filter(|c| c.from != c.to).collect();
    if !moved.is_empty() {
        model::bump()?;
    }
    Ok(moved)
}

/// An assignment run over all accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    /// `running` or `done`.
    pub status: String,
    /// Accounts when the run started.
    pub total: u64,
    pub processed: u64,
    /// Accounts whose territories changed.
    pub changed: u64,
    pub batch_size: u32,
    pub cursor: Option<String>,
    pub started_by: Option<String>,
}

pub fn runs() -> Collection<Run> {
    Collection::new(RUNS)
}

/// Process up to `run.batch_size` more accounts and store the progress.
pub fn step(run: &mut Run) -> Result<(), Error> {
    if run.status == "done" {
        return Ok(());
    }
    let model = Model::load_for_assignment()?;
    let fields = rule_fields();
    let mut left = run.batch_size;
    while left > 0 {
        let page = records::find(
            "account",
            &Find::new()
                .fields(&fields)
                .limit(left.min(500))
                .cursor(run.cursor.clone()),
        )?;
        let accounts: Vec<(String, Map<String, Value>)> = page.records.into_iter().map(|r| (r.id, r.fields)).collect();
        left = left.saturating_sub(accounts.len() as u32);
        run.processed += accounts.len() as u64;
        run.changed += evaluate_and_apply(&model, &accounts, true)?.len() as u64;
        run.cursor = page.next_cursor;
        if run.cursor.is_none() {
            run.status = "done".into();
            break;
        }
    }
    runs().put(&run.id, run)?;
    Ok(())
}

/// Number of accounts the caller can see.
pub fn account_count() -> Result<u64, Error> {
    let rows = records::aggregate("account", &records::Aggregate::new().count())?;
    Ok(rows
        .first()
        .and_then(|r| r.get("count"))
        .and_then(Value::as_u64)
        .unwrap_or(0))
}
