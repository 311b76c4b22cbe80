//! The job probe. `POST /jobs {kind, input}` starts a job; `GET /jobs/{id}` and
//! `POST /jobs/{id}/cancel` use the `jobs` capability on it; `GET /ledger` reports
//! what steps left behind; `POST /batch` applies an atomic batch.
//!
//! Kind `count` (input `{steps, fail_step?, fail_times?}`): step *n* commits the
//! document `seen/<job>-<n>` *with the step* (`put_new`: a second commit of the same
//! step would conflict) and directly bumps `runs/<job>-<n>` (how many times it ran). Step
//! `fail_step` fails its first `fail_times` tries. A cancelled job finishes at once.
//! Kind `noop` (input `{steps}`) does nothing but step (the overhead bench).

use plinth_sdk::batch::Batch;
use plinth_sdk::jobs::{self, Job, Step};
use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::storage::{Collection, Query};
use plinth_sdk::{Caller, Error, Plugin, Response, Router, export_plugin};
use serde::Deserialize;

struct Probe;

#[derive(Deserialize)]
struct Count {
    steps: u64,
    #[serde(default)]
    fail_step: Option<u64>,
    #[serde(default)]
    fail_times: u32,
}

fn all<T: serde::Serialize + serde::de::DeserializeOwned>(collection: &str) -> Result<Vec<(String, T)>, Error> {
    let docs: Collection<T> = Collection::new(collection);
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = docs.list(Query::new().cursor(cursor).limit(1000))?;
        out.extend(page.items.into_iter().map(|d| (d.key, d.value)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

impl Plugin for Probe {
    fn router() -> Router {
        Router::new()
            .post("/jobs", |req| {
                let body: Value = req.json()?;
                let kind = body["kind"].as_str().unwrap_or("count");
                let id = jobs::start(kind, &body["input"])?;
                Ok(Response::json(&json!({ "id": id })).with_status(201))
            })
            .get("/jobs/{id}", |req| {
                let s = jobs::get(req.param("id")?)?;
                Ok(Response::json(&json!({
                    "id": s.id, "kind": s.kind, "state": s.state, "done": s.done, "total": s.total,
                    "steps": s.steps, "value": s.value, "error": s.error,
                })))
            })
            .post("/jobs/{id}/cancel", |req| {
                let cancelled = jobs::cancel(req.param("id")?)?;
                Ok(Response::json(&json!({ "cancelled": cancelled })))
            })
            .get("/ledger", |_req| {
                let seen = all::<Value>("seen")?.len();
                let runs: Vec<u64> = all::<u64>("runs")?.into_iter().map(|(_, n)| n).collect();
                Ok(Response::json(&json!({ "seen": seen, "runs": runs })))
            })
            .post("/batch", |req| {
                let body: Value = req.json()?;
                let mut batch = Batch::new();
                for name in body["names"].as_array().into_iter().flatten() {
                    batch.create("account", json!({ "name": name }), None);
                }
                batch.put("notes", "last", &body["note"])?;
                let applied = batch.apply()?;
                let ids: Vec<Option<String>> = applied.into_iter().map(|a| a.id).collect();
                Ok(Response::json(&json!({ "ids": ids })))
            })
    }

    fn on_job_step(_caller: &Caller, job: Job) -> Result<Step, Error> {
        if job.kind == "noop" {
            // Nothing but the step itself: what the per-step overhead bench measures.
            let input: Count = job.input()?;
            let done = job.step + 1;
            let step = if done >= input.steps {
                Step::finish()
            } else {
                Step::next(&done)?
            };
            return Ok(step.progress(done, Some(input.steps)));
        }
        if job.kind != "count" {
            return Err(Error::invalid(format!("unknown job kind `{}`", job.kind)));
        }
        let input: Count = job.input()?;
        let n = job.step;
        if job.cancelled {
            return Ok(Step::finish().progress(n, Some(input.steps)).message("cancelled"));
        }
        let runs: Collection<u64> = Collection::new("runs");
        runs.update(&format!("{}-{n:07}", job.id), |r| r.unwrap_or(0) + 1)?;
        if input.fail_step == Some(n) && job.attempt <= input.fail_times {
            return Err(Error::internal(format!(
                "planned failure of step {n}, try {}",
                job.attempt
            )));
        }
        let mut writes = Batch::new();
        writes.put_new("seen", &format!("{}-{n:07}", job.id), &json!({ "step": n }))?;
        let done = n + 1;
        let step = if done >= input.steps {
            Step::finish_with(&json!({ "steps": done }))?
        } else {
            Step::next(&done)?
        };
        Ok(step
            .progress(done, Some(input.steps))
            .message(&format!("step {done} of {}", input.steps))
            .writes(writes))
    }
}

export_plugin!(Probe);
