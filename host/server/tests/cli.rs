//! The `plinth` binary as a plugin author uses it: keygen, pack, verify, inspect,
//! call — with the real hello component — and what happens with damaged input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use plinth_core::package::{Package, PublicKey};

fn plinth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(args)
        .output()
        .expect("plinth runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Packed {
    _dir: tempfile::TempDir,
    package: PathBuf,
    public_key: String,
}

/// Keygen + pack the embedded hello component, as an author would.
fn pack_hello() -> Packed {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("publisher.key");
    let out = plinth(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let public_key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key:"))
        .unwrap()
        .trim()
        .to_string();

    let hello = plinth_host::bundled::find("hello").unwrap();
    let wasm = dir.path().join("hello.wasm");
    std::fs::write(&wasm, hello.component).unwrap();
    let package = dir.path().join("hello.plpkg");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    let out = plinth(&[
        "plugin",
        "pack",
        examples.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--component",
        wasm.to_str().unwrap(),
        "--out",
        package.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    Packed {
        _dir: dir,
        package,
        public_key,
    }
}

#[test]
fn keygen_writes_a_private_key_0600_and_never_prints_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let out = plinth(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success());
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret_line = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let printed = text(&out.stdout) + &text(&out.stderr);
    assert!(!printed.contains(&secret_line), "the private key was printed");
    assert!(printed.contains("public key:  ed25519:") && printed.contains("key id:"));
    // An existing key is never overwritten.
    let again = plinth(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(!again.status.success());
    assert_eq!(
        std::fs::read_to_string(&key).unwrap().lines().nth(1).unwrap(),
        secret_line
    );
}

#[test]
fn verify_accepts_the_right_key_only() {
    let p = pack_hello();
    let file = p.package.to_str().unwrap();
    let ok = plinth(&["plugin", "verify", file, "--publisher-key", &p.public_key]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).starts_with("OK hello 1.0.0 digest "));

    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("k");
    let out = plinth(&["keygen", "--out", other_key.to_str().unwrap()]);
    let other_pub = text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("public key:"))
        .unwrap()
        .trim()
        .to_string();
    let wrong = plinth(&["plugin", "verify", file, "--publisher-key", &other_pub]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong.stderr).contains("but the expected key is"),
        "{}",
        text(&wrong.stderr)
    );

    let unchecked = plinth(&["plugin", "verify", file]);
    assert_eq!(unchecked.status.code(), Some(3));
    assert!(text(&unchecked.stderr).contains("signature was NOT checked"));
}

/// Offsets of each region of the encoded package, per docs/package-format.md.
fn regions(bytes: &[u8]) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let m = u32::from_be_bytes(bytes[9..13].try_into().unwrap()) as usize;
    let c_len_at = 13 + m;
    let c = u32::from_be_bytes(bytes[c_len_at..c_len_at + 4].try_into().unwrap()) as usize;
    let k_at = c_len_at + 4 + c;
    vec![
        ("magic", 0..8),
        ("format version", 8..9),
        ("manifest length", 9..13),
        ("manifest", 13..c_len_at),
        ("component length", c_len_at..c_len_at + 4),
        ("component", c_len_at + 4..k_at),
        ("key id length", k_at..k_at + 1),
        ("key id", k_at + 1..k_at + 17),
        ("signature", k_at + 17..bytes.len()),
    ]
}

#[test]
fn flipping_any_byte_of_a_real_package_makes_verify_fail() {
    let p = pack_hello();
    let bytes = std::fs::read(&p.package).unwrap();
    let key: PublicKey = p.public_key.parse().unwrap();
    assert!(Package::decode(&bytes).unwrap().verify(&key).is_ok());
    let regions = regions(&bytes);
    assert_eq!(regions.last().unwrap().1.len(), 64);
    for (name, range) in &regions {
        // Every byte of every region except the 118 KB component, where every 61st is
        // flipped (plus its first and last bytes); the library check is fast, so the
        // whole set runs in-process, and one flip per region goes through the binary.
        let offsets: Vec<usize> = if *name == "component" {
            range.clone().step_by(61).chain([range.end - 1]).collect()
        } else {
            range.clone().collect()
        };
        for &offset in &offsets {
            let mut damaged = bytes.clone();
            damaged[offset] ^= 0x01;
            let verdict = Package::decode(&damaged).and_then(|pkg| pkg.verify(&key));
            assert!(verdict.is_err(), "flipping byte {offset} ({name}) still verifies");
        }
        let mut damaged = bytes.clone();
        damaged[offsets[0]] ^= 0x80;
        let path = p.package.with_extension(format!("{}.plpkg", name.replace(' ', "-")));
        std::fs::write(&path, &damaged).unwrap();
        let out = plinth(&[
            "plugin",
            "verify",
            path.to_str().unwrap(),
            "--publisher-key",
            &p.public_key,
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn truncated_and_empty_files_give_clear_errors() {
    let p = pack_hello();
    let bytes = std::fs::read(&p.package).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (len, expected) in [
        (0, "empty"),
        (5, "truncated"),
        (100, "truncated"),
        (bytes.len() - 1, "truncated"),
    ] {
        let path = dir.path().join(format!("cut-{len}.plpkg"));
        std::fs::write(&path, &bytes[..len]).unwrap();
        let out = plinth(&[
            "plugin",
            "verify",
            path.to_str().unwrap(),
            "--publisher-key",
            &p.public_key,
        ]);
        let stderr = text(&out.stderr).to_lowercase();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "cut at {len}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    let missing = plinth(&["plugin", "verify", "/nonexistent.plpkg"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("could not read /nonexistent.plpkg"));
}

#[test]
fn inspect_shows_manifest_digest_key_and_imports() {
    let p = pack_hello();
    let out = plinth(&["plugin", "inspect", p.package.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key: PublicKey = p.public_key.parse().unwrap();
    let package = Package::decode(&std::fs::read(&p.package).unwrap()).unwrap();
    assert_eq!(v["digest"], package.digest().to_hex());
    assert_eq!(v["key_id"], key.key_id().as_str());
    assert_eq!(v["publisher"], "plinth");
    assert_eq!(v["manifest"]["plugin"]["id"], "hello");
    assert_eq!(v["size"], package.size());
    let imports: Vec<&str> = v["imports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.as_str())
        .collect();
    assert!(
        imports.iter().any(|i| i.starts_with("plinth:plugin/storage@1.")),
        "{imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("plinth:plugin/config")),
        "{imports:?}"
    );
}

#[test]
fn call_runs_an_endpoint_in_a_local_sandbox_with_persistent_state() {
    let p = pack_hello();
    let file = p.package.to_str().unwrap();
    let out = plinth(&["plugin", "call", file, "GET", "/greet/Ada"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("HTTP 200\ncontent-type: application/json\n"),
        "{stdout}"
    );
    assert!(stdout.contains(r#"{"greeting":"Hello, Ada!"}"#), "{stdout}");

    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    for expected in [1, 2] {
        let out = plinth(&["plugin", "call", file, "POST", "/count", "--state-dir", state]);
        assert!(
            text(&out.stdout).contains(&format!(r#"{{"count":{expected}}}"#)),
            "{}",
            text(&out.stdout)
        );
    }
    let denied = plinth(&["plugin", "call", file, "POST", "/count", "--role", "read-only"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(text(&denied.stderr).contains("requires role member"));
}

#[test]
fn pack_reports_every_manifest_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        "[plugin]\nid = \"Bad Id\"\nname = \"\"\nversion = \"one\"\npublisher = \"p\"\napi = \"^1\"\n",
    )
    .unwrap();
    let key = dir.path().join("k");
    plinth(&["keygen", "--out", key.to_str().unwrap()]);
    let out = plinth(&[
        "plugin",
        "pack",
        dir.path().to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    for path in ["plugin.id", "plugin.name", "plugin.version", "plugin.publisher"] {
        assert!(stderr.contains(path), "{path} missing from:\n{stderr}");
    }
}

/// The format is documented well enough for an independent verifier: the 40-line
/// Python script in docs/ (PyNaCl) must agree with the host on good and bad packages.
#[test]
fn independent_python_verifier_agrees() {
    let has_nacl = Command::new("python3")
        .args(["-c", "import nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_nacl {
        assert!(
            std::env::var_os("PLINTH_REQUIRE_PYNACL").is_none(),
            "PyNaCl is required here: pip install pynacl"
        );
        eprintln!("skipping: PyNaCl is not installed (pip install pynacl); .ci/run requires it");
        return;
    }
    let p = pack_hello();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/verify_package.py");
    let run = |file: &Path, key: &str| {
        Command::new("python3")
            .arg(&script)
            .arg(file)
            .arg(key)
            .output()
            .unwrap()
    };
    let out = run(&p.package, &p.public_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let digest = Package::decode(&std::fs::read(&p.package).unwrap())
        .unwrap()
        .digest()
        .to_hex();
    assert!(text(&out.stdout).contains(&digest), "{}", text(&out.stdout));

    let mut damaged = std::fs::read(&p.package).unwrap();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 1;
    let bad = p.package.with_extension("bad.plpkg");
    std::fs::write(&bad, damaged).unwrap();
    assert_eq!(run(&bad, &p.public_key).status.code(), Some(1));
}

/// `plugin new` scaffolds a crate that builds as is; pack and call it end to end.
#[test]
fn scaffolded_plugin_builds_packs_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("greeter");
    let out = plinth(&[
        "plugin",
        "new",
        "greeter",
        "--dir",
        crate_dir.to_str().unwrap(),
        "--publisher",
        "acme",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A bad name is refused before anything is written.
    let bad = plinth(&[
        "plugin",
        "new",
        "Not_Valid",
        "--dir",
        dir.path().join("bad").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("plugin.id"), "{}", text(&bad.stderr));
    assert!(!dir.path().join("bad").exists());

    // Share one target dir across runs so the SDK's dependencies build once.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scaffold-test");
    let build = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["plugin", "build", crate_dir.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build.stderr));
    let wasm = text(&build.stdout).trim().to_string();
    assert!(wasm.ends_with("greeter.wasm"), "{wasm}");

    let key = dir.path().join("k");
    plinth(&["keygen", "--out", key.to_str().unwrap()]);
    let package = dir.path().join("greeter.plpkg");
    let pack = plinth(&[
        "plugin",
        "pack",
        crate_dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--component",
        &wasm,
        "--out",
        package.to_str().unwrap(),
    ]);
    assert!(pack.status.success(), "{}", text(&pack.stderr));
    let call = plinth(&["plugin", "call", package.to_str().unwrap(), "GET", "/hello/world"]);
    assert!(
        text(&call.stdout).contains(r#"{"message":"Hello, world!"}"#),
        "{}",
        text(&call.stdout)
    );
    let note = plinth(&[
        "plugin",
        "call",
        package.to_str().unwrap(),
        "POST",
        "/notes",
        "--body",
        r#"{"text":"hi"}"#,
    ]);
    assert!(text(&note.stdout).starts_with("HTTP 201"), "{}", text(&note.stdout));
    // The endpoint's body_schema is enforced before the plugin runs, as on the server.
    let bad = plinth(&[
        "plugin",
        "call",
        package.to_str().unwrap(),
        "POST",
        "/notes",
        "--body",
        r#"{"txt":"hi"}"#,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let err = text(&bad.stderr);
    assert!(
        err.contains("does not match the endpoint's schema") && err.contains("\"text\" is a required property"),
        "{err}"
    );
    let not_json = plinth(&[
        "plugin",
        "call",
        package.to_str().unwrap(),
        "POST",
        "/notes",
        "--body",
        "hi",
    ]);
    assert!(
        text(&not_json.stderr).contains("the body is not JSON"),
        "{}",
        text(&not_json.stderr)
    );
}
