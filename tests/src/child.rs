//! A server in a child process, so that a test can `kill -9` it: the test binary runs
//! itself again with only its `child_server` test, which (seeing the environment this
//! module sets) serves the given database until it is killed.
//!
//! A test file using it declares the entry point once:
//!
//! ```ignore
//! #[tokio::test]
//! #[ignore = "the child server of the kill -9 tests; run by them"]
//! async fn child_server() {
//!     plinth_tests::child::serve_if_child().await;
//! }
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plinth_core::store::Db;
use plinth_host::server::{self, ServerConfig};

const DB_VAR: &str = "PLINTH_CHILD_SERVER_DB";
const ADDR_VAR: &str = "PLINTH_CHILD_SERVER_ADDR_FILE";
const LEASE_VAR: &str = "PLINTH_CHILD_SERVER_JOB_LEASE_MS";

/// A server running in a child process.
pub struct ChildServer {
    child: Child,
    /// Base URL, `http://127.0.0.1:port`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl ChildServer {
    /// Serve `db_url` from a child process whose job claims last `job_lease` (so a
    /// host started after a kill resumes the job soon); waits until it listens.
    pub fn spawn(db_url: &str, job_lease: Duration) -> ChildServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr_file = dir.path().join("url");
        let exe = std::env::current_exe().expect("the test binary");
        let child = Command::new(exe)
            .args([
                "child_server",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DB_VAR, db_url)
            .env(ADDR_VAR, &addr_file)
            .env(LEASE_VAR, job_lease.as_millis().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child server");
        let started = Instant::now();
        let url = loop {
            if let Ok(url) = std::fs::read_to_string(&addr_file)
                && !url.is_empty()
            {
                break url;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the child server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        ChildServer { child, url, _dir: dir }
    }

    /// `kill -9` it and reap it.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL the child server");
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side: when started by [`ChildServer::spawn`], serve until killed;
/// otherwise (a plain `cargo test -- --ignored`) return at once.
pub async fn serve_if_child() {
    let (Ok(db_url), Ok(addr_file)) = (std::env::var(DB_VAR), std::env::var(ADDR_VAR)) else {
        return;
    };
    let addr_file = PathBuf::from(addr_file);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::connect(&db_url).await.expect("connect to the database");
    let mut config = ServerConfig::new(dir.path().to_path_buf());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.first_party = false;
    config.api.rate_limit = None;
    if let Some(ms) = std::env::var(LEASE_VAR).ok().and_then(|v| v.parse().ok()) {
        config.jobs.lease = Duration::from_millis(ms);
    }
    let server = server::start_with_db(config, db).await.expect("child server starts");
    let tmp = addr_file.with_extension("tmp");
    std::fs::write(&tmp, server.url()).expect("write the url");
    std::fs::rename(&tmp, &addr_file).expect("publish the url");
    std::future::pending::<()>().await;
}
