//! The marketplace from the command line: an operator registers a publisher and
//! issues a token (`plinth admin publisher …`), the author publishes with
//! `plinth plugin publish` to a running server, whose catalog also holds the
//! first-party plugins it signed and published itself on start.

use std::path::Path;
use std::process::{Command, Output};

use plinth_host::server::{self, ServerConfig};

fn plinth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(args)
        .output()
        .expect("plinth runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The server runs on this test's runtime, so the blocking CLI calls that talk to it
/// run on a blocking thread.
async fn plinth_async(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plinth"))
            .args(&args)
            .output()
            .expect("plinth runs")
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn publisher_admin_and_publish_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let key = dir.path().join("acme.key");
    let out = plinth(&["keygen", "--out", key.to_str().unwrap()]);
    let public = text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("public key:"))
        .unwrap()
        .trim()
        .to_string();

    let out = plinth(&[
        "admin",
        "publisher",
        "add",
        "acme",
        "--public-key",
        &public,
        "--data-dir",
        data_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = plinth(&[
        "admin",
        "publisher",
        "add",
        "acme",
        "--public-key",
        &public,
        "--data-dir",
        data_arg,
    ]);
    assert!(!out.status.success(), "a second registration is refused");
    let out = plinth(&["admin", "publisher", "token", "acme", "--data-dir", data_arg]);
    let token = text(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("plp_"))
        .unwrap()
        .to_string();

    let mut config = ServerConfig::new(data.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let running = server::start(config).await.unwrap();
    let url = running.url();

    // A package for publisher acme around the hello component.
    let crate_dir = dir.path().join("greeter");
    std::fs::create_dir_all(&crate_dir).unwrap();
    std::fs::write(crate_dir.join("Cargo.toml"), "[package]\nname = \"greeter\"\n").unwrap();
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello/plugin.toml"))
            .unwrap()
            .replace("id = \"hello\"", "id = \"greeter\"")
            .replace("publisher = \"plinth\"", "publisher = \"acme\"");
    std::fs::write(crate_dir.join("plugin.toml"), manifest).unwrap();
    let wasm = dir.path().join("hello.wasm");
    std::fs::write(&wasm, plinth_host::bundled::find("hello").unwrap().component).unwrap();
    let package = dir.path().join("greeter.plpkg");
    let out = plinth(&[
        "plugin",
        "pack",
        crate_dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--component",
        wasm.to_str().unwrap(),
        "--out",
        package.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = plinth_async(&[
        "plugin",
        "publish",
        package.to_str().unwrap(),
        "--server",
        &url,
        "--token",
        &token,
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("published greeter 1.0.0"),
        "{}",
        text(&out.stdout)
    );
    let again = plinth_async(&[
        "plugin",
        "publish",
        package.to_str().unwrap(),
        "--server",
        &url,
        "--token",
        &token,
    ])
    .await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already published"),
        "{}",
        text(&again.stderr)
    );
    let bad = plinth_async(&[
        "plugin",
        "publish",
        package.to_str().unwrap(),
        "--server",
        &url,
        "--token",
        "plp_wrong",
    ])
    .await;
    assert!(text(&bad.stderr).contains("401"), "{}", text(&bad.stderr));

    // The catalog holds acme's plugin and the first-party hello, signed by the local key.
    let catalog: serde_json::Value = reqwest::get(format!("{url}/api/v1/marketplace/plugins"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<(&str, &str)> = catalog["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["publisher"].as_str().unwrap()))
        .collect();
    assert!(ids.contains(&("greeter", "acme")), "{ids:?}");
    assert!(ids.contains(&("hello", "plinth")), "{ids:?}");
    assert!(data.join("first-party.key").exists());
    running.shutdown().await.unwrap();

    // Revoking acme's key from the CLI disables nothing here (not installed) but is reported.
    let key_id = text(&plinth(&["plugin", "inspect", package.to_str().unwrap(), "--json"]).stdout);
    let key_id: serde_json::Value = serde_json::from_str(&key_id).unwrap();
    let out = plinth(&[
        "admin",
        "publisher",
        "revoke-key",
        "acme",
        key_id["key_id"].as_str().unwrap(),
        "--data-dir",
        data_arg,
    ]);
    assert!(
        text(&out.stdout).contains("1 packages untrusted, 0 installations disabled"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
