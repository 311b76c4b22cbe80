//! The compliance report for a period `[from, to)`: who changed what (per actor,
//! event counts by entity type and action, aggregated in SQL), access-grant changes
//! (`api_key.*`, `group_member.*`, `record_share.*`, `group.move` — a moved group
//! changes who inherits its records — and user events that changed a user's `role`
//! or `status`), and plugin capability grants (`plugin.*` events whose
//! after-state has a `grants` array; see [`super::policy`] for that contract). As
//! JSON, or as one CSV table with a `section` column.
//!
//! The two event lists are capped at [`MAX_LISTED`] events each (`truncated` says
//! so); the full detail is one export away.

use std::collections::BTreeSet;

use serde::Serialize;

use super::params::Params;
use super::query::ActorView;
use super::{AuditResult, Issue};
use crate::store::audit::AuditEvent;
use crate::store::audit_query::{self, ReportSection};
use crate::store::{Db, StoreError, StoreResult, time};

/// Most events listed per section.
pub const MAX_LISTED: i64 = 5_000;

/// Parameters of the report.
pub const PARAMS: [&str; 3] = ["from", "to", "format"];

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON document.
    Json,
    /// One CSV table.
    Csv,
}

/// A validated report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceQuery {
    /// Start, inclusive (stored form).
    pub from: String,
    /// End, exclusive (stored form).
    pub to: String,
    /// Output format.
    pub format: Format,
}

impl ComplianceQuery {
    /// Validate parameters: `from` and `to` (required, RFC 3339), `format`.
    pub fn from_params(p: &Params) -> AuditResult<ComplianceQuery> {
        let mut c = p.check();
        let from = c.required_time("from");
        let to = c.required_time("to");
        let format = match c.choice("format", &["json", "csv"], "json") {
            "csv" => Format::Csv,
            _ => Format::Json,
        };
        if let (Some(f), Some(t)) = (&from, &to)
            && f >= t
        {
            c.issue("to", "must be later than `from`");
        }
        c.finish()?;
        match (from, to) {
            (Some(from), Some(to)) => Ok(ComplianceQuery { from, to, format }),
            _ => Err(super::AuditError::BadParams(vec![Issue::new("from", "is required")])),
        }
    }
}

/// Counts of one actor's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorActivity {
    /// The actor (user and/or plugin; `key` is not split out).
    pub actor: ActorView,
    /// Events in the period.
    pub total: i64,
    /// Counts per (entity type, action), sorted.
    pub changes: Vec<ChangeCount>,
}

/// Events of one entity type and action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeCount {
    /// Entity type.
    pub entity_type: String,
    /// Action.
    pub action: String,
    /// How many.
    pub count: i64,
}

/// A change to who may access what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessChange {
    /// Event seq.
    pub seq: i64,
    /// Event id.
    pub event_id: String,
    /// When.
    pub occurred_at: String,
    /// Who.
    pub actor: ActorView,
    /// Action.
    pub action: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: Option<String>,
    /// Changed fields.
    pub changed_fields: serde_json::Value,
    /// State before.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
}

/// A change to a plugin's granted capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantChange {
    /// Event seq.
    pub seq: i64,
    /// Event id.
    pub event_id: String,
    /// When.
    pub occurred_at: String,
    /// Who.
    pub actor: ActorView,
    /// Action (`plugin.grant`, `plugin.install`…).
    pub action: String,
    /// The plugin.
    pub plugin: Option<String>,
    /// Granted keys after the event.
    pub grants: Vec<String>,
    /// Keys granted by this event.
    pub added: Vec<String>,
    /// Keys withdrawn by this event.
    pub removed: Vec<String>,
}

/// A capped list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Whether more items existed than were listed.
    pub truncated: bool,
}

/// The period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// Start, inclusive.
    pub from: String,
    /// End, exclusive.
    pub to: String,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The period covered.
    pub period: Period,
    /// When the report was made.
    pub generated_at: String,
    /// Who changed what.
    pub activity: Vec<ActorActivity>,
    /// Access-grant changes.
    pub access_changes: Section<AccessChange>,
    /// Plugin capability grants.
    pub plugin_grants: Section<GrantChange>,
}

fn actor(e: &AuditEvent) -> ActorView {
    ActorView {
        user: e.actor_user.clone(),
        key: e.actor_key.clone(),
        plugin: e.actor_plugin.clone(),
    }
}

fn parsed(s: &Option<String>) -> Option<serde_json::Value> {
    s.as_deref()
        .map(|t| serde_json::from_str(t).unwrap_or_else(|_| serde_json::Value::String(t.to_string())))
}

fn grants_of(state: &Option<serde_json::Value>) -> Option<Vec<String>> {
    let g = state.as_ref()?.get("grants")?.clone();
    serde_json::from_value(g).ok()
}

async fn section(db: &Db, tenant: &str, q: &ComplianceQuery, s: ReportSection) -> StoreResult<(Vec<AuditEvent>, bool)> {
    let mut events = audit_query::section_events(db, tenant, s, &q.from, &q.to, 0, MAX_LISTED + 1).await?;
    let truncated = events.len() as i64 > MAX_LISTED;
    events.truncate(usize::try_from(MAX_LISTED).unwrap_or(0));
    Ok((events, truncated))
}

/// Build the report of `tenant` for `q`'s period.
pub async fn report(db: &Db, tenant: &str, q: &ComplianceQuery) -> AuditResult<Report> {
    let mut counts = audit_query::activity_counts(db, tenant, &q.from, &q.to).await?;
    // Sorted here, not in SQL: the databases disagree on where NULLs sort.
    counts.sort_by(|a, b| {
        (&a.actor_user, &a.actor_plugin, &a.entity_type, &a.action).cmp(&(
            &b.actor_user,
            &b.actor_plugin,
            &b.entity_type,
            &b.action,
        ))
    });
    let mut activity: Vec<ActorActivity> = Vec::new();
    for c in counts {
        let change = ChangeCount {
            entity_type: c.entity_type,
            action: c.action,
            count: c.count,
        };
        match activity.last_mut() {
            Some(a) if a.actor.user == c.actor_user && a.actor.plugin == c.actor_plugin => {
                a.total += change.count;
                a.changes.push(change);
            }
            _ => activity.push(ActorActivity {
                actor: ActorView {
                    user: c.actor_user,
                    key: None,
                    plugin: c.actor_plugin,
                },
                total: change.count,
                changes: vec![change],
            }),
        }
    }

    let (events, truncated) = section(db, tenant, q, ReportSection::AccessChanges).await?;
    let access_changes = Section {
        items: events
            .iter()
            .map(|e| AccessChange {
                seq: e.seq,
                event_id: e.id.clone(),
                occurred_at: e.occurred_at.clone(),
                actor: actor(e),
                action: e.action.clone(),
                entity_type: e.entity_type.clone(),
                entity_id: e.entity_id.clone(),
                changed_fields: parsed(&Some(e.changed_fields.clone())).unwrap_or_default(),
                before: parsed(&e.before_state),
                after: parsed(&e.after_state),
            })
            .collect(),
        truncated,
    };

    let (events, truncated) = section(db, tenant, q, ReportSection::PluginGrants).await?;
    let plugin_grants = Section {
        items: events
            .iter()
            .filter_map(|e| {
                let after = grants_of(&parsed(&e.after_state))?;
                let before: BTreeSet<String> = grants_of(&parsed(&e.before_state))
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let after_set: BTreeSet<&String> = after.iter().collect();
                Some(GrantChange {
                    seq: e.seq,
                    event_id: e.id.clone(),
                    occurred_at: e.occurred_at.clone(),
                    actor: actor(e),
                    action: e.action.clone(),
                    plugin: e.entity_id.clone(),
                    added: after.iter().filter(|k| !before.contains(*k)).cloned().collect(),
                    removed: before.iter().filter(|k| !after_set.contains(k)).cloned().collect(),
                    grants: after,
                })
            })
            .collect(),
        truncated,
    };

    Ok(Report {
        period: Period {
            from: q.from.clone(),
            to: q.to.clone(),
        },
        generated_at: time::now(),
        activity,
        access_changes,
        plugin_grants,
    })
}

/// Columns of the CSV form of the report.
pub const CSV_COLUMNS: [&str; 11] = [
    "section",
    "actor_user",
    "actor_plugin",
    "entity_type",
    "action",
    "count",
    "seq",
    "occurred_at",
    "entity_id",
    "actor_key",
    "detail",
];

/// The report as one CSV table: `activity` rows (with `count`), `access_change` and
/// `plugin_grant` rows (with the event; `detail` is JSON: changed fields, or
/// grants/added/removed), and a `truncated` row per capped section.
pub fn to_csv(r: &Report) -> StoreResult<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let failed = |e: csv::Error| StoreError::Corrupt(format!("CSV encoding: {e}"));
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    w.write_record(CSV_COLUMNS).map_err(failed)?;
    for a in &r.activity {
        for c in &a.changes {
            w.write_record([
                "activity".to_string(),
                o(&a.actor.user),
                o(&a.actor.plugin),
                c.entity_type.clone(),
                c.action.clone(),
                c.count.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ])
            .map_err(failed)?;
        }
    }
    for c in &r.access_changes.items {
        w.write_record([
            "access_change".to_string(),
            o(&c.actor.user),
            o(&c.actor.plugin),
            c.entity_type.clone(),
            c.action.clone(),
            String::new(),
            c.seq.to_string(),
            c.occurred_at.clone(),
            o(&c.entity_id),
            o(&c.actor.key),
            serde_json::json!({ "changed_fields": c.changed_fields }).to_string(),
        ])
        .map_err(failed)?;
    }
    for g in &r.plugin_grants.items {
        w.write_record([
            "plugin_grant".to_string(),
            o(&g.actor.user),
            o(&g.actor.plugin),
            "plugin".to_string(),
            g.action.clone(),
            String::new(),
            g.seq.to_string(),
            g.occurred_at.clone(),
            o(&g.plugin),
            o(&g.actor.key),
            serde_json::json!({ "grants": g.grants, "added": g.added, "removed": g.removed }).to_string(),
        ])
        .map_err(failed)?;
    }
    for (name, truncated) in [
        ("access_change", r.access_changes.truncated),
        ("plugin_grant", r.plugin_grants.truncated),
    ] {
        if truncated {
            let mut row = vec![String::new(); CSV_COLUMNS.len()];
            row[0] = "truncated".into();
            row[10] = format!("{name} rows stop after {MAX_LISTED} events; export the ledger for all of them");
            w.write_record(&row).map_err(failed)?;
        }
    }
    w.into_inner()
        .map_err(|e| StoreError::Corrupt(format!("CSV encoding: {e}")))
}
