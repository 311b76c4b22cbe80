//! `plinth plugin …`: the plugin author's workflow.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::{block_on, exit, scaffold};
use crate::guest_build::{self, GuestBuild};
use plinth_core::manifest::{Manifest, Role};
use plinth_core::package::{Package, PublicKey, SecretKey};
use plinth_runtime::engine::{Runtime, RuntimeConfig};
use plinth_runtime::sandbox::{self, Sandbox};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PluginCommand {
    /// Scaffold a new plugin crate in ./NAME that builds as is.
    New(NewArgs),
    /// Build the plugin in DIR into a WebAssembly component (release, wasm32-wasip2).
    Build(BuildArgs),
    /// Build (if needed), validate and sign a plugin into one package file.
    Pack(PackArgs),
    /// Check a package: intact, well-formed, and signed by the given publisher key.
    Verify(VerifyArgs),
    /// Show what a package contains: manifest, digest, publisher, key id, size, imports.
    Inspect(InspectArgs),
    /// Run one endpoint call in an in-process host with its own storage.
    Call(CallArgs),
    /// Upload a package to a server's marketplace.
    Publish(PublishArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct PublishArgs {
    /// The package file.
    file: PathBuf,
    /// Server base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "PLINTH_SERVER")]
    server: String,
    /// Publisher upload token (`plinth admin publisher token NAME`).
    #[arg(long, env = "PLINTH_PUBLISHER_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// Plugin id: lowercase letters, digits and hyphens, starting with a letter.
    name: String,
    /// Directory to create (default: ./NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Publisher id to put in plugin.toml.
    #[arg(long, default_value = "my-publisher")]
    publisher: String,
    /// Path of the plinth-sdk crate (default: the SDK this plinth was built from).
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// Plugin crate directory (with Cargo.toml and plugin.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Cargo profile to build with.
    #[arg(long, default_value = "release")]
    profile: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PackArgs {
    /// Plugin crate directory (with Cargo.toml and plugin.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Private key file to sign with (from `plinth keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Output file (default: ./<id>-<version>.plpkg).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Use this already-built component instead of building.
    #[arg(long, value_name = "WASM")]
    component: Option<PathBuf>,
    /// Cargo profile to build with.
    #[arg(long, default_value = "release")]
    profile: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The package file.
    file: PathBuf,
    /// The publisher's public key (`ed25519:…`). Without it only the structure is
    /// checked and the exit code is 3 (not verified).
    #[arg(long, value_name = "PUBKEY")]
    publisher_key: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// The package file.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CallArgs {
    /// The package file.
    file: PathBuf,
    /// HTTP method (GET, POST, PUT, PATCH, DELETE).
    method: String,
    /// Path below the plugin's mount point, with an optional query: `/greet/ada?lang=de`.
    path: String,
    /// Request body (JSON text).
    #[arg(long)]
    body: Option<String>,
    /// Header `name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Role of the calling user.
    #[arg(long, default_value = "owner")]
    role: String,
    /// Keep the sandbox's storage here, so state survives between calls (default: a
    /// temporary directory removed afterwards).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Also require the package to be signed by this key.
    #[arg(long, value_name = "PUBKEY")]
    publisher_key: Option<String>,
}

pub(crate) fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::New(a) => new(a),
        PluginCommand::Build(a) => build(a),
        PluginCommand::Pack(a) => pack(a),
        PluginCommand::Verify(a) => verify(a),
        PluginCommand::Inspect(a) => inspect(a),
        PluginCommand::Call(a) => call(a),
        PluginCommand::Publish(a) => publish(a),
    }
}

fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = match args.sdk {
        Some(p) => p,
        None => default_sdk_path()?,
    };
    scaffold::create(&dir, &args.name, &args.publisher, &sdk)?;
    println!("created plugin `{}` in {}", args.name, dir.display());
    println!("next: cd {} && plinth plugin build", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn default_sdk_path() -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
    built_from.canonicalize().with_context(|| {
        format!(
            "the plinth-sdk sources are not at {}; pass --sdk PATH",
            built_from.display()
        )
    })
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let wasm = build_component(&args.dir, &args.profile)?;
    println!("{}", wasm.display());
    Ok(ExitCode::SUCCESS)
}

fn build_component(dir: &Path, profile: &str) -> anyhow::Result<PathBuf> {
    let manifest_path = dir.join("Cargo.toml");
    if !manifest_path.is_file() {
        bail!("{} has no Cargo.toml: is it a plugin crate?", dir.display());
    }
    guest_build::build(&GuestBuild {
        manifest_path,
        package: None,
        profile: profile.to_string(),
        target_dir: None,
        locked: false,
    })
    .map_err(anyhow::Error::msg)
}

fn read_manifest(dir: &Path) -> anyhow::Result<(Vec<u8>, Manifest)> {
    let path = dir.join("plugin.toml");
    let bytes = std::fs::read(&path).with_context(|| format!("could not read {}", path.display()))?;
    let manifest =
        Manifest::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{} is not valid:\n{e}", path.display()))?;
    Ok((bytes, manifest))
}

/// Compile the component with the host's engine and check the manifest against it:
/// the WIT version it targets and the interfaces it imports.
fn check_component(manifest: &Manifest, component: &[u8]) -> anyhow::Result<Vec<String>> {
    if !manifest.plugin.api.matches(&plinth_runtime::WIT_VERSION) {
        bail!(
            "plugin.api = \"{}\" does not accept this host's plugin API {}",
            manifest.plugin.api,
            plinth_runtime::WIT_VERSION
        );
    }
    let runtime = Runtime::new(RuntimeConfig {
        pooling: false,
        ..RuntimeConfig::default()
    })?;
    let digest = plinth_core::package::Digest::from_bytes([0; 32]);
    let loaded = runtime.load(digest, component)?;
    let imports = loaded.imports().to_vec();
    if let Err(problems) = plinth_runtime::caps::check_imports(&imports, &manifest.capabilities) {
        bail!(
            "the component does not match its manifest:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(imports)
}

fn pack(args: PackArgs) -> anyhow::Result<ExitCode> {
    let (manifest_bytes, manifest) = read_manifest(&args.dir)?;
    let key = SecretKey::read(&args.key).with_context(|| format!("could not use key {}", args.key.display()))?;
    let wasm_path = match args.component {
        Some(p) => p,
        None => build_component(&args.dir, &args.profile)?,
    };
    let component = std::fs::read(&wasm_path).with_context(|| format!("could not read {}", wasm_path.display()))?;
    check_component(&manifest, &component)?;
    let package = Package::sign(manifest_bytes, component, &key)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.plpkg", manifest.plugin.id, manifest.plugin.version)));
    std::fs::write(&out, package.encode()).with_context(|| format!("could not write {}", out.display()))?;
    println!(
        "packed {} {} -> {}",
        manifest.plugin.id,
        manifest.plugin.version,
        out.display()
    );
    println!("digest:  {}", package.digest());
    println!("key id:  {}", package.key_id);
    println!("size:    {} bytes", package.size());
    Ok(ExitCode::SUCCESS)
}

fn read_package(path: &Path) -> anyhow::Result<(Package, Manifest)> {
    let bytes = std::fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
    let package = Package::decode(&bytes).with_context(|| format!("{} is not a valid package", path.display()))?;
    let manifest = Manifest::from_bytes(&package.manifest)
        .map_err(|e| anyhow::anyhow!("the manifest inside {} is not valid:\n{e}", path.display()))?;
    Ok((package, manifest))
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (package, manifest) = read_package(&args.file)?;
    let Some(key) = args.publisher_key else {
        eprintln!(
            "{}: well-formed ({} {}, key id {}), but the signature was NOT checked: pass --publisher-key",
            args.file.display(),
            manifest.plugin.id,
            manifest.plugin.version,
            package.key_id
        );
        return Ok(ExitCode::from(exit::UNVERIFIED));
    };
    let key: PublicKey = key.parse().context("--publisher-key is not a valid public key")?;
    package
        .verify(&key)
        .with_context(|| format!("{} does not verify", args.file.display()))?;
    println!(
        "OK {} {} digest {} signed by key {}",
        manifest.plugin.id,
        manifest.plugin.version,
        package.digest(),
        package.key_id
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let (package, manifest) = read_package(&args.file)?;
    let imports = check_component(&manifest, &package.component).or_else(|e| {
        // Show what we can even when the component does not match its manifest.
        let runtime = Runtime::new(RuntimeConfig {
            pooling: false,
            ..RuntimeConfig::default()
        })?;
        let loaded = runtime.load(package.digest(), &package.component).map_err(|_| e)?;
        Ok::<_, anyhow::Error>(loaded.imports().to_vec())
    })?;
    if args.json {
        let value = serde_json::json!({
            "manifest": manifest,
            "digest": package.digest().to_hex(),
            "publisher": manifest.plugin.publisher,
            "key_id": package.key_id.as_str(),
            "size": package.size(),
            "component_size": package.component.len(),
            "imports": imports,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let p = &manifest.plugin;
    println!("plugin:      {} {} ({})", p.id, p.version, p.name);
    println!("publisher:   {} (key id {})", p.publisher, package.key_id);
    println!("digest:      {}", package.digest());
    println!(
        "size:        {} bytes (component {} bytes)",
        package.size(),
        package.component.len()
    );
    println!("api:         {}", p.api);
    if let Some(d) = &p.description {
        println!("description: {d}");
    }
    let caps = manifest.capabilities.keys();
    println!(
        "capabilities: {}",
        if caps.is_empty() {
            "none".into()
        } else {
            caps.into_iter().collect::<Vec<_>>().join(", ")
        }
    );
    println!("endpoints:");
    for e in &manifest.endpoints {
        println!("  {:<6} {}  (role {}+)", e.method.as_str(), e.path.as_str(), e.role);
    }
    println!("imports:");
    for i in &imports {
        println!("  {i}");
    }
    Ok(ExitCode::SUCCESS)
}

fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let (package, manifest) = read_package(&args.file)?;
    if let Some(key) = &args.publisher_key {
        let key: PublicKey = key.parse().context("--publisher-key is not a valid public key")?;
        package
            .verify(&key)
            .with_context(|| format!("{} does not verify", args.file.display()))?;
    }
    let role: Role = args.role.parse().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} is not `name: value`"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let body = args.body.unwrap_or_default().into_bytes();
    if !body.is_empty() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let temp = tempfile::tempdir()?;
    let state_dir = args.state_dir.unwrap_or_else(|| temp.path().to_path_buf());
    let request = sandbox::request(&args.method, &args.path, headers, body);
    check_component(&manifest, &package.component)?;
    block_on(async move {
        let sandbox = Sandbox::open(&state_dir, RuntimeConfig::default()).await?;
        let plugin = sandbox.load(manifest, package.component).await?;
        let outcome = match sandbox.request(&plugin, role, request).await {
            Ok(outcome) => outcome,
            Err(e) => bail!("{e}"),
        };
        let response = outcome.result?;
        println!("HTTP {}", response.status);
        for (k, v) in &response.headers {
            println!("{k}: {v}");
        }
        println!();
        println!("{}", String::from_utf8_lossy(&response.body));
        eprintln!(
            "({} ms, {} host calls, peak memory {} KiB)",
            outcome.report.elapsed.as_millis(),
            outcome.report.stats.host_calls,
            outcome.report.peak_memory / 1024
        );
        sandbox.db().close().await;
        Ok(ExitCode::SUCCESS)
    })?
}

fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    // Fail early on a local problem rather than uploading a broken file.
    let (package, manifest) = read_package(&args.file)?;
    let url = format!("{}/api/v1/marketplace/packages", args.server.trim_end_matches('/'));
    block_on(async move {
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&args.token)
            .header("content-type", "application/octet-stream")
            .body(package.encode())
            .send()
            .await
            .with_context(|| format!("could not reach {url}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            let reason = body["reason"].as_str().map(|r| format!(" [{r}]")).unwrap_or_default();
            bail!("the server refused the package ({status}){reason}: {detail}");
        }
        println!(
            "published {} {} (digest {})",
            manifest.plugin.id,
            manifest.plugin.version,
            body["digest"].as_str().unwrap_or_default()
        );
        Ok(ExitCode::SUCCESS)
    })?
}
