//! Background jobs (`jobs`, migration 0023): what plugins start, what workers claim and
//! step, what users follow over REST.
//!
//! A job is due while `due_at` is set. A worker claims due jobs of enabled
//! installations whose user is active, writing a unique token and a lease in one
//! statement (on PostgreSQL the candidates are locked `FOR UPDATE … SKIP LOCKED`, so
//! hosts sharing a database never claim the same job; SQLite's single writer
//! serialises claims). Every step's commit is conditional on the token *and* on
//! `steps` still being the count the step started from, so a step whose lease lapsed
//! (and that another host may have run) is never committed twice.

use sqlx::Row;

use super::installations::state;
use super::{Db, Dialect, StoreError, StoreResult, Tx};

/// Job statuses as stored. `paused` is not stored: it is derived (see [`JobRow::runnable`]).
pub mod status {
    /// Started, no step committed yet.
    pub const QUEUED: &str = "queued";
    /// At least one step committed.
    pub const RUNNING: &str = "running";
    /// Finished with a result.
    pub const SUCCEEDED: &str = "succeeded";
    /// Gave up: the last try of a step failed.
    pub const FAILED: &str = "failed";
    /// Stopped on request (or because its plugin was uninstalled).
    pub const CANCELLED: &str = "cancelled";

    /// Whether a status is final.
    pub fn finished(s: &str) -> bool {
        matches!(s, SUCCEEDED | FAILED | CANCELLED)
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Tenant.
    pub tenant_id: String,
    /// Id (ULID).
    pub id: String,
    /// The plugin that started it.
    pub plugin_id: String,
    /// The plugin's kind.
    pub kind: String,
    /// JSON input.
    pub input: String,
    /// The user it runs as; `None`: as the plugin.
    pub run_as: Option<String>,
    /// See [`status`].
    pub status: String,
    /// The state the next step gets (`None` before the first).
    pub step_state: Option<String>,
    /// Steps committed.
    pub steps: i64,
    /// Failed tries of the current step.
    pub attempt: i64,
    /// Progress: units done.
    pub done: i64,
    /// Progress: units in all.
    pub total: Option<i64>,
    /// Progress: a line for people.
    pub message: Option<String>,
    /// The result's JSON value.
    pub result: Option<String>,
    /// The result's file.
    pub file_id: Option<String>,
    /// Why it failed (or the last failed try's error while it retries).
    pub error: Option<String>,
    /// Someone asked to cancel it.
    pub cancel_requested: bool,
    /// When the next step may run; `None` once finished.
    pub due_at: Option<String>,
    /// The claim's token while a worker holds it.
    pub claimed_by: Option<String>,
    /// End of the claim's lease (or of a hold after a release).
    pub claim_until: Option<String>,
    /// Started.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// First step began.
    pub started_at: Option<String>,
    /// Finished.
    pub finished_at: Option<String>,
    /// Whether it could run now: its installation is enabled and its user (if any)
    /// active. An unfinished job that cannot is shown as `paused`.
    pub runnable: bool,
}

impl JobRow {
    /// The status callers see: the stored one, or `paused` for an unfinished job that
    /// cannot run now.
    pub fn shown_status(&self) -> &str {
        if !status::finished(&self.status) && !self.runnable {
            "paused"
        } else {
            &self.status
        }
    }
}

const COLUMNS: &str = "j.tenant_id, j.id, j.plugin_id, j.kind, j.input, j.run_as, j.status, j.step_state, j.steps, \
    j.attempt, j.done, j.total, j.message, j.result, j.file_id, j.error, j.cancel_requested, j.due_at, j.claimed_by, \
    j.claim_until, j.created_at, j.updated_at, j.started_at, j.finished_at";

/// A job (aliased `j`) may run: its installation is enabled and it runs as no user or
/// an active one.
const RUNNABLE: &str = "(EXISTS (SELECT 1 FROM installations i WHERE i.tenant_id = j.tenant_id \
    AND i.plugin_id = j.plugin_id AND i.state = 'enabled') AND (j.run_as IS NULL OR EXISTS (SELECT 1 FROM users u \
    WHERE u.tenant_id = j.tenant_id AND u.id = j.run_as AND u.status = 'active')))";

fn select() -> String {
    format!("SELECT {COLUMNS}, CAST(CASE WHEN {RUNNABLE} THEN 1 ELSE 0 END AS BIGINT) AS runnable FROM jobs j")
}

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<JobRow> {
    Ok(JobRow {
        tenant_id: r.try_get("tenant_id")?,
        id: r.try_get("id")?,
        plugin_id: r.try_get("plugin_id")?,
        kind: r.try_get("kind")?,
        input: r.try_get("input")?,
        run_as: r.try_get("run_as")?,
        status: r.try_get("status")?,
        step_state: r.try_get("step_state")?,
        steps: r.try_get("steps")?,
        attempt: r.try_get("attempt")?,
        done: r.try_get("done")?,
        total: r.try_get("total")?,
        message: r.try_get("message")?,
        result: r.try_get("result")?,
        file_id: r.try_get("file_id")?,
        error: r.try_get("error")?,
        cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
        due_at: r.try_get("due_at")?,
        claimed_by: r.try_get("claimed_by")?,
        claim_until: r.try_get("claim_until")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        runnable: r.try_get::<i64, _>("runnable")? != 0,
    })
}

/// A job to start.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Id.
    pub id: &'a str,
    /// Plugin.
    pub plugin: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// JSON input.
    pub input: &'a str,
    /// The user it runs as.
    pub run_as: Option<&'a str>,
    /// Now (stored form): created and first due.
    pub now: &'a str,
}

/// What a committed step changes.
#[derive(Debug, Clone, Copy)]
pub struct StepCommit<'a> {
    /// Now (stored form).
    pub now: &'a str,
    /// Progress after the step.
    pub done: i64,
    /// Progress: total.
    pub total: Option<i64>,
    /// Progress: message.
    pub message: Option<&'a str>,
    /// The next state; `None` when the job ends with this step.
    pub next_state: Option<&'a str>,
    /// How the job ends with this step (`succeeded`, `cancelled`); `None` to go on.
    pub finish: Option<&'a str>,
    /// The result's value.
    pub result: Option<&'a str>,
    /// The result's file.
    pub file_id: Option<&'a str>,
    /// The claim's new lease end (when it goes on).
    pub lease_until: &'a str,
}

impl Db {
    /// Start a job, refused with `Limit` when the tenant already has `max` unfinished
    /// jobs (checked in the same statement).
    pub async fn insert_job(&self, tx: &mut Tx<'_>, job: NewJob<'_>, max: i64) -> StoreResult<()> {
        let done = sqlx::query(
            "INSERT INTO jobs (tenant_id, id, plugin_id, kind, input, run_as, status, steps, attempt, done, \
             cancel_requested, due_at, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, 0, 0, 0, 0, $8, $8, $8 \
             WHERE (SELECT COUNT(*) FROM jobs WHERE tenant_id = $1 AND due_at IS NOT NULL) < $9",
        )
        .bind(job.tenant)
        .bind(job.id)
        .bind(job.plugin)
        .bind(job.kind)
        .bind(job.input)
        .bind(job.run_as)
        .bind(status::QUEUED)
        .bind(job.now)
        .bind(max)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Limit(format!(
                "the tenant has {max} unfinished jobs; wait for some to finish or cancel them"
            )))
        }
    }

    /// One job of the tenant.
    pub async fn job(&self, tenant: &str, id: &str) -> StoreResult<Option<JobRow>> {
        let row = sqlx::query(&format!("{} WHERE j.tenant_id = $1 AND j.id = $2", select()))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of the tenant's jobs, newest first, after the id `before` (a cursor);
    /// only those run as `user` when given, only those of `plugin` when given.
    pub async fn jobs_page(
        &self,
        tenant: &str,
        user: Option<&str>,
        plugin: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<JobRow>> {
        let rows = sqlx::query(&format!(
            "{} WHERE j.tenant_id = $1 AND ($2 IS NULL OR j.run_as = $2) AND ($3 IS NULL OR j.plugin_id = $3) \
             AND ($4 IS NULL OR j.id < $4) ORDER BY j.id DESC LIMIT $5",
            select()
        ))
        .bind(tenant)
        .bind(user)
        .bind(plugin)
        .bind(before)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Ask an unfinished job to stop, inside `tx` (with its audit entry): its next step
    /// sees `cancelled`, and a step waiting out a retry backoff runs now. `false`
    /// when there was no unfinished job `id`.
    pub async fn request_job_cancel(&self, tx: &mut Tx<'_>, tenant: &str, id: &str, now: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET cancel_requested = 1, updated_at = $3, \
             due_at = CASE WHEN due_at > $3 THEN $3 ELSE due_at END \
             WHERE tenant_id = $1 AND id = $2 AND due_at IS NOT NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The earliest due time among jobs that could be claimed at `now` or later.
    pub async fn next_job_due(&self, now: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query(&format!(
            "SELECT MIN(j.due_at) AS due FROM jobs j WHERE j.due_at IS NOT NULL \
             AND (j.claim_until IS NULL OR j.claim_until < $1) AND {RUNNABLE}"
        ))
        .bind(now)
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get("due")?)
    }

    /// Claim up to `limit` due jobs that may run, across tenants, with `token` until
    /// `lease_until`; earliest due first.
    pub async fn claim_jobs(&self, token: &str, now: &str, lease_until: &str, limit: i64) -> StoreResult<Vec<JobRow>> {
        let lock = match self.dialect() {
            Dialect::Postgres => "FOR UPDATE OF j SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        // The outer conditions repeat the inner ones: on PostgreSQL they are
        // re-checked against the newest row version.
        let sql = format!(
            "UPDATE jobs SET claimed_by = $1, claim_until = $2 \
             WHERE (tenant_id, id) IN (\
                SELECT j.tenant_id, j.id FROM jobs j \
                WHERE j.due_at IS NOT NULL AND j.due_at <= $3 \
                AND (j.claim_until IS NULL OR j.claim_until < $3) AND {RUNNABLE} \
                ORDER BY j.due_at LIMIT $4 {lock}) \
             AND due_at IS NOT NULL AND due_at <= $3 AND (claim_until IS NULL OR claim_until < $3) \
             RETURNING tenant_id, id"
        );
        let rows = sqlx::query(&sql)
            .bind(token)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(self.writer())
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for r in &rows {
            let tenant: String = r.try_get("tenant_id")?;
            let id: String = r.try_get("id")?;
            if let Some(job) = self.job(&tenant, &id).await? {
                jobs.push(job);
            }
        }
        jobs.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.id.cmp(&b.id)));
        Ok(jobs)
    }

    /// Commit a step inside `tx` (where its writes were applied): only if the job still
    /// carries `token` and has `from_steps` committed steps. Returns whether a cancel
    /// has been asked for since; `None` means the claim was lost and the caller must
    /// roll back.
    pub async fn commit_job_step(
        &self,
        tx: &mut Tx<'_>,
        job: &JobRow,
        token: &str,
        step: StepCommit<'_>,
    ) -> StoreResult<Option<bool>> {
        let finished = step.finish.is_some();
        let status = step.finish.unwrap_or(status::RUNNING);
        let done = sqlx::query(
            "UPDATE jobs SET steps = steps + 1, attempt = 0, status = $5, step_state = $6, done = $7, total = $8, \
             message = $9, result = $10, file_id = $11, error = NULL, updated_at = $12, \
             started_at = COALESCE(started_at, $12), \
             finished_at = CASE WHEN $13 = 1 THEN $12 ELSE NULL END, \
             due_at = CASE WHEN $13 = 1 THEN NULL ELSE due_at END, \
             claimed_by = CASE WHEN $13 = 1 THEN NULL ELSE claimed_by END, \
             claim_until = CASE WHEN $13 = 1 THEN NULL ELSE $14 END \
             WHERE tenant_id = $1 AND id = $2 AND claimed_by = $3 AND steps = $4 RETURNING cancel_requested",
        )
        .bind(&job.tenant_id)
        .bind(&job.id)
        .bind(token)
        .bind(job.steps)
        .bind(status)
        .bind(step.next_state)
        .bind(step.done)
        .bind(step.total)
        .bind(step.message)
        .bind(step.result)
        .bind(step.file_id)
        .bind(step.now)
        .bind(i64::from(finished))
        .bind(step.lease_until)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(match done {
            Some(row) => Some(row.try_get::<i64, _>("cancel_requested")? != 0),
            None => None,
        })
    }

    /// Record a failed try of a step (if the job still carries `token` and is at the
    /// same step): either retry it at `retry_at` (releasing the claim) or, when
    /// `retry_at` is `None`, fail the job with `error`.
    pub async fn fail_job_step(
        &self,
        job: &JobRow,
        token: &str,
        error: &str,
        retry_at: Option<&str>,
        now: &str,
    ) -> StoreResult<bool> {
        let query = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE jobs SET attempt = attempt + 1, error = $5, due_at = $7, claimed_by = NULL, \
                 claim_until = NULL, updated_at = $6, started_at = COALESCE(started_at, $6) \
                 WHERE tenant_id = $1 AND id = $2 AND claimed_by = $3 AND steps = $4",
            )
            .bind(&job.tenant_id)
            .bind(&job.id)
            .bind(token)
            .bind(job.steps)
            .bind(error)
            .bind(now)
            .bind(at),
            None => sqlx::query(
                "UPDATE jobs SET attempt = attempt + 1, error = $5, status = 'failed', due_at = NULL, \
                 claimed_by = NULL, claim_until = NULL, updated_at = $6, finished_at = $6, \
                 started_at = COALESCE(started_at, $6) \
                 WHERE tenant_id = $1 AND id = $2 AND claimed_by = $3 AND steps = $4",
            )
            .bind(&job.tenant_id)
            .bind(&job.id)
            .bind(token)
            .bind(job.steps)
            .bind(error)
            .bind(now),
        };
        let done = query.execute(self.writer()).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give up a claim without stepping: the job stays due and is not claimed again
    /// before `hold_until` (its plugin turned out inactive, or its slice of time ended).
    pub async fn release_job(&self, job: &JobRow, token: &str, hold_until: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE jobs SET claimed_by = NULL, claim_until = $4 WHERE tenant_id = $1 AND id = $2 AND claimed_by = $3",
        )
        .bind(&job.tenant_id)
        .bind(&job.id)
        .bind(token)
        .bind(hold_until)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Cancel every unfinished job of a plugin in a tenant (on uninstall), with `reason`.
    pub async fn cancel_plugin_jobs(
        &self,
        tx: &mut Tx<'_>,
        tenant: &str,
        plugin: &str,
        reason: &str,
        now: &str,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', error = $3, due_at = NULL, claimed_by = NULL, claim_until = NULL, \
             updated_at = $4, finished_at = $4 WHERE tenant_id = $1 AND plugin_id = $2 AND due_at IS NOT NULL",
        )
        .bind(tenant)
        .bind(plugin)
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    /// The plugin's enabled installation state, for a quick check between steps.
    pub async fn installation_enabled(&self, tenant: &str, plugin: &str) -> StoreResult<bool> {
        let row =
            sqlx::query("SELECT 1 AS x FROM installations WHERE tenant_id = $1 AND plugin_id = $2 AND state = $3")
                .bind(tenant)
                .bind(plugin)
                .bind(state::ENABLED)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.is_some())
    }
}
