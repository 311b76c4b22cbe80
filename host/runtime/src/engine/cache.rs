//! On-disk cache of compiled components, keyed by package digest and by the engine's
//! compatibility fingerprint, so a restart does not recompile every plugin.
//!
//! Files are written atomically (temp file + rename) beside a SHA-256 of their
//! contents, which is checked before loading: a truncated or corrupted entry is
//! discarded and recompiled rather than handed to wasmtime. The directory must be
//! writable only by the host's user — loading native code from it is a trust
//! decision (see `deserialize` below).

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use plinth_core::package::Digest;

/// A directory of `<digest>-<engine>.cwasm` files.
#[derive(Debug, Clone)]
pub(crate) struct DiskCache {
    dir: PathBuf,
    engine_tag: String,
}

/// Feeds `Hash` output into SHA-256 so the engine fingerprint is stable across runs.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl DiskCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = hex::encode(&hasher.0.finalize()[..8]);
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            engine_tag,
        })
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_tag))
    }

    /// The cached compilation of `digest`, if present and intact.
    pub(crate) fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let bytes = fs::read(&path).ok()?;
        let expected = fs::read_to_string(path.with_extension("sha256")).ok()?;
        if hex::encode(Sha256::digest(&bytes)) != expected.trim() {
            tracing::warn!(path = %path.display(), "discarding a corrupted compiled-component cache entry");
            let _ = fs::remove_file(&path);
            return None;
        }
        match deserialize(engine, &bytes) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding an unusable compiled-component cache entry");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Store a compilation. Failures are logged: the cache is an optimisation.
    pub(crate) fn store(&self, digest: &Digest, component: &Component) {
        if let Err(e) = self.try_store(digest, component) {
            tracing::warn!(error = %e, "could not write the compiled-component cache");
        }
    }

    fn try_store(&self, digest: &Digest, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        let path = self.path(digest);
        write_atomic(
            &path.with_extension("sha256"),
            hex::encode(Sha256::digest(&bytes)).as_bytes(),
        )?;
        write_atomic(&path, &bytes)?;
        Ok(())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts its input to be native code produced by
    // `Component::serialize`. These bytes come only from our own cache directory
    // (created 0700, written atomically by `try_store` with this engine) and match the
    // SHA-256 recorded beside them; wasmtime additionally rejects artifacts built by
    // an incompatible engine configuration.
    unsafe { Component::deserialize(engine, bytes) }
}
