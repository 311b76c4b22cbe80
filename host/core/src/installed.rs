//! What a tenant admin manages of a plugin installed in their tenant, beside its
//! lifecycle (the runtime's `marketplace::install`): its settings, its timers and the
//! tenant's review of it in the catalog. Each write checks the installation, then
//! writes and audits in one transaction.

use serde_json::{Value, json};

use crate::problem::{FieldProblem, Problem, ProblemKind};
use crate::store::Db;
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::installations::{Installation, state};
use crate::store::marketplace::Review;

/// Longest review text, in characters.
pub const MAX_REVIEW: usize = 4_000;

/// The installation of `plugin` in `tenant`, unless there is none or it was
/// uninstalled (404).
pub async fn require_installed(db: &Db, tenant: &str, plugin: &str) -> Result<Installation, Problem> {
    match db.installation(None, tenant, plugin).await? {
        Some(i) if i.state != state::UNINSTALLED => Ok(i),
        _ => Err(Problem::new(
            ProblemKind::NotFound,
            format!("`{plugin}` is not installed"),
        )),
    }
}

/// Whether `key` may name a setting: 1–100 characters of `A-Z a-z 0-9 . _ -`.
pub fn setting_key_ok(key: &str) -> bool {
    (1..=100).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Set (`Some`) or delete (`None`) one of an installed plugin's settings
/// (`plugin_setting.set|delete`).
pub async fn set_setting(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    plugin: &str,
    key: &str,
    value: Option<Value>,
) -> Result<(), Problem> {
    if !setting_key_ok(key) {
        return Err(Problem::invalid(
            "setting keys are 1–100 characters of A-Z a-z 0-9 . _ -",
            vec![FieldProblem::new("key", "invalid")],
        ));
    }
    require_installed(db, tenant, plugin).await?;
    let text = value.as_ref().map(Value::to_string);
    let before = db.settings(tenant, plugin).get(key).await?;
    let entity = format!("{plugin}/{key}");
    let before = before
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .map(|v| json!({ "value": v }));
    let after = value.map(|v| json!({ "value": v }));
    let mut tx = db.writer().begin().await.map_err(crate::store::StoreError::from)?;
    db.settings(tenant, plugin)
        .set_in(&mut tx, key, text.as_deref())
        .await?;
    let event = NewEvent {
        action: if after.is_some() {
            "plugin_setting.set"
        } else {
            "plugin_setting.delete"
        },
        entity_type: "plugin_setting",
        entity_id: Some(&entity),
        before: before.as_ref(),
        after: after.as_ref(),
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(())
}

/// Cancel one of an installed plugin's timers (`plugin_timer.cancel`).
pub async fn cancel_timer(db: &Db, tenant: &str, actor: &Actor, plugin: &str, key: &str) -> Result<(), Problem> {
    require_installed(db, tenant, plugin).await?;
    let mut tx = db.writer().begin().await.map_err(crate::store::StoreError::from)?;
    let Some(removed) = db.remove_timer(&mut tx, tenant, plugin, key).await? else {
        return Err(Problem::new(
            ProblemKind::NotFound,
            format!("`{plugin}` has no timer `{key}`"),
        ));
    };
    let entity = format!("{plugin}/{key}");
    let before = json!({
        "next_fire": removed.due_at,
        "cron": removed.cron,
        "time_zone": removed.time_zone,
    });
    let event = NewEvent {
        action: "plugin_timer.cancel",
        entity_type: "plugin_timer",
        entity_id: Some(&entity),
        before: Some(&before),
        after: None,
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(())
}

/// Review text as stored and returned: plain text, trimmed, control characters (other
/// than newlines and tabs) removed. The host never renders it as HTML.
pub fn clean_review(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// Create or replace the tenant's review of `plugin` (`review.create|update`); only
/// tenants that have the plugin installed may review it.
pub async fn review(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    plugin: &str,
    rating: i64,
    text: &str,
) -> Result<Review, Problem> {
    let mut problems = Vec::new();
    if !(1..=5).contains(&rating) {
        problems.push(FieldProblem::new("rating", "must be 1–5"));
    }
    let text = clean_review(text);
    if text.chars().count() > MAX_REVIEW {
        problems.push(FieldProblem::new("text", format!("at most {MAX_REVIEW} characters")));
    }
    if !problems.is_empty() {
        return Err(Problem::invalid("the review is not valid", problems));
    }
    if require_installed(db, tenant, plugin).await.is_err() {
        return Err(Problem::new(
            ProblemKind::Denied,
            format!("only tenants that have `{plugin}` installed may review it"),
        ));
    }
    let mut tx = db.writer().begin().await.map_err(crate::store::StoreError::from)?;
    let (before, review) = db.upsert_review(&mut tx, tenant, plugin, rating, &text).await?;
    let (before, after) = (before.map(|r| json!(r)), json!(review));
    let event = NewEvent {
        action: if before.is_some() {
            "review.update"
        } else {
            "review.create"
        },
        entity_type: "review",
        entity_id: Some(plugin),
        before: before.as_ref(),
        after: Some(&after),
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(review)
}

/// Delete the tenant's review of `plugin` (`review.delete`).
pub async fn delete_review(db: &Db, tenant: &str, actor: &Actor, plugin: &str) -> Result<(), Problem> {
    let mut tx = db.writer().begin().await.map_err(crate::store::StoreError::from)?;
    let Some(before) = db.delete_review(&mut tx, tenant, plugin).await? else {
        return Err(Problem::new(
            ProblemKind::NotFound,
            format!("this tenant has no review of `{plugin}`"),
        ));
    };
    let before = json!(before);
    let event = NewEvent {
        action: "review.delete",
        entity_type: "review",
        entity_id: Some(plugin),
        before: Some(&before),
        after: None,
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(())
}
