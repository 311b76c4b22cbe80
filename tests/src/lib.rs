//! Helpers for Plinth's end-to-end tests: the test guests built from `tests/guests`,
//! and sandboxes over the real runtime and a temporary database.

use plinth_host::manifest::Manifest;
use plinth_host::runtime::RuntimeConfig;
use plinth_host::sandbox::{Sandbox, SandboxPlugin};

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The manifest and component of a test guest (`tests/guests/<name>`).
pub fn guest(name: &str) -> (Manifest, Vec<u8>) {
    let (_, manifest, component) = GUESTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no test guest named {name}"));
    (
        Manifest::parse(manifest).expect("test guest manifest is valid"),
        component.to_vec(),
    )
}

/// The manifest and component of a first-party plugin embedded in the host.
pub fn bundled(name: &str) -> (Manifest, Vec<u8>) {
    let b = plinth_host::bundled::find(name).unwrap_or_else(|| panic!("no bundled plugin named {name}"));
    (
        Manifest::parse(b.manifest).expect("bundled manifest is valid"),
        b.component.to_vec(),
    )
}

/// A sandbox with its own temporary database (kept alive by the returned guard).
pub async fn sandbox(config: RuntimeConfig) -> (Sandbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = Sandbox::open(dir.path(), config).await.expect("sandbox opens");
    (sandbox, dir)
}

/// Load a test guest into a sandbox.
pub async fn load_guest(sandbox: &Sandbox, name: &str) -> SandboxPlugin {
    let (manifest, component) = guest(name);
    sandbox.load(manifest, component).await.expect("guest loads")
}

/// A small runtime configuration for tests (keeps reserved address space modest).
pub fn test_runtime_config() -> RuntimeConfig {
    RuntimeConfig {
        max_concurrent_calls: 32,
        ..RuntimeConfig::default()
    }
}
