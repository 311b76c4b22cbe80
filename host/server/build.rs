//! Builds the first-party plugins (`examples/hello`, `plugins/*`) into WebAssembly
//! components and embeds them in the host, so `plinth serve` can publish them on
//! first start with no separate build step.

#[path = "src/guest_build.rs"]
#[allow(dead_code)]
mod guest_build;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    // This crate is host/server: the repository root is two levels up.
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or("host/server/ has no grandparent")?
        .to_path_buf();
    let out_dir = PathBuf::from(env("OUT_DIR")?);
    for watched in ["sdk", "wit", "examples/hello", "plugins", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-changed=src/guest_build.rs");
    println!("cargo:rerun-if-env-changed=PLINTH_SKIP_GUESTS");

    let mut crates = vec![root.join("examples/hello")];
    if let Ok(entries) = std::fs::read_dir(root.join("plugins")) {
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("plugin.toml").is_file() && p.join("Cargo.toml").is_file())
            .collect();
        dirs.sort();
        crates.extend(dirs);
    }

    // Always this checkout's own target/guests (even under CARGO_TARGET_DIR): the same
    // dir on every build keeps guest builds incremental, it is separate from the
    // host's so the nested cargo does not wait on the outer one's lock, and two
    // checkouts sharing a CARGO_TARGET_DIR never overwrite each other's components.
    let target_dir = root.join("target").join("guests");

    let mut code =
        String::from("/// First-party plugins built from this repository.\npub static BUNDLED: &[Bundled] = &[\n");
    for dir in &crates {
        let package = guest_build::package_name(dir).ok_or_else(|| format!("{} has no package name", dir.display()))?;
        let wasm = guest_build::build(&guest_build::GuestBuild {
            manifest_path: root.join("Cargo.toml"),
            package: Some(package.clone()),
            profile: "guest".into(),
            target_dir: Some(target_dir.clone()),
            locked: true,
        })?;
        let embedded = out_dir.join(format!("{package}.wasm"));
        std::fs::copy(&wasm, &embedded).map_err(|e| format!("copy {}: {e}", wasm.display()))?;
        let manifest = dir.join("plugin.toml");
        writeln!(
            code,
            "    Bundled {{ crate_name: {package:?}, manifest: include_str!({:?}), component: include_bytes!({:?}) }},",
            path_str(&manifest)?,
            path_str(&embedded)?
        )
        .map_err(|e| e.to_string())?;
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("bundled.rs"), code).map_err(|e| e.to_string())
}

fn env(key: &str) -> Result<String, String> {
    std::env::var(key).map_err(|_| format!("{key} is not set"))
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("path {} is not UTF-8", p.display()))
}
