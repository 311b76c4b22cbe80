//! # plinth-runtime
//!
//! Runs plugins: a signed, manifest-described WebAssembly component, called with a
//! caller the host fills and the capabilities the tenant granted. No HTTP server here
//! (the compiler keeps that floor); the server calls in through [`plugins::PluginHost`],
//! and `plinth plugin call` through [`sandbox::Sandbox`].
//!
//! - [`engine`]: the wasmtime engine, limits (memory, time, output) and compiled
//!   component cache;
//! - [`bindings`]: the host side of the `plinth:plugin` WIT world;
//! - [`caps`]: one module per capability a plugin imports; each host call checks its
//!   grant (rows of `plinth_core::manifest::registry`) and answers `denied`, never a trap;
//! - [`plugins`]: tenants' installed plugins at run time (resolve, cache, call, metrics);
//! - [`admission`]: the one check a request passes before a plugin endpoint sees it;
//! - [`sandbox`]: an in-process host for one plugin;
//! - [`marketplace`]: trust (publishers and keys), publishing, installation lifecycle.

pub mod admission;
pub mod bindings;
pub mod caps;
pub mod engine;
pub mod marketplace;
pub mod plugins;
pub mod sandbox;

/// Version of the `plinth:plugin` WIT package this host implements.
pub const WIT_VERSION: semver::Version = semver::Version::new(1, 5, 0);
