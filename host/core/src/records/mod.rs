//! The CRM core: records of the standard objects (account, contact, lead,
//! opportunity, activity) and of tenant-defined custom objects. Every write is
//! validated against the object's schema, versioned for optimistic concurrency and
//! audited in the same transaction; every read, list and aggregate is limited to
//! what the caller may see (see `store::records` for the visibility rule).
//!
//! Used by the REST API and by the plugin `records` capability alike.

mod codes;
pub mod objects;
pub mod query;
pub mod rollup;
pub mod schema;
pub mod validate;

use serde_json::{Map, Value};

use crate::events::RecordChange;
use crate::manifest::Role;
use crate::problem::{FieldProblem, IntoProblem, Problem, ProblemKind};
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::records::{Access, Record, RecordRef, Stamp, Viewer};
use crate::store::{self, Db, StoreError, time};
use query::{AggregateQuery, ListQuery};
use schema::ObjectSchema;
use validate::{Mode, RefCheck, Validated};

/// Most records in one bulk call.
pub const MAX_BULK: usize = 1000;
/// Most groups an aggregate returns.
pub const MAX_GROUPS: u32 = 10_000;

/// Why a record operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No such object, or no such record visible to the caller.
    #[error("{0}")]
    NotFound(String),
    /// Field problems (all of them).
    #[error("the record is not valid")]
    Invalid(Vec<FieldProblem>),
    /// A custom object's definition has problems (all of them).
    #[error("the object definition is not valid")]
    InvalidDefinition(Vec<FieldProblem>),
    /// The caller may see the record but not do this.
    #[error("{0}")]
    Forbidden(String),
    /// `If-Match` / expected version did not match; carries the current version.
    #[error("the record is at version {current}, not {expected}")]
    VersionMismatch {
        /// Version the caller expected.
        expected: i64,
        /// Version it is at.
        current: i64,
    },
    /// Bad request shape (limits, conflicting options).
    #[error("{0}")]
    BadRequest(String),
    /// Another plugin locked the record.
    #[error("{object} {id} is locked by the plugin `{}`: {}", .lock.plugin, .lock.reason)]
    Locked {
        /// Object.
        object: String,
        /// Record id.
        id: String,
        /// The lock.
        lock: Box<crate::store::locks::Lock>,
    },
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoProblem for RecordError {
    fn into_problem(self) -> Problem {
        match self {
            RecordError::NotFound(m) => Problem::new(ProblemKind::NotFound, m),
            RecordError::Invalid(fields) => Problem::invalid("the record is not valid", fields),
            RecordError::InvalidDefinition(fields) => Problem::invalid("the object definition is not valid", fields),
            RecordError::Forbidden(m) => Problem::new(ProblemKind::Denied, m),
            RecordError::VersionMismatch { expected, current } => Problem::new(
                ProblemKind::Stale,
                format!("the record is at version {current}, not {expected}: fetch it again and retry"),
            ),
            RecordError::BadRequest(m) => Problem::new(ProblemKind::BadRequest, m),
            e @ RecordError::Locked { .. } => Problem::new(
                ProblemKind::Locked,
                format!("{e}; the plugin releases it, or an admin may override with `override_lock=true`"),
            ),
            RecordError::Store(e) => e.into_problem(),
        }
    }
}

impl From<sqlx::Error> for RecordError {
    fn from(e: sqlx::Error) -> Self {
        RecordError::Store(StoreError::Database(e))
    }
}

/// Result alias.
pub type RecordResult<T> = Result<T, RecordError>;

/// Who is acting: tenant, user, role and the audit actor.
#[derive(Debug, Clone)]
pub struct Who {
    /// Tenant.
    pub tenant: String,
    /// User.
    pub user_id: String,
    /// Role.
    pub role: Role,
    /// For audit events.
    pub actor: Actor,
    /// Write even if another plugin locked the record (admins only; audited as
    /// `record.lock_override`).
    pub override_lock: bool,
}

impl Who {
    /// The plugin this write comes from, if a plugin makes it.
    pub fn plugin_id(&self) -> Option<&str> {
        self.actor.plugin.as_deref().map(|p| p.split('@').next().unwrap_or(p))
    }

    /// Visibility for reads and writes.
    pub fn viewer(&self) -> Viewer {
        Viewer {
            user_id: self.user_id.clone(),
            all: self.role.at_least(Role::Admin),
        }
    }

    fn require_writer(&self) -> RecordResult<()> {
        if self.role.at_least(Role::Member) {
            Ok(())
        } else {
            Err(RecordError::Forbidden(
                "the read-only role cannot change records".into(),
            ))
        }
    }
}

/// The schema of `object` in `tenant` (standard or custom).
pub async fn schema(db: &Db, tenant: &str, object: &str) -> RecordResult<ObjectSchema> {
    if let Some(s) = schema::standard_objects().into_iter().find(|o| o.name == object) {
        return Ok(s);
    }
    db.custom_object(tenant, object)
        .await?
        .ok_or_else(|| RecordError::NotFound(format!("there is no object `{object}`")))
}

/// Every object schema of the tenant: standard ones first, then custom ones by name.
pub async fn schemas(db: &Db, tenant: &str) -> RecordResult<Vec<ObjectSchema>> {
    let mut all = schema::standard_objects();
    all.extend(db.custom_objects(tenant).await?);
    Ok(all)
}

/// A record's audit snapshot: its fields plus `owner_id` (and `deleted_at` when
/// deleted), flat, so that `changed_fields` names the fields that changed.
pub fn snapshot(r: &Record) -> Value {
    let mut m = r.data.as_object().cloned().unwrap_or_default();
    m.insert("owner_id".into(), r.owner_id.clone().into());
    if let Some(d) = &r.deleted_at {
        m.insert("deleted_at".into(), d.clone().into());
    }
    Value::Object(m)
}

/// A record as the newest API version shows it, optionally with only some fields.
pub fn to_json(r: &Record, fields: Option<&[String]>) -> Value {
    let data = match (fields, r.data.as_object()) {
        (Some(keep), Some(all)) => Value::Object(
            all.iter()
                .filter(|(k, _)| keep.iter().any(|f| f == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => r.data.clone(),
    };
    serde_json::json!({
        "id": r.id,
        "object": r.object,
        "owner_id": r.owner_id,
        "version": r.version,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "created_by": r.created_by,
        "updated_by": r.updated_by,
        "deleted_at": r.deleted_at,
        "fields": data,
    })
}

fn entity(object: &str) -> String {
    format!("record:{object}")
}

async fn check_references(
    db: &Db,
    tx: &mut crate::store::Tx<'_>,
    tenant: &str,
    refs: &[RefCheck],
) -> RecordResult<Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut by_object: std::collections::BTreeMap<Option<String>, Vec<&RefCheck>> = Default::default();
    for r in refs {
        by_object.entry(r.object.clone()).or_default().push(r);
    }
    for (object, checks) in by_object {
        let ids: Vec<String> = checks.iter().map(|c| c.id.clone()).collect();
        let found = match &object {
            Some(o) => db.existing_records(tx, tenant, o, &ids).await?,
            None => db.existing_users(tx, tenant, &ids).await?,
        };
        for c in checks.iter().filter(|c| !found.contains(&c.id)) {
            let what = object
                .as_deref()
                .map_or("active user".to_string(), |o| format!("live {o}"));
            problems.push(FieldProblem {
                field: c.field.clone(),
                message: format!("no {what} with id {}", c.id),
            });
        }
    }
    Ok(problems)
}

async fn check_owner(
    db: &Db,
    tx: &mut crate::store::Tx<'_>,
    who: &Who,
    owner: Option<&str>,
    path: &str,
) -> RecordResult<Option<String>> {
    let Some(owner) = owner else { return Ok(None) };
    if owner == who.user_id {
        return Ok(Some(owner.to_string()));
    }
    if !who.role.at_least(Role::Manager) {
        return Err(RecordError::Forbidden(
            "only managers and above may assign records to someone else".into(),
        ));
    }
    if db
        .existing_users(tx, &who.tenant, &[owner.to_string()])
        .await?
        .is_empty()
    {
        return Err(RecordError::Invalid(vec![FieldProblem {
            field: path.into(),
            message: format!("no active user with id {owner}"),
        }]));
    }
    Ok(Some(owner.to_string()))
}

/// A record to create.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Field values.
    pub fields: Value,
    /// Owner (default: the caller).
    pub owner_id: Option<String>,
}

/// A change to one record.
#[derive(Debug, Clone)]
pub struct Change {
    /// Record id.
    pub id: String,
    /// Fields to set (`null` clears).
    pub fields: Value,
    /// New owner.
    pub owner_id: Option<String>,
    /// Expected current version (`If-Match`); `None` for last-write-wins.
    pub expected_version: Option<i64>,
}

/// Create records in one transaction (one or a bulk of up to [`MAX_BULK`]); all or
/// nothing, with every problem reported by path (`records[i].fields.x` in bulk).
pub async fn create(db: &Db, who: &Who, object: &str, items: Vec<NewRecord>, bulk: bool) -> RecordResult<Vec<Record>> {
    let mut tx = db.writer().begin().await?;
    let created = create_in(db, &mut tx, who, object, items, bulk).await?;
    tx.commit().await?;
    Ok(created)
}

/// [`create`] inside the caller's transaction (an atomic batch, a job step's commit).
pub async fn create_in(
    db: &Db,
    tx: &mut crate::store::Tx<'_>,
    who: &Who,
    object: &str,
    items: Vec<NewRecord>,
    bulk: bool,
) -> RecordResult<Vec<Record>> {
    who.require_writer()?;
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(RecordError::BadRequest(format!("send 1–{MAX_BULK} records")));
    }
    let schema = schema(db, &who.tenant, object).await?;
    let prefix = |i: usize| if bulk { format!("records[{i}].") } else { String::new() };
    let mut problems = Vec::new();
    let mut validated: Vec<Validated> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let v = validate::validate(&schema, &item.fields, Mode::Create, &format!("{}fields.", prefix(i)));
        problems.extend(v.problems.iter().cloned());
        validated.push(v);
    }
    if !problems.is_empty() {
        return Err(RecordError::Invalid(problems));
    }
    let refs: Vec<RefCheck> = validated.iter().flat_map(|v| v.references.iter().cloned()).collect();
    let problems = check_references(db, tx, &who.tenant, &refs).await?;
    if !problems.is_empty() {
        return Err(RecordError::Invalid(problems));
    }
    let now = time::now();
    let mut created = Vec::with_capacity(items.len());
    for (i, (item, v)) in items.iter().zip(validated).enumerate() {
        let owner = check_owner(db, tx, who, item.owner_id.as_deref(), &format!("{}owner_id", prefix(i)))
            .await?
            .unwrap_or_else(|| who.user_id.clone());
        let record = Record {
            tenant_id: who.tenant.clone(),
            id: ulid::Ulid::new().to_string(),
            object: object.to_string(),
            owner_id: owner,
            data: Value::Object(v.values),
            version: 1,
            created_at: now.clone(),
            updated_at: now.clone(),
            created_by: Some(who.user_id.clone()),
            updated_by: Some(who.user_id.clone()),
            deleted_at: None,
        };
        db.insert_record(tx, &record).await?;
        after_write(tx, db, who, RecordChange::Created, None, &record).await?;
        created.push(record);
    }
    Ok(created)
}

/// Read one record the caller may see.
pub async fn get(db: &Db, who: &Who, object: &str, id: &str, include_deleted: bool) -> RecordResult<Record> {
    schema(db, &who.tenant, object).await?;
    db.record_for(
        None,
        RecordRef {
            tenant: &who.tenant,
            object,
            id,
        },
        &who.viewer(),
        Access::Read,
        include_deleted,
    )
    .await?
    .ok_or_else(|| RecordError::NotFound(format!("no {object} with id {id}")))
}

/// Load a record for writing inside `tx`: 404 if invisible, 403 if read-only to the caller.
async fn for_write(
    db: &Db,
    tx: &mut crate::store::Tx<'_>,
    who: &Who,
    object: &str,
    id: &str,
    include_deleted: bool,
) -> RecordResult<Record> {
    let viewer = who.viewer();
    match db
        .record_for(
            Some(tx),
            RecordRef {
                tenant: &who.tenant,
                object,
                id,
            },
            &viewer,
            Access::Write,
            include_deleted,
        )
        .await?
    {
        Some(r) => Ok(r),
        None => match db
            .record_for(
                Some(tx),
                RecordRef {
                    tenant: &who.tenant,
                    object,
                    id,
                },
                &viewer,
                Access::Read,
                include_deleted,
            )
            .await?
        {
            Some(_) => Err(RecordError::Forbidden(format!(
                "you may see {object} {id} but not change it"
            ))),
            None => Err(RecordError::NotFound(format!("no {object} with id {id}"))),
        },
    }
}

/// Apply changes in one transaction (one, or a bulk of up to [`MAX_BULK`]).
pub async fn update(db: &Db, who: &Who, object: &str, changes: Vec<Change>, bulk: bool) -> RecordResult<Vec<Record>> {
    let mut tx = db.writer().begin().await?;
    let updated = update_in(db, &mut tx, who, object, changes, bulk).await?;
    tx.commit().await?;
    Ok(updated)
}

/// [`update`] inside the caller's transaction (an atomic batch, a job step's commit).
pub async fn update_in(
    db: &Db,
    tx: &mut crate::store::Tx<'_>,
    who: &Who,
    object: &str,
    changes: Vec<Change>,
    bulk: bool,
) -> RecordResult<Vec<Record>> {
    who.require_writer()?;
    if changes.is_empty() || changes.len() > MAX_BULK {
        return Err(RecordError::BadRequest(format!("send 1–{MAX_BULK} changes")));
    }
    let schema = schema(db, &who.tenant, object).await?;
    let prefix = |i: usize| if bulk { format!("records[{i}].") } else { String::new() };
    let mut problems = Vec::new();
    let mut validated = Vec::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        let v = validate::validate(&schema, &c.fields, Mode::Patch, &format!("{}fields.", prefix(i)));
        problems.extend(v.problems.iter().cloned());
        validated.push(v);
    }
    if !problems.is_empty() {
        return Err(RecordError::Invalid(problems));
    }
    let refs: Vec<RefCheck> = validated.iter().flat_map(|v| v.references.iter().cloned()).collect();
    let problems = check_references(db, tx, &who.tenant, &refs).await?;
    if !problems.is_empty() {
        return Err(RecordError::Invalid(problems));
    }
    let now = time::now();
    let mut updated = Vec::with_capacity(changes.len());
    for (i, (change, v)) in changes.iter().zip(validated).enumerate() {
        let current = for_write(db, tx, who, object, &change.id, false).await?;
        check_lock(db, tx, who, object, &change.id).await?;
        if let Some(expected) = change.expected_version
            && expected != current.version
        {
            return Err(RecordError::VersionMismatch {
                expected,
                current: current.version,
            });
        }
        let owner = match change.owner_id.as_deref() {
            Some(o) if o != current.owner_id => check_owner(db, tx, who, Some(o), &format!("{}owner_id", prefix(i)))
                .await?
                .unwrap_or_default(),
            _ => current.owner_id.clone(),
        };
        let mut data: Map<String, Value> = current.data.as_object().cloned().unwrap_or_default();
        for (k, val) in v.values {
            if val.is_null() {
                data.remove(&k);
            } else {
                data.insert(k, val);
            }
        }
        let data = Value::Object(data);
        let version = db
            .update_record(
                tx,
                RecordRef {
                    tenant: &who.tenant,
                    object,
                    id: &change.id,
                },
                &owner,
                &data,
                current.version,
                Stamp {
                    by: &who.user_id,
                    at: &now,
                },
            )
            .await?
            .ok_or(RecordError::VersionMismatch {
                expected: current.version,
                current: current.version + 1,
            })?;
        let after = Record {
            owner_id: owner,
            data,
            version,
            updated_at: now.clone(),
            updated_by: Some(who.user_id.clone()),
            ..current.clone()
        };
        after_write(tx, db, who, RecordChange::Updated, Some(&current), &after).await?;
        updated.push(after);
    }
    Ok(updated)
}

/// Soft-delete (`deleted = true`) or restore one record.
pub async fn set_deleted(
    db: &Db,
    who: &Who,
    object: &str,
    id: &str,
    deleted: bool,
    expected_version: Option<i64>,
) -> RecordResult<Record> {
    let mut tx = db.writer().begin().await?;
    let after = set_deleted_in(db, &mut tx, who, object, id, deleted, expected_version).await?;
    tx.commit().await?;
    Ok(after)
}

/// [`set_deleted`] inside the caller's transaction (an atomic batch, a job step's commit).
pub async fn set_deleted_in(
    db: &Db,
    tx: &mut crate::store::Tx<'_>,
    who: &Who,
    object: &str,
    id: &str,
    deleted: bool,
    expected_version: Option<i64>,
) -> RecordResult<Record> {
    who.require_writer()?;
    schema(db, &who.tenant, object).await?;
    let current = for_write(db, tx, who, object, id, true).await?;
    check_lock(db, tx, who, object, id).await?;
    if current.deleted_at.is_some() == deleted {
        let state = if deleted { "already deleted" } else { "not deleted" };
        return Err(RecordError::BadRequest(format!("{object} {id} is {state}")));
    }
    if let Some(expected) = expected_version
        && expected != current.version
    {
        return Err(RecordError::VersionMismatch {
            expected,
            current: current.version,
        });
    }
    let now = time::now();
    let version = db
        .set_record_deleted(
            tx,
            RecordRef {
                tenant: &who.tenant,
                object,
                id,
            },
            deleted,
            current.version,
            Stamp {
                by: &who.user_id,
                at: &now,
            },
        )
        .await?
        .ok_or(RecordError::VersionMismatch {
            expected: current.version,
            current: current.version + 1,
        })?;
    let after = Record {
        version,
        deleted_at: deleted.then(|| now.clone()),
        updated_at: now.clone(),
        updated_by: Some(who.user_id.clone()),
        ..current.clone()
    };
    let change = if deleted {
        RecordChange::Deleted
    } else {
        RecordChange::Restored
    };
    after_write(tx, db, who, change, Some(&current), &after).await?;
    Ok(after)
}

/// Refuse a write to a record another plugin locked — unless this is that plugin, or
/// an admin overriding the lock on purpose (audited as `record.lock_override`).
async fn check_lock(db: &Db, tx: &mut crate::store::Tx<'_>, who: &Who, object: &str, id: &str) -> RecordResult<()> {
    let Some(lock) = crate::store::locks::lock_of(tx, &who.tenant, object, id).await? else {
        return Ok(());
    };
    if who.plugin_id() == Some(lock.plugin.as_str()) {
        return Ok(());
    }
    if !who.override_lock {
        return Err(RecordError::Locked {
            object: object.to_string(),
            id: id.to_string(),
            lock: Box::new(lock),
        });
    }
    if !who.role.at_least(Role::Admin) {
        return Err(RecordError::Forbidden(
            "overriding a record lock needs the admin role or higher".into(),
        ));
    }
    let held = serde_json::to_value(&lock).unwrap_or_default();
    let event = NewEvent {
        action: "record.lock_override",
        entity_type: &entity(object),
        entity_id: Some(id),
        before: Some(&held),
        after: None,
    };
    audit::append(tx, db.dialect(), &who.tenant, &who.actor, event).await?;
    Ok(())
}

/// Lock a record for `who`'s plugin (`record.lock`): the record must exist and be
/// visible to the caller; a lock of another plugin is a conflict; locking again changes
/// the reason.
pub async fn lock(db: &Db, who: &Who, object: &str, id: &str, reason: &str) -> RecordResult<crate::store::locks::Lock> {
    let plugin = who
        .plugin_id()
        .ok_or_else(|| RecordError::Forbidden("only plugins lock records".into()))?
        .to_string();
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(RecordError::Invalid(vec![FieldProblem::new(
            "reason",
            "must be 1–500 characters",
        )]));
    }
    schema(db, &who.tenant, object).await?;
    let mut tx = db.writer().begin().await?;
    for_write(db, &mut tx, who, object, id, false).await?;
    let user = (!who.user_id.starts_with("plugin:")).then_some(who.user_id.as_str());
    let (before, after) = crate::store::locks::lock(&mut tx, &who.tenant, &plugin, object, id, reason, user).await?;
    let (b, a) = (
        before.map(|l| serde_json::to_value(l).unwrap_or_default()),
        serde_json::to_value(&after).unwrap_or_default(),
    );
    let event = NewEvent {
        action: "record.lock",
        entity_type: &entity(object),
        entity_id: Some(id),
        before: b.as_ref(),
        after: Some(&a),
    };
    audit::append(&mut tx, db.dialect(), &who.tenant, &who.actor, event).await?;
    tx.commit().await?;
    Ok(after)
}

/// Release `who`'s plugin's lock on a record (`record.unlock`); `false` when it held
/// none.
pub async fn unlock(db: &Db, who: &Who, object: &str, id: &str) -> RecordResult<bool> {
    let plugin = who
        .plugin_id()
        .ok_or_else(|| RecordError::Forbidden("only plugins lock records".into()))?
        .to_string();
    let mut tx = db.writer().begin().await?;
    let Some(released) = crate::store::locks::unlock(&mut tx, &who.tenant, &plugin, object, id).await? else {
        return Ok(false);
    };
    let b = serde_json::to_value(&released).unwrap_or_default();
    let event = NewEvent {
        action: "record.unlock",
        entity_type: &entity(object),
        entity_id: Some(id),
        before: Some(&b),
        after: None,
    };
    audit::append(&mut tx, db.dialect(), &who.tenant, &who.actor, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// What every record write does after the row itself, in the one order these writes
/// must take their locks: the roll-up totals first (their guard, the tenant row on
/// PostgreSQL, comes before the audit chain's head, in the order a group move takes
/// them), then the audit event, then the `record.<object>.<change>` event — all in
/// the write's transaction.
async fn after_write(
    tx: &mut crate::store::Tx<'_>,
    db: &Db,
    who: &Who,
    change: RecordChange,
    before: Option<&Record>,
    after: &Record,
) -> RecordResult<()> {
    let tenant = &who.tenant;
    match change {
        // A new record is shared with no group yet: no group's totals include it.
        RecordChange::Created => {}
        RecordChange::Updated => store::rollups::record_changed(tx, tenant, before, Some(after)).await?,
        RecordChange::Deleted => store::rollups::record_changed(tx, tenant, before, None).await?,
        RecordChange::Restored => store::rollups::record_changed(tx, tenant, None, Some(after)).await?,
    }
    let b = before.map(snapshot);
    let a = snapshot(after);
    let action = match change {
        RecordChange::Created => "record.create",
        RecordChange::Updated => "record.update",
        RecordChange::Deleted => "record.delete",
        RecordChange::Restored => "record.restore",
    };
    let event = NewEvent {
        action,
        entity_type: &entity(&after.object),
        entity_id: Some(&after.id),
        before: b.as_ref(),
        after: Some(&a),
    };
    audit::append(tx, db.dialect(), tenant, &who.actor, event).await?;
    crate::events::record_changed(tx, db, who, change, after, b.as_ref(), &a).await?;
    Ok(())
}

/// One page of the records the caller may see.
pub async fn list(db: &Db, who: &Who, object: &str, q: &ListQuery) -> RecordResult<(Vec<Record>, Option<String>)> {
    Ok(db.list_records(&who.tenant, object, &who.viewer(), q).await?)
}

/// Grouped measures over the records the caller may see, computed in SQL.
pub async fn aggregate(
    db: &Db,
    who: &Who,
    object: &str,
    q: &AggregateQuery,
) -> RecordResult<(Vec<Map<String, Value>>, bool)> {
    Ok(db
        .aggregate_records(&who.tenant, object, &who.viewer(), q, MAX_GROUPS)
        .await?)
}
