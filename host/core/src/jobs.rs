//! Background jobs: long work a plugin does in steps (see docs/jobs.md).
//!
//! A plugin starts a job (`jobs.start`) for the calling user; the job worker (in the
//! server) claims it and calls the plugin's `on-job-step` export again and again,
//! committing each step's progress, writes and next state in one transaction before
//! the next. This module is what every surface shares: starting (validated, limited,
//! audited `job.start`), the view users and plugins get (state, progress, rate, ETA),
//! who may see and cancel a job, and cancelling (audited `job.cancel`).

use serde::Serialize;
use serde_json::Value;

use crate::manifest::Role;
use crate::problem::{FieldProblem, Problem, ProblemKind};
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::jobs::{JobRow, NewJob, status};
use crate::store::{Db, StoreError, time};

/// Largest JSON input, and largest state a step may hand to the next.
pub const MAX_INPUT: usize = 1024 * 1024;
/// Largest result value.
pub const MAX_RESULT: usize = 64 * 1024;
/// Most unfinished jobs per tenant.
pub const MAX_UNFINISHED: i64 = 1000;
/// Longest progress message kept, in characters.
pub const MAX_MESSAGE: usize = 500;

/// How job changes travel inside one host: a start wakes the job worker, a committed
/// step tells whoever follows that job (the SSE stream). Hosts sharing a database also
/// poll, so nothing depends on a signal arriving. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Signal {
    wake: std::sync::Arc<tokio::sync::Notify>,
    changed: tokio::sync::broadcast::Sender<String>,
}

impl Default for Signal {
    fn default() -> Self {
        Signal {
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            changed: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl Signal {
    /// A job became due (started, cancelled): wake the worker.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Signal::wake`] was called (since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Job `id` changed (a step committed, it failed, it was cancelled).
    pub fn changed(&self, id: &str) {
        let _ = self.changed.send(id.to_string());
    }

    /// Listen to changes of every job (filter by id).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changed.subscribe()
    }
}

/// Whether `kind` is a job kind: `^[a-z][a-z0-9_.-]{0,63}$`.
pub fn kind_ok(kind: &str) -> bool {
    crate::notify::category_ok(kind)
}

/// Start a job of `plugin`, running as `run_as` (the calling user; `None`: the plugin).
/// Returns its id.
pub async fn start(
    db: &Db,
    tenant: &str,
    plugin: &str,
    actor: &Actor,
    run_as: Option<&str>,
    kind: &str,
    input: &str,
) -> Result<String, Problem> {
    let mut problems = Vec::new();
    if !kind_ok(kind) {
        problems.push(FieldProblem::new("kind", "must match ^[a-z][a-z0-9_.-]{0,63}$"));
    }
    if input.len() > MAX_INPUT {
        return Err(Problem::new(
            ProblemKind::TooLarge,
            format!("a job's input is at most {MAX_INPUT} bytes"),
        ));
    }
    if serde_json::from_str::<Value>(input).is_err() {
        problems.push(FieldProblem::new("input", "must be JSON"));
    }
    if !problems.is_empty() {
        return Err(Problem::invalid("the job is not valid", problems));
    }
    let id = ulid::Ulid::new().to_string();
    let now = time::now();
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let new = NewJob {
        tenant,
        id: &id,
        plugin,
        kind,
        input,
        run_as,
        now: &now,
    };
    db.insert_job(&mut tx, new, MAX_UNFINISHED).await?;
    let after = serde_json::json!({"plugin": plugin, "kind": kind, "run_as": run_as});
    let event = NewEvent {
        action: "job.start",
        entity_type: "job",
        entity_id: Some(&id),
        before: None,
        after: Some(&after),
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(id)
}

/// Who is looking at jobs.
#[derive(Debug, Clone, Copy)]
pub struct Looker<'a> {
    /// The user.
    pub user_id: &'a str,
    /// Their role: admins see and cancel every job of the tenant.
    pub role: Role,
}

impl Looker<'_> {
    /// Whether the looker may see (and cancel) `job`: their own, or any for admins.
    pub fn may_see(&self, job: &JobRow) -> bool {
        self.role.at_least(Role::Admin) || job.run_as.as_deref() == Some(self.user_id)
    }
}

/// A job as users see it over REST.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    /// Id.
    pub id: String,
    /// The plugin that runs it.
    pub plugin: String,
    /// Its kind.
    pub kind: String,
    /// `queued`, `running`, `paused`, `succeeded`, `failed`, `cancelled`.
    pub state: String,
    /// The user it runs as.
    pub run_as: Option<String>,
    /// Steps committed.
    pub steps: i64,
    /// Progress.
    pub progress: Progress,
    /// Units per second since the first step began (when there is progress).
    pub rate: Option<f64>,
    /// Seconds left at that rate (when the total is known).
    pub eta_seconds: Option<f64>,
    /// Whether a cancel was asked for.
    pub cancel_requested: bool,
    /// The result, once succeeded.
    pub result: Option<JobResultView>,
    /// Why it failed; while it retries, the last try's error.
    pub error: Option<String>,
    /// Tries of the current step that failed.
    pub failed_attempts: i64,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// First step began.
    pub started_at: Option<String>,
    /// Finished.
    pub finished_at: Option<String>,
}

/// Progress of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Units done.
    pub done: i64,
    /// Units in all, when known.
    pub total: Option<i64>,
    /// Percentage done, when the total is known.
    pub percent: Option<i64>,
    /// A line for people.
    pub message: Option<String>,
}

/// A finished job's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobResultView {
    /// The JSON value the job produced.
    pub value: Option<Value>,
    /// A file it produced, and where to download it.
    pub file_id: Option<String>,
    /// `/api/v1/files/{file_id}`.
    pub file_url: Option<String>,
}

/// The view of `job` at `now`.
pub fn view(job: &JobRow, now: ::time::OffsetDateTime) -> JobView {
    let elapsed = job
        .started_at
        .as_deref()
        .and_then(time::parse)
        .map(|s| (job.finished_at.as_deref().and_then(time::parse).unwrap_or(now) - s).as_seconds_f64());
    let rate = elapsed
        .filter(|e| *e > 0.0 && job.done > 0)
        .map(|e| job.done as f64 / e);
    let eta_seconds = match (rate, job.total) {
        (Some(r), Some(total)) if !status::finished(&job.status) && r > 0.0 => {
            Some(((total - job.done).max(0) as f64 / r * 10.0).round() / 10.0)
        }
        _ => None,
    };
    let percent = job.total.filter(|t| *t > 0).map(|t| (job.done.min(t) * 100) / t);
    let result = (job.status == status::SUCCEEDED).then(|| JobResultView {
        value: job.result.as_deref().and_then(|r| serde_json::from_str(r).ok()),
        file_id: job.file_id.clone(),
        file_url: job.file_id.as_ref().map(|f| format!("/api/v1/files/{f}")),
    });
    JobView {
        id: job.id.clone(),
        plugin: job.plugin_id.clone(),
        kind: job.kind.clone(),
        state: job.shown_status().to_string(),
        run_as: job.run_as.clone(),
        steps: job.steps,
        progress: Progress {
            done: job.done,
            total: job.total,
            percent,
            message: job.message.clone(),
        },
        rate: rate.map(|r| (r * 10.0).round() / 10.0),
        eta_seconds,
        cancel_requested: job.cancel_requested,
        result,
        error: job.error.clone(),
        failed_attempts: job.attempt,
        created_at: job.created_at.clone(),
        updated_at: job.updated_at.clone(),
        started_at: job.started_at.clone(),
        finished_at: job.finished_at.clone(),
    }
}

/// A job the looker may see, else not found (others' jobs are not revealed).
pub async fn get(db: &Db, tenant: &str, looker: Looker<'_>, id: &str) -> Result<JobRow, Problem> {
    match db.job(tenant, id).await? {
        Some(job) if looker.may_see(&job) => Ok(job),
        _ => Err(Problem::new(ProblemKind::NotFound, format!("no job {id}"))),
    }
}

/// Ask a job to stop (audited `job.cancel`); returns it after the request. A finished
/// job is returned unchanged.
pub async fn cancel(db: &Db, tenant: &str, actor: &Actor, job: &JobRow) -> Result<JobRow, Problem> {
    if status::finished(&job.status) {
        return Ok(job.clone());
    }
    let now = time::now();
    // The request and its audit entry commit together.
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    if !db.request_job_cancel(&mut tx, tenant, &job.id, &now).await? {
        // It finished meanwhile: nothing to cancel, nothing to audit.
        drop(tx);
        return db
            .job(tenant, &job.id)
            .await?
            .ok_or_else(|| Problem::new(ProblemKind::NotFound, format!("no job {}", job.id)));
    }
    let event = NewEvent {
        action: "job.cancel",
        entity_type: "job",
        entity_id: Some(&job.id),
        before: None,
        after: Some(&serde_json::json!({"plugin": job.plugin_id, "kind": job.kind})),
    };
    audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    tx.commit().await.map_err(StoreError::from)?;
    db.job(tenant, &job.id)
        .await?
        .ok_or_else(|| Problem::new(ProblemKind::NotFound, format!("no job {}", job.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> JobRow {
        JobRow {
            tenant_id: "t".into(),
            id: "j".into(),
            plugin_id: "p".into(),
            kind: "import".into(),
            input: "{}".into(),
            run_as: Some("u".into()),
            status: status::RUNNING.into(),
            step_state: None,
            steps: 3,
            attempt: 0,
            done: 300,
            total: Some(1000),
            message: None,
            result: None,
            file_id: None,
            error: None,
            cancel_requested: false,
            due_at: Some("2026-01-01T00:00:00.000Z".into()),
            claimed_by: None,
            claim_until: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:10.000Z".into(),
            started_at: Some("2026-01-01T00:00:00.000Z".into()),
            finished_at: None,
            runnable: true,
        }
    }

    #[test]
    fn rate_and_eta_come_from_progress_since_the_first_step() {
        let v = view(&row(), ::time::macros::datetime!(2026-01-01 00:00:10 UTC));
        assert_eq!(v.rate, Some(30.0));
        assert_eq!(v.eta_seconds, Some(23.3));
        assert_eq!(v.progress.percent, Some(30));
        assert_eq!(v.state, "running");
        let paused = JobRow {
            runnable: false,
            ..row()
        };
        assert_eq!(view(&paused, ::time::OffsetDateTime::now_utc()).state, "paused");
    }

    #[test]
    fn only_the_owner_and_admins_see_a_job() {
        let job = row();
        let me = Looker {
            user_id: "u",
            role: Role::Member,
        };
        let other = Looker {
            user_id: "v",
            role: Role::Manager,
        };
        let admin = Looker {
            user_id: "w",
            role: Role::Admin,
        };
        assert!(me.may_see(&job) && !other.may_see(&job) && admin.may_see(&job));
    }
}
