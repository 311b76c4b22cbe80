//! Files: metadata, content-addressed blobs and their chunks (see migration 0022).

use serde::Serialize;
use sqlx::Row;

use super::{Db, StoreError, StoreResult, Tx, time};

/// A file's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRow {
    /// Id (ULID).
    pub id: String,
    /// File name as given (shown in `Content-Disposition`).
    pub name: String,
    /// Media type.
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256 of the content, hex.
    pub digest: String,
    /// The user who may read it (with the tenant's admins).
    pub owner_id: String,
    /// The plugin that made it, if one did.
    pub plugin: Option<String>,
    /// When.
    pub created_at: String,
}

const COLUMNS: &str = "id, name, content_type, size, digest, owner_id, plugin_id, created_at";

fn file_from(r: &sqlx::any::AnyRow) -> StoreResult<FileRow> {
    Ok(FileRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        content_type: r.try_get("content_type")?,
        size: r.try_get("size")?,
        digest: r.try_get("digest")?,
        owner_id: r.try_get("owner_id")?,
        plugin: r.try_get("plugin_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A finished upload's file, to record.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    /// Name.
    pub name: &'a str,
    /// Media type.
    pub content_type: &'a str,
    /// Owner.
    pub owner_id: &'a str,
    /// Plugin, if a plugin made it.
    pub plugin: Option<&'a str>,
}

impl Db {
    /// ` FOR UPDATE` on PostgreSQL (SQLite has one writer: nothing to lock).
    fn for_update(&self) -> &'static str {
        match self.dialect() {
            super::Dialect::Postgres => " FOR UPDATE",
            super::Dialect::Sqlite => "",
        }
    }

    /// Start an upload: a fresh blob id, recorded until the upload completes or is
    /// abandoned.
    pub async fn begin_upload(&self, tenant: &str) -> StoreResult<String> {
        let blob = ulid::Ulid::new().to_string();
        sqlx::query("INSERT INTO file_uploads (tenant_id, blob_id, started_at) VALUES ($1, $2, $3)")
            .bind(tenant)
            .bind(&blob)
            .bind(time::now())
            .execute(self.writer())
            .await?;
        Ok(blob)
    }

    /// Store chunk `seq` of an upload.
    pub async fn put_chunk(&self, tenant: &str, blob: &str, seq: i64, data: &[u8]) -> StoreResult<()> {
        let mut conn = self.writer().acquire().await?;
        let small = SmallCache::enter(&mut conn, self.dialect()).await?;
        let result = sqlx::query("INSERT INTO file_chunks (tenant_id, blob_id, seq, data) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(blob)
            .bind(seq)
            .bind(data)
            .execute(&mut *conn)
            .await;
        small.leave(&mut conn).await?;
        result?;
        Ok(())
    }

    /// Drop an upload that did not complete, with every chunk it wrote.
    pub async fn abandon_upload(&self, tenant: &str, blob: &str) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("DELETE FROM file_chunks WHERE tenant_id = $1 AND blob_id = $2")
            .bind(tenant)
            .bind(blob)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM file_uploads WHERE tenant_id = $1 AND blob_id = $2")
            .bind(tenant)
            .bind(blob)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Complete an upload of `size` bytes with content `digest`: it becomes the blob of
    /// that digest, or — when the tenant already holds the content — its chunks are
    /// dropped in favour of the existing blob; then the file is recorded.
    pub async fn finish_upload(
        &self,
        tx: &mut Tx<'_>,
        tenant: &str,
        blob: &str,
        digest: &str,
        size: i64,
        file: NewFile<'_>,
    ) -> StoreResult<FileRow> {
        let now = time::now();
        let inserted = sqlx::query(
            "INSERT INTO file_blobs (tenant_id, digest, blob_id, size, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, digest) DO NOTHING",
        )
        .bind(tenant)
        .bind(digest)
        .bind(blob)
        .bind(size)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // The same content is stored already: keep one copy. The blob row is locked
            // (PostgreSQL) so that a concurrent delete of its last other file either
            // finished before — then the row is gone and this upload's blob replaces it —
            // or waits and then counts this file.
            let existing: Option<String> = sqlx::query_scalar(&format!(
                "SELECT blob_id FROM file_blobs WHERE tenant_id = $1 AND digest = $2{}",
                self.for_update()
            ))
            .bind(tenant)
            .bind(digest)
            .fetch_optional(&mut **tx)
            .await?;
            if existing.is_some() {
                sqlx::query("DELETE FROM file_chunks WHERE tenant_id = $1 AND blob_id = $2")
                    .bind(tenant)
                    .bind(blob)
                    .execute(&mut **tx)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO file_blobs (tenant_id, digest, blob_id, size, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tenant)
                .bind(digest)
                .bind(blob)
                .bind(size)
                .bind(&now)
                .execute(&mut **tx)
                .await?;
            }
        }
        sqlx::query("DELETE FROM file_uploads WHERE tenant_id = $1 AND blob_id = $2")
            .bind(tenant)
            .bind(blob)
            .execute(&mut **tx)
            .await?;
        let row = FileRow {
            id: ulid::Ulid::new().to_string(),
            name: file.name.to_string(),
            content_type: file.content_type.to_string(),
            size,
            digest: digest.to_string(),
            owner_id: file.owner_id.to_string(),
            plugin: file.plugin.map(str::to_string),
            created_at: now,
        };
        sqlx::query(
            "INSERT INTO files (tenant_id, id, name, content_type, size, digest, owner_id, plugin_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant)
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.content_type)
        .bind(row.size)
        .bind(&row.digest)
        .bind(&row.owner_id)
        .bind(&row.plugin)
        .bind(&row.created_at)
        .execute(&mut **tx)
        .await?;
        Ok(row)
    }

    /// A file's metadata.
    pub async fn file(&self, tenant: &str, id: &str) -> StoreResult<Option<FileRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM files WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(file_from).transpose()
    }

    /// Files by id after `after`: of `owner` only, or (`None`) all of the tenant's.
    pub async fn files(
        &self,
        tenant: &str,
        owner: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FileRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM files WHERE tenant_id = $1 AND ($2 = '' OR owner_id = $2) AND id > $3 \
             ORDER BY id LIMIT $4"
        ))
        .bind(tenant)
        .bind(owner.unwrap_or(""))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(file_from).collect()
    }

    /// Files `plugin` made, by id after `after`.
    pub async fn plugin_files(
        &self,
        tenant: &str,
        plugin: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FileRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM files WHERE tenant_id = $1 AND plugin_id = $2 AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(tenant)
        .bind(plugin)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(file_from).collect()
    }

    /// Bytes the tenant's stored content takes (each distinct content once).
    pub async fn files_usage(&self, tenant: &str) -> StoreResult<i64> {
        // PostgreSQL sums BIGINTs as NUMERIC: cast back.
        Ok(
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM file_blobs WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(self.reader())
                .await?,
        )
    }

    /// The blob id and size holding `digest`'s content.
    pub async fn blob(&self, tenant: &str, digest: &str) -> StoreResult<Option<(String, i64)>> {
        let row = sqlx::query("SELECT blob_id, size FROM file_blobs WHERE tenant_id = $1 AND digest = $2")
            .bind(tenant)
            .bind(digest)
            .fetch_optional(self.reader())
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("blob_id")?, r.try_get("size")?)),
            None => None,
        })
    }

    /// Chunk `seq` of a blob.
    pub async fn chunk(&self, tenant: &str, blob: &str, seq: i64) -> StoreResult<Vec<u8>> {
        let mut conn = self.reader().acquire().await?;
        let small = SmallCache::enter(&mut conn, self.dialect()).await?;
        let data: Result<Option<Vec<u8>>, sqlx::Error> =
            sqlx::query_scalar("SELECT data FROM file_chunks WHERE tenant_id = $1 AND blob_id = $2 AND seq = $3")
                .bind(tenant)
                .bind(blob)
                .bind(seq)
                .fetch_optional(&mut *conn)
                .await;
        small.leave(&mut conn).await?;
        data?.ok_or_else(|| StoreError::Corrupt(format!("blob {blob} lacks chunk {seq}")))
    }

    /// Delete a file; when it was the last file of its content, the content's chunks
    /// go too. The deleted file, if there was one.
    pub async fn delete_file(&self, tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<Option<FileRow>> {
        let row = sqlx::query(&format!(
            "DELETE FROM files WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(file) = row.as_ref().map(file_from).transpose()? else {
            return Ok(None);
        };
        // Lock the content's blob before counting who else uses it (see finish_upload).
        sqlx::query(&format!(
            "SELECT blob_id FROM file_blobs WHERE tenant_id = $1 AND digest = $2{}",
            self.for_update()
        ))
        .bind(tenant)
        .bind(&file.digest)
        .fetch_optional(&mut **tx)
        .await?;
        let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE tenant_id = $1 AND digest = $2")
            .bind(tenant)
            .bind(&file.digest)
            .fetch_one(&mut **tx)
            .await?;
        if others == 0 {
            let blob: Option<String> =
                sqlx::query_scalar("DELETE FROM file_blobs WHERE tenant_id = $1 AND digest = $2 RETURNING blob_id")
                    .bind(tenant)
                    .bind(&file.digest)
                    .fetch_optional(&mut **tx)
                    .await?;
            if let Some(blob) = blob {
                sqlx::query("DELETE FROM file_chunks WHERE tenant_id = $1 AND blob_id = $2")
                    .bind(tenant)
                    .bind(&blob)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(Some(file))
    }

    /// Drop uploads started before `before` that never completed, with their chunks
    /// (a host that died mid-upload); how many.
    pub async fn sweep_uploads(&self, before: &str) -> StoreResult<u64> {
        let stale: Vec<(String, String)> =
            sqlx::query("SELECT tenant_id, blob_id FROM file_uploads WHERE started_at < $1")
                .bind(before)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("blob_id")?)))
                .collect::<StoreResult<_>>()?;
        for (tenant, blob) in &stale {
            self.abandon_upload(tenant, blob).await?;
        }
        Ok(stale.len() as u64)
    }

    /// Chunks the tenant holds (test and operator checks that nothing leaked).
    pub async fn chunk_count(&self, tenant: &str) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM file_chunks WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(self.reader())
                .await?,
        )
    }
}

/// File content passes through SQLite's page cache, which this server sizes at 64 MiB
/// per connection for record work: streaming a large file would fill it with blob
/// pages (measured: RSS +78 MiB for 1 GiB up, +97 MiB down; +14 / +29 MiB with a small
/// cache — docs/benchmarks/files.md). So a chunk statement runs with a 2 MiB cache,
/// which also releases what the connection had cached, and the connection gets its
/// normal size back after. PostgreSQL needs nothing.
struct SmallCache(bool);

impl SmallCache {
    async fn enter(conn: &mut sqlx::AnyConnection, dialect: super::Dialect) -> StoreResult<SmallCache> {
        if dialect != super::Dialect::Sqlite {
            return Ok(SmallCache(false));
        }
        sqlx::query("PRAGMA cache_size = -2048").execute(&mut *conn).await?;
        Ok(SmallCache(true))
    }

    async fn leave(self, conn: &mut sqlx::AnyConnection) -> StoreResult<()> {
        if self.0 {
            sqlx::query(&format!("PRAGMA cache_size = {}", super::SQLITE_CACHE_SIZE))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}
