//! Host-side bindings of the `plinth:plugin` world, generated from `wit/`.
//!
//! Imports are `async` (they reach the database) and `trappable`: each returns
//! `wasmtime::Result<…>`, where an `Err` traps the guest (host bugs only) and
//! guest-visible failures travel in the WIT `result<_, error>` inside.
#![allow(missing_docs, unsafe_code, clippy::all)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "plinth:plugin/files.reader": crate::caps::files::FileReader,
        "plinth:plugin/files.writer": crate::caps::files::FileWriter,
    },
});

pub use plinth::plugin::types::Error as WitError;
