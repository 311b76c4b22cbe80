//! `jobs`: a plugin starts background jobs (capability `jobs`), reads and cancels its
//! own. The job worker in the server runs their steps through `on-job-step`.

use super::CapCtx;
use crate::bindings::plinth::plugin::jobs::{Host, Status};
use crate::bindings::{Progress, WitError};
use plinth_core::jobs;
use plinth_core::manifest::registry;
use plinth_core::store::jobs::JobRow;

fn status(job: &JobRow) -> Status {
    let succeeded = job.status == plinth_core::store::jobs::status::SUCCEEDED;
    Status {
        id: job.id.clone(),
        kind: job.kind.clone(),
        state: job.shown_status().to_string(),
        progress: Progress {
            done: u64::try_from(job.done).unwrap_or_default(),
            total: job.total.and_then(|t| u64::try_from(t).ok()),
            message: job.message.clone(),
        },
        steps: u64::try_from(job.steps).unwrap_or_default(),
        value: job.result.clone().filter(|_| succeeded),
        file_id: job.file_id.clone().filter(|_| succeeded),
        error: job.error.clone(),
    }
}

impl CapCtx {
    /// The plugin's own job in the caller's tenant, or `not-found`.
    async fn own_job(&mut self, id: &str) -> Result<JobRow, WitError> {
        let db = self.services.db.clone();
        match db.job(&self.caller.tenant_id, id).await {
            Ok(Some(job)) if job.plugin_id == self.plugin.id => Ok(job),
            Ok(_) => Err(WitError::NotFound(format!("no job {id}"))),
            Err(e) => Err(self.store_error(e)),
        }
    }
}

impl Host for CapCtx {
    async fn start(&mut self, kind: String, input: String) -> wasmtime::Result<Result<String, WitError>> {
        if let Err(e) = self.require(&registry::JOBS) {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let actor = self.actor();
        let result = jobs::start(
            &db,
            &self.caller.tenant_id,
            &self.plugin.id,
            &actor,
            self.caller.user_id.as_deref(),
            &kind,
            &input,
        )
        .await;
        if result.is_ok() {
            self.services.jobs.wake();
        }
        Ok(result.map_err(|p| self.wit_error(p)))
    }

    async fn get(&mut self, id: String) -> wasmtime::Result<Result<Status, WitError>> {
        if let Err(e) = self.require(&registry::JOBS) {
            return Ok(Err(e));
        }
        Ok(self.own_job(&id).await.map(|j| status(&j)))
    }

    async fn cancel(&mut self, id: String) -> wasmtime::Result<Result<bool, WitError>> {
        if let Err(e) = self.require(&registry::JOBS) {
            return Ok(Err(e));
        }
        let job = match self.own_job(&id).await {
            Ok(j) => j,
            Err(e) => return Ok(Err(e)),
        };
        if plinth_core::store::jobs::status::finished(&job.status) {
            return Ok(Ok(false));
        }
        let db = self.services.db.clone();
        let actor = self.actor();
        let result = jobs::cancel(&db, &self.caller.tenant_id, &actor, &job).await;
        self.services.jobs.wake();
        self.services.jobs.changed(&id);
        Ok(result.map(|_| true).map_err(|p| self.wit_error(p)))
    }
}
