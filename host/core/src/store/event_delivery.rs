//! Event delivery state: one cursor per installation (how far its deliveries got, the
//! failures of the event at its head, and the lease of the worker serving it) and
//! the dead-letter list.
//!
//! Several hosts may share one PostgreSQL: a worker serves a cursor only while it
//! holds its lease (`lease_owner`, `lease_until`), taken with one conditional
//! `UPDATE`, and every later write of that worker is fenced on its lease token, so a
//! worker that lost its lease (it stalled past `lease_until`) changes nothing.
//! Finding due cursors is the one query across tenants (the worker is host-level);
//! everything after it names the tenant.

use serde::Serialize;
use sqlx::Row;

use super::installations::state as install_state;
use super::{Db, StoreResult, Tx, time};

/// Dead-letter states.
pub mod dead_state {
    /// Parked, waiting for an admin to replay or discard it.
    pub const DEAD: &str = "dead";
    /// Re-queued: delivered before the plugin's other pending events.
    pub const REPLAYING: &str = "replaying";
}

/// A cursor as its worker sees it after claiming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Tenant.
    pub tenant_id: String,
    /// Plugin.
    pub plugin_id: String,
    /// Last seq delivered, dead-lettered or skipped.
    pub position: i64,
    /// The event the failure count is about.
    pub attempt_seq: Option<i64>,
    /// Failed attempts at `attempt_seq`.
    pub attempts: i64,
    /// Since when passes have failed on the host's side (`None`: the last one did not).
    pub stalled_since: Option<String>,
}

/// A claimed cursor: the lease token fences every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Tenant.
    pub tenant_id: String,
    /// Plugin.
    pub plugin_id: String,
    /// This claim's token.
    pub token: String,
}

/// A cursor's state for the tenant admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CursorStatus {
    /// Plugin.
    pub plugin: String,
    /// Installation state (`enabled`, `disabled`, `revoked`, `uninstalled`).
    pub state: Option<String>,
    /// Last seq delivered, dead-lettered or skipped.
    pub delivered_through: i64,
    /// The tenant's latest seq.
    pub latest: i64,
    /// Failed attempts at the event at the head.
    pub attempts: i64,
    /// Which event those attempts are about.
    pub failing_seq: Option<i64>,
    /// When the next attempt is due.
    pub retry_at: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Why the host itself could not serve this subscription on its last try (a
    /// database error, a package that no longer loads), with a reference to the
    /// detail in the host's log; `None` once a pass gets through.
    pub stalled: Option<String>,
    /// Since when it has been stalled.
    pub stalled_since: Option<String>,
    /// Parked dead letters.
    pub dead_letters: i64,
    /// Dead letters re-queued and not yet delivered.
    pub replaying: i64,
    /// Nothing left to deliver (and nothing failing).
    pub caught_up: bool,
}

/// A dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// Id.
    pub id: String,
    /// The subscriber that failed.
    pub plugin: String,
    /// The event's seq.
    pub event_seq: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's name.
    pub event_name: String,
    /// Failed attempts, all deliveries together.
    pub attempts: i64,
    /// The last failure.
    pub error: String,
    /// `dead` or `replaying`.
    pub state: String,
    /// When it was (last) parked.
    pub failed_at: String,
    /// When a replay was last requested.
    pub replayed_at: Option<String>,
    /// Failed tries of the current replay (kept here, not on the cursor, whose
    /// counter belongs to the event at the head of the log).
    pub replay_attempts: i64,
}

const DL_COLUMNS: &str = "tenant_id, id, plugin_id, event_seq, event_id, event_name, attempts, error, state, failed_at, replayed_at, replay_attempts";

fn dead_letter(r: &sqlx::any::AnyRow) -> StoreResult<DeadLetter> {
    Ok(DeadLetter {
        tenant_id: r.try_get("tenant_id")?,
        id: r.try_get("id")?,
        plugin: r.try_get("plugin_id")?,
        event_seq: r.try_get("event_seq")?,
        event_id: r.try_get("event_id")?,
        event_name: r.try_get("event_name")?,
        attempts: r.try_get("attempts")?,
        error: r.try_get("error")?,
        state: r.try_get("state")?,
        failed_at: r.try_get("failed_at")?,
        replayed_at: r.try_get("replayed_at")?,
        replay_attempts: r.try_get("replay_attempts")?,
    })
}

/// Start (or restart, on re-install) `plugin`'s cursor at `position`: it sees only
/// events after it.
pub async fn start_cursor(tx: &mut Tx<'_>, tenant: &str, plugin: &str, position: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO event_cursors (tenant_id, plugin_id, position, attempts, touched_at) VALUES ($1, $2, $3, 0, $4) \
         ON CONFLICT (tenant_id, plugin_id) DO UPDATE SET position = excluded.position, attempt_seq = NULL, \
         attempts = 0, retry_at = NULL, last_error = NULL",
    )
    .bind(tenant)
    .bind(plugin)
    .bind(position)
    .bind(time::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Forget `plugin`'s cursor and dead letters (purge).
pub async fn drop_cursor(tx: &mut Tx<'_>, tenant: &str, plugin: &str) -> StoreResult<()> {
    for table in ["event_cursors", "event_dead_letters"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND plugin_id = $2"))
            .bind(tenant)
            .bind(plugin)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A dead letter to park.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    /// The event's seq.
    pub event_seq: i64,
    /// The event's id.
    pub event_id: &'a str,
    /// The event's name.
    pub event_name: &'a str,
    /// Failed attempts.
    pub attempts: i64,
    /// The last failure.
    pub error: &'a str,
}

impl Db {
    /// Give every installation without a cursor one at its tenant's current head
    /// (installations made before events existed). Returns how many were added.
    pub async fn backfill_cursors(&self) -> StoreResult<u64> {
        let done = sqlx::query(
            "INSERT INTO event_cursors (tenant_id, plugin_id, position, attempts, touched_at) \
             SELECT i.tenant_id, i.plugin_id, COALESCE(h.seq, 0), 0, $1 FROM installations i \
             LEFT JOIN event_heads h ON h.tenant_id = i.tenant_id \
             WHERE i.state <> $2 AND NOT EXISTS (SELECT 1 FROM event_cursors c \
             WHERE c.tenant_id = i.tenant_id AND c.plugin_id = i.plugin_id)",
        )
        .bind(time::now())
        .bind(install_state::UNINSTALLED)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Cursors of enabled installations with something to deliver now and no live
    /// lease, least recently served first (across tenants).
    pub async fn due_cursors(&self, limit: i64) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT c.tenant_id, c.plugin_id FROM event_cursors c \
             JOIN installations i ON i.tenant_id = c.tenant_id AND i.plugin_id = c.plugin_id \
             LEFT JOIN event_heads h ON h.tenant_id = c.tenant_id \
             WHERE i.state = $1 AND (c.lease_until IS NULL OR c.lease_until < $2) \
             AND (c.retry_at IS NULL OR c.retry_at <= $2) \
             AND (COALESCE(h.seq, 0) > c.position OR EXISTS (SELECT 1 FROM event_dead_letters d \
                  WHERE d.tenant_id = c.tenant_id AND d.plugin_id = c.plugin_id AND d.state = $3)) \
             ORDER BY c.touched_at, c.tenant_id, c.plugin_id LIMIT $4",
        )
        .bind(install_state::ENABLED)
        .bind(time::now())
        .bind(dead_state::REPLAYING)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("plugin_id")?)))
            .collect()
    }

    /// Take the lease on a cursor until `until` unless another worker holds a live
    /// one. `None`: someone else has it (or it is gone).
    pub async fn claim_cursor(
        &self,
        tenant: &str,
        plugin: &str,
        token: &str,
        until: &str,
    ) -> StoreResult<Option<Cursor>> {
        let now = time::now();
        let row = sqlx::query(
            "UPDATE event_cursors SET lease_owner = $3, lease_until = $4, touched_at = $5 \
             WHERE tenant_id = $1 AND plugin_id = $2 AND (lease_until IS NULL OR lease_until < $5) \
             RETURNING position, attempt_seq, attempts, stalled_since",
        )
        .bind(tenant)
        .bind(plugin)
        .bind(token)
        .bind(until)
        .bind(&now)
        .fetch_optional(self.writer())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Cursor {
            tenant_id: tenant.to_string(),
            plugin_id: plugin.to_string(),
            position: r.try_get("position")?,
            attempt_seq: r.try_get("attempt_seq")?,
            attempts: r.try_get("attempts")?,
            stalled_since: r.try_get("stalled_since")?,
        }))
    }

    /// Extend a held lease. False: it was lost.
    pub async fn renew_lease(&self, lease: &Lease, until: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE event_cursors SET lease_until = $4 WHERE tenant_id = $1 AND plugin_id = $2 AND lease_owner = $3",
        )
        .bind(&lease.tenant_id)
        .bind(&lease.plugin_id)
        .bind(&lease.token)
        .bind(until)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give a lease up after a pass that did not fail on the host's side (which
    /// clears an earlier stall).
    pub async fn release_lease(&self, lease: &Lease) -> StoreResult<()> {
        sqlx::query(
            "UPDATE event_cursors SET lease_owner = NULL, lease_until = NULL, stalled = NULL, stalled_since = NULL \
             WHERE tenant_id = $1 AND plugin_id = $2 AND lease_owner = $3",
        )
        .bind(&lease.tenant_id)
        .bind(&lease.plugin_id)
        .bind(&lease.token)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Give a lease up after a pass that failed on the host's side: record `notice`
    /// for the tenant admin (keeping when the stall began) and try again at
    /// `retry_at`.
    pub async fn release_stalled(&self, lease: &Lease, notice: &str, retry_at: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE event_cursors SET lease_owner = NULL, lease_until = NULL, stalled = $4, \
             stalled_since = COALESCE(stalled_since, $5), retry_at = $6 \
             WHERE tenant_id = $1 AND plugin_id = $2 AND lease_owner = $3",
        )
        .bind(&lease.tenant_id)
        .bind(&lease.plugin_id)
        .bind(&lease.token)
        .bind(notice)
        .bind(time::now())
        .bind(retry_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Move the cursor to `seq` (delivered or not subscribed) and clear failures.
    /// False: the lease was lost.
    pub async fn advance_cursor(&self, lease: &Lease, seq: i64) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
        let moved = advance(&mut tx, lease, seq).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// Record a failed attempt at `seq` and when to try again. False: lease lost.
    pub async fn cursor_failed(
        &self,
        lease: &Lease,
        seq: i64,
        attempts: i64,
        retry_at: &str,
        error: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE event_cursors SET attempt_seq = $4, attempts = $5, retry_at = $6, last_error = $7 \
             WHERE tenant_id = $1 AND plugin_id = $2 AND lease_owner = $3",
        )
        .bind(&lease.tenant_id)
        .bind(&lease.plugin_id)
        .bind(&lease.token)
        .bind(seq)
        .bind(attempts)
        .bind(retry_at)
        .bind(error)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Park an event that failed its last attempt and move past it, in one
    /// transaction. False: the lease was lost (nothing changed).
    pub async fn park_dead_letter(&self, lease: &Lease, letter: &NewDeadLetter<'_>) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
        if !advance(&mut tx, lease, letter.event_seq).await? {
            return Ok(false);
        }
        sqlx::query(&format!(
            "INSERT INTO event_dead_letters ({DL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, 0)"
        ))
        .bind(&lease.tenant_id)
        .bind(ulid::Ulid::new().to_string())
        .bind(&lease.plugin_id)
        .bind(letter.event_seq)
        .bind(letter.event_id)
        .bind(letter.event_name)
        .bind(letter.attempts)
        .bind(letter.error)
        .bind(dead_state::DEAD)
        .bind(time::now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A try of a replayed dead letter failed, and it will be tried again at
    /// `retry_at`: count it on the letter (`failures` of this replay) and hold the
    /// cursor until then. The cursor's own count, which belongs to the event at the
    /// head of the log, is left alone. False: lease lost.
    pub async fn replay_failed(
        &self,
        lease: &Lease,
        letter: &DeadLetter,
        failures: i64,
        retry_at: &str,
        error: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
        let held = sqlx::query(
            "UPDATE event_cursors SET retry_at = $4, last_error = $5 \
             WHERE tenant_id = $1 AND plugin_id = $2 AND lease_owner = $3",
        )
        .bind(&lease.tenant_id)
        .bind(&lease.plugin_id)
        .bind(&lease.token)
        .bind(retry_at)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE event_dead_letters SET replay_attempts = $3, error = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(&letter.tenant_id)
            .bind(&letter.id)
            .bind(failures)
            .bind(error)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A replayed dead letter was delivered (`delivered`: remove it) or failed its
    /// attempts again (park it again with the total attempts and the new error).
    /// Releases the cursor's hold either way; its failure count, which belongs to the
    /// event at the head of the log, is left alone. False: lease lost.
    pub async fn settle_replay(
        &self,
        lease: &Lease,
        letter: &DeadLetter,
        delivered: bool,
        attempts: i64,
        error: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
        let cleared = sqlx::query(
            "UPDATE event_cursors SET retry_at = NULL, last_error = NULL \
             WHERE tenant_id = $1 AND plugin_id = $2 AND lease_owner = $3",
        )
        .bind(&lease.tenant_id)
        .bind(&lease.plugin_id)
        .bind(&lease.token)
        .execute(&mut *tx)
        .await?;
        if cleared.rows_affected() != 1 {
            return Ok(false);
        }
        if delivered {
            sqlx::query("DELETE FROM event_dead_letters WHERE tenant_id = $1 AND id = $2")
                .bind(&letter.tenant_id)
                .bind(&letter.id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "UPDATE event_dead_letters SET state = $3, attempts = $4, error = $5, failed_at = $6, replay_attempts = 0 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(&letter.tenant_id)
            .bind(&letter.id)
            .bind(dead_state::DEAD)
            .bind(attempts)
            .bind(error)
            .bind(time::now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The first re-queued dead letter of a plugin (lowest seq first).
    pub async fn next_replay(&self, tenant: &str, plugin: &str) -> StoreResult<Option<DeadLetter>> {
        let row = sqlx::query(&format!(
            "SELECT {DL_COLUMNS} FROM event_dead_letters WHERE tenant_id = $1 AND plugin_id = $2 AND state = $3 \
             ORDER BY event_seq, id LIMIT 1"
        ))
        .bind(tenant)
        .bind(plugin)
        .bind(dead_state::REPLAYING)
        .fetch_optional(self.writer())
        .await?;
        row.as_ref().map(dead_letter).transpose()
    }

    /// A page of `tenant`'s dead letters (optionally of one plugin), in id order
    /// after `after`.
    pub async fn dead_letters(
        &self,
        tenant: &str,
        plugin: Option<&str>,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<DeadLetter>> {
        let rows =
            match plugin {
                Some(plugin) => sqlx::query(&format!(
                    "SELECT {DL_COLUMNS} FROM event_dead_letters WHERE tenant_id = $1 AND plugin_id = $2 AND id > $3 \
                     ORDER BY id LIMIT $4"
                ))
                .bind(tenant)
                .bind(plugin)
                .bind(after)
                .bind(limit)
                .fetch_all(self.reader())
                .await?,
                None => sqlx::query(&format!(
                    "SELECT {DL_COLUMNS} FROM event_dead_letters WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(tenant)
                .bind(after)
                .bind(limit)
                .fetch_all(self.reader())
                .await?,
            };
        rows.iter().map(dead_letter).collect()
    }

    /// One of `tenant`'s dead letters, read inside `tx`.
    pub async fn dead_letter(&self, tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<Option<DeadLetter>> {
        let row = sqlx::query(&format!(
            "SELECT {DL_COLUMNS} FROM event_dead_letters WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(dead_letter).transpose()
    }

    /// Re-queue a dead letter, and let its plugin's cursor be served at once.
    pub async fn requeue_dead_letter(&self, tx: &mut Tx<'_>, letter: &DeadLetter) -> StoreResult<()> {
        let now = time::now();
        sqlx::query(
            "UPDATE event_dead_letters SET state = $3, replayed_at = $4, replay_attempts = 0 WHERE tenant_id = $1 AND id = $2",
        )
            .bind(&letter.tenant_id)
            .bind(&letter.id)
            .bind(dead_state::REPLAYING)
            .bind(&now)
            .execute(&mut **tx)
            .await?;
        sqlx::query("UPDATE event_cursors SET retry_at = NULL WHERE tenant_id = $1 AND plugin_id = $2")
            .bind(&letter.tenant_id)
            .bind(&letter.plugin)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Delete a dead letter.
    pub async fn delete_dead_letter(&self, tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM event_dead_letters WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Delivery state of each of `tenant`'s installations, by plugin id.
    pub async fn cursor_statuses(&self, tenant: &str) -> StoreResult<Vec<CursorStatus>> {
        // The head is read in the same statement (one snapshot) as the positions: read
        // separately, a cursor could be seen past a head read a moment earlier, and so
        // "caught up" while the event its delivery just caused is pending.
        let rows = sqlx::query(
            "SELECT c.plugin_id, c.position, c.attempt_seq, c.attempts, c.retry_at, c.last_error, c.stalled, \
             c.stalled_since, i.state, \
             COALESCE((SELECT h.seq FROM event_heads h WHERE h.tenant_id = c.tenant_id), 0) AS latest, \
             (SELECT COUNT(*) FROM event_dead_letters d WHERE d.tenant_id = c.tenant_id AND d.plugin_id = c.plugin_id \
              AND d.state = $2) AS dead, \
             (SELECT COUNT(*) FROM event_dead_letters d WHERE d.tenant_id = c.tenant_id AND d.plugin_id = c.plugin_id \
              AND d.state = $3) AS replaying \
             FROM event_cursors c LEFT JOIN installations i ON i.tenant_id = c.tenant_id AND i.plugin_id = c.plugin_id \
             WHERE c.tenant_id = $1 ORDER BY c.plugin_id",
        )
        .bind(tenant)
        .bind(dead_state::DEAD)
        .bind(dead_state::REPLAYING)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let position: i64 = r.try_get("position")?;
                let attempts: i64 = r.try_get("attempts")?;
                let replaying: i64 = r.try_get("replaying")?;
                let latest: i64 = r.try_get("latest")?;
                let stalled: Option<String> = r.try_get("stalled")?;
                Ok(CursorStatus {
                    plugin: r.try_get("plugin_id")?,
                    state: r.try_get("state")?,
                    delivered_through: position,
                    latest,
                    attempts,
                    failing_seq: r.try_get("attempt_seq")?,
                    retry_at: r.try_get("retry_at")?,
                    last_error: r.try_get("last_error")?,
                    caught_up: position >= latest && replaying == 0 && attempts == 0 && stalled.is_none(),
                    stalled,
                    stalled_since: r.try_get("stalled_since")?,
                    dead_letters: r.try_get("dead")?,
                    replaying,
                })
            })
            .collect()
    }
}

/// Move a leased cursor to `seq`, clearing its failures (inside `tx`).
async fn advance(tx: &mut Tx<'_>, lease: &Lease, seq: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE event_cursors SET position = $4, attempt_seq = NULL, attempts = 0, retry_at = NULL, last_error = NULL \
         WHERE tenant_id = $1 AND plugin_id = $2 AND lease_owner = $3",
    )
    .bind(&lease.tenant_id)
    .bind(&lease.plugin_id)
    .bind(&lease.token)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
