//! # plinth-host
//!
//! The trusted host of the Plinth CRM platform. It owns tenancy, identity, storage,
//! audit and API versioning, and runs every CRM feature as a signed WebAssembly
//! component against the `plinth:plugin` WIT world (see `wit/`).
//!
//! Modules, each owning one concern (dependencies point inward):
//! - [`runtime`]: the wasmtime engine, limits and instance cache — no HTTP here;
//! - [`caps`]: the host side of each WIT capability interface;
//! - [`store`]: the database (sqlx), the only place SQL lives;
//! - [`scheduler`]: durable timers and cron, fired through the plugin host;
//! - [`outbox`], [`outbound`] and [`secrets`]: email and webhook delivery, guarded
//!   outbound HTTP, secrets encrypted at rest;
//! - [`manifest`] and [`package`]: plugin manifests and signed packages;
//! - [`cli`]: the `plinth` command.

pub mod api;
pub mod audit;
pub mod bindings;
pub mod bundled;
pub mod caps;
pub mod cli;
pub mod demo;
pub mod demo_data;
pub mod events;
pub mod guest_build;
pub mod manifest;
pub mod marketplace;
pub mod outbound;
pub mod outbox;
pub mod package;
pub mod plugins;
pub mod records;
pub mod runtime;
pub mod sandbox;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tenancy;
pub mod versioning;

/// Version of the `plinth:plugin` WIT package this host implements.
pub const WIT_VERSION: semver::Version = semver::Version::new(1, 4, 0);
