//! Plugin document storage: JSON documents per (tenant, plugin, collection, key) with
//! versions for optimistic concurrency. Backs the WIT `storage` interface.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::Row;

use super::{Db, Dialect, StoreError, StoreResult, is_unique_violation, time};

/// Largest document value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Most operations in one batch.
pub const MAX_BATCH_OPS: usize = 1000;
/// Largest page of a listing.
pub const MAX_PAGE: u32 = 1000;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 100;
/// Most filters in one listing.
pub const MAX_FILTERS: usize = 16;

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Document {
    /// Collection name.
    pub collection: String,
    /// Key within the collection.
    pub key: String,
    /// JSON text.
    pub value: String,
    /// Version, from 1.
    pub version: u64,
}

/// Comparison for a [`DocFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

/// A condition on one top-level field of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocFilter {
    /// Field name (`[A-Za-z_][A-Za-z0-9_]*`).
    pub field: String,
    /// Comparison.
    pub op: DocOp,
    /// JSON scalar text.
    pub value: String,
}

/// A listing request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentQuery {
    /// Key prefix.
    pub prefix: Option<String>,
    /// Conditions, all of which must hold.
    pub filters: Vec<DocFilter>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size; 0 = default.
    pub limit: u32,
}

/// One page of documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentPage {
    /// The documents, in key order.
    pub documents: Vec<Document>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// `put(collection, key, value, expected_version)`.
    Put {
        collection: String,
        key: String,
        value: String,
        expected: Option<u64>,
    },
    /// `delete(collection, key, expected_version)`.
    Delete {
        collection: String,
        key: String,
        expected: Option<u64>,
    },
}

/// Repository for plugin documents, always scoped by tenant and plugin.
#[derive(Debug, Clone, Copy)]
pub struct Documents<'a> {
    db: &'a Db,
    scope: Scope<'a>,
}

/// Owner of a document space: every method takes one, so no query can forget it.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Plugin id.
    pub plugin: &'a str,
}

impl<'a> Documents<'a> {
    pub(super) fn new(db: &'a Db, scope: Scope<'a>) -> Self {
        Documents { db, scope }
    }

    /// Read one document.
    pub async fn get(&self, collection: &str, key: &str) -> StoreResult<Option<Document>> {
        check_name("collection", collection)?;
        check_name("key", key)?;
        let row = sqlx::query(
            "SELECT value, version FROM plugin_documents \
             WHERE tenant_id = $1 AND plugin_id = $2 AND collection = $3 AND doc_key = $4",
        )
        .bind(self.scope.tenant)
        .bind(self.scope.plugin)
        .bind(collection)
        .bind(key)
        .fetch_optional(self.db.reader())
        .await?;
        row.map(|r| {
            Ok(Document {
                collection: collection.to_string(),
                key: key.to_string(),
                value: r.try_get("value")?,
                version: version_of(&r)?,
            })
        })
        .transpose()
    }

    /// Write one document; see the WIT `storage.put` for `expected`.
    pub async fn put(&self, collection: &str, key: &str, value: &str, expected: Option<u64>) -> StoreResult<u64> {
        let mut tx = self.db.writer().begin().await?;
        let version = put_in(&mut tx, self.scope, collection, key, value, expected).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Delete one document; `true` if it existed.
    pub async fn delete(&self, collection: &str, key: &str, expected: Option<u64>) -> StoreResult<bool> {
        let mut tx = self.db.writer().begin().await?;
        let existed = delete_in(&mut tx, self.scope, collection, key, expected).await?;
        tx.commit().await?;
        Ok(existed)
    }

    /// Apply several writes in one transaction.
    pub async fn batch(&self, ops: &[BatchOp]) -> StoreResult<Vec<u64>> {
        if ops.len() > MAX_BATCH_OPS {
            return Err(StoreError::Limit(format!(
                "a batch may hold at most {MAX_BATCH_OPS} operations"
            )));
        }
        let scope = self.scope;
        let mut tx = self.db.writer().begin().await?;
        let mut versions = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let result = match op {
                BatchOp::Put {
                    collection,
                    key,
                    value,
                    expected,
                } => put_in(&mut tx, scope, collection, key, value, *expected).await,
                BatchOp::Delete {
                    collection,
                    key,
                    expected,
                } => delete_in(&mut tx, scope, collection, key, *expected).await.map(|_| 0),
            };
            versions.push(result.map_err(|e| prefix_error(e, i))?);
        }
        tx.commit().await?;
        Ok(versions)
    }

    /// List a collection in key order.
    pub async fn list(&self, collection: &str, query: &DocumentQuery) -> StoreResult<DocumentPage> {
        check_name("collection", collection)?;
        let limit = match query.limit {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(StoreError::Invalid(format!("limit must be between 1 and {MAX_PAGE}")));
            }
            n => n,
        };
        if query.filters.len() > MAX_FILTERS {
            return Err(StoreError::Invalid(format!("at most {MAX_FILTERS} filters")));
        }
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;

        let mut sql = String::from(
            "SELECT doc_key, value, version FROM plugin_documents \
             WHERE tenant_id = $1 AND plugin_id = $2 AND collection = $3",
        );
        // Parameters are appended in order; the SQL text only ever contains fixed
        // fragments and parameter numbers.
        let mut params: Vec<Param> = vec![
            Param::Text(self.scope.tenant.into()),
            Param::Text(self.scope.plugin.into()),
            Param::Text(collection.into()),
        ];
        if let Some(after) = after {
            params.push(Param::Text(after));
            sql.push_str(&format!(" AND doc_key > ${}", params.len()));
        }
        if let Some(prefix) = &query.prefix {
            check_name("prefix", prefix)?;
            // Range scan on the primary key instead of LIKE (no escaping, uses the index).
            params.push(Param::Text(prefix.clone()));
            sql.push_str(&format!(" AND doc_key >= ${}", params.len()));
            params.push(Param::Text(prefix_upper_bound(prefix)));
            sql.push_str(&format!(" AND doc_key < ${}", params.len()));
        }
        for filter in &query.filters {
            push_filter(self.db.dialect(), filter, &mut sql, &mut params)?;
        }
        params.push(Param::Int(i64::from(limit) + 1));
        sql.push_str(&format!(" ORDER BY doc_key LIMIT ${}", params.len()));

        let mut q = sqlx::query(&sql);
        for p in params {
            q = match p {
                Param::Text(s) => q.bind(s),
                Param::Int(i) => q.bind(i),
                Param::Float(f) => q.bind(f),
            };
        }
        let rows = q.fetch_all(self.db.reader()).await?;
        let mut documents = Vec::with_capacity(rows.len());
        for r in rows.iter().take(limit as usize) {
            documents.push(Document {
                collection: collection.to_string(),
                key: r.try_get("doc_key")?,
                value: r.try_get("value")?,
                version: version_of(r)?,
            });
        }
        let next_cursor = if rows.len() > limit as usize {
            documents.last().map(|d| encode_cursor(&d.key))
        } else {
            None
        };
        Ok(DocumentPage { documents, next_cursor })
    }

    /// Delete everything a plugin stored for a tenant (uninstall with purge).
    pub async fn purge(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM plugin_documents WHERE tenant_id = $1 AND plugin_id = $2")
            .bind(self.scope.tenant)
            .bind(self.scope.plugin)
            .execute(self.db.writer())
            .await?;
        Ok(done.rows_affected())
    }
}

enum Param {
    Text(String),
    Int(i64),
    Float(f64),
}

fn push_filter(dialect: Dialect, filter: &DocFilter, sql: &mut String, params: &mut Vec<Param>) -> StoreResult<()> {
    let field = &filter.field;
    let valid_field = !field.is_empty()
        && field.len() <= 100
        && field
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if !valid_field {
        return Err(StoreError::Invalid(format!(
            "filter field {field:?} is not a plain field name"
        )));
    }
    let value: serde_json::Value = serde_json::from_str(&filter.value)
        .map_err(|_| StoreError::Invalid(format!("filter value for {field:?} is not JSON")))?;
    let op = match filter.op {
        DocOp::Eq => "=",
        DocOp::Ne => "<>",
        DocOp::Lt => "<",
        DocOp::Lte => "<=",
        DocOp::Gt => ">",
        DocOp::Gte => ">=",
    };
    // Each comparison is guarded by the JSON type of the stored field, so a number
    // never compares with a string (PostgreSQL would order them; SQLite would coerce).
    let (kind, param) = match &value {
        serde_json::Value::String(s) => ("string", Param::Text(s.clone())),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => ("number", Param::Int(i)),
            None => ("number", Param::Float(n.as_f64().unwrap_or(f64::NAN))),
        },
        serde_json::Value::Bool(b) => {
            if !matches!(filter.op, DocOp::Eq | DocOp::Ne) {
                return Err(StoreError::Invalid(format!(
                    "booleans compare only with eq/ne (field {field:?})"
                )));
            }
            ("bool", Param::Int(i64::from(*b)))
        }
        _ => {
            return Err(StoreError::Invalid(format!(
                "filter value for {field:?} must be a string, number or boolean"
            )));
        }
    };
    params.push(Param::Text(match dialect {
        Dialect::Sqlite => format!("$.{field}"),
        Dialect::Postgres => field.clone(),
    }));
    let path = params.len();
    params.push(param);
    let v = params.len();
    let clause = match (dialect, kind) {
        (Dialect::Sqlite, "string") => {
            format!(" AND json_type(value, ${path}) = 'text' AND json_extract(value, ${path}) {op} ${v}")
        }
        (Dialect::Sqlite, "number") => {
            format!(" AND json_type(value, ${path}) IN ('integer', 'real') AND json_extract(value, ${path}) {op} ${v}")
        }
        (Dialect::Sqlite, _) => {
            format!(" AND json_type(value, ${path}) IN ('true', 'false') AND json_extract(value, ${path}) {op} ${v}")
        }
        (Dialect::Postgres, "string") => format!(
            " AND jsonb_typeof(value::jsonb -> ${path}) = 'string' AND (value::jsonb ->> ${path}) COLLATE \"C\" {op} ${v}"
        ),
        (Dialect::Postgres, "number") => format!(
            " AND jsonb_typeof(value::jsonb -> ${path}) = 'number' AND (value::jsonb ->> ${path})::double precision {op} ${v}"
        ),
        (Dialect::Postgres, _) => format!(
            " AND jsonb_typeof(value::jsonb -> ${path}) = 'boolean' AND ((value::jsonb ->> ${path})::boolean)::int {op} ${v}"
        ),
    };
    sql.push_str(&clause);
    Ok(())
}

/// Write one document inside the caller's transaction (see the WIT `storage.put` for
/// `expected`); returns its new version.
pub async fn put_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: Scope<'_>,
    collection: &str,
    key: &str,
    value: &str,
    expected: Option<u64>,
) -> StoreResult<u64> {
    check_name("collection", collection)?;
    check_name("key", key)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::Limit(format!(
            "a document may be at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(value).is_err() {
        return Err(StoreError::Invalid("the value is not valid JSON".into()));
    }
    let now = time::now();
    let version: Option<i64> = match expected {
        None => sqlx::query_scalar(
            "INSERT INTO plugin_documents (tenant_id, plugin_id, collection, doc_key, value, version, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6) \
             ON CONFLICT (tenant_id, plugin_id, collection, doc_key) \
             DO UPDATE SET value = excluded.value, version = plugin_documents.version + 1, updated_at = excluded.updated_at \
             RETURNING version",
        )
        .bind(scope.tenant)
        .bind(scope.plugin)
        .bind(collection)
        .bind(key)
        .bind(value)
        .bind(&now)
        .fetch_optional(&mut **tx)
        .await?,
        Some(0) => {
            let inserted = sqlx::query(
                "INSERT INTO plugin_documents (tenant_id, plugin_id, collection, doc_key, value, version, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 1, $6)",
            )
            .bind(scope.tenant)
            .bind(scope.plugin)
            .bind(collection)
            .bind(key)
            .bind(value)
            .bind(&now)
            .execute(&mut **tx)
            .await;
            match inserted {
                Ok(_) => Some(1),
                Err(e) if is_unique_violation(&e) => None,
                Err(e) => return Err(e.into()),
            }
        }
        Some(v) => sqlx::query_scalar(
            "UPDATE plugin_documents SET value = $5, version = version + 1, updated_at = $6 \
             WHERE tenant_id = $1 AND plugin_id = $2 AND collection = $3 AND doc_key = $4 AND version = $7 \
             RETURNING version",
        )
        .bind(scope.tenant)
        .bind(scope.plugin)
        .bind(collection)
        .bind(key)
        .bind(value)
        .bind(&now)
        .bind(to_i64(v)?)
        .fetch_optional(&mut **tx)
        .await?,
    };
    match (version, expected) {
        (Some(v), _) => u64::try_from(v).map_err(|_| StoreError::Corrupt("negative version".into())),
        (None, Some(0)) => Err(StoreError::Conflict(format!("{collection}/{key} already exists"))),
        (None, Some(v)) => Err(StoreError::Conflict(format!(
            "{collection}/{key} is not at version {v}"
        ))),
        (None, None) => Err(StoreError::Corrupt("upsert returned no row".into())),
    }
}

/// Delete one document inside the caller's transaction; `true` if it existed.
pub async fn delete_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: Scope<'_>,
    collection: &str,
    key: &str,
    expected: Option<u64>,
) -> StoreResult<bool> {
    check_name("collection", collection)?;
    check_name("key", key)?;
    let base = "DELETE FROM plugin_documents \
                WHERE tenant_id = $1 AND plugin_id = $2 AND collection = $3 AND doc_key = $4";
    let done = match expected {
        None => {
            sqlx::query(base)
                .bind(scope.tenant)
                .bind(scope.plugin)
                .bind(collection)
                .bind(key)
                .execute(&mut **tx)
                .await?
        }
        Some(v) => {
            sqlx::query(&format!("{base} AND version = $5"))
                .bind(scope.tenant)
                .bind(scope.plugin)
                .bind(collection)
                .bind(key)
                .bind(to_i64(v)?)
                .execute(&mut **tx)
                .await?
        }
    };
    match (done.rows_affected(), expected) {
        (0, Some(v)) => Err(StoreError::Conflict(format!(
            "{collection}/{key} is not at version {v}"
        ))),
        (0, None) => Ok(false),
        _ => Ok(true),
    }
}

fn prefix_error(e: StoreError, index: usize) -> StoreError {
    match e {
        StoreError::Conflict(m) => StoreError::Conflict(format!("operation {index}: {m}")),
        StoreError::Invalid(m) => StoreError::Invalid(format!("operation {index}: {m}")),
        StoreError::Limit(m) => StoreError::Limit(format!("operation {index}: {m}")),
        other => other,
    }
}

fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid("version out of range".into()))
}

fn version_of(row: &sqlx::any::AnyRow) -> StoreResult<u64> {
    let v: i64 = row.try_get("version")?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt("negative version".into()))
}

/// Collection names, keys and prefixes: 1–200 bytes of `[A-Za-z0-9._:/-]`.
fn check_name(what: &str, name: &str) -> StoreResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} must be 1-200 characters of A-Z a-z 0-9 . _ : / - (got {:?})",
            truncate(name, 40)
        )))
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The smallest string greater than every string starting with `prefix`. Names are
/// ASCII from a set that excludes `~` (0x7E), so appending it bounds the range.
fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}~")
}

fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

fn decode_cursor(cursor: &str) -> StoreResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| StoreError::Invalid("the cursor is not one this listing returned".into()))
}
