//! Building guest crates into WebAssembly components for `wasm32-wasip2`.
//!
//! Shared, as source, by `host/server/build.rs` (which builds the first-party plugins and
//! embeds them), `tests/build.rs` (hostile test guests) and `plinth plugin build`.
//! It uses only `std` and `serde_json` so build scripts can include it with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every plugin is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// What to build.
#[derive(Debug, Clone)]
pub struct GuestBuild {
    /// `Cargo.toml` of the crate (or of its workspace, with `package` set).
    pub manifest_path: PathBuf,
    /// Package to build within the workspace; `None` for the manifest's own package.
    pub package: Option<String>,
    /// Cargo profile (`release`, or the workspace's `guest` profile).
    pub profile: String,
    /// Target directory; `None` for cargo's default.
    pub target_dir: Option<PathBuf>,
    /// Pass `--locked` (for crates whose lock file is managed by an outer build).
    pub locked: bool,
}

/// Make sure the standard library for [`TARGET`] is installed, installing it with
/// rustup when possible; otherwise fail with the exact command to run.
pub fn ensure_target() -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let has_target = || -> bool {
        Command::new(&rustc)
            .args(["--print", "target-libdir", "--target", TARGET])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .is_some_and(|dir| dir.is_dir() && dir.read_dir().is_ok_and(|mut d| d.next().is_some()))
    };
    if has_target() {
        return Ok(());
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    let installed = rustup.stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if installed && has_target() {
        Ok(())
    } else {
        Err(format!(
            "the Rust target {TARGET} is not installed and could not be added automatically; run:\n    rustup target add {TARGET}"
        ))
    }
}

/// Environment variables that a parent cargo (or clippy) sets for build scripts and
/// that must not leak into a nested cargo building for another target.
fn scrub(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("DEP_")
            || matches!(
                key,
                "CARGO_ENCODED_RUSTFLAGS"
                    | "RUSTFLAGS"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_WRAPPER"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_CRATE_NAME"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "CLIPPY_ARGS"
                    | "CLIPPY_CONF_DIR"
            );
        if leaks {
            cmd.env_remove(key);
        }
    }
}

/// Build the component and return the path of the `.wasm` file cargo produced.
/// Compiler output goes to this process's stderr; failures name the crate.
pub fn build(spec: &GuestBuild) -> Result<PathBuf, String> {
    ensure_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&spec.manifest_path)
        .args(["--target", TARGET, "--profile", &spec.profile])
        .arg("--message-format=json-render-diagnostics");
    if let Some(package) = &spec.package {
        cmd.args(["--package", package]);
    }
    if let Some(dir) = &spec.target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    if spec.locked {
        cmd.arg("--locked");
    }
    scrub(&mut cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let what = spec
        .package
        .clone()
        .unwrap_or_else(|| spec.manifest_path.display().to_string());
    let output = cmd
        .output()
        .map_err(|e| format!("could not run cargo to build {what}: {e}"))?;
    if !output.status.success() {
        return Err(format!("building {what} for {TARGET} failed (compiler output above)"));
    }
    let mut wasm = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            for f in files.iter().filter_map(|f| f.as_str()) {
                if f.ends_with(".wasm") {
                    wasm = Some(PathBuf::from(f));
                }
            }
        }
    }
    wasm.ok_or_else(|| format!("{what} produced no .wasm file: is its crate-type [\"cdylib\"]?"))
}

/// The `[package] name` in a crate's `Cargo.toml` (a simple scan; enough for ours).
pub fn package_name(crate_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(crate_dir.join("Cargo.toml")).ok()?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_string());
        }
    }
    None
}
