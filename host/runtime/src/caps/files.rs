//! `files`: read and write files in pieces (capability `files`). Readers and writers
//! are resources in the call's table; a writer dropped unfinished — by the guest, or
//! with the call when it traps or times out — drops what it wrote.

use wasmtime::component::Resource;

use crate::bindings::WitError;
use crate::bindings::plinth::plugin::files::{FileInfo, FilePage, Host, HostReader, HostWriter};
use plinth_core::files::{self, FileCaller, FileError, Writer};
use plinth_core::manifest::registry;
use plinth_core::store::Db;
use plinth_core::store::files::FileRow;

use super::CapCtx;

/// Largest piece a `read` returns and a `write` takes.
const MAX_READ: u32 = 1 << 20;
const MAX_WRITE: usize = 4 << 20;

/// A file being read: where it is and how far the guest got.
pub struct FileReader {
    file: FileRow,
    at: u64,
}

/// A file being written, until the guest finishes it.
pub struct FileWriter {
    writer: Option<Writer>,
    db: Db,
    owner: String,
    name: String,
    content_type: String,
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Unfinished (dropped by the guest, or with a call that trapped): drop its
        // chunks. Drop cannot wait, so this runs on the runtime; the sweeper catches
        // anything it misses.
        if let Some(writer) = self.writer.take() {
            let db = self.db.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { writer.abandon(&db).await });
            }
        }
    }
}

fn info(f: FileRow) -> FileInfo {
    FileInfo {
        id: f.id,
        name: f.name,
        content_type: f.content_type,
        size: f.size.max(0) as u64,
        digest: f.digest,
        owner_id: f.owner_id,
        created_at: f.created_at,
    }
}

impl CapCtx {
    /// The file `id` if this call may read it: the calling user's (every file for an
    /// admin), or one this plugin made.
    async fn readable_file(&mut self, id: &str) -> Result<FileRow, WitError> {
        let db = self.services.db.clone();
        let file = db
            .file(&self.caller.tenant_id, id)
            .await
            .map_err(|e| self.store_error(e))?
            .ok_or_else(|| WitError::NotFound(format!("no file {id}")))?;
        let admin = self.caller.roles.iter().any(|r| r == "admin" || r == "owner");
        let mine = file.plugin.as_deref() == Some(self.plugin.id.as_str());
        let the_users = self.caller.user_id.as_deref() == Some(file.owner_id.as_str());
        if mine || the_users || admin {
            Ok(file)
        } else {
            Err(WitError::NotFound(format!("no file {id}")))
        }
    }

    fn file_error(&self, e: FileError) -> WitError {
        self.wit_error(e)
    }
}

impl Host for CapCtx {
    async fn open(&mut self, id: String) -> wasmtime::Result<Result<Resource<FileReader>, WitError>> {
        if let Err(e) = self.require(&registry::FILES) {
            return Ok(Err(e));
        }
        let file = match self.readable_file(&id).await {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.resources.push(FileReader { file, at: 0 })?))
    }

    async fn create(
        &mut self,
        name: String,
        content_type: String,
        owner_id: Option<String>,
    ) -> wasmtime::Result<Result<Resource<FileWriter>, WitError>> {
        if let Err(e) = self.require(&registry::FILES) {
            return Ok(Err(e));
        }
        let (name, content_type) = match files::check_names(&name, &content_type) {
            Ok(pair) => pair,
            Err(e) => return Ok(Err(self.file_error(e))),
        };
        let Some(owner) = owner_id.or_else(|| self.caller.user_id.clone()) else {
            return Ok(Err(WitError::Invalid(
                "owner-id is required for a call with no user: name who may read the file".into(),
            )));
        };
        let db = self.services.db.clone();
        match db.user(&self.caller.tenant_id, &owner).await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(Err(WitError::NotFound(format!("no user {owner}")))),
            Err(e) => return Ok(Err(self.store_error(e))),
        }
        let writer = match Writer::start(&db, &self.services.files, &self.caller.tenant_id).await {
            Ok(w) => w,
            Err(e) => return Ok(Err(self.file_error(e))),
        };
        let resource = FileWriter {
            writer: Some(writer),
            db,
            owner,
            name,
            content_type,
        };
        Ok(Ok(self.resources.push(resource)?))
    }

    async fn info(&mut self, id: String) -> wasmtime::Result<Result<FileInfo, WitError>> {
        if let Err(e) = self.require(&registry::FILES) {
            return Ok(Err(e));
        }
        Ok(self.readable_file(&id).await.map(info))
    }

    async fn list(&mut self, cursor: Option<String>, limit: u32) -> wasmtime::Result<Result<FilePage, WitError>> {
        if let Err(e) = self.require(&registry::FILES) {
            return Ok(Err(e));
        }
        if !(1..=500).contains(&limit) {
            return Ok(Err(WitError::Invalid(format!("limit must be 1–500, not {limit}"))));
        }
        let db = self.services.db.clone();
        let rows = db
            .plugin_files(
                &self.caller.tenant_id,
                &self.plugin.id,
                cursor.as_deref(),
                i64::from(limit) + 1,
            )
            .await;
        Ok(match rows {
            Ok(mut rows) => {
                let more = rows.len() > limit as usize;
                rows.truncate(limit as usize);
                let next_cursor = if more { rows.last().map(|f| f.id.clone()) } else { None };
                Ok(FilePage {
                    files: rows.into_iter().map(info).collect(),
                    next_cursor,
                })
            }
            Err(e) => Err(self.store_error(e)),
        })
    }

    async fn delete(&mut self, id: String) -> wasmtime::Result<Result<bool, WitError>> {
        if let Err(e) = self.require(&registry::FILES) {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let file = match db.file(&self.caller.tenant_id, &id).await {
            Ok(f) => f,
            Err(e) => return Ok(Err(self.store_error(e))),
        };
        if file.is_none_or(|f| f.plugin.as_deref() != Some(self.plugin.id.as_str())) {
            return Ok(Ok(false));
        }
        let actor = self.actor();
        let who = FileCaller {
            tenant: &self.caller.tenant_id,
            user_id: self.caller.user_id.as_deref().unwrap_or_default(),
            admin: true,
            actor: &actor,
            plugin: Some(&self.plugin.id),
        };
        Ok(match files::delete(&db, &who, &id).await {
            Ok(_) => Ok(true),
            Err(FileError::NotFound(_)) => Ok(false),
            Err(e) => Err(self.file_error(e)),
        })
    }
}

impl HostReader for CapCtx {
    async fn read(&mut self, reader: Resource<FileReader>, max: u32) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        self.stats.host_calls += 1;
        if !(1..=MAX_READ).contains(&max) {
            return Ok(Err(WitError::Invalid(format!("max must be 1–{MAX_READ}, not {max}"))));
        }
        let state = self.resources.get(&reader)?;
        let (file, at) = (state.file.clone(), state.at);
        let end = (at + u64::from(max)).min(file.size.max(0) as u64);
        if at >= end {
            return Ok(Ok(Vec::new()));
        }
        let db = self.services.db.clone();
        let mut pieces = std::pin::pin!(files::read(db, self.caller.tenant_id.clone(), &file, at, end));
        // One piece: at most the rest of the chunk `at` is in.
        let piece = match futures_util::StreamExt::next(&mut pieces).await {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => return Ok(Err(self.file_error(e))),
            None => Vec::new(),
        };
        self.resources.get_mut(&reader)?.at = at + piece.len() as u64;
        Ok(Ok(piece))
    }

    async fn drop(&mut self, reader: Resource<FileReader>) -> wasmtime::Result<()> {
        self.resources.delete(reader)?;
        Ok(())
    }
}

impl HostWriter for CapCtx {
    async fn write(&mut self, writer: Resource<FileWriter>, bytes: Vec<u8>) -> wasmtime::Result<Result<(), WitError>> {
        self.stats.host_calls += 1;
        if bytes.len() > MAX_WRITE {
            return Ok(Err(WitError::Limit(format!("write at most {MAX_WRITE} bytes a call"))));
        }
        let db = self.services.db.clone();
        let state = self.resources.get_mut(&writer)?;
        let Some(w) = state.writer.as_mut() else {
            return Ok(Err(WitError::Invalid("the file is finished or failed".into())));
        };
        match w.write(&db, &bytes).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                // A failed file keeps nothing; later writes say so.
                if let Some(w) = self.resources.get_mut(&writer)?.writer.take() {
                    w.abandon(&db).await;
                }
                Ok(Err(self.file_error(e)))
            }
        }
    }

    async fn finish(&mut self, writer: Resource<FileWriter>) -> wasmtime::Result<Result<FileInfo, WitError>> {
        self.stats.host_calls += 1;
        let db = self.services.db.clone();
        let state = self.resources.get_mut(&writer)?;
        let Some(w) = state.writer.take() else {
            return Ok(Err(WitError::Invalid("the file is finished or failed".into())));
        };
        let (owner, name, content_type) = (state.owner.clone(), state.name.clone(), state.content_type.clone());
        let actor = self.actor();
        let who = FileCaller {
            tenant: &self.caller.tenant_id,
            user_id: &owner,
            admin: false,
            actor: &actor,
            plugin: Some(&self.plugin.id),
        };
        Ok(w.finish(&db, &who, &owner, &name, &content_type)
            .await
            .map(info)
            .map_err(|e| self.file_error(e)))
    }

    async fn drop(&mut self, writer: Resource<FileWriter>) -> wasmtime::Result<()> {
        // Its `Drop` abandons an unfinished file.
        self.resources.delete(writer)?;
        Ok(())
    }
}
