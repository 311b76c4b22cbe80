//! The dead-letter list for tenant admins: events a plugin failed to handle every
//! allowed time. An admin replays one (it is re-queued and delivered before that
//! plugin's other pending events) or discards it; both are audited.

use serde_json::json;

use crate::store::audit::{self, Actor, NewEvent};
use crate::store::event_delivery::{DeadLetter, dead_state};
use crate::store::{Db, StoreError, StoreResult};

fn audit_state(letter: &DeadLetter) -> serde_json::Value {
    json!({
        "plugin": letter.plugin,
        "event_id": letter.event_id,
        "event_name": letter.event_name,
        "event_seq": letter.event_seq,
        "attempts": letter.attempts,
        "state": letter.state,
    })
}

/// Re-queue dead letter `id` of `tenant` for delivery. Replaying one that is already
/// re-queued changes nothing. Returns it as it now is.
pub async fn replay(db: &Db, tenant: &str, actor: &Actor, id: &str) -> StoreResult<DeadLetter> {
    let mut tx = db.writer().begin().await?;
    let letter = db
        .dead_letter(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no dead letter with id {id}")))?;
    if letter.state == dead_state::REPLAYING {
        return Ok(letter);
    }
    db.requeue_dead_letter(&mut tx, &letter).await?;
    let after = DeadLetter {
        state: dead_state::REPLAYING.into(),
        replayed_at: Some(crate::store::time::now()),
        ..letter.clone()
    };
    let (b, a) = (audit_state(&letter), audit_state(&after));
    let event = NewEvent {
        action: "event.dead_letter.replay",
        entity_type: "event_dead_letter",
        entity_id: Some(id),
        before: Some(&b),
        after: Some(&a),
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await?;
    Ok(after)
}

/// Discard dead letter `id` of `tenant`: the event is not delivered to that plugin.
pub async fn discard(db: &Db, tenant: &str, actor: &Actor, id: &str) -> StoreResult<()> {
    let mut tx = db.writer().begin().await?;
    let letter = db
        .dead_letter(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no dead letter with id {id}")))?;
    db.delete_dead_letter(&mut tx, tenant, id).await?;
    let b = audit_state(&letter);
    let event = NewEvent {
        action: "event.dead_letter.discard",
        entity_type: "event_dead_letter",
        entity_id: Some(id),
        before: Some(&b),
        after: None,
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await?;
    Ok(())
}
