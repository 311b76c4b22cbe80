//! Custom objects: a tenant's own record types beside the standard ones. Creating,
//! changing and deleting one is validated (every problem reported by field), written
//! and audited (`object_type.create|update|delete`) in one transaction.
//!
//! A changed definition keeps every existing field with its name and type (labels,
//! `required` and enum values may change; enum values may only be added) and may
//! append new fields: removing a field would orphan stored data.

use std::collections::BTreeMap;

use super::schema::{self, FieldDef, ObjectSchema};
use super::{RecordError, RecordResult};
use crate::problem::FieldProblem;
use crate::store::Db;
use crate::store::audit::{self, Actor, NewEvent};

/// A custom object to create.
#[derive(Debug, Clone)]
pub struct NewObject {
    /// Its name (`^[a-z][a-z0-9_]*$`, not a standard object's).
    pub name: String,
    /// Display label, 1–200 characters.
    pub label: String,
    /// Its fields.
    pub fields: Vec<FieldDef>,
}

/// A change to a custom object.
#[derive(Debug, Clone, Default)]
pub struct ObjectPatch {
    /// A new label.
    pub label: Option<String>,
    /// The complete new field list (see the module documentation for what may change).
    pub fields: Option<Vec<FieldDef>>,
}

/// Create a custom object.
pub async fn create(db: &Db, tenant: &str, actor: &Actor, new: NewObject) -> RecordResult<ObjectSchema> {
    let mut problems = schema::check_custom_object(&new.name, &new.fields, &known(db, tenant).await?);
    check_label(&new.label, &mut problems);
    invalid_unless_empty(problems)?;
    let object = ObjectSchema {
        name: new.name,
        label: new.label.trim().to_string(),
        standard: false,
        fields: new.fields,
    };
    let mut tx = db.writer().begin().await?;
    db.insert_custom_object(&mut tx, tenant, &object).await?;
    let after = serde_json::to_value(&object).unwrap_or_default();
    let event = NewEvent {
        action: "object_type.create",
        entity_type: "object_type",
        entity_id: Some(&object.name),
        before: None,
        after: Some(&after),
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await?;
    Ok(object)
}

/// Change a custom object's label or fields.
pub async fn update(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    name: &str,
    patch: ObjectPatch,
) -> RecordResult<ObjectSchema> {
    let current = existing(db, tenant, name).await?;
    let mut next = current.clone();
    let mut problems = Vec::new();
    if let Some(label) = &patch.label {
        check_label(label, &mut problems);
        next.label = label.trim().to_string();
    }
    if let Some(fields) = patch.fields {
        for old in &current.fields {
            match fields.iter().find(|f| f.name == old.name) {
                None => problems.push(("fields".into(), format!("field `{}` cannot be removed", old.name))),
                Some(new) if new.field_type != old.field_type => {
                    problems.push(("fields".into(), format!("field `{}` cannot change its type", old.name)))
                }
                Some(new) if old.values.iter().any(|v| !new.values.contains(v)) => {
                    problems.push(("fields".into(), format!("enum `{}` may only gain values", old.name)))
                }
                Some(_) => {}
            }
        }
        problems.extend(schema::check_custom_object(name, &fields, &known(db, tenant).await?));
        next.fields = fields;
    }
    invalid_unless_empty(problems)?;
    let mut tx = db.writer().begin().await?;
    db.update_custom_object(&mut tx, tenant, &next).await?;
    let (before, after) = (
        serde_json::to_value(&current).unwrap_or_default(),
        serde_json::to_value(&next).unwrap_or_default(),
    );
    let event = NewEvent {
        action: "object_type.update",
        entity_type: "object_type",
        entity_id: Some(name),
        before: Some(&before),
        after: Some(&after),
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await?;
    Ok(next)
}

/// Delete a custom object that holds no records.
pub async fn delete(db: &Db, tenant: &str, actor: &Actor, name: &str) -> RecordResult<()> {
    let current = existing(db, tenant, name).await?;
    let mut tx = db.writer().begin().await?;
    db.delete_custom_object(&mut tx, tenant, name).await?;
    let before = serde_json::to_value(&current).unwrap_or_default();
    let event = NewEvent {
        action: "object_type.delete",
        entity_type: "object_type",
        entity_id: Some(name),
        before: Some(&before),
        after: None,
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await?;
    Ok(())
}

async fn existing(db: &Db, tenant: &str, name: &str) -> RecordResult<ObjectSchema> {
    db.custom_object(tenant, name)
        .await?
        .ok_or_else(|| RecordError::NotFound(format!("there is no custom object `{name}`")))
}

async fn known(db: &Db, tenant: &str) -> RecordResult<BTreeMap<String, ()>> {
    Ok(db
        .custom_objects(tenant)
        .await?
        .into_iter()
        .map(|o| (o.name, ()))
        .collect())
}

fn check_label(label: &str, out: &mut Vec<(String, String)>) {
    let n = label.trim().chars().count();
    if n == 0 || n > 200 {
        out.push(("label".into(), "must be 1–200 characters".into()));
    }
}

fn invalid_unless_empty(problems: Vec<(String, String)>) -> RecordResult<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(RecordError::InvalidDefinition(
        problems
            .into_iter()
            .map(|(field, message)| FieldProblem { field, message })
            .collect(),
    ))
}
