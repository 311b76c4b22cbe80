//! The signed payload, signing, verification and the package digest.

use ed25519_dalek::{Signature, Signer as _};
use sha2::{Digest as _, Sha256};

use super::PAYLOAD_DOMAIN;
use super::digest::Digest;
use super::error::PackageError;
use super::format::{Package, check_contents};
use super::keys::{PublicKey, SecretKey};

/// The bytes a package signature covers (82 bytes):
/// `b"plinth-package-v1\n"` ‖ SHA-256(manifest) ‖ SHA-256(component).
///
/// Hashing each part separately binds both contents and their boundary (a byte
/// cannot move from the manifest to the component unnoticed), keeps the payload
/// small whatever the component's size, and the prefix keeps a signature over it
/// from meaning anything in another protocol.
pub fn signed_payload(manifest: &[u8], component: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_DOMAIN.len() + 64);
    payload.extend_from_slice(PAYLOAD_DOMAIN);
    payload.extend_from_slice(&Sha256::digest(manifest));
    payload.extend_from_slice(&Sha256::digest(component));
    payload
}

impl Package {
    /// Signs `manifest` and `component` with `key`.
    ///
    /// Checks first what [`Package::decode`] would check, so a signed package always
    /// encodes to a file that decodes: manifest at most [`MAX_MANIFEST_BYTES`](super::MAX_MANIFEST_BYTES)
    /// and UTF-8, component at most [`MAX_COMPONENT_BYTES`](super::MAX_COMPONENT_BYTES)
    /// and starting with `\0asm`.
    pub fn sign(manifest: Vec<u8>, component: Vec<u8>, key: &SecretKey) -> Result<Package, PackageError> {
        check_contents(&manifest, &component)?;
        let signature = key
            .signing_key()
            .sign(&signed_payload(&manifest, &component))
            .to_bytes();
        Ok(Package {
            manifest,
            component,
            key_id: key.key_id(),
            signature,
        })
    }

    /// The payload this package's signature covers (see [`signed_payload`]).
    pub fn signed_payload(&self) -> Vec<u8> {
        signed_payload(&self.manifest, &self.component)
    }

    /// The content address: SHA-256 of the signed payload. It depends only on the
    /// manifest and component, not on who signed them.
    pub fn digest(&self) -> Digest {
        Digest::from_bytes(Sha256::digest(self.signed_payload()).into())
    }

    /// Checks that this package was signed by `key` and not altered since.
    ///
    /// In order:
    /// 1. the contents obey the format's rules (only fails for a `Package` built by
    ///    hand, never for one from [`Package::decode`] or [`Package::sign`]);
    /// 2. the recorded key id equals `key`'s, else [`PackageError::KeyMismatch`];
    /// 3. the Ed25519 signature verifies strictly (RFC 8032, rejecting
    ///    non-canonical and small-order encodings), else [`PackageError::BadSignature`].
    pub fn verify(&self, key: &PublicKey) -> Result<(), PackageError> {
        check_contents(&self.manifest, &self.component)?;
        let expected = key.key_id();
        if self.key_id != expected {
            return Err(PackageError::KeyMismatch {
                expected,
                found: self.key_id.clone(),
            });
        }
        let signature = Signature::from_bytes(&self.signature);
        key.verifying_key()
            .verify_strict(&self.signed_payload(), &signature)
            .map_err(|_| PackageError::BadSignature)
    }
}
