//! # plinth-host
//!
//! The Plinth server and the `plinth` command: the REST API, the background workers,
//! the command line, and [`server`], the one place that assembles the parts — the
//! domain (`plinth-core`) and the plugin runtime (`plinth-runtime`) — into a running
//! host. `ARCHITECTURE.md` at the repository root is the map.
//!
//! - [`api`]: axum routers, extractors, the one error type, the REST filter syntax and
//!   the OpenAPI document;
//! - [`workers`]: background work that drives plugins (event delivery, timers);
//! - [`bundled`]: the first-party plugins embedded in the binary, and their publishing
//!   on first start;
//! - [`demo`] (and `demo_data`): the demo tenant of `plinth serve --demo`;
//! - [`cli`]: the `plinth` command (and `guest_build`: building plugin crates for
//!   `wasm32-wasip2`).

pub mod api;
pub mod bundled;
pub mod cli;
pub mod demo;
mod demo_data;
pub mod http;
// Also compiled, as source, into build.rs and tests/build.rs, which use parts the
// command line does not.
#[allow(dead_code)]
mod guest_build;
pub mod logging;
pub mod server;
pub mod workers;
