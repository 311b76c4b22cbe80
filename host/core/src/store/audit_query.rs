//! Reading the audit ledger: filtered, seq-ordered pages of a tenant's events (for
//! listing, export and record history), consistent chain snapshots and pages for
//! verification, an entity's last event before a time (as-of reconstruction) and the
//! aggregates of the compliance report. Appends live in [`super::audit`].
//!
//! Every statement filters by `tenant_id` and binds every value; the only text
//! concatenated into SQL is fixed fragments chosen by which filters are present.

use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use super::audit::{AuditEvent, EVENT_COLUMNS};
use super::{Db, Dialect, StoreResult};

/// Filters over one tenant's events; `None` matches anything. Times are in stored
/// form (see [`super::time::format`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Acting user id.
    pub actor_user: Option<String>,
    /// Acting API key id.
    pub actor_key: Option<String>,
    /// Acting plugin (`id@version`).
    pub actor_plugin: Option<String>,
    /// Entity type, e.g. `record:opportunity`.
    pub entity_type: Option<String>,
    /// Entity id.
    pub entity_id: Option<String>,
    /// Action, e.g. `record.update`.
    pub action: Option<String>,
    /// Earliest `occurred_at`, inclusive.
    pub from: Option<String>,
    /// Latest `occurred_at`, exclusive.
    pub to: Option<String>,
    /// A top-level field name that must be among the event's changed fields.
    pub changed_field: Option<String>,
    /// Ignore events after this seq (a snapshot bound for long walks such as exports).
    pub max_seq: Option<i64>,
}

/// Direction of a seq-ordered walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

impl Order {
    /// `asc` or `desc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// A bound value.
enum Arg {
    Text(String),
    Int(i64),
}

/// SQL assembled from fixed fragments, with its arguments in placeholder order.
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: String) -> Sql {
        Sql { text, args: Vec::new() }
    }

    /// Append `fragment`, whose every `?` becomes the placeholder of a new argument.
    fn push(&mut self, fragment: &str, arg: Arg) -> &mut Sql {
        self.args.push(arg);
        let placeholder = format!("${}", self.args.len());
        self.text.push_str(&fragment.replace('?', &placeholder));
        self
    }

    fn query(&self) -> Query<'_, sqlx::Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for arg in &self.args {
            q = match arg {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// `haystack` contains `needle` (case-sensitively, unlike SQLite's LIKE).
fn contains(dialect: Dialect, haystack: &str, needle: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
        Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
    }
}

/// The condition "changed_fields (a compact JSON array of strings) has the element
/// whose JSON encoding is the argument". An unescaped `"` directly after `[` or `,`
/// can only open an element, so this never matches inside another field's name.
fn changed_field_condition(dialect: Dialect) -> String {
    format!(
        " AND ({} OR {})",
        contains(dialect, "changed_fields", "'[' || ?"),
        contains(dialect, "changed_fields", "',' || ?")
    )
}

/// The JSON encoding of a field name, as it appears inside `changed_fields`.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn push_filter(sql: &mut Sql, dialect: Dialect, f: &EventFilter) {
    let text = |v: &Option<String>| v.clone().map(Arg::Text);
    let conditions = [
        (" AND actor_user = ?", text(&f.actor_user)),
        (" AND actor_key = ?", text(&f.actor_key)),
        (" AND actor_plugin = ?", text(&f.actor_plugin)),
        (" AND entity_type = ?", text(&f.entity_type)),
        (" AND entity_id = ?", text(&f.entity_id)),
        (" AND action = ?", text(&f.action)),
        (" AND occurred_at >= ?", text(&f.from)),
        (" AND occurred_at < ?", text(&f.to)),
        (" AND seq <= ?", f.max_seq.map(Arg::Int)),
    ];
    for (fragment, arg) in conditions {
        if let Some(arg) = arg {
            sql.push(fragment, arg);
        }
    }
    if let Some(field) = &f.changed_field {
        // One argument used twice: `?` in both halves becomes the same placeholder.
        sql.push(&changed_field_condition(dialect), Arg::Text(json_string(field)));
    }
}

/// Up to `limit` events of `tenant` matching `filter`, in `order` of seq, strictly
/// after `after` in that order (below it when descending).
pub async fn events_page(
    db: &Db,
    tenant: &str,
    filter: &EventFilter,
    after: Option<i64>,
    order: Order,
    limit: i64,
) -> StoreResult<Vec<AuditEvent>> {
    let mut sql = Sql::new(format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE tenant_id = $1"));
    sql.args.push(Arg::Text(tenant.to_string()));
    push_filter(&mut sql, db.dialect(), filter);
    if let Some(after) = after {
        let fragment = match order {
            Order::Asc => " AND seq > ?",
            Order::Desc => " AND seq < ?",
        };
        sql.push(fragment, Arg::Int(after));
    }
    sql.text.push_str(match order {
        Order::Asc => " ORDER BY seq ASC",
        Order::Desc => " ORDER BY seq DESC",
    });
    sql.push(" LIMIT ?", Arg::Int(limit));
    let rows = sql.query().fetch_all(db.reader()).await?;
    rows.iter().map(AuditEvent::from_row).collect()
}

/// The highest seq stored for `tenant` (0 when it has no events).
pub async fn max_seq(db: &Db, tenant: &str) -> StoreResult<i64> {
    let row = sqlx::query("SELECT MAX(seq) AS max_seq FROM audit_events WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(db.reader())
        .await?;
    Ok(row.try_get::<Option<i64>, _>("max_seq")?.unwrap_or(0))
}

/// A tenant's chain head and its highest stored event, read in one statement so the
/// two agree even while other transactions append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSnapshot {
    /// Seq recorded in the head row.
    pub head_seq: i64,
    /// Hash recorded in the head row.
    pub head_hash: String,
    /// Highest seq in `audit_events` (`None` without events).
    pub max_event_seq: Option<i64>,
}

/// The chain snapshot of `tenant`, `None` if it has no head row.
pub async fn chain_snapshot(db: &Db, tenant: &str) -> StoreResult<Option<ChainSnapshot>> {
    let row = sqlx::query(
        "SELECT h.seq AS head_seq, h.hash AS head_hash, \
         (SELECT MAX(e.seq) FROM audit_events e WHERE e.tenant_id = h.tenant_id) AS max_event_seq \
         FROM audit_heads h WHERE h.tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| {
        Ok(ChainSnapshot {
            head_seq: r.try_get("head_seq")?,
            head_hash: r.try_get("head_hash")?,
            max_event_seq: r.try_get("max_event_seq")?,
        })
    })
    .transpose()
}

/// Events of `tenant` with `after < seq <= upto`, oldest first, at most `limit`:
/// one page of a chain walk, served by the primary key.
pub async fn chain_page(db: &Db, tenant: &str, after: i64, upto: i64, limit: i64) -> StoreResult<Vec<AuditEvent>> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
    ))
    .bind(tenant)
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(AuditEvent::from_row).collect()
}

/// The columns of an event except `tenant_id`, in [`EVENT_COLUMNS`] order: what a
/// packed row holds.
const PACKED_COLUMNS: &str = "seq, id, occurred_at, actor_user, actor_key, actor_plugin, action, entity_type, \
     entity_id, before_state, after_state, changed_fields, request_id, api_version, client, prev_hash, hash";

/// Like [`chain_page`], but each event comes back as one JSON array of its columns
/// (all but `tenant_id`, in [`EVENT_COLUMNS`] order), built by the database.
///
/// Verification reads every event of a chain; decoding one text value per row
/// instead of seventeen columns is most of its speed. The strings inside are exactly
/// the stored values once JSON-decoded.
pub async fn chain_page_packed(db: &Db, tenant: &str, after: i64, upto: i64, limit: i64) -> StoreResult<Vec<String>> {
    let pack = match db.dialect() {
        Dialect::Sqlite => format!("json_array({PACKED_COLUMNS})"),
        Dialect::Postgres => format!("json_build_array({PACKED_COLUMNS})::text"),
    };
    let rows = sqlx::query(&format!(
        "SELECT {pack} AS packed FROM audit_events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
    ))
    .bind(tenant)
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(|r| Ok(r.try_get("packed")?)).collect()
}

/// One event of `tenant` by seq.
pub async fn event_at_seq(db: &Db, tenant: &str, seq: i64) -> StoreResult<Option<AuditEvent>> {
    let row = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE tenant_id = $1 AND seq = $2"
    ))
    .bind(tenant)
    .bind(seq)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(AuditEvent::from_row).transpose()
}

/// The last event of one entity at or before `at` (stored form): its action and
/// after-state.
pub async fn last_event_at(
    db: &Db,
    tenant: &str,
    entity_type: &str,
    entity_id: &str,
    at: &str,
) -> StoreResult<Option<(String, Option<String>)>> {
    let row = sqlx::query(
        "SELECT action, after_state FROM audit_events \
         WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3 AND occurred_at <= $4 \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(entity_type)
    .bind(entity_id)
    .bind(at)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| Ok((r.try_get("action")?, r.try_get("after_state")?)))
        .transpose()
}

/// How many events one actor made on one entity type with one action in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityCount {
    /// Acting user.
    pub actor_user: Option<String>,
    /// Acting plugin.
    pub actor_plugin: Option<String>,
    /// Entity type.
    pub entity_type: String,
    /// Action.
    pub action: String,
    /// Number of events.
    pub count: i64,
}

/// Events of `tenant` in `[from, to)` counted per (user, plugin, entity type, action),
/// computed in SQL so the report never loads the events themselves.
pub async fn activity_counts(db: &Db, tenant: &str, from: &str, to: &str) -> StoreResult<Vec<ActivityCount>> {
    let rows = sqlx::query(
        "SELECT actor_user, actor_plugin, entity_type, action, COUNT(*) AS n FROM audit_events \
         WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
         GROUP BY actor_user, actor_plugin, entity_type, action",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ActivityCount {
                actor_user: r.try_get("actor_user")?,
                actor_plugin: r.try_get("actor_plugin")?,
                entity_type: r.try_get("entity_type")?,
                action: r.try_get("action")?,
                count: r.try_get("n")?,
            })
        })
        .collect()
}

/// Which events a compliance section lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSection {
    /// `api_key.*`, `group_member.*`, `record_share.*`, `group.move` (moving a group
    /// changes who inherits its records), and `user` events that changed `role` or
    /// `status`.
    AccessChanges,
    /// `plugin.*` events whose after-state mentions `grants`.
    PluginGrants,
}

/// Up to `limit` events of one compliance section in `[from, to)` with seq above
/// `after`, oldest first.
pub async fn section_events(
    db: &Db,
    tenant: &str,
    section: ReportSection,
    from: &str,
    to: &str,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<AuditEvent>> {
    let d = db.dialect();
    // substr() rather than LIKE: `_` is a LIKE wildcard and SQLite's LIKE ignores case.
    let condition = match section {
        ReportSection::AccessChanges => format!(
            "(substr(action, 1, 8) = 'api_key.' OR substr(action, 1, 13) = 'group_member.' \
             OR substr(action, 1, 13) = 'record_share.' OR action = 'group.move' \
             OR (entity_type = 'user' AND ({} OR {})))",
            contains(d, "changed_fields", "'\"role\"'"),
            contains(d, "changed_fields", "'\"status\"'"),
        ),
        ReportSection::PluginGrants => format!(
            "(substr(action, 1, 7) = 'plugin.' AND after_state IS NOT NULL AND {})",
            contains(d, "after_state", "'\"grants\"'")
        ),
    };
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE tenant_id = $1 AND occurred_at >= $2 \
         AND occurred_at < $3 AND seq > $4 AND {condition} ORDER BY seq LIMIT $5"
    ))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(after)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(AuditEvent::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_number_their_placeholders_in_order() {
        let mut sql = Sql::new("SELECT 1 WHERE tenant_id = $1".into());
        sql.args.push(Arg::Text("t".into()));
        let f = EventFilter {
            action: Some("a".into()),
            changed_field: Some("amount".into()),
            ..EventFilter::default()
        };
        push_filter(&mut sql, Dialect::Sqlite, &f);
        assert_eq!(
            sql.text,
            "SELECT 1 WHERE tenant_id = $1 AND action = $2 AND \
             (instr(changed_fields, '[' || $3) > 0 OR instr(changed_fields, ',' || $3) > 0)"
        );
        assert_eq!(sql.args.len(), 3);
    }

    #[test]
    fn field_names_are_matched_by_their_json_encoding() {
        assert_eq!(json_string("amount"), "\"amount\"");
        assert_eq!(json_string("a\"b"), "\"a\\\"b\"");
    }
}
