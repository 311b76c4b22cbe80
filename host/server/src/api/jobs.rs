//! `/api/v1/jobs`: background jobs plugins started — their state, progress, rate, ETA
//! and result — and cancelling them. Everyone sees the jobs that run as them; admins
//! see every job of the tenant. Someone else's job is simply not found.
//!
//! | endpoint | query | answer |
//! |---|---|---|
//! | `GET /api/v1/jobs` | `plugin`, `mine=true` (admins), `cursor`, `limit` (1–200) | `{data: [job], next_cursor}`, newest first |
//! | `GET /api/v1/jobs/{id}` | — | the job |
//! | `POST /api/v1/jobs/{id}/cancel` | — | `202` and the job (`cancel_requested: true`); a finished job `200` unchanged |
//! | `GET /api/v1/jobs/{id}/events` | — | `text/event-stream`: a `progress` event per change, then one `end` |
//!
//! The event stream sends the job as it is on connect, then an event every time a
//! step commits or its state changes (in order; each event's id is the number of
//! committed steps), and ends with an `end` event carrying the finished job.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;

use super::extract::{ApiQuery, Page};
use super::routes::{Access, Routes, doc};
use super::{ApiError, ApiResult, AppState, Ctx};
use plinth_core::jobs::{self, JobView, Looker};
use plinth_core::manifest::Role;
use plinth_core::store::jobs::{JobRow, status};

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/jobs",
            list,
            doc(
                "jobs",
                "Background jobs that run as me (admins: every job of the tenant), newest first",
                Access::READER,
            ),
        )
        .get(
            "/api/v1/jobs/{id}",
            get_one,
            doc("jobs", "A job: state, progress, rate, ETA, result", Access::READER),
        )
        .post(
            "/api/v1/jobs/{id}/cancel",
            cancel,
            doc("jobs", "Ask a job to stop at its next step", Access::READER).status(202),
        )
        .get(
            "/api/v1/jobs/{id}/events",
            events,
            doc(
                "jobs",
                "A job's progress as Server-Sent Events, until it finishes",
                Access::READER,
            ),
        )
}

/// Largest page.
const MAX_PAGE: i64 = 200;
/// How often an event stream looks at its job when no signal came (changes made by
/// other hosts on the same database).
const STREAM_POLL: Duration = Duration::from_millis(500);

fn looker(ctx: &Ctx) -> Looker<'_> {
    Looker {
        user_id: &ctx.auth.user_id,
        role: ctx.auth.role,
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    plugin: Option<String>,
    #[serde(default)]
    mine: bool,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(State(state): State<AppState>, ctx: Ctx, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            ApiError::validation("bad page size").with_field("limit", format!("must be between 1 and {MAX_PAGE}"))
        );
    }
    if let Some(c) = q.cursor.as_deref()
        && (c.is_empty() || c.len() > 64 || !c.chars().all(|ch| ch.is_ascii_alphanumeric()))
    {
        return Err(ApiError::validation("bad cursor").with_field("cursor", "is not a cursor from this list"));
    }
    let everyone = ctx.auth.role.at_least(Role::Admin) && !q.mine;
    let user = (!everyone).then_some(ctx.auth.user_id.as_str());
    let rows = state
        .db
        .jobs_page(ctx.tenant(), user, q.plugin.as_deref(), q.cursor.as_deref(), limit + 1)
        .await?;
    let at = now();
    let views: Vec<JobView> = rows.iter().map(|j| jobs::view(j, at)).collect();
    Ok(axum::Json(Page::from_items(views, limit, |j| j.id.clone())).into_response())
}

async fn load(state: &AppState, ctx: &Ctx, id: &str) -> ApiResult<JobRow> {
    Ok(jobs::get(&state.db, ctx.tenant(), looker(ctx), id).await?)
}

async fn get_one(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let job = load(&state, &ctx, &id).await?;
    Ok(axum::Json(jobs::view(&job, now())).into_response())
}

async fn cancel(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let job = load(&state, &ctx, &id).await?;
    if status::finished(&job.status) {
        return Ok((StatusCode::OK, axum::Json(jobs::view(&job, now()))).into_response());
    }
    let after = jobs::cancel(&state.db, ctx.tenant(), &ctx.actor(), &job).await?;
    let signal = &state.plugins.services().jobs;
    signal.wake();
    signal.changed(&id);
    Ok((StatusCode::ACCEPTED, axum::Json(jobs::view(&after, now()))).into_response())
}

/// What the stream last sent, to send only changes.
#[derive(PartialEq)]
struct Seen {
    steps: i64,
    updated_at: String,
    state: String,
}

async fn events(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let job = load(&state, &ctx, &id).await?;
    let changes = state.plugins.services().jobs.subscribe();
    let stream = progress_stream(state.clone(), job, changes);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn event_of(job: &JobRow, name: &str) -> Event {
    let view = jobs::view(job, now());
    Event::default()
        .event(name)
        .id(job.steps.to_string())
        .json_data(&view)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}

/// The job now, then each change, then `end`. Reads the job again on every change
/// signalled in this host and every [`STREAM_POLL`] (changes made by other hosts).
fn progress_stream(
    state: AppState,
    first: JobRow,
    changes: tokio::sync::broadcast::Receiver<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Follow {
        state: AppState,
        tenant: String,
        id: String,
        job: Option<JobRow>,
        seen: Option<Seen>,
        changes: tokio::sync::broadcast::Receiver<String>,
        ended: bool,
    }
    let init = Follow {
        state,
        tenant: first.tenant_id.clone(),
        id: first.id.clone(),
        job: Some(first),
        seen: None,
        changes,
        ended: false,
    };
    futures_util::stream::unfold(init, |mut f| async move {
        if f.ended {
            return None;
        }
        loop {
            if let Some(job) = f.job.take() {
                if status::finished(&job.status) {
                    f.ended = true;
                    return Some((Ok(event_of(&job, "end")), f));
                }
                let seen = Seen {
                    steps: job.steps,
                    updated_at: job.updated_at.clone(),
                    state: job.shown_status().to_string(),
                };
                if f.seen.as_ref() != Some(&seen) {
                    f.seen = Some(seen);
                    return Some((Ok(event_of(&job, "progress")), f));
                }
            }
            let poll = tokio::time::sleep(STREAM_POLL);
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    () = &mut poll => break,
                    got = f.changes.recv() => match got {
                        Ok(changed) if changed != f.id => continue,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            (&mut poll).await;
                            break;
                        }
                    },
                }
            }
            match f.state.db.job(&f.tenant, &f.id).await {
                Ok(Some(job)) => f.job = Some(job),
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = ?e, job = %f.id, "a job event stream could not read its job");
                    return None;
                }
            }
        }
    })
}
