//! `plinth admin version list|set` on a data directory: the lifecycle rules apply and
//! the change is stored for servers to pick up.

use std::process::{Command, Output};

fn plinth(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("PLINTH_DATABASE_URL")
        .output()
        .expect("plinth runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn admin_version_list_and_set() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let out = plinth(d, &["admin", "version", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = text(&out);
    assert!(listed.contains("2026-11-01   current"), "{listed}");
    assert!(listed.contains("2027-01-15   preview"), "{listed}");

    // The only current version cannot be deprecated.
    let out = plinth(
        d,
        &["admin", "version", "set", "2026-11-01", "--lifecycle", "deprecated"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("only current version"), "{}", text(&out));

    let out = plinth(d, &["admin", "version", "set", "2027-01-15", "--lifecycle", "current"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = plinth(
        d,
        &[
            "admin",
            "version",
            "set",
            "2026-11-01",
            "--lifecycle",
            "deprecated",
            "--sunset",
            "2027-06-30",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = plinth(d, &["admin", "version", "list"]);
    let listed = text(&out);
    let line = listed.lines().find(|l| l.starts_with("2026-11-01")).unwrap_or_default();
    assert!(
        line.contains("deprecated") && line.contains("2027-06-30") && line.contains("2027-01-15"),
        "{listed}"
    );

    let out = plinth(d, &["admin", "version", "set", "2026-11-01", "--lifecycle", "gone"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not a lifecycle"), "{}", text(&out));
    let out = plinth(d, &["admin", "version", "set", "2099-01-01", "--lifecycle", "current"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no API version 2099-01-01"), "{}", text(&out));
}
