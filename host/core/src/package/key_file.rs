//! The secret key file: its text format and the permission rules for writing and
//! reading it.
//!
//! Format (text, exactly two lines, each ending in `\n`):
//! ```text
//! plinth-ed25519-secret-key-v1
//! <standard base64 with padding of the 32-byte Ed25519 seed>
//! ```
//! No error produced here ever contains any part of the secret.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::PackageError;
use super::keys::SecretKey;

/// The first line of a secret key file; the `v1` lets the format change later.
const HEADER: &str = "plinth-ed25519-secret-key-v1";

/// A real key file is 74 bytes; anything much larger is not one, and capping the
/// read keeps a mistaken path (a disk image, /dev/zero) from being slurped.
const MAX_KEY_FILE_BYTES: u64 = 4096;

impl SecretKey {
    /// The key file text: the header line, then the base64 seed, then a newline.
    ///
    /// The returned string contains the secret; write it somewhere private
    /// (prefer [`SecretKey::write_new`]) and never log it.
    pub fn to_file_text(&self) -> String {
        format!("{HEADER}\n{}\n", STANDARD.encode(self.seed()))
    }

    /// Parses key file text written by [`SecretKey::to_file_text`].
    ///
    /// Accepts `\r\n` line ends and a missing final newline (hand-edited files),
    /// nothing else: no extra lines, no other header.
    pub fn from_file_text(text: &str) -> Result<SecretKey, PackageError> {
        let mut lines = text.lines();
        if lines.next().map(str::trim_end) != Some(HEADER) {
            return Err(PackageError::Key(format!(
                "this is not a Plinth secret key file: its first line must be \"{HEADER}\""
            )));
        }
        let Some(seed_line) = lines.next() else {
            return Err(PackageError::Key(
                "the secret key file has no key line after its header".to_owned(),
            ));
        };
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(PackageError::Key(
                "the secret key file has unexpected lines after the key line".to_owned(),
            ));
        }
        // The decode error is dropped on purpose: its text quotes the offending
        // character and offset, which would leak part of the secret.
        let seed = STANDARD
            .decode(seed_line.trim())
            .map_err(|_| PackageError::Key("the secret key file's key line is not valid standard base64".to_owned()))?;
        let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
            PackageError::Key(format!(
                "the secret key file's key line decodes to {} bytes; an Ed25519 seed is 32 bytes",
                seed.len()
            ))
        })?;
        Ok(SecretKey::from_seed(&seed))
    }

    /// Writes the key to a new file at `path` with mode `0600`.
    ///
    /// Refuses (with [`PackageError::Key`]) if anything already exists at `path`:
    /// overwriting a secret key would orphan every package it signed.
    pub fn write_new(&self, path: &Path) -> Result<(), PackageError> {
        let shown = path.display();
        // create_new is atomic (O_EXCL), so there is no window where an existing
        // file is truncated; mode 0600 applies from creation, never widened later.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => PackageError::Key(format!(
                    "refusing to overwrite {shown}: a file already exists there (move it away or choose another path)"
                )),
                _ => PackageError::Key(format!("cannot create the secret key file {shown}: {e}")),
            })?;
        file.write_all(self.to_file_text().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| PackageError::Key(format!("cannot write the secret key file {shown}: {e}")))
    }

    /// Reads a key file written by [`SecretKey::write_new`].
    ///
    /// Refuses a file that its group or other users can read or write
    /// (`mode & 0o077 != 0`), telling the user to `chmod 600` it.
    pub fn read(path: &Path) -> Result<SecretKey, PackageError> {
        let shown = path.display();
        let file =
            File::open(path).map_err(|e| PackageError::Key(format!("cannot open the secret key file {shown}: {e}")))?;
        // Check the mode of the file we opened, not of the path, so a swap between
        // the check and the read cannot slip a different file past it.
        let mode = file
            .metadata()
            .map_err(|e| PackageError::Key(format!("cannot inspect the secret key file {shown}: {e}")))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(PackageError::Key(format!(
                "the secret key file {shown} is accessible to other users (mode {:04o}); restrict it with `chmod 600 {shown}`",
                mode & 0o7777
            )));
        }
        let mut text = String::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| PackageError::Key(format!("cannot read the secret key file {shown}: {e}")))?;
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(PackageError::Key(format!(
                "{shown} is too large to be a Plinth secret key file"
            )));
        }
        SecretKey::from_file_text(&text).map_err(|e| match e {
            PackageError::Key(msg) => PackageError::Key(format!("{shown}: {msg}")),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn file_text_round_trip() {
        let key = SecretKey::generate();
        let text = key.to_file_text();
        let mut lines = text.split('\n');
        assert_eq!(lines.next(), Some(HEADER));
        assert_eq!(lines.next(), Some(STANDARD.encode(key.seed()).as_str()));
        assert_eq!(lines.next(), Some(""));
        assert_eq!(lines.next(), None);
        let back = SecretKey::from_file_text(&text).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        // Tolerated variants.
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(SecretKey::from_file_text(&crlf).unwrap().key_id(), key.key_id());
        let no_final = text.trim_end();
        assert_eq!(SecretKey::from_file_text(no_final).unwrap().key_id(), key.key_id());
    }

    #[test]
    fn file_text_errors_never_leak_the_seed() {
        let key = SecretKey::generate();
        let b64 = STANDARD.encode(key.seed());
        let cases = [
            String::new(),
            format!("wrong-header\n{b64}\n"),
            format!("{HEADER}\n"),
            format!("{HEADER}\n{b64}\nextra\n"),
            format!("{HEADER}\n{}!\n", &b64[..43]),
            format!("{HEADER}\n{}\n", &b64[..40]),
            format!("{HEADER}\n{}\n", STANDARD.encode([7u8; 31])),
        ];
        for text in cases {
            let err = SecretKey::from_file_text(&text).unwrap_err();
            assert!(matches!(err, PackageError::Key(_)), "{err}");
            let msg = err.to_string();
            assert!(!msg.contains(&b64[..8]), "leaks the seed: {msg}");
        }
    }

    #[test]
    fn written_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let key = SecretKey::generate();
        key.write_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = SecretKey::read(&path).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(fs::read_to_string(&path).unwrap(), key.to_file_text());
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let first = SecretKey::generate();
        first.write_new(&path).unwrap();
        let err = SecretKey::generate().write_new(&path).unwrap_err();
        assert!(matches!(err, PackageError::Key(_)));
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        // The original key is untouched.
        assert_eq!(SecretKey::read(&path).unwrap().key_id(), first.key_id());
    }

    #[test]
    fn refuses_to_read_a_group_or_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        SecretKey::generate().write_new(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = SecretKey::read(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, PackageError::Key(_)));
            assert!(msg.contains(&format!("chmod 600 {}", path.display())), "{msg}");
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(SecretKey::read(&path).is_ok());
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        let msg = SecretKey::read(&missing).unwrap_err().to_string();
        assert!(msg.contains("missing.key"), "{msg}");

        let garbage = dir.path().join("garbage.key");
        fs::write(&garbage, "hello\n").unwrap();
        fs::set_permissions(&garbage, fs::Permissions::from_mode(0o600)).unwrap();
        let msg = SecretKey::read(&garbage).unwrap_err().to_string();
        assert!(
            msg.contains("garbage.key") && msg.contains("not a Plinth secret key file"),
            "{msg}"
        );

        let big = dir.path().join("big.key");
        fs::write(&big, vec![b'a'; 10_000]).unwrap();
        fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).unwrap();
        let msg = SecretKey::read(&big).unwrap_err().to_string();
        assert!(msg.contains("too large"), "{msg}");
    }
}
