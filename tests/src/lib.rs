//! Helpers for Plinth's end-to-end tests: the test guests built from `tests/guests`,
//! sandboxes over the real runtime, and real servers on 127.0.0.1:0 over SQLite — or
//! PostgreSQL, when `PLINTH_TEST_DATABASE_URL` names a server (each test then gets a
//! fresh database of its own).

use plinth_core::manifest::Manifest;
use plinth_core::store::Db;
use plinth_core::store::audit::Actor;
use plinth_core::timers::Clock;
use plinth_host::server::{self, RunningServer, ServerConfig};
use plinth_runtime::engine::RuntimeConfig;
use plinth_runtime::sandbox::{Sandbox, SandboxPlugin};
use serde_json::Value;

pub mod child;
pub mod client;
pub mod guest;
pub mod receivers;

pub use client::{Call, Client, NEWEST_VERSION, Reply};
pub use guest::Guest;

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

/// Which database the tests run on.
pub fn database_kind() -> &'static str {
    if std::env::var_os("PLINTH_TEST_DATABASE_URL").is_some() {
        "postgres"
    } else {
        "sqlite"
    }
}

/// A fresh, empty database: a temporary SQLite file, or a new PostgreSQL database
/// on the server named by `PLINTH_TEST_DATABASE_URL`.
pub async fn fresh_db(dir: &std::path::Path) -> Db {
    fresh_database(dir).await.0
}

/// Like [`fresh_db`], also returning a URL that connects to the same database again.
pub async fn fresh_database(dir: &std::path::Path) -> (Db, String) {
    match std::env::var("PLINTH_TEST_DATABASE_URL") {
        Ok(admin_url) => {
            use sqlx::Connection as _;
            let name = format!("plinth_test_{}", ulid::Ulid::new().to_string().to_lowercase());
            let mut admin = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL");
            drop_abandoned_databases(&mut admin).await;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .expect("create database");
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
            let db = Db::connect(&url).await.expect("connect to the test database");
            (db, url)
        }
        Err(_) => {
            let path = dir.join("plinth.db");
            let db = Db::open_sqlite(&path).await.expect("open SQLite");
            (db, format!("sqlite://{}", path.display()))
        }
    }
}

/// Test databases outlive their test unless a server's `stop` drops them (a plain
/// [`fresh_db`] has no end to hook, and an interrupted run leaves its own). So the first
/// fresh database of each test process drops the `plinth_test_*` databases created (by
/// the time in their ULID) more than six hours ago: no run lasts that long, and repeated
/// runs do not fill the server. Failures are ignored: cleanup only.
async fn drop_abandoned_databases(admin: &mut sqlx::PgConnection) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Ok(names) =
        sqlx::query_scalar::<_, String>("SELECT datname FROM pg_database WHERE datname LIKE 'plinth\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
    else {
        return;
    };
    let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(6 * 3600);
    for name in names {
        let created = name
            .strip_prefix("plinth_test_")
            .and_then(|u| ulid::Ulid::from_string(&u.to_uppercase()).ok())
            .map(|u| u.datetime());
        if created.is_some_and(|t| t < cutoff) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// [`fresh_db`], with what [`reopen_db`] needs to connect to it again (the
/// PostgreSQL URL; `None` for SQLite in `dir`).
pub async fn fresh_db_reopenable(dir: &std::path::Path) -> (Db, Option<String>) {
    let (db, url) = fresh_database(dir).await;
    (db, url.starts_with("postgres").then_some(url))
}

/// Connect again to a database from [`fresh_db_reopenable`] (after a server
/// stopped and closed it).
pub async fn reopen_db(url: &Option<String>, dir: &std::path::Path) -> Db {
    match url {
        Some(url) => Db::connect(url).await.expect("reconnect"),
        None => Db::open_sqlite(&dir.join("plinth.db")).await.expect("reopen SQLite"),
    }
}

/// Drop a PostgreSQL database [`fresh_database`] created (nothing for SQLite, whose
/// file goes with its temporary directory). Failures are ignored: cleanup only.
async fn drop_test_database(url: &str) {
    use sqlx::Connection as _;
    let (Ok(admin_url), Some((_, name))) = (std::env::var("PLINTH_TEST_DATABASE_URL"), url.rsplit_once('/')) else {
        return;
    };
    if !url.starts_with("postgres") || !name.starts_with("plinth_test_") {
        return;
    }
    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

/// A real server on 127.0.0.1:0 with its own data directory and database.
pub struct TestServer {
    /// The running server.
    pub server: RunningServer,
    /// Base URL, `http://127.0.0.1:port`.
    pub url: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Connects to the server's database again (restarts, second hosts).
    db_url: String,
    /// The clock its timers go by.
    clock: Clock,
    /// Whether [`TestServer::stop`] drops the PostgreSQL database (not for a second
    /// host on another server's database).
    owns_db: bool,
    _dir: tempfile::TempDir,
}

/// A [`TestServer`] stopped with [`TestServer::stop_keeping_data`]: its data
/// directory and database, ready to serve again.
pub struct StoppedServer {
    dir: tempfile::TempDir,
    db_url: String,
    clock: Clock,
}

impl StoppedServer {
    /// The database URL (to serve it from elsewhere, e.g. a [`child::ChildServer`]).
    pub fn db_url(&self) -> &str {
        &self.db_url
    }

    /// Start a new server over the same data directory and database.
    pub async fn start(self) -> TestServer {
        let db = Db::connect(&self.db_url).await.expect("reconnect to the database");
        TestServer::serve(self.dir, self.db_url, db, false, self.clock, |_| {}).await
    }
}

/// A tenant created for a test, with its owner's API key. Dereferences to the
/// owner's [`Client`]: `t.get(…)` runs as the owner.
#[derive(Debug, Clone)]
pub struct TestTenant {
    /// Tenant id.
    pub id: String,
    /// Owner user id.
    pub owner_id: String,
    /// Owner's API key.
    pub key: String,
    /// The owner's client.
    pub api: Client,
}

impl std::ops::Deref for TestTenant {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.api
    }
}

impl TestServer {
    /// Start a server whose catalog holds the first-party plugins (signed with a
    /// key created in its data dir, as in embedded mode).
    pub async fn start_with_first_party() -> TestServer {
        TestServer::start_inner(true, |db| db).await
    }

    /// Start a server.
    pub async fn start() -> TestServer {
        TestServer::start_inner(false, |db| db).await
    }

    /// Start a server whose database is adjusted by `tune` first.
    pub async fn start_with(tune: impl FnOnce(Db) -> Db) -> TestServer {
        TestServer::start_inner(false, tune).await
    }

    /// Start a server whose plugin timers go by `clock` (a manual one lets a test
    /// drive time; see [`TestServer::timers_caught_up`]).
    pub async fn start_with_clock(clock: Clock) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, db_url) = fresh_database(dir.path()).await;
        TestServer::serve(dir, db_url, db, false, clock, |_| {}).await
    }

    /// Start a server whose configuration is adjusted by `configure` first (outbox,
    /// outbound HTTP, secret key…).
    pub async fn start_configured(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, db_url) = fresh_database(dir.path()).await;
        TestServer::serve(dir, db_url, db, false, Clock::system(), configure).await
    }

    /// Start a server over `db` (e.g. one a stopped server used), with its own new
    /// data directory and its configuration adjusted by `configure`. (It cannot be
    /// restarted with [`TestServer::stop_keeping_data`] or joined by
    /// [`TestServer::another_host`]: the harness does not know `db`'s URL.)
    pub async fn start_on(db: Db, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::serve(dir, String::new(), db, false, Clock::system(), configure).await
    }

    async fn start_inner(first_party: bool, tune: impl FnOnce(Db) -> Db) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, db_url) = fresh_database(dir.path()).await;
        TestServer::serve(dir, db_url, tune(db), first_party, Clock::system(), |_| {}).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        db_url: String,
        db: Db,
        first_party: bool,
        clock: Clock,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut config = ServerConfig::new(dir.path().to_path_buf());
        config.listen = "127.0.0.1:0".parse().expect("addr");
        // Compiling the bundled plugins costs every test a few seconds; marketplace
        // tests that need them use `start_with_first_party`.
        config.first_party = first_party;
        config.clock = clock.clone();
        // Tests drive the server far faster than any client should; the rate limit has
        // its own test, which turns it on.
        config.api.rate_limit = None;
        configure(&mut config);
        let server = server::start_with_db(config, db).await.expect("server starts");
        let url = server.url();
        TestServer {
            server,
            url,
            http: reqwest::Client::new(),
            db_url,
            clock,
            owns_db: true,
            _dir: dir,
        }
    }

    /// Start another host (own data directory, same clock) on this server's database,
    /// as when several hosts share one PostgreSQL.
    pub async fn another_host(&self) -> TestServer {
        self.another_host_configured(|_| {}).await
    }

    /// [`TestServer::another_host`] with its configuration adjusted by `configure`.
    pub async fn another_host_configured(&self, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::connect(&self.db_url).await.expect("connect to the shared database");
        let mut host = TestServer::serve(dir, self.db_url.clone(), db, false, self.clock.clone(), configure).await;
        host.owns_db = false;
        host
    }

    /// Stop gracefully, keeping the data directory and database for
    /// [`StoppedServer::start`] (a restart).
    pub async fn stop_keeping_data(self) -> StoppedServer {
        let TestServer {
            server,
            db_url,
            clock,
            _dir: dir,
            ..
        } = self;
        server.shutdown().await.expect("clean shutdown");
        StoppedServer { dir, db_url, clock }
    }

    /// The clock the server's timers go by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Wake the timer scheduler and wait until it has finished a pass that started
    /// after this call: every timer due by the clock's current time has fired (or is
    /// held, or is being fired by another host).
    pub async fn timers_caught_up(&self) {
        self.server.scheduler.caught_up().await;
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The server's database (for setup and for tampering tests).
    pub fn db(&self) -> &Db {
        &self.server.state.db
    }

    /// Create a tenant with an owner directly through the tenancy service.
    pub async fn tenant(&self, name: &str) -> TestTenant {
        let created = plinth_core::tenancy::create_tenant(
            self.db(),
            name,
            &format!("owner@{}.test", name.to_lowercase().replace(' ', "-")),
            "Owner",
            plinth_core::versioning::DEFAULT_VERSION,
            &Actor::system(),
        )
        .await
        .expect("tenant created");
        TestTenant {
            id: created.tenant.id,
            owner_id: created.owner.id,
            api: self.client(&created.api_key),
            key: created.api_key,
        }
    }

    /// Add a user with `role` to a tenant and give them an API key.
    pub async fn user(&self, tenant: &TestTenant, name: &str, role: &str) -> TestUser {
        use plinth_core::store::tenancy::{NewKey, insert_key, insert_user};
        let mut tx = self.db().writer().begin().await.expect("begin");
        let email = format!(
            "{}@{}.test",
            name.to_lowercase().replace(' ', "."),
            tenant.id.to_lowercase()
        );
        let user = insert_user(&mut tx, &tenant.id, &email, name, role)
            .await
            .expect("user");
        let secret = plinth_core::tenancy::new_secret(plinth_core::tenancy::KEY_PREFIX);
        insert_key(
            &mut tx,
            &tenant.id,
            NewKey {
                user_id: &user.id,
                name: "test",
                secret_hash: &secret.hash,
                prefix: "plk_test",
                api_version: None,
                created_by: None,
                expires_at: None,
            },
        )
        .await
        .expect("key");
        tx.commit().await.expect("commit");
        TestUser {
            id: user.id,
            api: self.client(&secret.plaintext),
            key: secret.plaintext,
        }
    }

    /// A fresh operator token.
    pub async fn operator_token(&self) -> String {
        plinth_core::tenancy::create_operator_token(self.db())
            .await
            .expect("operator token")
    }

    /// Register a publisher with a new key (through the operator API) and give it an
    /// upload token.
    pub async fn publisher(&self, id: &str) -> TestPublisher {
        let operator = self.operator().await;
        let key = plinth_core::package::SecretKey::generate();
        let body = serde_json::json!({ "id": id, "public_key": key.public_key().to_text() });
        operator.post("/api/v1/operator/publishers", body).await.expect(201);
        let token = operator
            .request("POST", &format!("/api/v1/operator/publishers/{id}/tokens"))
            .await
            .expect(201)
            .json();
        TestPublisher {
            id: id.into(),
            key,
            token: token["token"].as_str().expect("token").to_string(),
        }
    }

    /// Upload a package with a publisher token.
    pub async fn publish(&self, token: &str, package: Vec<u8>) -> Reply {
        self.client(token)
            .request("POST", "/api/v1/marketplace/packages")
            .bytes("application/octet-stream", package)
            .await
    }

    /// Run one SQL statement with text parameters (test setup and tampering).
    pub async fn sql(&self, statement: &str, params: &[&str]) {
        let mut q = sqlx::query(statement);
        for p in params {
            q = q.bind(*p);
        }
        q.execute(self.db().writer())
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Install `plugin` (any version) in `tenant` as its owner, granting `grants`
    /// (`"all"` or a list of capability keys); returns the answer unchecked.
    pub async fn install(&self, tenant: &TestTenant, plugin: &str, grants: Value) -> Reply {
        let body = serde_json::json!({ "plugin": plugin, "grants": grants });
        tenant.post("/api/v1/installations", body).await
    }

    /// A client sending `key` as its bearer token.
    pub fn client(&self, key: &str) -> Client {
        Client::new(&self.url, self.http.clone(), Some(key))
    }

    /// A client sending no credentials.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.url, self.http.clone(), None)
    }

    /// A client with a fresh operator token.
    pub async fn operator(&self) -> Client {
        self.client(&self.operator_token().await)
    }

    /// Stop the server gracefully; on PostgreSQL also drop its test database, so
    /// repeated runs do not fill the server with `plinth_test_*` databases.
    pub async fn stop(self) {
        self.server.shutdown().await.expect("clean shutdown");
        if self.owns_db {
            drop_test_database(&self.db_url).await;
        }
    }
}

/// A publisher registered for a test: its signing key and upload token.
pub struct TestPublisher {
    /// Publisher id.
    pub id: String,
    /// Signing key.
    pub key: plinth_core::package::SecretKey,
    /// Upload token.
    pub token: String,
}

impl TestPublisher {
    /// Sign a manifest and component into a package file.
    pub fn pack(&self, manifest: &str, component: &[u8]) -> Vec<u8> {
        plinth_core::package::Package::sign(manifest.as_bytes().to_vec(), component.to_vec(), &self.key)
            .expect("package signs")
            .encode()
    }

    /// Sign `guest` and upload it to `s`'s marketplace; the answer is unchecked.
    pub async fn publish(&self, s: &TestServer, guest: &Guest) -> Reply {
        s.publish(&self.token, self.pack(&guest.manifest_text(), guest.component()))
            .await
    }
}

/// The raw `plugin.toml` text and component of a test guest.
pub fn guest_files(name: &str) -> (String, Vec<u8>) {
    let (_, manifest, component) = GUESTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no test guest named {name}"));
    (manifest.to_string(), component.to_vec())
}

/// A user created for a test. Dereferences to the user's [`Client`]: `max.get(…)` runs
/// as that user.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// User id.
    pub id: String,
    /// API key.
    pub key: String,
    /// The user's client.
    pub api: Client,
}

impl std::ops::Deref for TestUser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.api
    }
}
