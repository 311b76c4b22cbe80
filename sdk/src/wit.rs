//! Generated bindings for the `plinth:plugin` world. Internal: plugin authors use the
//! typed wrappers in the rest of this crate, which keep working when the contract grows.
#![allow(missing_docs, unsafe_code, clippy::all)]

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    pub_export_macro: true,
    default_bindings_module: "::plinth_sdk::__private::wit",
    export_macro_name: "__export_plugin_world",
    runtime_path: "::plinth_sdk::__private::wit_bindgen::rt",
});
