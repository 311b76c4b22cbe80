//! The database layer: connection pools, migrations and one repository per kind of
//! data. This is the only module that contains SQL.
//!
//! Both SQLite (the embedded default, one file with WAL) and PostgreSQL are reached
//! through sqlx's `Any` driver with `$n` placeholders, which both databases accept, so
//! every query is written once. Where the two dialects differ (JSON access, row locks)
//! the repository asks [`Dialect`]. Every tenant-owned query takes the tenant id as a
//! parameter and filters on it; no SQL is ever assembled from caller-provided text.

pub mod audit;
pub mod audit_policy;
pub mod audit_query;
mod documents;
pub mod event_delivery;
pub mod events;
pub mod files;
pub mod groups;
pub mod idempotency;
pub mod installations;
pub mod jobs;
pub mod locks;
pub mod marketplace;
pub mod notifications;
mod objects;
pub mod outbox;
pub mod records;
pub mod request_log;
pub mod rollups;
pub mod secrets;
mod settings;
pub mod shares;
pub(crate) mod sql;
pub mod tenancy;
pub mod time;
pub mod timers;
pub mod versions;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use documents::{BatchOp, DocFilter, DocOp, Document, DocumentPage, DocumentQuery, Documents, Scope};
pub use documents::{delete_in as delete_document_in, put_in as put_document_in};
pub use settings::Settings;
pub use tenancy::Tx;

/// Which SQL database is behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Errors from the store. Callers map them to API problems or WIT errors; the
/// `Database` variant's details are logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist (in this tenant).
    #[error("not found: {0}")]
    NotFound(String),
    /// Optimistic concurrency or uniqueness failure.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A size or count limit.
    #[error("limit: {0}")]
    Limit(String),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Stored data could not be decoded (a bug or corruption).
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

impl From<StoreError> for crate::problem::Problem {
    fn from(e: StoreError) -> Self {
        crate::problem::IntoProblem::into_problem(e)
    }
}

impl crate::problem::IntoProblem for StoreError {
    fn into_problem(self) -> crate::problem::Problem {
        use crate::problem::{Problem, ProblemKind};
        match self {
            StoreError::NotFound(m) => Problem::new(ProblemKind::NotFound, m),
            StoreError::Conflict(m) => Problem::new(ProblemKind::Conflict, m),
            StoreError::Invalid(m) => Problem::new(ProblemKind::BadRequest, m),
            StoreError::Limit(m) => Problem::new(ProblemKind::Limit, m),
            e @ (StoreError::Database(_) | StoreError::Corrupt(_)) => {
                Problem::new(ProblemKind::Internal, format!("{e:?}"))
            }
        }
    }
}

/// A handle on the database: pools plus dialect. Cheap to clone.
///
/// SQLite allows one writer at a time; rather than let concurrent writers collide and
/// retry on `SQLITE_BUSY`, writes go through a one-connection pool (so they queue in
/// the pool) while reads use several connections, which WAL lets run alongside the
/// writer. On PostgreSQL both handles are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    read: AnyPool,
    write: AnyPool,
    dialect: Dialect,
    sparse_shares: i64,
    plans: Arc<records::PlanCache>,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl Db {
    /// Connect to `url` (`sqlite:///path/plinth.db`, `sqlite:relative.db` or
    /// `postgres://…`) and run pending migrations.
    pub async fn connect(url: &str) -> StoreResult<Db> {
        sqlx::any::install_default_drivers();
        let db = if url.starts_with("sqlite:") {
            let options = AnyConnectOptions::from_str(&sqlite_url_with_create(url))?;
            let write = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(sqlite_pragmas)
                .connect_with(options.clone())
                .await?;
            let read = AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(sqlite_pragmas)
                .connect_with(options)
                .await?;
            Db {
                read,
                write,
                dialect: Dialect::Sqlite,
                sparse_shares: records::SPARSE_SHARES,
                plans: Arc::default(),
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = AnyPoolOptions::new()
                .max_connections(32)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(postgres_settings)
                .connect(url)
                .await?;
            Db {
                read: pool.clone(),
                write: pool,
                dialect: Dialect::Postgres,
                sparse_shares: records::SPARSE_SHARES,
                plans: Arc::default(),
            }
        } else {
            return Err(StoreError::Invalid(
                "the database URL must start with sqlite: or postgres://".into(),
            ));
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Open (creating if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> StoreResult<Db> {
        Db::connect(&format!("sqlite://{}", path.display())).await
    }

    async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATOR,
            Dialect::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator
            .run(&self.write)
            .await
            .map_err(|e| StoreError::Database(sqlx::Error::Migrate(Box::new(e))))?;
        // Groups written before migration 0015 get their hierarchy labels here.
        groups::label_unlabelled(&self.write).await
    }

    /// Set the share count below which record listings start from the viewer's
    /// shares rather than from the records index (default 5,000). Both plans give the
    /// same result; this only moves the point where one becomes cheaper.
    ///
    /// The returned handle starts with no remembered plans (see
    /// `records::PlanCache`), so it also measures the cost of choosing one.
    pub fn with_visibility_threshold(mut self, shares: i64) -> Db {
        self.sparse_shares = shares;
        self.plans = Arc::default();
        self
    }

    /// The SQL dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Pool for reads that need not see the caller's own in-flight transaction.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Pool for writes (and reads that must be consistent with them).
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Plugin document storage of one plugin in one tenant.
    pub fn documents<'a>(&'a self, tenant: &'a str, plugin: &'a str) -> Documents<'a> {
        Documents::new(self, Scope { tenant, plugin })
    }

    /// Settings of one plugin in one tenant.
    pub fn settings<'a>(&'a self, tenant: &'a str, plugin: &'a str) -> Settings<'a> {
        Settings::new(self, Scope { tenant, plugin })
    }

    /// Check the database answers (for readiness probes).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Close all connections (at shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

type ConnectFuture<'c> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// The page cache of each SQLite connection, as `PRAGMA cache_size` (negative: KiB).
pub(crate) const SQLITE_CACHE_SIZE: i64 = -65536;

/// Per-connection SQLite settings: WAL (readers never block the writer), foreign keys,
/// a busy timeout for the rare read that meets a checkpoint, and a 64 MiB page cache
/// per connection (SQLite's default is 2 MiB; large group moves run 1.3–2× faster with
/// it, see docs/benchmarks/groups.md; file content bypasses it, see `files::SmallCache`),
/// and a 64 MiB WAL before an automatic checkpoint (the default 4 MiB checkpointed
/// every four chunks of a file upload: 143 → 177 MB/s). Pages are allocated only as used.
fn sqlite_pragmas(conn: &mut sqlx::AnyConnection, _meta: sqlx::pool::PoolConnectionMetadata) -> ConnectFuture<'_> {
    Box::pin(async move {
        let pragmas = format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 10000; PRAGMA cache_size = {SQLITE_CACHE_SIZE}; PRAGMA wal_autocheckpoint = 16384;"
        );
        conn.execute(pragmas.as_str()).await?;
        Ok(())
    })
}

/// Per PostgreSQL session: JIT compilation only for plans estimated 10× costlier than
/// PostgreSQL's default threshold. The planner cannot estimate how many groups lie
/// within an interval and overestimates small visibility joins; a member's sorted
/// page of 160 accounts was planned at cost ~120k, above the default 100k, and spent
/// 20 ms compiling for 8 ms of execution (docs/benchmarks/records.md). Whole-table
/// aggregates, which JIT is for, cost millions.
fn postgres_settings(conn: &mut sqlx::AnyConnection, _meta: sqlx::pool::PoolConnectionMetadata) -> ConnectFuture<'_> {
    Box::pin(async move {
        conn.execute("SET jit_above_cost = 1000000").await?;
        Ok(())
    })
}

/// sqlx opens SQLite read-only unless asked to create: add `mode=rwc` when no mode is given.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Whether a sqlx error is a unique-constraint violation (a duplicate key).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation),
        _ => false,
    }
}
