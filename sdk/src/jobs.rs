//! Background jobs (capability `jobs`): long work done in steps the host commits one
//! by one — an import of a million rows, an export of half a million cells.
//!
//! Start a job from an endpoint; the host then calls [`crate::Plugin::on_job_step`]
//! again and again. Each step runs under the normal call limits, does a slice of the
//! work and returns a [`Step`]: progress, the state for the next step (or the result),
//! and writes the host commits together with that state — so they are applied exactly
//! once, even if the host crashes between steps. Users follow the job at
//! `/api/v1/jobs/{id}` (with Server-Sent Events at `/events`) and may cancel it.
//!
//! ```no_run
//! use plinth_sdk::{Caller, Error, Plugin, jobs::{self, Job, Step}, batch::Batch};
//! use plinth_sdk::serde_json::json;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Default)]
//! struct Cursor { row: u64 }
//!
//! struct Importer;
//! impl Plugin for Importer {
//!     fn on_job_step(_caller: &Caller, job: Job) -> Result<Step, Error> {
//!         let total = 1_000_000;
//!         let mut at: Cursor = job.state()?.unwrap_or_default();
//!         if job.cancelled {
//!             return Ok(Step::finish().message("cancelled"));
//!         }
//!         let mut writes = Batch::new();
//!         for _ in 0..500 {
//!             writes.create("lead", json!({"last_name": format!("Row {}", at.row)}), None);
//!             at.row += 1;
//!         }
//!         let step = if at.row >= total { Step::finish_with(&json!({"created": at.row}))? } else { Step::next(&at)? };
//!         Ok(step.progress(at.row, Some(total)).writes(writes))
//!     }
//! }
//! # fn start() -> Result<(), Error> {
//! let id = jobs::start("import", &json!({"file_id": "01J…"}))?;
//! # Ok(()) }
//! ```
//!
//! Declare `[capabilities] jobs = true`; needs `plinth:plugin@1.5.0` (`api = "^1.5"`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::wit::plinth::plugin::jobs as wit;
use crate::__private::wit::plinth::plugin::types as t;
use crate::Error;
use crate::batch::Batch;

/// Start a job of `kind` (`^[a-z][a-z0-9_.-]{0,63}$`) with `input` (JSON, at most
/// 1 MiB). It runs as the calling user. Returns its id.
pub fn start<T: Serialize>(kind: &str, input: &T) -> Result<String, Error> {
    let input = serde_json::to_string(input)?;
    Ok(wit::start(kind, &input)?)
}

/// A job this plugin started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// `queued`, `running`, `paused`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Units done.
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// Steps committed.
    pub steps: u64,
    /// The result's JSON value, once succeeded.
    pub value: Option<String>,
    /// The result's file, once succeeded.
    pub file_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A job this plugin started, by id.
pub fn get(id: &str) -> Result<Status, Error> {
    let s = wit::get(id)?;
    Ok(Status {
        id: s.id,
        kind: s.kind,
        state: s.state,
        done: s.progress.done,
        total: s.progress.total,
        steps: s.steps,
        value: s.value,
        file_id: s.file_id,
        error: s.error,
    })
}

/// Ask a job to stop (its next step sees [`Job::cancelled`]); `false` if it had
/// already finished.
pub fn cancel(id: &str) -> Result<bool, Error> {
    Ok(wit::cancel(id)?)
}

/// A job as one of its steps sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Id.
    pub id: String,
    /// The kind it was started with.
    pub kind: String,
    /// Its JSON input.
    pub input: String,
    /// Steps committed before this one (0 for the first). A step tried again sees the
    /// same number: key direct writes on it to make them idempotent.
    pub step: u64,
    /// Tries of this step, this one included.
    pub attempt: u32,
    /// A cancel was asked for: stop now. The job ends `cancelled` whatever the step
    /// returns (its writes are still committed).
    pub cancelled: bool,
    /// The state the previous step returned (`None` for the first step).
    pub state: Option<String>,
}

impl Job {
    /// The input, deserialised.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.input).map_err(|e| Error::invalid(format!("job input: {e}")))
    }

    /// The previous step's state, deserialised (`None` for the first step).
    pub fn state<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.state
            .as_deref()
            .map(|s| serde_json::from_str(s).map_err(|e| Error::invalid(format!("job state: {e}"))))
            .transpose()
    }
}

/// What a step returns: progress, what comes next, and writes to commit with it.
///
/// ```
/// use plinth_sdk::jobs::Step;
/// let step = Step::next(&7u64).unwrap().progress(700, Some(1000)).message("Importing");
/// assert_eq!(step.done(), 700);
/// ```
#[derive(Debug, Clone)]
pub struct Step {
    progress: t::Progress,
    next: t::JobNext,
    writes: Batch,
}

impl Step {
    fn with(next: t::JobNext) -> Step {
        Step {
            progress: t::Progress {
                done: 0,
                total: None,
                message: None,
            },
            next,
            writes: Batch::new(),
        }
    }

    /// Go on: the next step gets `state` (at most 1 MiB once serialised).
    pub fn next<S: Serialize>(state: &S) -> Result<Step, Error> {
        Ok(Step::with(t::JobNext::Continue(serde_json::to_string(state)?)))
    }

    /// Finish with no result value.
    pub fn finish() -> Step {
        Step::with(t::JobNext::Finished(t::JobResult {
            value: None,
            file_id: None,
        }))
    }

    /// Finish with a JSON result (at most 64 KiB).
    pub fn finish_with<T: Serialize>(value: &T) -> Result<Step, Error> {
        Ok(Step::with(t::JobNext::Finished(t::JobResult {
            value: Some(serde_json::to_string(value)?),
            file_id: None,
        })))
    }

    /// Attach a file the job wrote to its result (when finishing).
    pub fn file(mut self, file_id: &str) -> Step {
        if let t::JobNext::Finished(r) = &mut self.next {
            r.file_id = Some(file_id.to_string());
        }
        self
    }

    /// Progress after this step.
    pub fn progress(mut self, done: u64, total: Option<u64>) -> Step {
        self.progress.done = done;
        self.progress.total = total;
        self
    }

    /// A line for people ("Matching duplicates").
    pub fn message(mut self, message: &str) -> Step {
        self.progress.message = Some(message.to_string());
        self
    }

    /// Writes the host commits together with this step (at most 1,000).
    pub fn writes(mut self, writes: Batch) -> Step {
        self.writes = writes;
        self
    }

    /// Units done, as set by [`Step::progress`].
    pub fn done(&self) -> u64 {
        self.progress.done
    }

    pub(crate) fn into_wit(self) -> t::JobStep {
        t::JobStep {
            progress: self.progress,
            next: self.next,
            writes: self.writes.writes,
        }
    }
}
