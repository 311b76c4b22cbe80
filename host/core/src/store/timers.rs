//! Durable plugin timers (`plugin_timers`): what plugins schedule, what the scheduler
//! claims and fires, and what tenant admins list.
//!
//! A row is pending while `due_at` is set. The scheduler claims due rows of enabled
//! installations by writing a unique claim token and a lease (`claimed_by`,
//! `claim_until`) in one atomic statement — on PostgreSQL the candidates are locked
//! with `FOR UPDATE … SKIP LOCKED`, so hosts sharing the database never claim the same
//! row; on SQLite the single writer serialises claims. Finishing a fire touches the
//! row only if it still carries that token, so a timer replaced or cancelled while it
//! was firing keeps its new state. A one-shot timer that failed stays with `due_at`
//! NULL, showing its error to the admin, until replaced, cancelled or swept.

use sqlx::Row;

use super::installations::state;
use super::{Db, Dialect, StoreError, StoreResult, Tx};

/// A timer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    /// Tenant.
    pub tenant_id: String,
    /// Plugin.
    pub plugin_id: String,
    /// The plugin's key.
    pub key: String,
    /// Passed to `on-timer`.
    pub payload: String,
    /// Cron expression (cron timers only).
    pub cron: Option<String>,
    /// IANA zone of the expression (cron timers only).
    pub time_zone: Option<String>,
    /// Next fire; `None` for a one-shot timer that failed.
    pub due_at: Option<String>,
    /// Set while a scheduler is firing it (until `claim_until`).
    pub claimed_by: Option<String>,
    /// End of the claim's lease (or of a short hold after a release).
    pub claim_until: Option<String>,
    /// When the key was first set.
    pub created_at: String,
    /// When it was last set.
    pub updated_at: String,
    /// Times fired.
    pub fires: i64,
    /// Fires that failed.
    pub failures: i64,
    /// Last fire.
    pub last_fired_at: Option<String>,
    /// Last failure's description.
    pub last_error: Option<String>,
    /// When that failure happened.
    pub last_error_at: Option<String>,
    /// The user it runs as (the one whose call set it), if any.
    pub run_as: Option<String>,
}

const COLUMNS: &str = "tenant_id, plugin_id, timer_key, payload, cron, time_zone, due_at, claimed_by, claim_until, \
    created_at, updated_at, fires, failures, last_fired_at, last_error, last_error_at, run_as";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<TimerRow> {
    Ok(TimerRow {
        tenant_id: r.try_get("tenant_id")?,
        plugin_id: r.try_get("plugin_id")?,
        key: r.try_get("timer_key")?,
        payload: r.try_get("payload")?,
        cron: r.try_get("cron")?,
        time_zone: r.try_get("time_zone")?,
        due_at: r.try_get("due_at")?,
        claimed_by: r.try_get("claimed_by")?,
        claim_until: r.try_get("claim_until")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        fires: r.try_get("fires")?,
        failures: r.try_get("failures")?,
        last_fired_at: r.try_get("last_fired_at")?,
        last_error: r.try_get("last_error")?,
        last_error_at: r.try_get("last_error_at")?,
        run_as: r.try_get("run_as")?,
    })
}

/// A timer to set (replacing any under the same key).
#[derive(Debug, Clone, Copy)]
pub struct NewTimer<'a> {
    /// The key.
    pub key: &'a str,
    /// The payload.
    pub payload: &'a str,
    /// Cron expression and zone, for cron timers.
    pub cron: Option<(&'a str, &'a str)>,
    /// First fire (stored form, see `store::time`).
    pub due_at: &'a str,
    /// The user it runs as (the user of the call that sets it).
    pub run_as: Option<&'a str>,
}

/// Whether [`Db::set_timer`] created a key or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The key was new.
    Created,
    /// A timer under the key was replaced.
    Replaced,
}

/// How a fire ended, for [`Db::finish_timer`].
#[derive(Debug, Clone, Copy)]
pub struct Fired<'a> {
    /// When the fire was made (stored form).
    pub at: &'a str,
    /// The failure, if it failed.
    pub error: Option<&'a str>,
    /// For cron timers, the next due time; `None` ends the timer (a one-shot fired).
    pub next_due: Option<&'a str>,
}

/// A timer (aliased `t`) may fire: it runs as no user, or as one who is active. A
/// deactivated user's timers are held until they are active again.
const RUNNABLE: &str = "(t.run_as IS NULL OR EXISTS (SELECT 1 FROM users u \
    WHERE u.tenant_id = t.tenant_id AND u.id = t.run_as AND u.status = 'active'))";

impl Db {
    /// Set a timer, replacing one under the same key (and any claim on it). A new key
    /// is refused with `Limit` when the plugin already has `max` pending timers in the
    /// tenant (checked in the same statement; concurrent sets may overshoot by a few).
    pub async fn set_timer(
        &self,
        tenant: &str,
        plugin: &str,
        timer: NewTimer<'_>,
        now: &str,
        max: i64,
    ) -> StoreResult<SetOutcome> {
        let (cron, zone) = timer.cron.unzip();
        for _ in 0..2 {
            let replaced = sqlx::query(
                "UPDATE plugin_timers SET payload = $4, cron = $5, time_zone = $6, due_at = $7, claimed_by = NULL, \
                 claim_until = NULL, updated_at = $8, run_as = $9 \
                 WHERE tenant_id = $1 AND plugin_id = $2 AND timer_key = $3",
            )
            .bind(tenant)
            .bind(plugin)
            .bind(timer.key)
            .bind(timer.payload)
            .bind(cron)
            .bind(zone)
            .bind(timer.due_at)
            .bind(now)
            .bind(timer.run_as)
            .execute(self.writer())
            .await?;
            if replaced.rows_affected() == 1 {
                return Ok(SetOutcome::Replaced);
            }
            let inserted = sqlx::query(
                "INSERT INTO plugin_timers (tenant_id, plugin_id, timer_key, payload, cron, time_zone, due_at, \
                 created_at, updated_at, fires, failures, run_as) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, 0, 0, $10 WHERE (SELECT COUNT(*) FROM plugin_timers \
                 WHERE tenant_id = $1 AND plugin_id = $2 AND due_at IS NOT NULL) < $9",
            )
            .bind(tenant)
            .bind(plugin)
            .bind(timer.key)
            .bind(timer.payload)
            .bind(cron)
            .bind(zone)
            .bind(timer.due_at)
            .bind(now)
            .bind(max)
            .bind(timer.run_as)
            .execute(self.writer())
            .await;
            match inserted {
                Ok(done) if done.rows_affected() == 1 => return Ok(SetOutcome::Created),
                Ok(_) => {
                    return Err(StoreError::Limit(format!(
                        "a plugin may have at most {max} pending timers; cancel some first"
                    )));
                }
                // Someone else created the key in between: replace theirs.
                Err(e) if super::is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(format!(
            "timer `{}` is being set concurrently; retry",
            timer.key
        )))
    }

    /// Remove the timer under `key`; true if it was pending (a failed one-shot timer
    /// is removed too, but was not pending).
    pub async fn cancel_timer(&self, tenant: &str, plugin: &str, key: &str) -> StoreResult<bool> {
        let rows = sqlx::query(
            "DELETE FROM plugin_timers WHERE tenant_id = $1 AND plugin_id = $2 AND timer_key = $3 \
             RETURNING due_at",
        )
        .bind(tenant)
        .bind(plugin)
        .bind(key)
        .fetch_all(self.writer())
        .await?;
        let mut pending = false;
        for r in &rows {
            pending |= r.try_get::<Option<String>, _>("due_at")?.is_some();
        }
        Ok(pending)
    }

    /// Remove the timer under `key` inside `tx` (a tenant admin's cancel, audited in
    /// the same transaction); returns the removed row, `None` if there was none.
    pub async fn remove_timer(
        &self,
        tx: &mut Tx<'_>,
        tenant: &str,
        plugin: &str,
        key: &str,
    ) -> StoreResult<Option<TimerRow>> {
        let row = sqlx::query(&format!(
            "DELETE FROM plugin_timers WHERE tenant_id = $1 AND plugin_id = $2 AND timer_key = $3 \
             RETURNING {COLUMNS}"
        ))
        .bind(tenant)
        .bind(plugin)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The plugin's pending timers in the tenant, by key.
    pub async fn pending_timers(&self, tenant: &str, plugin: &str) -> StoreResult<Vec<TimerRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM plugin_timers WHERE tenant_id = $1 AND plugin_id = $2 AND due_at IS NOT NULL \
             ORDER BY timer_key"
        ))
        .bind(tenant)
        .bind(plugin)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// A page of the plugin's timers in the tenant (failed one-shot timers included),
    /// by key, starting after `after`.
    pub async fn timers_page(
        &self,
        tenant: &str,
        plugin: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<TimerRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM plugin_timers WHERE tenant_id = $1 AND plugin_id = $2 AND timer_key > $3 \
             ORDER BY timer_key LIMIT $4"
        ))
        .bind(tenant)
        .bind(plugin)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The earliest due time among timers that could be claimed at `now` or later
    /// (pending, of an enabled installation, not under a live claim), across tenants.
    pub async fn next_timer_due(&self, now: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query(&format!(
            "SELECT MIN(t.due_at) AS due FROM plugin_timers t JOIN installations i \
             ON i.tenant_id = t.tenant_id AND i.plugin_id = t.plugin_id \
             WHERE i.state = $1 AND t.due_at IS NOT NULL AND (t.claim_until IS NULL OR t.claim_until < $2) \
             AND {RUNNABLE}"
        ))
        .bind(state::ENABLED)
        .bind(now)
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get("due")?)
    }

    /// Claim up to `limit` timers due at `now` of enabled installations, across
    /// tenants, with `token` until `lease_until`; returns them, earliest first. Timers
    /// of disabled, revoked or uninstalled installations are never claimed (held).
    pub async fn claim_timers(
        &self,
        token: &str,
        now: &str,
        lease_until: &str,
        limit: i64,
    ) -> StoreResult<Vec<TimerRow>> {
        let lock = match self.dialect() {
            Dialect::Postgres => "FOR UPDATE OF t SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        // The outer conditions repeat the inner ones: on PostgreSQL they are
        // re-checked against the newest row version, so a row another host claimed
        // after this statement's snapshot is left alone.
        let sql = format!(
            "UPDATE plugin_timers SET claimed_by = $1, claim_until = $2 \
             WHERE (tenant_id, plugin_id, timer_key) IN (\
                SELECT t.tenant_id, t.plugin_id, t.timer_key FROM plugin_timers t JOIN installations i \
                ON i.tenant_id = t.tenant_id AND i.plugin_id = t.plugin_id \
                WHERE i.state = $3 AND t.due_at IS NOT NULL AND t.due_at <= $4 \
                AND (t.claim_until IS NULL OR t.claim_until < $4) AND {RUNNABLE} \
                ORDER BY t.due_at LIMIT $5 {lock}) \
             AND due_at IS NOT NULL AND due_at <= $4 AND (claim_until IS NULL OR claim_until < $4) \
             RETURNING {COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(token)
            .bind(lease_until)
            .bind(state::ENABLED)
            .bind(now)
            .bind(limit)
            .fetch_all(self.writer())
            .await?;
        let mut timers = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
        timers.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.key.cmp(&b.key)));
        Ok(timers)
    }

    /// Record a fire of a claimed timer: its counters and error always (by key), and —
    /// if the row still carries `token` — its next state: the next due time of a cron
    /// timer, deletion of a one-shot that succeeded, or `due_at` NULL for one that
    /// failed (kept so the admin sees why).
    pub async fn finish_timer(&self, timer: &TimerRow, token: &str, fired: Fired<'_>) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        let failed = i64::from(fired.error.is_some());
        sqlx::query(
            "UPDATE plugin_timers SET fires = fires + 1, failures = failures + $4, last_fired_at = $5, \
             last_error = COALESCE($6, last_error), last_error_at = CASE WHEN $4 = 1 THEN $5 ELSE last_error_at END \
             WHERE tenant_id = $1 AND plugin_id = $2 AND timer_key = $3",
        )
        .bind(&timer.tenant_id)
        .bind(&timer.plugin_id)
        .bind(&timer.key)
        .bind(failed)
        .bind(fired.at)
        .bind(fired.error)
        .execute(&mut *tx)
        .await?;
        let owned = "WHERE tenant_id = $1 AND plugin_id = $2 AND timer_key = $3 AND claimed_by = $4";
        let keep = fired.next_due.is_some() || fired.error.is_some();
        let sql = if keep {
            format!("UPDATE plugin_timers SET due_at = $5, claimed_by = NULL, claim_until = NULL {owned}")
        } else {
            format!("DELETE FROM plugin_timers {owned}")
        };
        let mut next = sqlx::query(&sql)
            .bind(&timer.tenant_id)
            .bind(&timer.plugin_id)
            .bind(&timer.key)
            .bind(token);
        if keep {
            next = next.bind(fired.next_due);
        }
        next.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Give up a claim without firing (the installation was not active after all):
    /// the timer stays due and is not claimed again before `hold_until`.
    pub async fn release_timer(&self, timer: &TimerRow, token: &str, hold_until: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE plugin_timers SET claimed_by = NULL, claim_until = $5 \
             WHERE tenant_id = $1 AND plugin_id = $2 AND timer_key = $3 AND claimed_by = $4",
        )
        .bind(&timer.tenant_id)
        .bind(&timer.plugin_id)
        .bind(&timer.key)
        .bind(token)
        .bind(hold_until)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Delete every timer of a plugin in a tenant (on uninstall).
    pub async fn drop_timers(&self, tx: &mut Tx<'_>, tenant: &str, plugin: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM plugin_timers WHERE tenant_id = $1 AND plugin_id = $2")
            .bind(tenant)
            .bind(plugin)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected())
    }

    /// Delete failed one-shot timers whose last fire is before `before`, across tenants.
    pub async fn sweep_failed_timers(&self, before: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM plugin_timers WHERE due_at IS NULL AND last_fired_at < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
