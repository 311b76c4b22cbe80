//! The one error type of the package module, with user-facing messages.

use super::keys::KeyId;

/// Everything that can go wrong building, decoding, verifying a package or
/// handling its keys. Messages are written for the person who runs the command.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The input has no bytes at all.
    #[error("the file is empty: a Plinth package starts with the bytes \"PLINTHPK\"")]
    Empty,

    /// The input does not start with [`MAGIC`](super::MAGIC).
    #[error("this is not a Plinth package: the file does not start with the bytes \"PLINTHPK\"")]
    NotAPackage,

    /// The format version byte is not [`FORMAT_VERSION`](super::FORMAT_VERSION).
    #[error("unsupported package format version {0}: this build of Plinth reads version 1 only")]
    UnsupportedVersion(u8),

    /// A field runs past the end of the input.
    #[error(
        "the package is truncated: the {field} needs {needed} {} at offset {offset} but {}",
        bytes(*needed),
        remaining(*available)
    )]
    Truncated {
        /// Which field is cut short (e.g. "component").
        field: &'static str,
        /// Byte offset where that field starts.
        offset: usize,
        /// How many bytes the field needs.
        needed: usize,
        /// How many bytes are left from `offset` to the end of the input.
        available: usize,
    },

    /// A manifest or component exceeds its size limit.
    #[error("the {field} is {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// "manifest" or "component".
        field: &'static str,
        /// Its (declared) size.
        size: usize,
        /// The limit.
        max: usize,
    },

    /// Bytes follow the signature.
    #[error(
        "the package has {count} unexpected {} after the signature; it was damaged or is not a version 1 package",
        bytes(*count)
    )]
    TrailingBytes {
        /// How many extra bytes there are.
        count: usize,
    },

    /// A key id that is not 16 lowercase hex characters (the text says what is wrong).
    #[error("bad key id: {0}")]
    BadKeyId(String),

    /// The component is empty or does not start with the WebAssembly magic `\0asm`.
    #[error("the component is not WebAssembly: it does not start with the bytes \"\\0asm\"")]
    NotAComponent,

    /// The manifest bytes are not valid UTF-8.
    #[error("the manifest (plugin.toml) is not valid UTF-8")]
    ManifestNotUtf8,

    /// The package names a different signing key than the one it is checked against.
    #[error("signed by key {found} but the expected key is {expected}")]
    KeyMismatch {
        /// The key id of the key the caller trusts.
        expected: KeyId,
        /// The key id recorded in the package.
        found: KeyId,
    },

    /// The Ed25519 signature does not verify.
    #[error("the signature does not verify: the package was altered after signing, or signed with a different key")]
    BadSignature,

    /// A public or secret key (text or file) is malformed or unsafe; the text says why.
    /// It never contains secret key material.
    #[error("{0}")]
    Key(String),

    /// An I/O error from a caller reading or writing package bytes.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// "1 byte" / "2 bytes".
fn bytes(n: usize) -> &'static str {
    if n == 1 { "byte" } else { "bytes" }
}

/// "nothing remains" / "only 1 remains" / "only 2 remain".
fn remaining(n: usize) -> String {
    match n {
        0 => "nothing remains".to_owned(),
        1 => "only 1 remains".to_owned(),
        n => format!("only {n} remain"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_message_matches_the_documented_wording() {
        let e = PackageError::Truncated {
            field: "component",
            offset: 2110,
            needed: 1_048_576,
            available: 1000,
        };
        assert_eq!(
            e.to_string(),
            "the package is truncated: the component needs 1048576 bytes at offset 2110 but only 1000 remain"
        );
        let e = PackageError::Truncated {
            field: "key id length",
            offset: 40,
            needed: 1,
            available: 0,
        };
        assert_eq!(
            e.to_string(),
            "the package is truncated: the key id length needs 1 byte at offset 40 but nothing remains"
        );
    }
}
