//! Plugin packages: the signed one-file `.plpkg` format, Ed25519 keys and signatures.
//!
//! This module owns everything about the bytes of a package and the keys that sign
//! it, and nothing else: it frames a plugin's `plugin.toml` manifest and its
//! WebAssembly component into one file, signs them, and checks all of that again
//! on the way in. It does not parse the manifest, compile the component, decide
//! which keys are trusted, or store packages; callers do those with the
//! [`Package`], [`PublicKey`] and [`Digest`] it hands them.
//!
//! The format is specified byte by byte in `docs/package-format.md`, and
//! `docs/verify_package.py` is an independent verifier written from that spec.
//!
//! In short:
//! - [`Package::sign`] builds a package from a manifest and a component;
//!   [`Package::encode`] / [`Package::decode`] turn it into the file bytes and back,
//!   decoding strictly (every length checked before it is used, no trailing bytes).
//! - [`Package::verify`] checks the signature against a key the caller trusts.
//! - [`Package::digest`] is the content address: SHA-256 of the signed payload, the
//!   same whoever signed the package.
//! - [`SecretKey`] files are written `0600`, never overwritten, and refused when
//!   other users can read them.

mod digest;
mod error;
mod format;
mod key_file;
mod keys;
mod signing;

#[cfg(test)]
mod tests;

pub use digest::{Digest, ParseDigestError};
pub use error::PackageError;
pub use format::Package;
pub use keys::{KeyId, PublicKey, SecretKey};
pub use signing::signed_payload;

/// The 8 bytes every package file starts with.
pub const MAGIC: &[u8; 8] = b"PLINTHPK";

/// The only format version this build reads and writes (byte 8 of the file).
pub const FORMAT_VERSION: u8 = 1;

/// The largest manifest (`plugin.toml`) a package may carry: 256 KiB.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;

/// The largest WebAssembly component a package may carry: 64 MiB.
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;

/// The domain-separation prefix of the signed payload, so a package signature can
/// never be replayed as a signature over anything else (and vice versa).
pub const PAYLOAD_DOMAIN: &[u8; 18] = b"plinth-package-v1\n";

/// The file extension of a package, without the dot.
pub const FILE_EXTENSION: &str = "plpkg";
