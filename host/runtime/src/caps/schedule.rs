//! `schedule`: durable timers and cron for this plugin in the caller's tenant
//! (capability `schedule`). Validation rules live in `scheduler::spec`; storage in
//! `store::timers`; firing in the scheduler.

use plinth_core::manifest::registry;
use time::OffsetDateTime;

use super::CapCtx;
use crate::bindings::WitError;
use crate::bindings::plinth::plugin::schedule::{Host, Timer};
use plinth_core::store::time as stored;
use plinth_core::store::timers::NewTimer;
use plinth_core::timers::spec::{self, CronSpec, SpecError};

impl From<SpecError> for WitError {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::Invalid(m) => WitError::Invalid(m),
            SpecError::Limit(m) => WitError::Limit(m),
        }
    }
}

/// When a timer fires.
enum Plan {
    At(String),
    After(u64),
    Cron { expression: String, time_zone: String },
}

impl CapCtx {
    /// Validate and store a timer; returns its first fire time.
    async fn set_timer(&mut self, key: String, payload: String, plan: Plan) -> Result<String, WitError> {
        self.require(&registry::SCHEDULE)?;
        spec::check_key(&key)?;
        spec::check_payload(&payload)?;
        let timers = self.services.timers.clone();
        let now = timers.now();
        let (due, cron): (OffsetDateTime, _) = match &plan {
            Plan::At(time) => (spec::at(time, now)?, None),
            Plan::After(millis) => (spec::after(*millis, now)?, None),
            Plan::Cron { expression, time_zone } => {
                let cron = CronSpec::parse(expression, time_zone)?;
                (cron.first_after(now)?, Some((expression.trim(), time_zone.as_str())))
            }
        };
        let due = stored::format(due);
        let timer = NewTimer {
            key: &key,
            payload: &payload,
            cron,
            due_at: &due,
            // It runs as the user this call is for (none for event and timer calls).
            run_as: self.caller.user_id.as_deref(),
        };
        let db = self.services.db.clone();
        db.set_timer(
            &self.caller.tenant_id,
            &self.plugin.id,
            timer,
            &stored::format(now),
            spec::MAX_TIMERS,
        )
        .await
        .map_err(|e| self.store_error(e))?;
        timers.wake();
        Ok(due)
    }
}

impl Host for CapCtx {
    async fn at(&mut self, time: String, key: String, payload: String) -> wasmtime::Result<Result<(), WitError>> {
        Ok(self.set_timer(key, payload, Plan::At(time)).await.map(drop))
    }

    async fn after(&mut self, millis: u64, key: String, payload: String) -> wasmtime::Result<Result<(), WitError>> {
        Ok(self.set_timer(key, payload, Plan::After(millis)).await.map(drop))
    }

    async fn cron(
        &mut self,
        key: String,
        expression: String,
        time_zone: String,
        payload: String,
    ) -> wasmtime::Result<Result<String, WitError>> {
        Ok(self.set_timer(key, payload, Plan::Cron { expression, time_zone }).await)
    }

    async fn cancel(&mut self, key: String) -> wasmtime::Result<Result<bool, WitError>> {
        if let Err(e) = self.require(&registry::SCHEDULE) {
            return Ok(Err(e));
        }
        if let Err(e) = spec::check_key(&key) {
            return Ok(Err(e.into()));
        }
        let db = self.services.db.clone();
        let result = db.cancel_timer(&self.caller.tenant_id, &self.plugin.id, &key).await;
        Ok(result.map_err(|e| self.store_error(e)))
    }

    async fn list(&mut self) -> wasmtime::Result<Result<Vec<Timer>, WitError>> {
        if let Err(e) = self.require(&registry::SCHEDULE) {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let rows = match db.pending_timers(&self.caller.tenant_id, &self.plugin.id).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(self.store_error(e))),
        };
        Ok(Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(Timer {
                    key: r.key,
                    next_fire: r.due_at?,
                    cron: r.cron,
                    time_zone: r.time_zone,
                    payload: r.payload,
                })
            })
            .collect()))
    }
}
