//! Every first-party plugin is held to its manifest: its crate is a default workspace
//! member, so `cargo test` runs its unit tests, and those include the check that its
//! `Router` and its `plugin.toml` `[[endpoints]]` name the same endpoints
//! (`Router::check_against_manifest`). A plugin added without that check fails here.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `examples/hello` and every `plugins/<name>` with a `plugin.toml`.
fn first_party_crates() -> Vec<String> {
    let mut crates = vec!["examples/hello".to_string()];
    let mut plugins: Vec<String> = std::fs::read_dir(root().join("plugins"))
        .expect("plugins/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("plugin.toml").is_file())
        .map(|e| format!("plugins/{}", e.file_name().to_string_lossy()))
        .collect();
    plugins.sort();
    crates.extend(plugins);
    crates
}

#[test]
fn every_first_party_plugin_checks_its_routes_against_its_manifest() {
    let workspace: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let default_members: Vec<&str> = workspace["workspace"]["default-members"]
        .as_array()
        .expect("the workspace lists default members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let crates = first_party_crates();
    assert!(crates.len() >= 2, "found {crates:?}");
    let mut problems = Vec::new();
    for krate in &crates {
        if !default_members.contains(&krate.as_str()) {
            problems.push(format!(
                "{krate} is not a default workspace member, so `cargo test` skips it"
            ));
        }
        let source = std::fs::read_to_string(root().join(krate).join("src/lib.rs")).unwrap_or_default();
        if !source.contains("check_against_manifest(include_str!(\"../plugin.toml\"))") {
            problems.push(format!(
                "{krate}/src/lib.rs has no test calling `router().check_against_manifest(include_str!(\"../plugin.toml\"))`"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
