//! The job worker: runs plugins' background jobs step by step (semantics in
//! `docs/jobs.md`; the rules every surface shares are `plinth_core::jobs`).
//!
//! Each pass claims due jobs (atomically, with a lease: on PostgreSQL several hosts
//! never claim the same job) and runs each for a slice of time: a step is one call of
//! the plugin's `on-job-step`, as the job's user with their roles as they are now.
//! What the step returns — progress, next state or result, and its writes — is
//! committed in **one transaction** that also checks the claim still holds and the
//! job is still at the step it started from; then the next step runs. A crash between
//! steps leaves the last committed state, which the next claim resumes from (after
//! the lease); a step whose commit finds the claim lost is rolled back. A failed step
//! is retried with exponential backoff, then fails the job. Jobs of disabled plugins
//! or deactivated users are not claimed (they show as `paused`) and resume when they
//! can run again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use time::OffsetDateTime;

use plinth_core::batch;
use plinth_core::jobs::{MAX_INPUT, MAX_MESSAGE, MAX_RESULT, Signal};
use plinth_core::store::jobs::{JobRow, StepCommit, status};
use plinth_core::store::{Db, StoreError, time as stored};
use plinth_runtime::bindings::{Caller, Job, JobNext};
use plinth_runtime::engine::StepOutcome;
use plinth_runtime::plugins::{Active, PluginHost, Resolved};

/// Job worker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobsConfig {
    /// Longest sleep between passes (bounds how late jobs started on other hosts,
    /// re-enabled plugins and lapsed leases are noticed).
    pub poll: Duration,
    /// Most jobs run at once by this host.
    pub concurrency: usize,
    /// How long a claim lasts without a committed step; must exceed the longest step
    /// (the runtime's call timeout caps it).
    pub lease: Duration,
    /// How long one job runs before its claim is given up so others get a turn.
    pub slice: Duration,
    /// Tries of one step before the job fails.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each further try, at most 5 minutes.
    pub backoff: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            poll: Duration::from_secs(1),
            concurrency: 4,
            lease: Duration::from_secs(300),
            slice: Duration::from_secs(10),
            max_attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }
}

impl JobsConfig {
    /// The wait before retry number `failed` (1 after the first failure).
    fn retry_after(&self, failed: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed.saturating_sub(1).min(16));
        self.backoff.saturating_mul(factor).min(Duration::from_secs(300))
    }
}

/// How long a job whose plugin or user turned out not to be runnable waits.
const HOLD_BACK: Duration = Duration::from_secs(1);
/// How long a job whose plugin cannot be loaded waits.
const LOAD_BACKOFF: Duration = Duration::from_secs(60);
/// Longest error kept on a job, in characters.
const MAX_ERROR_CHARS: usize = 2000;

/// The job worker of one host.
#[derive(Debug)]
pub struct JobWorker {
    db: Db,
    plugins: Arc<PluginHost>,
    signal: Signal,
    config: JobsConfig,
}

/// Why a job's run stopped.
enum Stop {
    /// Finished, failed, waiting to retry, or the claim was lost: nothing to release.
    Done,
    /// Give the claim up; the job may be claimed again after `hold`.
    Release(Duration),
}

impl JobWorker {
    /// A worker running `plugins`' jobs.
    pub fn new(db: Db, plugins: Arc<PluginHost>, config: JobsConfig) -> JobWorker {
        let signal = plugins.services().jobs.clone();
        JobWorker {
            db,
            plugins,
            signal,
            config,
        }
    }

    /// Run until `shutdown` resolves. Jobs being run stop after their current step
    /// and give their claim up, so a restart (or another host) resumes them at once.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        let token_prefix = ulid::Ulid::new().to_string();
        while !shutdown.is_cancelled() {
            let wait = match self.pass(&token_prefix, &shutdown).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = ?e, "job pass failed; retrying");
                    self.config.poll
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.signal.woken() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn pass(
        &self,
        token_prefix: &str,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<Duration, StoreError> {
        let now = OffsetDateTime::now_utc();
        let token = format!("{token_prefix}:{}", ulid::Ulid::new());
        let lease_until = stored::format(now + self.config.lease);
        let claimed = self
            .db
            .claim_jobs(
                &token,
                &stored::format(now),
                &lease_until,
                self.config.concurrency as i64,
            )
            .await?;
        let ran = !claimed.is_empty();
        futures_util::stream::iter(claimed)
            .for_each_concurrent(self.config.concurrency.max(1), |job| {
                let token = token.clone();
                async move {
                    let (tenant, id) = (job.tenant_id.clone(), job.id.clone());
                    let stop = match self.run_job(&token, job, shutdown).await {
                        Ok(stop) => stop,
                        Err(e) => {
                            tracing::warn!(error = ?e, %tenant, job = %id, "a job step could not be recorded; its claim lapses after the lease");
                            Stop::Done
                        }
                    };
                    if let Stop::Release(hold) = stop
                        && let Ok(Some(job)) = self.db.job(&tenant, &id).await
                    {
                        let until = stored::format(OffsetDateTime::now_utc() + hold);
                        if let Err(e) = self.db.release_job(&job, &token, &until).await {
                            tracing::warn!(error = ?e, %tenant, job = %id, "could not release a job's claim");
                        }
                    }
                }
            })
            .await;
        if ran {
            // Another due job may be waiting for a slot: look again at once.
            return Ok(Duration::ZERO);
        }
        let now = OffsetDateTime::now_utc();
        let next = self.db.next_job_due(&stored::format(now)).await?;
        let wait = match next.as_deref().and_then(stored::parse) {
            Some(due) if due <= now => Duration::from_millis(50),
            Some(due) => Duration::try_from(due - now).unwrap_or(self.config.poll),
            None => self.config.poll,
        };
        Ok(wait.min(self.config.poll))
    }

    /// The caller a step runs as: the job's user with their current role, or no user.
    /// `None` when the user is not active (the job waits).
    async fn caller(&self, job: &JobRow, api_version: &str) -> Result<Option<Caller>, StoreError> {
        let (user_id, roles) = match &job.run_as {
            None => (None, Vec::new()),
            Some(id) => match self.db.user(&job.tenant_id, id).await? {
                Some(u) if u.status == "active" => (Some(u.id), vec![u.role]),
                _ => return Ok(None),
            },
        };
        Ok(Some(Caller {
            tenant_id: job.tenant_id.clone(),
            user_id,
            roles,
            api_version: api_version.to_string(),
            request_id: ulid::Ulid::new().to_string(),
        }))
    }

    /// Run steps of a claimed job until it ends, fails a step, loses its claim, or
    /// its slice of time is up.
    async fn run_job(
        &self,
        token: &str,
        mut job: JobRow,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<Stop, StoreError> {
        let slice_ends = Instant::now() + self.config.slice;
        let api_version = match self.db.tenant(&job.tenant_id).await {
            Ok(Some(t)) => t.default_api_version,
            _ => plinth_core::versioning::DEFAULT_VERSION.to_string(),
        };
        loop {
            let active = match self.plugins.resolve(&job.tenant_id, &job.plugin_id).await {
                Ok(Resolved::Active(active)) => active,
                Ok(Resolved::Inactive(_) | Resolved::NotInstalled) => return Ok(Stop::Release(HOLD_BACK)),
                Err(e) => {
                    tracing::warn!(error = %e, tenant = %job.tenant_id, plugin = %job.plugin_id, "a job's plugin cannot be loaded; holding the job");
                    return Ok(Stop::Release(LOAD_BACKOFF));
                }
            };
            let Some(caller) = self.caller(&job, &api_version).await? else {
                return Ok(Stop::Release(HOLD_BACK));
            };
            match self.step(token, &job, &active, caller).await? {
                Some(next) => job = next,
                None => return Ok(Stop::Done),
            }
            if shutdown.is_cancelled() || Instant::now() >= slice_ends {
                return Ok(Stop::Release(Duration::ZERO));
            }
        }
    }

    /// Run and commit one step. Returns the job as it now is when it goes on, `None`
    /// when this run of it ends (finished, failed, retrying later, claim lost).
    async fn step(
        &self,
        token: &str,
        job: &JobRow,
        active: &Active,
        caller: Caller,
    ) -> Result<Option<JobRow>, StoreError> {
        let wit_job = Job {
            id: job.id.clone(),
            kind: job.kind.clone(),
            input: job.input.clone(),
            step: u64::try_from(job.steps).unwrap_or_default(),
            attempt: u32::try_from(job.attempt + 1).unwrap_or(u32::MAX),
            cancelled: job.cancel_requested,
        };
        let request_id = caller.request_id.clone();
        let outcome = self
            .plugins
            .job_step(active, caller, wit_job, job.step_state.clone())
            .await;
        let failure = match outcome.result {
            Ok(step) => match self.commit(token, job, step).await? {
                Committed::Next(next) => return Ok(Some(*next)),
                Committed::Ended | Committed::Lost => return Ok(None),
                Committed::Refused(reason) => reason,
            },
            Err(e) => e.to_string(),
        };
        self.fail(token, job, &failure, &request_id).await?;
        Ok(None)
    }

    async fn fail(&self, token: &str, job: &JobRow, error: &str, request_id: &str) -> Result<(), StoreError> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let failed = u32::try_from(job.attempt + 1).unwrap_or(u32::MAX);
        let now = OffsetDateTime::now_utc();
        let retry_at = (failed < self.config.max_attempts && !job.cancel_requested)
            .then(|| stored::format(now + self.config.retry_after(failed)));
        tracing::info!(
            tenant = %job.tenant_id,
            plugin = %job.plugin_id,
            job = %job.id,
            step = job.steps,
            attempt = failed,
            request_id = %request_id,
            retrying = retry_at.is_some(),
            "job step failed: {error}"
        );
        // A cancelled job whose step fails ends cancelled, not failed, and not retried.
        if job.cancel_requested {
            let mut tx = self.db.writer().begin().await?;
            let commit = StepCommit {
                now: &stored::format(now),
                done: job.done,
                total: job.total,
                message: job.message.as_deref(),
                next_state: job.step_state.as_deref(),
                finish: Some(status::CANCELLED),
                result: None,
                file_id: None,
                lease_until: &stored::format(now),
            };
            if self.db.commit_job_step(&mut tx, job, token, commit).await?.is_some() {
                tx.commit().await?;
            }
        } else {
            self.db
                .fail_job_step(job, token, &error, retry_at.as_deref(), &stored::format(now))
                .await?;
        }
        self.signal.changed(&job.id);
        Ok(())
    }

    /// Commit a step's outcome with its writes in one transaction.
    async fn commit(&self, token: &str, job: &JobRow, step: StepOutcome) -> Result<Committed, StoreError> {
        let (next_state, result, file_id) = match &step.next {
            JobNext::Continue(state) => (Some(state.as_str()), None, None),
            JobNext::Finished(r) => (None, r.value.as_deref(), r.file_id.as_deref()),
        };
        if next_state.is_some_and(|s| s.len() > MAX_INPUT) {
            return Ok(Committed::Refused(format!(
                "the step's next state is larger than {MAX_INPUT} bytes"
            )));
        }
        if let Some(r) = result {
            if r.len() > MAX_RESULT {
                return Ok(Committed::Refused(format!(
                    "the job's result is larger than {MAX_RESULT} bytes"
                )));
            }
            if serde_json::from_str::<serde_json::Value>(r).is_err() {
                return Ok(Committed::Refused("the job's result value is not JSON".into()));
            }
        }
        let message: Option<String> = step
            .progress
            .message
            .as_deref()
            .map(|m| m.chars().filter(|c| !c.is_control()).take(MAX_MESSAGE).collect());
        let finish = if job.cancel_requested {
            Some(status::CANCELLED)
        } else if next_state.is_none() {
            Some(status::SUCCEEDED)
        } else {
            None
        };
        let now = OffsetDateTime::now_utc();
        let now_s = stored::format(now);
        let lease_until = stored::format(now + self.config.lease);
        let mut tx = self.db.writer().begin().await?;
        if let Err(e) = batch::apply_in(&self.db, &mut tx, step.writes.writer(), &step.writes.writes).await {
            drop(tx);
            return Ok(Committed::Refused(format!("the step's writes were refused: {e}")));
        }
        let commit = StepCommit {
            now: &now_s,
            done: i64::try_from(step.progress.done).unwrap_or(i64::MAX),
            total: step.progress.total.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            message: message.as_deref(),
            next_state,
            finish,
            result,
            file_id,
            lease_until: &lease_until,
        };
        let Some(cancel_requested) = self.db.commit_job_step(&mut tx, job, token, commit).await? else {
            // The lease lapsed and another run took the job: this step never happened.
            drop(tx);
            tracing::warn!(tenant = %job.tenant_id, job = %job.id, step = job.steps, "a job step finished after its claim was lost; rolled back");
            return Ok(Committed::Lost);
        };
        tx.commit().await?;
        self.signal.changed(&job.id);
        if finish.is_some() {
            return Ok(Committed::Ended);
        }
        // The job as the commit left it (the commit said whether a cancel came meanwhile).
        let next = JobRow {
            status: status::RUNNING.to_string(),
            step_state: next_state.map(str::to_string),
            steps: job.steps + 1,
            attempt: 0,
            done: commit.done,
            total: commit.total,
            message: message.clone(),
            error: None,
            cancel_requested,
            updated_at: now_s.clone(),
            started_at: job.started_at.clone().or_else(|| Some(now_s.clone())),
            claim_until: Some(lease_until.clone()),
            ..job.clone()
        };
        Ok(Committed::Next(Box::new(next)))
    }
}

/// How committing a step went.
enum Committed {
    /// Committed; the job goes on (as the commit left it).
    Next(Box<JobRow>),
    /// Committed; the job ended with it.
    Ended,
    /// Not committed: the claim was lost.
    Lost,
    /// Not committed: the step's outcome was refused (a failed try, with the reason).
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let c = JobsConfig::default();
        assert_eq!(c.retry_after(1), Duration::from_secs(1));
        assert_eq!(c.retry_after(2), Duration::from_secs(2));
        assert_eq!(c.retry_after(4), Duration::from_secs(8));
        assert_eq!(c.retry_after(30), Duration::from_secs(300));
    }
}
