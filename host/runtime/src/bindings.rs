//! Host-side bindings of the `plinth:plugin` world, generated from `wit/`.
//!
//! Imports are `async` (they reach the database) and `trappable`: each returns
//! `wasmtime::Result<…>`, where an `Err` traps the guest (host bugs only) and
//! guest-visible failures travel in the WIT `result<_, error>` inside.
#![allow(missing_docs, unsafe_code, clippy::all)]

wasmtime::component::bindgen!({
    path: "../../wit",
    // The world every component satisfies; `on-job-step` (1.5.0) is looked up by name.
    world: "baseline",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "plinth:plugin/files.reader": crate::caps::files::FileReader,
        "plinth:plugin/files.writer": crate::caps::files::FileWriter,
    },
});

pub use plinth::plugin::types::Error as WitError;
pub use plinth::plugin::types::{Applied, Job, JobNext, JobResult, JobStep, Progress, Write};

/// The generated world, by the name the runtime uses.
pub use Baseline as Plugin;
pub use BaselinePre as PluginPre;
