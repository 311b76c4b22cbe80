//! # plinth-sdk — write Plinth plugins
//!
//! A Plinth plugin is a WebAssembly component that the Plinth host runs for one tenant
//! at a time. This crate hides the WIT bindings and gives you:
//!
//! - the [`Plugin`] trait, with a default for every entry point, and [`export_plugin!`];
//! - a [`Router`] that dispatches endpoint requests by method and path template;
//! - [`Request`] / [`Response`] with JSON helpers, and one [`Error`] type that becomes
//!   an RFC 9457 problem response with the right status;
//! - typed [`storage`] (serde in, serde out, versions for optimistic concurrency),
//!   [`records`] (CRM records: find, aggregate in SQL, create, update), [`audit`],
//!   [`schedule`] (durable timers and cron), [`config`] and [`log`].
//!   [`config`] and [`log`];
//! - since WIT 1.2: [`email`] (the outbox), [`outbound`] HTTP to manifest-listed
//!   origins, and this plugin's [`secrets`];
//! - since WIT 1.5: [`directory`], [`notify`], [`files`], background [`jobs`] run in
//!   committed steps, and atomic [`batch`] writes.
//!   [`events`] (emit), [`schedule`] (durable timers and cron), [`config`] and [`log`].
//!
//! ```no_run
//! use plinth_sdk::{export_plugin, Plugin, Router, Response, storage::Collection};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn router() -> Router {
//!         Router::new()
//!             .get("/greet/{name}", |req| {
//!                 Ok(Response::json(&serde_json::json!({ "greeting": format!("Hello, {}!", req.param("name")?) })))
//!             })
//!             .post("/count", |_req| {
//!                 let calls: Collection<u64> = Collection::new("counters");
//!                 let n = calls.update("calls", |n| n.unwrap_or(0) + 1)?;
//!                 Ok(Response::json(&serde_json::json!({ "count": n.value })))
//!             })
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! Build with `plinth plugin build` (or `cargo build --release --target wasm32-wasip2`),
//! and declare every endpoint and capability in `plugin.toml`.
#![deny(missing_docs)]

// Lets the generated bindings name this crate as `::plinth_sdk`, the same path they use
// when expanded inside a plugin crate.
extern crate self as plinth_sdk;

pub mod audit;
pub mod batch;
mod caller;
pub mod config;
pub mod directory;
pub mod email;
mod error;
pub mod events;
pub mod files;
mod http;
pub mod jobs;
pub mod log;
pub mod notify;
pub mod outbound;
pub mod records;
mod router;
pub mod schedule;
pub mod secrets;
pub mod sharing;
pub mod storage;
#[doc(hidden)]
pub mod wit;

pub use caller::{Caller, Event};
pub use error::{Error, ErrorKind, FieldError};
pub use http::{Request, RequestBuilder, Response};
pub use router::{Handler, Router};

/// Re-exported so plugins need no direct dependency on serde_json.
pub use serde_json;

/// A plugin. Implement the entry points you need; the rest default to doing nothing
/// (and `handle` to routing through [`Plugin::router`]). Then export it with
/// [`export_plugin!`].
///
/// Each call runs in a fresh instance: keep state in [`storage`], not in statics.
///
/// ```no_run
/// use plinth_sdk::{Plugin, Caller, Event, Error};
/// struct Audit;
/// impl Plugin for Audit {
///     fn on_event(_caller: &Caller, event: Event) -> Result<(), Error> {
///         plinth_sdk::info!("saw {}", event.name);
///         Ok(())
///     }
/// }
/// plinth_sdk::export_plugin!(Audit);
/// ```
pub trait Plugin {
    /// The routes for the manifest's endpoints. Built per request (cheap: a few boxes).
    ///
    /// ```
    /// use plinth_sdk::{Plugin, Router, Response};
    /// struct P;
    /// impl Plugin for P {
    ///     fn router() -> Router { Router::new().get("/ping", |_| Ok(Response::text("pong"))) }
    /// }
    /// assert_eq!(P::handle(plinth_sdk::Request::builder("GET", "/ping").build()).body, b"pong");
    /// ```
    fn router() -> Router {
        Router::new()
    }

    /// Serve an endpoint request. Default: dispatch through [`Plugin::router`].
    ///
    /// ```
    /// use plinth_sdk::{Plugin, Request, Response};
    /// struct P;
    /// impl Plugin for P {
    ///     fn handle(req: Request) -> Response { Response::text(req.path) }
    /// }
    /// assert_eq!(P::handle(Request::builder("GET", "/x").build()).body, b"/x");
    /// ```
    fn handle(request: Request) -> Response {
        Self::router().handle(request)
    }

    /// An event the manifest subscribes to (`[capabilities] events = [...]`, granted
    /// by the tenant). Delivery is at least once and in commit order: an `Err` makes
    /// the host retry with backoff (later events wait), and after repeated failures
    /// the event goes to the tenant's dead-letter list. Use [`Event::id`] to make
    /// handling idempotent, and [`Event::cause`] to ignore events your own writes
    /// caused.
    ///
    /// ```
    /// use plinth_sdk::{Plugin, Caller, Event, Error};
    /// struct P;
    /// impl Plugin for P {
    ///     fn on_event(_c: &Caller, e: Event) -> Result<(), Error> {
    ///         if e.cause.as_deref() == Some("my-plugin") {
    ///             return Ok(()); // caused by my own write: nothing to react to
    ///         }
    ///         plinth_sdk::info!("{} #{}", e.name, e.id);
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn on_event(caller: &Caller, event: Event) -> Result<(), Error> {
        let _ = (caller, event);
        Ok(())
    }

    /// A timer the plugin scheduled is due.
    ///
    /// ```
    /// use plinth_sdk::{Plugin, Caller, Error};
    /// struct P;
    /// impl Plugin for P {
    ///     fn on_timer(_c: &Caller, key: &str, _payload: &str) -> Result<(), Error> {
    ///         plinth_sdk::info!("timer {key}");
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn on_timer(caller: &Caller, key: &str, payload: &str) -> Result<(), Error> {
        let _ = (caller, key, payload);
        Ok(())
    }

    /// Installed (`previous_version` is `None`) or upgraded from `previous_version`:
    /// create or migrate data. An `Err` aborts the install or upgrade.
    ///
    /// ```
    /// use plinth_sdk::{Plugin, Caller, Error};
    /// struct P;
    /// impl Plugin for P {
    ///     fn on_install(_c: &Caller, previous: Option<&str>) -> Result<(), Error> {
    ///         if previous.is_some_and(|v| v.starts_with("0.")) {
    ///             return Err(Error::invalid("upgrade from 0.x is not supported"));
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn on_install(caller: &Caller, previous_version: Option<&str>) -> Result<(), Error> {
        let _ = (caller, previous_version);
        Ok(())
    }

    /// Run one step of a job this plugin started ([`jobs::start`]); see [`jobs`]. An
    /// `Err` is retried with backoff (the step sees the same [`jobs::Job::step`]);
    /// after the last try the job fails with it. Default: no jobs.
    ///
    /// ```
    /// use plinth_sdk::{Plugin, Caller, Error, jobs::{Job, Step}};
    /// struct P;
    /// impl Plugin for P {
    ///     fn on_job_step(_c: &Caller, job: Job) -> Result<Step, Error> {
    ///         let n: u64 = job.state()?.unwrap_or(0);
    ///         if n == 10 { return Ok(Step::finish().progress(10, Some(10))); }
    ///         Ok(Step::next(&(n + 1))?.progress(n + 1, Some(10)))
    ///     }
    /// }
    /// ```
    fn on_job_step(caller: &Caller, job: jobs::Job) -> Result<jobs::Step, Error> {
        let _ = caller;
        Err(Error::invalid(format!(
            "this plugin runs no jobs (asked for `{}`)",
            job.kind
        )))
    }
}

/// Export a [`Plugin`] implementation as the component's entry points. Use once, at
/// the crate root of a `cdylib` built for `wasm32-wasip2`.
///
/// ```no_run
/// struct Mine;
/// impl plinth_sdk::Plugin for Mine {}
/// plinth_sdk::export_plugin!(Mine);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct __PlinthExports;
            impl $crate::__private::wit::Guest for __PlinthExports {
                fn handle(
                    caller: $crate::__private::wit::plinth::plugin::types::Caller,
                    request: $crate::__private::wit::plinth::plugin::types::Request,
                ) -> $crate::__private::wit::plinth::plugin::types::Response {
                    $crate::__private::handle::<$plugin>(caller, request)
                }
                fn on_event(
                    caller: $crate::__private::wit::plinth::plugin::types::Caller,
                    event: $crate::__private::wit::plinth::plugin::types::Event,
                ) -> Result<(), $crate::__private::wit::plinth::plugin::types::Error> {
                    $crate::__private::on_event::<$plugin>(caller, event)
                }
                fn on_timer(
                    caller: $crate::__private::wit::plinth::plugin::types::Caller,
                    key: String,
                    payload: String,
                ) -> Result<(), $crate::__private::wit::plinth::plugin::types::Error> {
                    $crate::__private::on_timer::<$plugin>(caller, key, payload)
                }
                fn on_install(
                    caller: $crate::__private::wit::plinth::plugin::types::Caller,
                    previous_version: Option<String>,
                ) -> Result<(), $crate::__private::wit::plinth::plugin::types::Error> {
                    $crate::__private::on_install::<$plugin>(caller, previous_version)
                }
                fn on_job_step(
                    caller: $crate::__private::wit::plinth::plugin::types::Caller,
                    job: $crate::__private::wit::plinth::plugin::types::Job,
                    state: Option<String>,
                ) -> Result<
                    $crate::__private::wit::plinth::plugin::types::JobStep,
                    $crate::__private::wit::plinth::plugin::types::Error,
                > {
                    $crate::__private::on_job_step::<$plugin>(caller, job, state)
                }
            }
            $crate::__private::wit::__export_plugin_world!(
                __PlinthExports with_types_in $crate::__private::wit
            );
        };
    };
}

/// Support for [`export_plugin!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub use crate::wit;

    use crate::{Plugin, Request};
    use wit::plinth::plugin::types as t;

    pub fn handle<P: Plugin>(caller: t::Caller, request: t::Request) -> t::Response {
        let request = Request {
            caller: caller.into(),
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
            params: Vec::new(),
        };
        let response = P::handle(request);
        t::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }

    pub fn on_event<P: Plugin>(caller: t::Caller, event: t::Event) -> Result<(), t::Error> {
        P::on_event(&caller.into(), event.into()).map_err(Into::into)
    }

    pub fn on_timer<P: Plugin>(caller: t::Caller, key: String, payload: String) -> Result<(), t::Error> {
        P::on_timer(&caller.into(), &key, &payload).map_err(Into::into)
    }

    pub fn on_install<P: Plugin>(caller: t::Caller, previous: Option<String>) -> Result<(), t::Error> {
        P::on_install(&caller.into(), previous.as_deref()).map_err(Into::into)
    }

    pub fn on_job_step<P: Plugin>(
        caller: t::Caller,
        job: t::Job,
        state: Option<String>,
    ) -> Result<t::JobStep, t::Error> {
        let job = crate::jobs::Job {
            id: job.id,
            kind: job.kind,
            input: job.input,
            step: job.step,
            attempt: job.attempt,
            cancelled: job.cancelled,
            state,
        };
        P::on_job_step(&caller.into(), job)
            .map(crate::jobs::Step::into_wit)
            .map_err(Into::into)
    }
}
