//! Encryption at rest of per-plugin secrets and webhook signing secrets: the host's
//! secret key (from `PLINTH_SECRET_KEY` or a key file created once in the data
//! directory) and the [`Vault`] that seals and opens values with it.
//!
//! Values are sealed with XChaCha20-Poly1305 (an AEAD) under a fresh random 192-bit
//! nonce each time, so equal values never produce equal ciphertexts. The associated
//! data names what the value belongs to (tenant, plugin, secret name — or the
//! webhook), so a ciphertext copied to another row does not open. Sealed layout:
//! `version (1 byte) || nonce (24) || ciphertext + tag (16)`.

mod key;
pub mod plugin;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use key::{KEY_ENV, KEY_FILE, KeySource, KeyText, decode_key, load_or_create};

/// Format version of sealed values.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The ciphertext is malformed, was sealed under another key, or belongs to
    /// another owner (its associated data differs).
    #[error("the value cannot be decrypted with the configured secret key")]
    Open,
    /// Encryption failed (does not happen with valid inputs).
    #[error("the value could not be encrypted")]
    Seal,
    /// The key is malformed.
    #[error("invalid secret key: {0}")]
    Key(String),
}

/// What a sealed value belongs to; becomes the AEAD associated data.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// A plugin's secret in a tenant.
    PluginSecret {
        /// Tenant.
        tenant: &'a str,
        /// Plugin id.
        plugin: &'a str,
        /// Secret name.
        name: &'a str,
    },
    /// A tenant's webhook signing secret.
    Webhook {
        /// Tenant.
        tenant: &'a str,
        /// Webhook id.
        webhook: &'a str,
    },
}

impl Owner<'_> {
    fn associated_data(&self) -> Vec<u8> {
        // Length-prefixed parts: no choice of names can make two owners collide.
        let (label, parts): (&str, Vec<&str>) = match self {
            Owner::PluginSecret { tenant, plugin, name } => ("plinth/plugin-secret/v1", vec![tenant, plugin, name]),
            Owner::Webhook { tenant, webhook } => ("plinth/webhook-secret/v1", vec![tenant, webhook]),
        };
        let mut out = Vec::with_capacity(64);
        for part in std::iter::once(label).chain(parts) {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// Seals and opens values with the host's secret key. Cheap to clone. Its `Debug`
/// shows only the key id.
#[derive(Clone)]
pub struct Vault {
    cipher: XChaCha20Poly1305,
    key_id: String,
    /// HMAC key for signed links, derived from the secret key (never the key itself).
    link_key: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// A vault over a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Vault {
        let digest = Sha256::digest([b"plinth/secret-key-id/v1".as_slice(), key].concat());
        let link_key: [u8; 32] = Sha256::digest([b"plinth/link-signing-key/v1".as_slice(), key].concat()).into();
        Vault {
            cipher: XChaCha20Poly1305::new(key.into()),
            key_id: hex::encode(&digest[..8]),
            link_key,
        }
    }

    /// Sign `message` for a link that works without an API key (HMAC-SHA256 with a key
    /// derived from the secret key; hex). Every host holding the same secret key
    /// accepts it.
    pub fn sign_link(&self, message: &str) -> String {
        use hmac::Mac as _;
        let mut mac =
            <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.link_key).expect("HMAC takes any key length");
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is [`Vault::sign_link`]'s for `message` (compared in constant
    /// time).
    pub fn verify_link(&self, message: &str, signature: &str) -> bool {
        use hmac::Mac as _;
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac =
            <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.link_key).expect("HMAC takes any key length");
        mac.update(message.as_bytes());
        mac.verify_slice(&given).is_ok()
    }

    /// A vault over a key that lives only as long as this process: for sandboxes
    /// and tools whose secrets need not survive a restart.
    pub fn ephemeral() -> Vault {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Vault::new(&key)
    }

    /// A short public fingerprint of the key (stored beside sealed values, so a
    /// wrong key is recognisable). Reveals nothing about the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypt `plaintext` for `owner`.
    pub fn seal(&self, owner: Owner<'_>, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = owner.associated_data();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypt what [`Vault::seal`] produced for the same `owner`.
    pub fn open(&self, owner: Owner<'_>, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(VaultError::Open);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let aad = owner.associated_data();
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Open)
    }

    /// [`Vault::open`], as UTF-8 text.
    pub fn open_string(&self, owner: Owner<'_>, sealed: &[u8]) -> Result<String, VaultError> {
        String::from_utf8(self.open(owner, sealed)?).map_err(|_| VaultError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret<'a>(tenant: &'a str, plugin: &'a str, name: &'a str) -> Owner<'a> {
        Owner::PluginSecret { tenant, plugin, name }
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let v = Vault::new(&[7; 32]);
        let a = v.seal(secret("t1", "p", "token"), b"hunter2").unwrap();
        let b = v.seal(secret("t1", "p", "token"), b"hunter2").unwrap();
        assert_ne!(a, b, "a random nonce per value");
        assert!(!a.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(v.open_string(secret("t1", "p", "token"), &a).unwrap(), "hunter2");
    }

    #[test]
    fn bound_to_owner_and_key() {
        let v = Vault::new(&[7; 32]);
        let sealed = v.seal(secret("t1", "p", "token"), b"x").unwrap();
        for other in [
            secret("t2", "p", "token"),
            secret("t1", "q", "token"),
            secret("t1", "p", "tok"),
        ] {
            assert!(v.open(other, &sealed).is_err());
        }
        // Boundaries between parts matter: ("ab","c") is not ("a","bc").
        let s = v.seal(secret("t", "ab", "c"), b"x").unwrap();
        assert!(v.open(secret("t", "a", "bc"), &s).is_err());
        assert!(Vault::new(&[8; 32]).open(secret("t1", "p", "token"), &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(v.open(secret("t1", "p", "token"), &tampered).is_err());
        assert!(v.open(secret("t1", "p", "token"), &sealed[..10]).is_err());
    }

    #[test]
    fn key_id_is_stable_and_distinct() {
        assert_eq!(Vault::new(&[1; 32]).key_id(), Vault::new(&[1; 32]).key_id());
        assert_ne!(Vault::new(&[1; 32]).key_id(), Vault::new(&[2; 32]).key_id());
        assert!(!format!("{:?}", Vault::new(&[1; 32])).contains("0101"));
    }
}
