//! The two migration sets, `migrations/sqlite` and `migrations/postgres`, must build the
//! same schema: the host runs the same queries on both, so a column, index or constraint
//! that exists on one database only is a bug that shows up on that database only.
//!
//! Checked on every run (SQLite only, no server needed):
//! - both folders hold the same numbered migrations (same version, same name), sqlx
//!   can parse them, and the SQLite set applies to a fresh file;
//! - every column type of the SQLite schema is in the type table below;
//! - every table has a primary key, and every table that holds tenant data has a
//!   `tenant_id` column, NOT NULL or in the primary key, except the tables listed (each
//!   with its reason).
//!
//! With `PLINTH_TEST_DATABASE_URL` (an admin URL to a PostgreSQL server) also: both sets
//! are applied, to a fresh SQLite file and a fresh PostgreSQL database, and the two
//! schemas are read back from the catalogs and compared:
//! - tables, and per table its primary key (columns in order) and unique constraints;
//! - columns: type family (see the two type tables), nullability, default;
//! - indexes created by `CREATE INDEX`, by name: table, key columns in order (with
//!   DESC), unique or not, partial predicate. Indexes the databases create for primary
//!   keys and unique constraints (`sqlite_autoindex_*`, `*_pkey`, `*_key`) are compared
//!   through the constraints instead, on both sides.
//!
//! `_sqlx_migrations` is ignored. Differences that are intended are listed in
//! [`ALLOWED_DIFFERENCES`] with their reason; any other fails the test with a report of
//! every difference found, and so does an allowance that no longer matches anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, PgConnection, Row as _, SqliteConnection};

// --- What is expected ------------------------------------------------------------------

/// SQLite column types, as declared in the migrations (compared upper-cased), and their
/// family. SQLite stores every integer in up to 8 bytes whatever the declared name, so
/// `INTEGER` and `BIGINT` are both the 64-bit family. A type missing here fails the test.
const SQLITE_TYPES: &[(&str, &str)] = &[
    ("TEXT", "text"),
    ("INTEGER", "integer"),
    ("BIGINT", "integer"),
    ("REAL", "real"),
    ("BLOB", "blob"),
];

/// PostgreSQL column types (`information_schema.columns.data_type`) and their family.
/// `integer` is 4 bytes: narrower than an SQLite INTEGER, so it is a family of its own
/// (the project's PostgreSQL twin of INTEGER is BIGINT). A type missing here fails.
const POSTGRES_TYPES: &[(&str, &str)] = &[
    ("text", "text"),
    ("bigint", "integer"),
    ("integer", "integer32"),
    ("double precision", "real"),
    ("bytea", "blob"),
    ("jsonb", "json"),
];

/// A difference between the two schemas that is intended. `subject` is a table, a
/// `table.column`, an index name, or `*` for any; `sqlite`/`postgres` are the values the
/// report shows for each side. Every entry must match a difference found.
struct Allowed {
    subject: &'static str,
    aspect: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    reason: &'static str,
}

const ALLOWED_DIFFERENCES: &[Allowed] = &[
    Allowed {
        subject: "records.data",
        aspect: "type",
        sqlite: "text",
        postgres: "json",
        reason: "postgres 0011 makes record data jsonb, parsed once on write; SQLite has no JSON column \
                 type and keeps the JSON text its json_* functions read (sqlite 0011 says why it is a no-op). \
                 The host reads the column as CAST(data AS TEXT) on both.",
    },
    Allowed {
        subject: "*",
        aspect: "primary-key column nullability",
        sqlite: "nullable",
        postgres: "not null",
        reason: "a single-column `TEXT PRIMARY KEY` without NOT NULL in an SQLite rowid table accepts NULL \
                 (an SQLite quirk kept for compatibility); PostgreSQL makes every key column NOT NULL. \
                 The host always writes the ids; fixing it on SQLite means rebuilding each table.",
    },
];

/// Migrations that may exist in one folder only, with the reason. Empty: each SQLite
/// migration has its PostgreSQL twin and the other way round (sqlite 0011 is a
/// documented no-op twin of postgres 0011).
const UNPAIRED_MIGRATIONS: &[(i64, &str)] = &[];

/// Tables without a primary key, and why.
const TABLES_WITHOUT_PRIMARY_KEY: &[(&str, &str)] = &[(
    "request_log",
    "rows are only scanned by (tenant, time) and purged by time (see 0004_versioning.sql)",
)];

/// Tables that hold no tenant's data, so have no `tenant_id`, and why. Every other table
/// must have a `tenant_id` that is NOT NULL or in its primary key; these must not have one
/// (so the list stays true).
const GLOBAL_TABLES: &[(&str, &str)] = &[
    ("tenants", "the tenants themselves, keyed by id"),
    ("operator_tokens", "credentials of the host operator, above all tenants"),
    (
        "api_versions",
        "operator overrides of the host-wide API version lifecycle",
    ),
    ("publishers", "marketplace publishers serve every tenant"),
    ("publisher_keys", "signing keys of marketplace publishers"),
    ("publisher_tokens", "upload credentials of marketplace publishers"),
    ("packages", "published plugin packages, installable by any tenant"),
];

// --- The tests ---------------------------------------------------------------------------

#[tokio::test]
async fn migration_sets_pair_up_and_the_sqlite_schema_keeps_its_invariants() {
    let mut problems = migration_pairing_problems().await;

    let dir = tempfile::tempdir().expect("temp dir");
    match sqlite_schema(&dir.path().join("schema.db")).await {
        Ok(schema) => {
            problems.extend(reader_problems("sqlite", &schema));
            problems.extend(invariant_problems("sqlite", &schema));
        }
        Err(e) => problems.push(e),
    }

    if std::env::var_os("PLINTH_TEST_DATABASE_URL").is_none() {
        eprintln!(
            "note: comparing the SQLite and PostgreSQL schemas needs PLINTH_TEST_DATABASE_URL \
             (an admin URL to a PostgreSQL server); only the SQLite-side checks ran"
        );
    }
    assert!(
        problems.is_empty(),
        "migration checks failed:\n- {}",
        problems.join("\n- ")
    );
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let Ok(admin_url) = std::env::var("PLINTH_TEST_DATABASE_URL") else {
        eprintln!("skipped: the schema comparison needs PostgreSQL (PLINTH_TEST_DATABASE_URL)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = sqlite_schema(&dir.path().join("schema.db"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let postgres = postgres_schema(&admin_url).await.unwrap_or_else(|e| panic!("{e}"));

    let mut problems = reader_problems("sqlite", &sqlite);
    problems.extend(reader_problems("postgres", &postgres));
    problems.extend(invariant_problems("postgres", &postgres));
    let differences = compare(&sqlite, &postgres);
    let mut allowed: Vec<Vec<&Difference>> = vec![Vec::new(); ALLOWED_DIFFERENCES.len()];
    let mut unexpected = Vec::new();
    for d in &differences {
        match ALLOWED_DIFFERENCES.iter().position(|a| a.allows(d)) {
            Some(i) => allowed[i].push(d),
            None => unexpected.push(d),
        }
    }
    for (a, found) in ALLOWED_DIFFERENCES
        .iter()
        .zip(&allowed)
        .filter(|(_, found)| !found.is_empty())
    {
        eprintln!("allowed difference ({}):", a.reason);
        for d in found {
            eprintln!("    {d}");
        }
    }
    if !unexpected.is_empty() {
        let mut report = format!(
            "{} difference(s) between the SQLite and PostgreSQL schemas (fix a migration set, or \
             add an entry with its reason to ALLOWED_DIFFERENCES):",
            unexpected.len()
        );
        for d in unexpected {
            write!(report, "\n    {d}").expect("write to String");
        }
        problems.push(report);
    }
    for (a, _) in ALLOWED_DIFFERENCES
        .iter()
        .zip(&allowed)
        .filter(|(_, found)| found.is_empty())
    {
        problems.push(format!(
            "ALLOWED_DIFFERENCES entry matches nothing any more, remove it: {} {} (sqlite: {}, postgres: {})",
            a.subject, a.aspect, a.sqlite, a.postgres
        ));
    }
    assert!(
        problems.is_empty(),
        "schema comparison failed:\n- {}",
        problems.join("\n- ")
    );
}

// --- Migration files -----------------------------------------------------------------------

fn migrations_dir(dialect: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect)
}

async fn migrator(dialect: &str) -> Result<Migrator, String> {
    let dir = migrations_dir(dialect);
    Migrator::new(dir.clone())
        .await
        .map_err(|e| format!("sqlx cannot read the migrations in {}: {e}", dir.display()))
}

/// Versions and names of both folders, each version in both unless listed in
/// [`UNPAIRED_MIGRATIONS`].
async fn migration_pairing_problems() -> Vec<String> {
    let (sqlite, postgres) = match (migrator("sqlite").await, migrator("postgres").await) {
        (Ok(s), Ok(p)) => (s, p),
        (s, p) => return [s.err(), p.err()].into_iter().flatten().collect(),
    };
    let list =
        |m: &Migrator| -> BTreeMap<i64, String> { m.iter().map(|m| (m.version, m.description.to_string())).collect() };
    let (sqlite, postgres) = (list(&sqlite), list(&postgres));
    let mut problems = Vec::new();
    for version in sqlite.keys().chain(postgres.keys()).collect::<BTreeSet<_>>() {
        let unpaired = UNPAIRED_MIGRATIONS.iter().any(|(v, _)| v == version);
        match (sqlite.get(version), postgres.get(version)) {
            (Some(s), Some(p)) if s != p => problems.push(format!(
                "migration {version:04} is named {s:?} in migrations/sqlite but {p:?} in migrations/postgres"
            )),
            (Some(_), Some(_)) if unpaired => problems.push(format!(
                "migration {version:04} is in both folders: remove it from UNPAIRED_MIGRATIONS"
            )),
            (Some(_), Some(_)) => {}
            (Some(name), None) | (None, Some(name)) if !unpaired => {
                let (has, lacks) = if sqlite.contains_key(version) {
                    ("sqlite", "postgres")
                } else {
                    ("postgres", "sqlite")
                };
                problems.push(format!(
                    "migration {version:04}_{} is in migrations/{has} but not in migrations/{lacks} \
                     (add its twin, a commented no-op if {lacks} needs no change)",
                    name.replace(' ', "_")
                ));
            }
            _ => {}
        }
    }
    problems
}

// --- Schema model ------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
    /// Indexes made by `CREATE INDEX`, by name.
    indexes: BTreeMap<String, Index>,
}

#[derive(Debug, Default)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    /// Columns of each UNIQUE constraint (not unique indexes: those are in `indexes`).
    unique: BTreeSet<Vec<String>>,
}

#[derive(Debug)]
struct Column {
    family: &'static str,
    declared: String,
    not_null: bool,
    default: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
struct Index {
    table: String,
    columns: Vec<String>,
    unique: bool,
    predicate: Option<String>,
}

impl std::fmt::Display for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unique = if self.unique { "unique " } else { "" };
        write!(f, "{unique}on {} ({})", self.table, self.columns.join(", "))?;
        if let Some(p) = &self.predicate {
            write!(f, " where {p}")?;
        }
        Ok(())
    }
}

fn family(dialect: &str, types: &[(&str, &'static str)], declared: &str, at: &str) -> Result<&'static str, String> {
    let key = if dialect == "sqlite" {
        declared.to_uppercase()
    } else {
        declared.to_string()
    };
    types.iter().find(|(t, _)| *t == key).map(|(_, f)| *f).ok_or_else(|| {
        format!(
            "{dialect} column {at} has type {declared:?}, which the type table of migrations_schema.rs \
             does not know: add it to {} with its family",
            if dialect == "sqlite" {
                "SQLITE_TYPES"
            } else {
                "POSTGRES_TYPES"
            }
        )
    })
}

/// A column default or index predicate as compared: casts (`::text`), parentheses, case
/// and runs of blanks removed, since PostgreSQL adds the first two when it prints.
fn normalise_sql(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(i) = rest.find("::") {
        out.push_str(&rest[..i]);
        rest = &rest[i + 2..];
        let spaced = [
            "double precision",
            "character varying",
            "timestamp with time zone",
            "timestamp without time zone",
        ];
        match spaced.iter().find(|t| rest.starts_with(*t)) {
            Some(t) => rest = &rest[t.len()..],
            None => rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '"'),
        }
    }
    out.push_str(rest);
    out.replace(['(', ')'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

// --- Reading SQLite ----------------------------------------------------------------------

/// Apply `migrations/sqlite` to a new database file at `path` and read its schema.
async fn sqlite_schema(path: &Path) -> Result<Schema, String> {
    let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| format!("open SQLite: {e}"))?;
    migrator("sqlite")
        .await?
        .run(&mut conn)
        .await
        .map_err(|e| format!("applying migrations/sqlite to a fresh database failed: {e}"))?;
    let schema = read_sqlite(&mut conn)
        .await
        .map_err(|e| format!("reading the SQLite schema: {e}"))?;
    conn.close().await.map_err(|e| e.to_string())?;
    schema
}

async fn read_sqlite(conn: &mut SqliteConnection) -> Result<Result<Schema, String>, sqlx::Error> {
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in tables {
        let mut table = Table::default();
        let mut key = Vec::new();
        let rows =
            sqlx::query(r#"SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid"#)
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
        for row in rows {
            let column: String = row.try_get("name")?;
            let declared: String = row.try_get("type")?;
            let family = match family("sqlite", SQLITE_TYPES, &declared, &format!("{name}.{column}")) {
                Ok(f) => f,
                Err(e) => return Ok(Err(e)),
            };
            let pk: i64 = row.try_get("pk")?;
            if pk > 0 {
                key.push((pk, column.clone()));
            }
            let not_null: i64 = row.try_get("notnull")?;
            let default: Option<String> = row.try_get("dflt_value")?;
            table.columns.insert(
                column,
                Column {
                    family,
                    declared,
                    not_null: not_null != 0,
                    default: default.as_deref().map(normalise_sql),
                },
            );
        }
        key.sort();
        table.primary_key = key.into_iter().map(|(_, c)| c).collect();

        let indexes = sqlx::query(r#"SELECT name, "unique", origin, partial FROM pragma_index_list(?1)"#)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?;
        for row in indexes {
            let index: String = row.try_get("name")?;
            let origin: String = row.try_get("origin")?;
            let unique: i64 = row.try_get("unique")?;
            let partial: i64 = row.try_get("partial")?;
            let mut columns = Vec::new();
            let keys =
                sqlx::query(r#"SELECT cid, name, "desc" FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno"#)
                    .bind(&index)
                    .fetch_all(&mut *conn)
                    .await?;
            for k in keys {
                let cid: i64 = k.try_get("cid")?;
                let column: Option<String> = k.try_get("name")?;
                let desc: i64 = k.try_get("desc")?;
                let Some(column) = column.filter(|_| cid >= 0) else {
                    return Ok(Err(format!(
                        "SQLite index {index} has an expression key: migrations_schema.rs cannot compare it yet"
                    )));
                };
                columns.push(if desc != 0 { format!("{column} DESC") } else { column });
            }
            match origin.as_str() {
                "pk" => {}
                "u" => {
                    table.unique.insert(columns);
                }
                _ => {
                    let predicate = if partial != 0 {
                        let sql: String =
                            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1")
                                .bind(&index)
                                .fetch_one(&mut *conn)
                                .await?;
                        let lower = sql.to_lowercase();
                        let Some(at) = lower.rfind(" where ").or_else(|| lower.rfind(")where ")) else {
                            return Ok(Err(format!("SQLite partial index {index} has no WHERE in {sql:?}")));
                        };
                        Some(normalise_sql(&sql[at + 7..]))
                    } else {
                        None
                    };
                    schema.indexes.insert(
                        index,
                        Index {
                            table: name.clone(),
                            columns,
                            unique: unique != 0,
                            predicate,
                        },
                    );
                }
            }
        }
        schema.tables.insert(name, table);
    }
    Ok(Ok(schema))
}

// --- Reading PostgreSQL ------------------------------------------------------------------

/// Apply `migrations/postgres` to a new database (`plinth_test_<ulid>`) on the server of
/// `admin_url`, read its schema, and drop the database.
async fn postgres_schema(admin_url: &str) -> Result<Schema, String> {
    let name = format!("plinth_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .map_err(|e| format!("connect to PostgreSQL ({admin_url}): {e}"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("create database {name}: {e}"))?;
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    let url = format!("{base}/{name}");
    let result = async {
        let mut conn = PgConnection::connect(&url)
            .await
            .map_err(|e| format!("connect to {url}: {e}"))?;
        migrator("postgres")
            .await?
            .run(&mut conn)
            .await
            .map_err(|e| format!("applying migrations/postgres to a fresh database failed: {e}"))?;
        let schema = read_postgres(&mut conn)
            .await
            .map_err(|e| format!("reading the PostgreSQL schema: {e}"))?;
        let _ = conn.close().await;
        schema
    }
    .await;
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    let schema = result?;
    dropped.map_err(|e| format!("drop database {name}: {e}"))?;
    Ok(schema)
}

async fn read_postgres(conn: &mut PgConnection) -> Result<Result<Schema, String>, sqlx::Error> {
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in tables {
        schema.tables.insert(name, Table::default());
    }

    let columns = sqlx::query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, data_type::text AS data_type, \
                is_nullable::text AS is_nullable, column_default::text AS column_default \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in columns {
        let table: String = row.try_get("table_name")?;
        let column: String = row.try_get("column_name")?;
        let declared: String = row.try_get("data_type")?;
        let Some(t) = schema.tables.get_mut(&table) else {
            continue;
        };
        let family = match family("postgres", POSTGRES_TYPES, &declared, &format!("{table}.{column}")) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let nullable: String = row.try_get("is_nullable")?;
        let default: Option<String> = row.try_get("column_default")?;
        t.columns.insert(
            column,
            Column {
                family,
                declared,
                not_null: nullable == "NO",
                default: default.as_deref().map(normalise_sql),
            },
        );
    }

    let keys = sqlx::query(
        "SELECT tc.table_name::text AS table_name, tc.constraint_name::text AS constraint_name, \
                tc.constraint_type::text AS constraint_type, kcu.column_name::text AS column_name \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage kcu \
           ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name \
          AND kcu.table_name = tc.table_name \
         WHERE tc.table_schema = 'public' AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE') \
         ORDER BY tc.table_name, tc.constraint_name, kcu.ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut constraints: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for row in keys {
        constraints
            .entry((
                row.try_get("table_name")?,
                row.try_get("constraint_name")?,
                row.try_get("constraint_type")?,
            ))
            .or_default()
            .push(row.try_get("column_name")?);
    }
    for ((table, _, kind), columns) in constraints {
        let Some(t) = schema.tables.get_mut(&table) else {
            continue;
        };
        if kind == "PRIMARY KEY" {
            t.primary_key = columns;
        } else {
            t.unique.insert(columns);
        }
    }

    // Indexes not owned by a primary-key, unique or exclusion constraint of their table.
    let indexes = sqlx::query(
        "SELECT ic.relname::text AS index_name, tc.relname::text AS table_name, am.amname::text AS method, \
                i.indisunique AS is_unique, pg_get_expr(i.indpred, i.indrelid, true) AS predicate, \
                i.indnatts::int4 AS natts, i.indnkeyatts::int4 AS nkeyatts, \
                ARRAY(SELECT i.indkey[k - 1]::int4 FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k) AS attnums, \
                ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) AS k \
                      ORDER BY k) AS keys, \
                ARRAY(SELECT (i.indoption[k - 1]::int4 & 1) <> 0 FROM generate_series(1, i.indnkeyatts) AS k \
                      ORDER BY k) AS descs \
         FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_class tc ON tc.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = tc.relnamespace \
         JOIN pg_am am ON am.oid = ic.relam \
         WHERE n.nspname = 'public' AND tc.relname <> '_sqlx_migrations' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid \
                           AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in indexes {
        let index: String = row.try_get("index_name")?;
        let method: String = row.try_get("method")?;
        let natts: i32 = row.try_get("natts")?;
        let nkeyatts: i32 = row.try_get("nkeyatts")?;
        let attnums: Vec<i32> = row.try_get("attnums")?;
        if method != "btree" || natts != nkeyatts || attnums.contains(&0) {
            return Ok(Err(format!(
                "PostgreSQL index {index} is not a plain btree on columns (method {method}, INCLUDE columns or \
                 an expression): migrations_schema.rs cannot compare it yet"
            )));
        }
        let keys: Vec<String> = row.try_get("keys")?;
        let descs: Vec<bool> = row.try_get("descs")?;
        let columns = keys
            .into_iter()
            .zip(descs)
            .map(|(k, desc)| if desc { format!("{k} DESC") } else { k })
            .collect();
        let predicate: Option<String> = row.try_get("predicate")?;
        schema.indexes.insert(
            index,
            Index {
                table: row.try_get("table_name")?,
                columns,
                unique: row.try_get("is_unique")?,
                predicate: predicate.as_deref().map(normalise_sql),
            },
        );
    }
    Ok(Ok(schema))
}

// --- Checks ------------------------------------------------------------------------------

/// Primary keys and `tenant_id` columns (see [`TABLES_WITHOUT_PRIMARY_KEY`],
/// [`GLOBAL_TABLES`]).
fn invariant_problems(dialect: &str, schema: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, table) in &schema.tables {
        let keyless = TABLES_WITHOUT_PRIMARY_KEY.iter().any(|(t, _)| t == name);
        match (table.primary_key.is_empty(), keyless) {
            (true, false) => problems.push(format!(
                "{dialect}: table {name} has no primary key (add one, or list it with its reason in \
                 TABLES_WITHOUT_PRIMARY_KEY)"
            )),
            (false, true) => problems.push(format!(
                "{dialect}: table {name} has a primary key: remove it from TABLES_WITHOUT_PRIMARY_KEY"
            )),
            _ => {}
        }
        let global = GLOBAL_TABLES.iter().any(|(t, _)| t == name);
        match (table.columns.get("tenant_id"), global) {
            (None, false) => problems.push(format!(
                "{dialect}: table {name} has no tenant_id column (every table of tenant data needs one; a \
                 table above tenants goes in GLOBAL_TABLES with its reason)"
            )),
            // A key column counts as NOT NULL: PostgreSQL makes it so, and SQLite's
            // nullable `TEXT PRIMARY KEY` is the quirk allowed in ALLOWED_DIFFERENCES.
            (Some(c), false) if !c.not_null && !table.primary_key.iter().any(|k| k == "tenant_id") => {
                problems.push(format!("{dialect}: {name}.tenant_id is nullable: it must be NOT NULL"))
            }
            (Some(_), true) => problems.push(format!(
                "{dialect}: table {name} has a tenant_id column but is listed in GLOBAL_TABLES"
            )),
            _ => {}
        }
    }
    for (name, _) in TABLES_WITHOUT_PRIMARY_KEY.iter().chain(GLOBAL_TABLES) {
        if !schema.tables.contains_key(*name) {
            problems.push(format!(
                "{dialect}: listed table {name} does not exist any more: remove it from the list"
            ));
        }
    }
    problems
}

/// A reader whose catalog query silently returns nothing would make both schemas agree
/// trivially. The migrations hold at least one of each of these today (the example in
/// parentheses), so a schema without one was misread.
fn reader_problems(dialect: &str, schema: &Schema) -> Vec<String> {
    let tables = || schema.tables.values();
    let indexes = || schema.indexes.values();
    let seen = [
        ("tables", !schema.tables.is_empty(), "records"),
        ("CREATE INDEX indexes", !schema.indexes.is_empty(), "records_by_owner"),
        ("unique indexes", indexes().any(|i| i.unique), "events_by_id"),
        (
            "partial indexes",
            indexes().any(|i| i.predicate.is_some()),
            "audit_by_plugin",
        ),
        (
            "multi-column primary keys",
            tables().any(|t| t.primary_key.len() > 1),
            "records",
        ),
        (
            "unique constraints",
            tables().any(|t| !t.unique.is_empty()),
            "users (tenant_id, email)",
        ),
        (
            "column defaults",
            tables().flat_map(|t| t.columns.values()).any(|c| c.default.is_some()),
            "tenants.status",
        ),
    ];
    seen.iter()
        .filter(|(_, found, _)| !found)
        .map(|(what, _, example)| {
            format!(
                "{dialect}: the schema reader found no {what} (the migrations have some, e.g. {example}): it is broken"
            )
        })
        .collect()
}

/// One way the two schemas differ. `sqlite`/`postgres` are the compared values (what an
/// [`Allowed`] entry matches); `note` only helps the reader.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Difference {
    subject: String,
    aspect: &'static str,
    sqlite: String,
    postgres: String,
    note: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} — sqlite: {}; postgres: {}",
            self.subject, self.aspect, self.sqlite, self.postgres
        )?;
        if !self.note.is_empty() {
            write!(f, " ({})", self.note)?;
        }
        Ok(())
    }
}

impl Allowed {
    fn allows(&self, d: &Difference) -> bool {
        (self.subject == "*" || self.subject == d.subject)
            && self.aspect == d.aspect
            && self.sqlite == d.sqlite
            && self.postgres == d.postgres
    }
}

fn present(b: bool) -> String {
    if b { "present" } else { "absent" }.to_string()
}

fn compare(sqlite: &Schema, postgres: &Schema) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut diff = |subject: String, aspect: &'static str, sqlite: String, postgres: String, note: String| {
        out.push(Difference {
            subject,
            aspect,
            sqlite,
            postgres,
            note,
        });
    };
    let names: BTreeSet<&String> = sqlite.tables.keys().chain(postgres.tables.keys()).collect();
    for name in names {
        let (Some(s), Some(p)) = (sqlite.tables.get(name), postgres.tables.get(name)) else {
            let on_sqlite = sqlite.tables.contains_key(name);
            diff(
                name.clone(),
                "table",
                present(on_sqlite),
                present(!on_sqlite),
                String::new(),
            );
            continue;
        };
        let columns: BTreeSet<&String> = s.columns.keys().chain(p.columns.keys()).collect();
        for column in columns {
            let subject = format!("{name}.{column}");
            let (Some(sc), Some(pc)) = (s.columns.get(column), p.columns.get(column)) else {
                let on_sqlite = s.columns.contains_key(column);
                diff(
                    subject,
                    "column",
                    present(on_sqlite),
                    present(!on_sqlite),
                    String::new(),
                );
                continue;
            };
            if sc.family != pc.family {
                let note = format!("declared {} / {}", sc.declared, pc.declared);
                diff(subject.clone(), "type", sc.family.into(), pc.family.into(), note);
            }
            if sc.not_null != pc.not_null {
                let in_both_keys = s.primary_key.contains(column) && p.primary_key.contains(column);
                let aspect = if in_both_keys {
                    "primary-key column nullability"
                } else {
                    "nullability"
                };
                let show = |not_null: bool| if not_null { "not null" } else { "nullable" }.to_string();
                diff(
                    subject.clone(),
                    aspect,
                    show(sc.not_null),
                    show(pc.not_null),
                    String::new(),
                );
            }
            if sc.default != pc.default {
                let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "no default".into());
                diff(subject, "default", show(&sc.default), show(&pc.default), String::new());
            }
        }
        if s.primary_key != p.primary_key {
            let show = |k: &Vec<String>| {
                if k.is_empty() {
                    "none".into()
                } else {
                    format!("({})", k.join(", "))
                }
            };
            diff(
                name.clone(),
                "primary key",
                show(&s.primary_key),
                show(&p.primary_key),
                String::new(),
            );
        }
        for unique in s.unique.symmetric_difference(&p.unique) {
            let on_sqlite = s.unique.contains(unique);
            let subject = format!("{name} ({})", unique.join(", "));
            diff(
                subject,
                "unique constraint",
                present(on_sqlite),
                present(!on_sqlite),
                String::new(),
            );
        }
    }
    let names: BTreeSet<&String> = sqlite.indexes.keys().chain(postgres.indexes.keys()).collect();
    for name in names {
        let show = |i: Option<&Index>| i.map_or_else(|| "absent".into(), ToString::to_string);
        let (s, p) = (sqlite.indexes.get(name), postgres.indexes.get(name));
        if s != p {
            diff(name.clone(), "index", show(s), show(p), String::new());
        }
    }
    out.sort();
    out
}
