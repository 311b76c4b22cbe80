//! Files larger than a request or a plugin's memory: exports, import uploads,
//! attachments (docs/files.md). Content is streamed into 1 MiB chunks in the database
//! as it arrives — never held whole in memory — hashed on the way (SHA-256), and
//! stored once per tenant and content. The size limit and the tenant's quota are
//! checked as bytes arrive; an upload that fails or is interrupted leaves nothing.
//! Reads stream chunk by chunk, from any byte offset (HTTP `Range`).
//!
//! Storage is the database, behind `store::files`: the seam where an object store
//! (`object_store`, S3-compatible) would plug in by configuration.

use futures_util::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};

use crate::problem::{FieldProblem, IntoProblem, Problem, ProblemKind};
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::files::{FileRow, NewFile};
use crate::store::{Db, StoreError};

/// Bytes per stored chunk.
pub const CHUNK: usize = 1 << 20;

/// Limits on files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesConfig {
    /// Largest file, in bytes (default 1 GiB).
    pub max_size: u64,
    /// Most bytes of distinct content one tenant may store (default 50 GiB).
    pub tenant_quota: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_size: 1 << 30,
            tenant_quota: 50 << 30,
        }
    }
}

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Larger than the limit, or beyond the tenant's quota.
    #[error("{0}")]
    TooLarge(String),
    /// A bad name or content type.
    #[error("the file is not valid")]
    Invalid(Vec<FieldProblem>),
    /// No such file visible to the caller.
    #[error("no file {0}")]
    NotFound(String),
    /// The client stopped sending (nothing was kept).
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for FileError {
    fn from(e: sqlx::Error) -> Self {
        FileError::Store(e.into())
    }
}

impl IntoProblem for FileError {
    fn into_problem(self) -> Problem {
        match self {
            FileError::TooLarge(m) => Problem::new(ProblemKind::TooLarge, m),
            FileError::Invalid(fields) => Problem::invalid("the file is not valid", fields),
            FileError::NotFound(id) => Problem::new(ProblemKind::NotFound, format!("no file {id}")),
            FileError::Interrupted(m) => {
                Problem::new(ProblemKind::BadRequest, format!("the upload was interrupted: {m}"))
            }
            FileError::Store(e) => e.into_problem(),
        }
    }
}

/// Who reads or writes files: the tenant, the user, whether they are an admin of the
/// tenant, and the audit actor.
#[derive(Debug, Clone)]
pub struct FileCaller<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// The user (owner of what they upload).
    pub user_id: &'a str,
    /// Admins see every file of the tenant.
    pub admin: bool,
    /// For audit events.
    pub actor: &'a Actor,
    /// The plugin making the call, if one does.
    pub plugin: Option<&'a str>,
}

/// A file name as stored: trimmed, without directories, 1–255 characters, no control
/// characters.
pub fn clean_name(raw: &str) -> Result<String, String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim();
    let n = base.chars().count();
    if n == 0 || n > 255 || base.chars().any(char::is_control) || base == "." || base == ".." {
        return Err("must be 1–255 characters of a file name, without control characters".into());
    }
    Ok(base.to_string())
}

/// A media type as stored: `type/subtype` (parameters kept), lowercased type.
pub fn clean_content_type(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let (essence, _) = raw.split_once(';').unwrap_or((raw, ""));
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.trim().split_once('/') {
        Some((t, sub)) if token(t) && token(sub) && raw.len() <= 200 && !raw.chars().any(char::is_control) => {
            Ok(raw.to_string())
        }
        _ => Err("must be a media type like `text/csv`".into()),
    }
}

/// Check a name and a content type, every problem at once; the cleaned pair.
pub fn check_names(name: &str, content_type: &str) -> Result<(String, String), FileError> {
    let mut problems = Vec::new();
    let name = clean_name(name)
        .map_err(|m| problems.push(FieldProblem::new("name", m)))
        .ok();
    let content_type = clean_content_type(content_type)
        .map_err(|m| problems.push(FieldProblem::new("content_type", m)))
        .ok();
    match (name, content_type) {
        (Some(n), Some(t)) => Ok((n, t)),
        _ => Err(FileError::Invalid(problems)),
    }
}

/// A file being written: bytes go to chunks as they come (at most one chunk
/// buffered), hashed on the way, within the size limit and the tenant's quota.
/// [`Writer::finish`] records the file; anything else must end in
/// [`Writer::abandon`], which drops what was written.
#[derive(Debug)]
pub struct Writer {
    tenant: String,
    blob: String,
    hasher: Sha256,
    buffer: Vec<u8>,
    size: u64,
    seq: i64,
    max_size: u64,
    quota: u64,
    quota_left: u64,
    /// The previous full chunk's insert, running while the next chunk arrives and is
    /// hashed (one in flight: memory stays at two chunks).
    in_flight: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
}

impl Writer {
    /// Start writing a file in `tenant`.
    pub async fn start(db: &Db, config: &FilesConfig, tenant: &str) -> Result<Writer, FileError> {
        let used = db.files_usage(tenant).await?.max(0) as u64;
        let blob = db.begin_upload(tenant).await?;
        Ok(Writer {
            tenant: tenant.to_string(),
            blob,
            hasher: Sha256::new(),
            buffer: Vec::with_capacity(CHUNK),
            size: 0,
            seq: 0,
            max_size: config.max_size,
            quota: config.tenant_quota,
            quota_left: config.tenant_quota.saturating_sub(used),
            in_flight: None,
        })
    }

    /// Wait for the chunk in flight, if any, and pass on its failure.
    async fn settle(&mut self) -> Result<(), FileError> {
        match self.in_flight.take() {
            None => Ok(()),
            Some(task) => match task.await {
                Ok(result) => Ok(result?),
                Err(e) => Err(FileError::Store(StoreError::Corrupt(format!(
                    "a chunk write stopped: {e}"
                )))),
            },
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append `bytes`.
    pub async fn write(&mut self, db: &Db, mut bytes: &[u8]) -> Result<(), FileError> {
        self.size += bytes.len() as u64;
        if self.size > self.max_size {
            return Err(FileError::TooLarge(format!(
                "the file is larger than the limit of {} bytes",
                self.max_size
            )));
        }
        if self.size > self.quota_left {
            return Err(FileError::TooLarge(format!(
                "the tenant's file quota ({} bytes) would be exceeded",
                self.quota
            )));
        }
        self.hasher.update(bytes);
        while !bytes.is_empty() {
            let take = (CHUNK - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == CHUNK {
                // Hand the full chunk to a task and go on receiving the next one.
                self.settle().await?;
                let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
                let (db, tenant, blob, seq) = (db.clone(), self.tenant.clone(), self.blob.clone(), self.seq);
                self.in_flight = Some(tokio::spawn(
                    async move { db.put_chunk(&tenant, &blob, seq, &data).await },
                ));
                self.seq += 1;
            }
        }
        Ok(())
    }

    /// Record the file (audited as `file.create`).
    pub async fn finish(
        mut self,
        db: &Db,
        caller: &FileCaller<'_>,
        owner: &str,
        name: &str,
        content_type: &str,
    ) -> Result<FileRow, FileError> {
        self.settle().await?;
        if !self.buffer.is_empty() {
            db.put_chunk(&self.tenant, &self.blob, self.seq, &self.buffer).await?;
            self.buffer.clear();
        }
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let mut tx = db.writer().begin().await?;
        let file = NewFile {
            name,
            content_type,
            owner_id: owner,
            plugin: caller.plugin,
        };
        let row = db
            .finish_upload(&mut tx, &self.tenant, &self.blob, &digest, self.size as i64, file)
            .await?;
        let after = serde_json::to_value(&row).unwrap_or_default();
        let event = NewEvent {
            action: "file.create",
            entity_type: "file",
            entity_id: Some(&row.id),
            before: None,
            after: Some(&after),
        };
        audit::append(&mut tx, db.dialect(), &self.tenant, caller.actor, event).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Drop everything written (logged, not failed: the sweeper catches what this
    /// misses).
    pub async fn abandon(mut self, db: &Db) {
        // Let a chunk in flight land first, so that dropping the upload drops it too.
        let _ = self.settle().await;
        if let Err(e) = db.abandon_upload(&self.tenant, &self.blob).await {
            tracing::warn!(error = ?e, tenant = %self.tenant, blob = %self.blob, "could not drop an abandoned upload; the sweeper will");
        }
    }

    /// The tenant and upload it writes (to abandon it from elsewhere).
    pub fn upload(&self) -> (&str, &str) {
        (&self.tenant, &self.blob)
    }
}

/// Store the bytes of `body` as a new file named `name` of type `content_type`,
/// owned by the caller (audited as `file.create`). Nothing is kept if the stream
/// fails, the size limit or the tenant's quota is passed.
pub async fn upload<S, B, E>(
    db: &Db,
    config: &FilesConfig,
    caller: &FileCaller<'_>,
    name: &str,
    content_type: &str,
    body: S,
) -> Result<FileRow, FileError>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let (name, content_type) = check_names(name, content_type)?;
    let mut writer = Writer::start(db, config, caller.tenant).await?;
    let mut body = std::pin::pin!(body);
    while let Some(piece) = body.next().await {
        let written = match piece {
            Ok(bytes) => writer.write(db, bytes.as_ref()).await,
            Err(e) => Err(FileError::Interrupted(e.to_string())),
        };
        if let Err(e) = written {
            writer.abandon(db).await;
            return Err(e);
        }
    }
    writer.finish(db, caller, caller.user_id, &name, &content_type).await
}

/// A file the caller may read: its owner, or an admin of the tenant.
pub async fn get(db: &Db, caller: &FileCaller<'_>, id: &str) -> Result<FileRow, FileError> {
    match db.file(caller.tenant, id).await? {
        Some(f) if caller.admin || f.owner_id == caller.user_id => Ok(f),
        _ => Err(FileError::NotFound(id.to_string())),
    }
}

/// A file by id in `tenant`, with no caller check: for a signed link, whose signature
/// is the permission.
pub async fn get_signed(db: &Db, tenant: &str, id: &str) -> Result<FileRow, FileError> {
    db.file(tenant, id)
        .await?
        .ok_or_else(|| FileError::NotFound(id.to_string()))
}

/// The bytes `start..end` of `file`'s content, chunk by chunk (at most one chunk in
/// memory at a time).
pub fn read(
    db: Db,
    tenant: String,
    file: &FileRow,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Vec<u8>, FileError>> + Send + 'static {
    let digest = file.digest.clone();
    let end = end.min(file.size.max(0) as u64);
    futures_util::stream::unfold(
        (db, tenant, digest, None::<String>, start),
        move |(db, tenant, digest, blob, at)| async move {
            if at >= end {
                return None;
            }
            let blob = match blob {
                Some(b) => b,
                None => match db.blob(&tenant, &digest).await {
                    Ok(Some((b, _))) => b,
                    Ok(None) => {
                        return Some((
                            Err(FileError::NotFound(digest.clone())),
                            (db, tenant, digest, None, end),
                        ));
                    }
                    Err(e) => return Some((Err(e.into()), (db, tenant, digest, None, end))),
                },
            };
            let seq = (at / CHUNK as u64) as i64;
            let chunk = match db.chunk(&tenant, &blob, seq).await {
                Ok(c) => c,
                Err(e) => return Some((Err(e.into()), (db, tenant, digest, Some(blob), end))),
            };
            let from = (at % CHUNK as u64) as usize;
            let chunk_end = (seq as u64) * CHUNK as u64 + chunk.len() as u64;
            let to = (end.min(chunk_end) - (seq as u64) * CHUNK as u64) as usize;
            let piece = chunk.get(from..to).map(<[u8]>::to_vec).unwrap_or_default();
            let next = if piece.is_empty() { end } else { at + piece.len() as u64 };
            Some((Ok(piece), (db, tenant, digest, Some(blob), next)))
        },
    )
}

/// Delete a file the caller may see (audited as `file.delete`); its content goes
/// with the last file holding it.
pub async fn delete(db: &Db, caller: &FileCaller<'_>, id: &str) -> Result<FileRow, FileError> {
    get(db, caller, id).await?;
    let mut tx = db.writer().begin().await?;
    let Some(file) = db.delete_file(&mut tx, caller.tenant, id).await? else {
        return Err(FileError::NotFound(id.to_string()));
    };
    let before = serde_json::to_value(&file).unwrap_or_default();
    let event = NewEvent {
        action: "file.delete",
        entity_type: "file",
        entity_id: Some(id),
        before: Some(&before),
        after: None,
    };
    audit::append(&mut tx, db.dialect(), caller.tenant, caller.actor, event).await?;
    tx.commit().await?;
    Ok(file)
}

/// How long an upload may be in progress before the sweeper takes its chunks (a host
/// that died mid-upload leaves them behind).
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Drop abandoned uploads every ten minutes until `shutdown` resolves.
pub async fn run_sweeper(db: Db, shutdown: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let before = time::OffsetDateTime::now_utc() - ABANDONED_AFTER;
                match db.sweep_uploads(&crate::store::time::format(before)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(uploads = n, "dropped abandoned uploads"),
                    Err(e) => tracing::warn!(error = ?e, "could not sweep abandoned uploads"),
                }
            }
            () = &mut shutdown => return,
        }
    }
}

/// What a signed link to a file signs: the tenant, the file and the expiry.
pub fn link_message(tenant: &str, id: &str, expires: i64) -> String {
    format!("plinth/file-link/v1\n{tenant}\n{id}\n{expires}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_directories_and_types_keep_their_parameters() {
        assert_eq!(
            clean_name("  C:\\Users\\ada\\Q4 report.xlsx ").unwrap(),
            "Q4 report.xlsx"
        );
        assert_eq!(clean_name("../../etc/passwd").unwrap(), "passwd");
        assert!(clean_name("..").is_err() && clean_name("a\nb").is_err() && clean_name(" ").is_err());
        assert_eq!(
            clean_content_type("text/csv; charset=utf-8").unwrap(),
            "text/csv; charset=utf-8"
        );
        assert!(clean_content_type("csv").is_err() && clean_content_type("text/ csv").is_err());
    }

    #[test]
    fn link_messages_bind_tenant_file_and_expiry() {
        assert_ne!(link_message("t1", "f", 10), link_message("t2", "f", 10));
        assert_ne!(link_message("t1", "f", 10), link_message("t1", "f", 11));
    }
}
