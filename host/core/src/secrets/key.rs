//! Where the host's secret key comes from: the operator's `PLINTH_SECRET_KEY`
//! (base64 of 32 bytes), or else a key file generated once in the data directory
//! (mode 0600). Several hosts on one PostgreSQL must share one key, so they need
//! `PLINTH_SECRET_KEY`; see `docs/integrations.md`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;

use super::{Vault, VaultError};

/// The environment variable the CLI reads the key from.
pub const KEY_ENV: &str = "PLINTH_SECRET_KEY";

/// Name of the key file in the data directory.
pub const KEY_FILE: &str = "secret.key";

/// A key as the operator gave it (base64). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyText(String);

impl KeyText {
    /// Wrap key text.
    pub fn new(text: impl Into<String>) -> KeyText {
        KeyText(text.into())
    }

    /// The key text, to decode.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyText(<redacted>)")
    }
}

/// Where the key in use came from (for the startup log; never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Given by the operator (`PLINTH_SECRET_KEY` or the config file).
    Configured,
    /// Read from the key file.
    File(PathBuf),
    /// Generated now and written to the key file.
    Created(PathBuf),
}

/// Decode a key given as base64 (standard or URL-safe alphabet, padding optional).
pub fn decode_key(text: &str) -> Result<[u8; 32], VaultError> {
    let text = text.trim();
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|e| e.decode(text).ok())
        .ok_or_else(|| VaultError::Key("not base64".into()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| VaultError::Key(format!("must decode to 32 bytes, not {}", bytes.len())))
}

/// The vault for `configured` (base64 key text) or, when `None`, for the key file in
/// `data_dir`, created with a fresh random key if missing.
pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> Result<(Vault, KeySource), VaultError> {
    if let Some(text) = configured {
        return Ok((Vault::new(&decode_key(text)?), KeySource::Configured));
    }
    let path = data_dir.join(KEY_FILE);
    let io = |e: std::io::Error| VaultError::Key(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok((Vault::new(&decode_key(&text)?), KeySource::File(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    match create_private(&path) {
        Ok(mut file) => {
            file.write_all(format!("{text}\n").as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok((Vault::new(&key), KeySource::Created(path)))
        }
        // Another process created it between our read and create: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path).map_err(io)?;
            Ok((Vault::new(&decode_key(&text)?), KeySource::File(path)))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Owner;

    #[test]
    fn key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (v1, s1) = load_or_create(None, dir.path()).unwrap();
        assert!(matches!(s1, KeySource::Created(_)));
        let (v2, s2) = load_or_create(None, dir.path()).unwrap();
        assert!(matches!(s2, KeySource::File(_)));
        assert_eq!(v1.key_id(), v2.key_id());
        let owner = Owner::Webhook {
            tenant: "t",
            webhook: "w",
        };
        let sealed = v1.seal(owner, b"s").unwrap();
        assert_eq!(v2.open(owner, &sealed).unwrap(), b"s");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_key_wins_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let (v, s) = load_or_create(Some(&text), dir.path()).unwrap();
        assert_eq!(s, KeySource::Configured);
        assert_eq!(v.key_id(), Vault::new(&[9; 32]).key_id());
        assert!(!dir.path().join(KEY_FILE).exists());
        assert!(load_or_create(Some("c2hvcnQ="), dir.path()).is_err());
        assert!(load_or_create(Some("not base64!"), dir.path()).is_err());
    }
}
