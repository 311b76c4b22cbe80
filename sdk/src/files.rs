//! Files larger than a plugin's memory (capability `files`): read one in pieces,
//! write one in pieces. Users download them from `/api/v1/files`.
//!
//! [`FileReader`] implements [`std::io::Read`] and [`FileWriter`] implements
//! [`std::io::Write`], so readers and writers of other crates (CSV, XLSX) work on
//! them directly:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use plinth_sdk::files;
//!
//! // Upper-case a text file into a new one, 64 KiB at a time.
//! let mut input = files::open("01JD…")?;
//! let mut output = files::create("upper.txt", "text/plain", None)?;
//! let mut piece = vec![0u8; 64 * 1024];
//! loop {
//!     let n = input.read(&mut piece).map_err(plinth_sdk::Error::from_io)?;
//!     if n == 0 { break; }
//!     output.write_all(&piece[..n].to_ascii_uppercase()).map_err(plinth_sdk::Error::from_io)?;
//! }
//! let stored = output.finish()?;
//! plinth_sdk::info!("wrote {} bytes as {}", stored.size, stored.id);
//! # Ok::<(), plinth_sdk::Error>(())
//! ```
//!
//! A plugin reads the calling user's files (every file for admins) and the files it
//! made; it lists and deletes the files it made. Declare `[capabilities] files =
//! true`; needs `plinth:plugin@1.5.0` (`api = "^1.5"`).

use crate::__private::wit::plinth::plugin::files as wit;
use crate::Error;

/// Most bytes one host call reads.
pub const MAX_READ: usize = 1 << 20;
/// Most bytes one host call writes ([`FileWriter`] splits larger writes).
pub const MAX_WRITE: usize = 4 << 20;

/// A file's metadata.
///
/// ```
/// let f = plinth_sdk::files::FileInfo {
///     id: "f1".into(), name: "q4.xlsx".into(), content_type: "application/octet-stream".into(),
///     size: 10, digest: "ab…".into(), owner_id: "u1".into(), created_at: "2026-12-07T10:00:00Z".into(),
/// };
/// assert_eq!(f.size, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Media type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub digest: String,
    /// The user who may read it (with the tenant's admins).
    pub owner_id: String,
    /// When it was made.
    pub created_at: String,
}

impl From<wit::FileInfo> for FileInfo {
    fn from(f: wit::FileInfo) -> Self {
        FileInfo {
            id: f.id,
            name: f.name,
            content_type: f.content_type,
            size: f.size,
            digest: f.digest,
            owner_id: f.owner_id,
            created_at: f.created_at,
        }
    }
}

/// One page of this plugin's files; pass `next_cursor` back for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePage {
    /// The files.
    pub files: Vec<FileInfo>,
    /// Cursor of the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A file being read, from the start. Reads are host calls of at most
/// [`MAX_READ`] bytes.
#[derive(Debug)]
pub struct FileReader(wit::Reader);

impl FileReader {
    /// The next bytes, at most `max` (1–[`MAX_READ`]); empty at the end.
    ///
    /// ```no_run
    /// let mut r = plinth_sdk::files::open("01JD…")?;
    /// while !r.next_piece(64 * 1024)?.is_empty() {}
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn next_piece(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        let max = max.clamp(1, MAX_READ) as u32;
        Ok(self.0.read(max)?)
    }
}

impl std::io::Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let piece = self
            .next_piece(buf.len())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        buf[..piece.len()].copy_from_slice(&piece);
        Ok(piece.len())
    }
}

/// A file being written. Dropped without [`FileWriter::finish`], nothing is kept.
#[derive(Debug)]
pub struct FileWriter(wit::Writer);

impl FileWriter {
    /// Append bytes (split into host calls of at most [`MAX_WRITE`]).
    ///
    /// ```no_run
    /// let mut w = plinth_sdk::files::create("report.csv", "text/csv", None)?;
    /// w.append(b"stage,amount\n")?;
    /// w.finish()?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        for piece in bytes.chunks(MAX_WRITE) {
            self.0.write(piece)?;
        }
        Ok(())
    }

    /// Store the file; its metadata.
    pub fn finish(self) -> Result<FileInfo, Error> {
        Ok(self.0.finish()?.into())
    }
}

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Open a file for reading; `not-found` when the plugin may not read it.
pub fn open(id: &str) -> Result<FileReader, Error> {
    Ok(FileReader(wit::open(id)?))
}

/// Start a file readable by `owner_id` (default: the calling user; required for calls
/// with no user) and the tenant's admins.
pub fn create(name: &str, content_type: &str, owner_id: Option<&str>) -> Result<FileWriter, Error> {
    Ok(FileWriter(wit::create(name, content_type, owner_id)?))
}

/// A file's metadata.
///
/// ```no_run
/// let size = plinth_sdk::files::info("01JD…")?.size;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn info(id: &str) -> Result<FileInfo, Error> {
    Ok(wit::info(id)?.into())
}

/// The files this plugin made, by id, `limit` (1–500) at a time.
pub fn list(cursor: Option<&str>, limit: u32) -> Result<FilePage, Error> {
    let page = wit::list(cursor, limit)?;
    Ok(FilePage {
        files: page.files.into_iter().map(FileInfo::from).collect(),
        next_cursor: page.next_cursor,
    })
}

/// Delete a file this plugin made; `false` when there was none.
pub fn delete(id: &str) -> Result<bool, Error> {
    Ok(wit::delete(id)?)
}
