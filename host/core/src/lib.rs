//! # plinth-core
//!
//! Plinth's domain, with no WebAssembly runtime and no HTTP server in it: what a
//! tenant's data is and the rules every write follows. The plugin runtime
//! (`plinth-runtime`) and the server (`plinth-host`) are built on it; it never
//! depends on them (the compiler keeps that floor).
//!
//! - [`problem`]: what can go wrong, said once ([`problem::ProblemKind`]); the API and
//!   the WIT map it to their errors in one place each;
//! - [`manifest`] (with the capability [`manifest::registry`]) and [`package`]: plugin
//!   manifests and signed packages;
//! - [`store`]: the database (sqlx over SQLite or PostgreSQL) — the only place SQL lives;
//! - [`records`], [`tenancy`], [`audit`], [`versioning`], [`secrets`]: the services
//!   behind the REST API and the capabilities; each owns its transaction and its audit
//!   write;
//! - [`notify`]: users' notification inboxes, written by plugins;
//! - [`files`]: large files, streamed into chunks in the database;
//! - [`installed`]: an installed plugin's settings, timers and review, as its tenant's
//!   admin manages them;
//! - [`events`] (emission into the tenant's log), [`outbox`] (email and webhooks,
//!   queued in the caller's transaction, and their delivery), [`outbound`] (guarded
//!   outbound HTTP), [`timers`] (the clock and the rules for timers).

pub mod audit;
pub mod batch;
pub mod events;
pub mod files;
pub mod installed;
pub mod jobs;
pub mod manifest;
pub mod notify;
pub mod outbound;
pub mod outbox;
pub mod package;
pub mod problem;
pub mod records;
pub mod secrets;
pub mod store;
pub mod tenancy;
pub mod timers;
pub mod versioning;
