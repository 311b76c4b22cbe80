//! Builds the test guests in `tests/guests/*` into components for the end-to-end tests.

#[path = "../host/server/src/guest_build.rs"]
#[allow(dead_code)]
mod guest_build;

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir.parent().ok_or("tests/ has no parent")?.to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    for watched in ["sdk", "wit", "tests/guests", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // Always this checkout's own target/guests (even under CARGO_TARGET_DIR): the same
    // dir on every build keeps guest builds incremental, it is separate from the
    // host's so the nested cargo does not wait on the outer one's lock, and two
    // checkouts sharing a CARGO_TARGET_DIR never overwrite each other's components.
    let target_dir = root.join("target").join("guests");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(manifest_dir.join("guests"))
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    let mut code = String::from(
        "/// Test guests: (crate name, plugin.toml, component).\npub static GUESTS: &[(&str, &str, &[u8])] = &[\n",
    );
    for dir in dirs {
        let package = guest_build::package_name(&dir).ok_or("guest without a package name")?;
        let wasm = guest_build::build(&guest_build::GuestBuild {
            manifest_path: root.join("Cargo.toml"),
            package: Some(package.clone()),
            profile: "guest".into(),
            target_dir: Some(target_dir.clone()),
            locked: true,
        })?;
        let embedded = out_dir.join(format!("{package}.wasm"));
        std::fs::copy(&wasm, &embedded).map_err(|e| e.to_string())?;
        writeln!(
            code,
            "    ({package:?}, include_str!({:?}), include_bytes!({:?})),",
            dir.join("plugin.toml").display().to_string(),
            embedded.display().to_string()
        )
        .map_err(|e| e.to_string())?;
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("guests.rs"), code).map_err(|e| e.to_string())
}
