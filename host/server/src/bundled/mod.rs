//! The first-party plugins (this repository's `examples/hello` and `plugins/*`),
//! compiled to components by `build.rs` and embedded in the binary together with
//! their manifests. The server signs and publishes them on first start
//! ([`bootstrap`]).

pub mod bootstrap;

/// One embedded plugin.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// Cargo package name of the plugin crate.
    pub crate_name: &'static str,
    /// `plugin.toml` text.
    pub manifest: &'static str,
    /// The WebAssembly component.
    pub component: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The embedded plugin whose crate is `name`.
pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.crate_name == name)
}
